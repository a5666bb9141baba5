"""benchmarks/run.py: the smoke suite end to end in a subprocess, a two-process entry on the CPU, the GPU suites'
entries (kit-train parses them; a machine without CUDA skips them with the reason), and the harness's pure parts on
fakes; benchmarks/gpu_check.sh is valid bash; benchmarks/bench_ab.py end to end on a tiny model."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch
from kit_flags import TINY_MODEL

from nerfkit.plugins.registry import get_registry
from nerfkit.scripts.train import parse_args

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
RUN_PY = BENCHMARKS / "run.py"
BENCH_AB = BENCHMARKS / "bench_ab.py"
GPU_SUITES = ("gpu-quick", "gpu")


@pytest.fixture(scope="module")
def harness() -> ModuleType:
    """benchmarks/run.py imported as a module (benchmarks/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("nerfkit_benchmark_run", RUN_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_smoke_suite_end_to_end(lego_dir: Path, lego_cache_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "smoke.json"
    env = {**os.environ, "NERFKIT_CACHE_DIR": str(lego_cache_dir)}
    command = [sys.executable, str(RUN_PY), "--suite", "smoke", "--data", str(lego_dir), "--output", str(output)]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "vanilla-nerf-tiny" in completed.stdout and "SSIM" in completed.stdout

    report = json.loads(output.read_text())
    assert report["suite"] == "smoke"
    machine = report["machine"]
    assert machine["cpu_model"] and machine["cpus_available"] >= 1 and machine["git_commit"]
    (result,) = report["entries"]
    assert result["status"] == "ok", result.get("note")
    entry = result["entry"]
    # 20 steps normally; on a very busy machine the 40 s wall cap may stop it first.
    assert result["stop_reason"] in ("steps", "wall_seconds") and len(result["step_seconds"]) == result["steps"]
    assert result["timed_steps"] == result["steps"] - entry["warmup_steps"] > 0
    assert result["iters_per_sec"] > 0 and result["train_rays_per_sec"] > 0
    # The smoke model's batch is 256 rays, counted from what the datamanager actually returned.
    assert result["rays_per_step"] == {"min": 256, "median": 256, "max": 256}
    assert result["rays_source"] == ["datamanager.next_train"]
    if result["timed_steps"] % 2:  # an odd count's median step is one step, so the two medians agree exactly
        assert result["train_rays_per_sec"] == pytest.approx(256 * result["iters_per_sec"], rel=1e-6)
    assert result["process_start"]["source"] == "/proc/self/stat start time"
    assert 0 < result["imports_finished_s"] < result["setup_finished_s"] < result["train_finished_s"]
    assert result["train_finished_s"] < result["eval_finished_s"] <= result["wall_seconds"] < 180
    assert result["peak_rss_mib"] >= result["peak_rss_after_setup_mib"] > 50
    assert result["torch_version"] == torch.__version__ and "mlp:" in result["backends"]
    test = result["test"]
    assert test["split"] == "test" and test["num_images"] == entry["eval_images"] and test["image_size"] == [100, 100]
    assert math.isfinite(test["psnr"]) and 0 < test["ssim"] <= 1
    assert test["render_rays_per_sec"] > 0 and test["notes"] == []


def test_two_process_entry_trains_in_step_and_counts_every_ranks_rays(
    harness: ModuleType, lego_dir: Path, lego_cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--machine.num-devices 2 on the CPU: kit-train's launcher spawns two gloo ranks, rank 0 measures, and both stop
    at rank 0's time budget (a rank that took another step would wait for the other's gradients forever)."""
    monkeypatch.setenv("NERFKIT_CACHE_DIR", str(lego_cache_dir))
    flags = (*harness.SMOKE_MODEL, "--machine.num-devices", "2")
    entry = harness.Entry(
        "ddp", "vanilla-nerf", lego_dir, 8, flags, train_seconds=2.0, eval_images=1, timeout_seconds=180
    )
    result = harness.run_child(entry)
    assert result["status"] == "ok", result.get("note")
    assert result["world_size"] == 2 and result["stop_reason"] == "train_seconds"
    assert result["rays_per_step"] == {"min": 512, "median": 512, "max": 512}  # 256 rays on each rank
    assert result["test"]["num_images"] == 1 and result["peak_cuda_allocated_mib"] is None


def test_skips_unregistered_and_broken_methods(harness: ModuleType) -> None:
    here = harness.Capabilities(cuda_devices=0, package_problems={})
    entry = harness.Entry("e", "vanilla-nerf", steps=1)
    assert harness.skip_reason(entry, ["vanilla-nerf"], {}, here) is None
    missing = harness.skip_reason(harness.Entry("e", "no-such-method", steps=1), ["vanilla-nerf"], {}, here)
    assert "'no-such-method' is not registered" in missing and "vanilla-nerf" in missing
    broken = harness.skip_reason(harness.Entry("e", "ngp", steps=1), ["vanilla-nerf"], {"ngp": "ImportError: x"}, here)
    assert "does not load: ImportError: x" in broken
    for suite in harness.SUITES.values():
        for candidate in suite.entries:
            budgets = (candidate.steps, candidate.wall_seconds, candidate.train_seconds)
            assert any(budget is not None for budget in budgets), candidate.name
            assert harness.Entry.from_json(json.loads(json.dumps(candidate.to_json()))) == candidate
            if suite.name not in GPU_SUITES:
                assert harness.entry_needs(candidate) == (0, []), candidate.name


def gpu_entries(harness: ModuleType) -> list:
    return [entry for name in GPU_SUITES for entry in harness.SUITES[name].entries]


def test_gpu_entries_are_what_kit_train_parses_from_their_flags(harness: ModuleType, tmp_path: Path) -> None:
    """Each entry's name says what it varies; kit-train's own parser must read the same from its flags."""
    registry = get_registry()
    for entry in gpu_entries(harness):
        combination = entry.name.removeprefix(f"{entry.method}-lego-ds1-").split("-")[0]
        config = parse_args(harness.kit_train_argv(entry, tmp_path), registry)
        on_cuda = harness.BACKEND_COMBINATIONS[combination]
        for operation in harness.KERNEL_OPERATIONS:
            backend = getattr(config.machine.kernels, operation.replace("-", "_"))
            assert backend == ("cuda-kernels" if operation in on_cuda else "torch"), (entry.name, operation)
        assert config.machine.device_type == "cuda" and config.pipeline.datamanager.dataparser.downscale_factor == 1
        assert config.mixed_precision == ("-amp" in entry.name), entry.name
        assert config.machine.num_devices == (2 if entry.name.endswith("-2gpu") else 1), entry.name
    for suite in GPU_SUITES:
        names = [entry.name for entry in harness.SUITES[suite].entries]
        assert len(names) == len(set(names)), suite
    (target, *_) = harness.SUITES["gpu-quick"].entries
    assert target.name == "instant-ngp-lego-ds1-cuda" and target.train_seconds == 90 and target.eval_images is None
    full = {entry.name for entry in harness.SUITES["gpu"].entries}
    for combination in harness.BACKEND_COMBINATIONS:
        assert {f"instant-ngp-lego-ds1-{combination}", f"instant-ngp-lego-ds1-{combination}-amp"} <= full


def test_pose_refinement_pair_differs_in_the_camera_optimizer_alone(harness: ModuleType, tmp_path: Path) -> None:
    """cpu-nerfacto-poses: nerfacto's registered settings (pose refinement on), and the same with refinement off."""
    registry = get_registry()
    on_entry, off_entry = harness.SUITES["cpu-nerfacto-poses"].entries
    assert replace(off_entry, name=on_entry.name, flags=(), description="") == replace(on_entry, description="")
    on, off = (
        parse_args(harness.kit_train_argv(entry, tmp_path), registry).pipeline.model for entry in (on_entry, off_entry)
    )
    assert on.camera_optimizer == registry.methods["nerfacto"].config.pipeline.model.camera_optimizer
    assert on.camera_optimizer.mode == "SO3xR3" and off.camera_optimizer.mode == "off"
    assert replace(off, camera_optimizer=on.camera_optimizer) == on


def test_gpu_entries_say_what_this_machine_lacks(harness: ModuleType) -> None:
    methods = list(get_registry().methods)

    def reasons(capabilities: object) -> dict[str, str | None]:
        return {entry.name: harness.skip_reason(entry, methods, {}, capabilities) for entry in gpu_entries(harness)}

    no_cuda = harness.Capabilities(0, {"nerfacc": "not installed", "tinycudann": "not installed"})
    assert all("CUDA device" in reason for reason in reasons(no_cuda).values())
    one_gpu = reasons(harness.Capabilities(1, {"tinycudann": "import failed: OSError: x"}))
    assert one_gpu["instant-ngp-lego-ds1-torch"] is None and one_gpu["instant-ngp-lego-ds1-nerfacc"] is None
    assert one_gpu["instant-ngp-lego-ds1-tcnn"] == "needs tinycudann: import failed: OSError: x"
    assert one_gpu["vanilla-nerf-lego-ds1-torch-2gpu"] == "needs 2 CUDA devices, torch sees 1"
    assert not any(reasons(harness.Capabilities(2, {})).values())


def test_gpu_suites_without_cuda_list_and_run_as_skipped(harness: ModuleType, tmp_path: Path) -> None:
    if harness.local_capabilities().cuda_devices:
        pytest.skip("this machine has CUDA: the GPU suites would run")
    listing = subprocess.run([sys.executable, str(RUN_PY), "--list"], capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    rows = [line for line in listing.stdout.splitlines() if line.startswith(("│ gpu ", "│ gpu-quick "))]
    assert len(rows) == len(gpu_entries(harness)) and all("skipped [" in row for row in rows)
    assert "needs 1 CUDA device, torch sees 0" in listing.stdout
    for suite in GPU_SUITES:
        output = tmp_path / f"{suite}.json"
        command = [sys.executable, str(RUN_PY), "--suite", suite, "--output", str(output)]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert completed.returncode == 0, completed.stdout + completed.stderr
        entries = json.loads(output.read_text())["entries"]
        assert len(entries) == len(harness.SUITES[suite].entries)
        assert all(result["status"] == "skipped" and "CUDA device" in result["note"] for result in entries)


def test_gpu_check_script_is_valid_bash() -> None:
    completed = subprocess.run(["bash", "-n", str(BENCHMARKS / "gpu_check.sh")], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr


def test_stops_at_the_first_budget_reached(harness: ModuleType) -> None:
    both = harness.Entry("e", "m", steps=10, wall_seconds=60.0)
    assert harness.stop_reason(9, 59.0, both, 1000) is None
    assert harness.stop_reason(10, 1.0, both, 1000) == "steps"
    assert harness.stop_reason(3, 60.0, both, 1000) == "wall_seconds"
    assert harness.stop_reason(5, 1.0, harness.Entry("e", "m", wall_seconds=60.0), 5) == "max_num_iterations"
    training = harness.Entry("e", "m", train_seconds=90.0)
    assert harness.stop_reason(7, 200.0, training, 1000, train_elapsed=89.0) is None
    assert harness.stop_reason(7, 200.0, training, 1000, train_elapsed=90.0) == "train_seconds"


def test_probe_counts_the_rays_each_step_really_had(harness: ModuleType) -> None:
    """A dynamic batch: the configured size is stale, so the rays the datamanager returned must be counted."""

    class DataManager:
        config = SimpleNamespace(train_num_rays_per_batch=4096)

        def next_train(self, step: int, num_rays: int | None = None) -> tuple[SimpleNamespace, dict]:
            return SimpleNamespace(shape=torch.Size([num_rays])), {}

    class Pipeline:
        datamanager = DataManager()

        def get_train_loss_dict(self, step: int) -> tuple[dict, dict, dict]:
            bundle, _ = self.datamanager.next_train(step, num_rays=100 * step)
            return {"num_samples_per_batch": torch.tensor(7.0 * step)}, {}, {}

    pipeline = Pipeline()
    probe = harness.StepProbe(pipeline)
    for step in (1, 2):
        probe.reset()
        pipeline.get_train_loss_dict(step)
        assert probe.step_rays(configured=4096) == (100.0 * step, "datamanager.next_train")
        assert probe.samples == 7.0 * step
    probe.reset()
    assert probe.step_rays(configured=4096) == (4096.0, "datamanager.config.train_num_rays_per_batch")


def test_throughput_is_the_median_after_warmup(harness: ModuleType) -> None:
    records = [harness.StepRecord(i, seconds, 100.0, None, 0.0) for i, seconds in enumerate([9.0, 1.0, 2.0, 4.0])]
    summary = harness.throughput(records, warmup_steps=1)
    assert summary["timed_steps"] == 3 and summary["sec_per_iter"] == 2.0
    assert summary["iters_per_sec"] == 0.5 and summary["train_rays_per_sec"] == 50.0
    assert summary["samples_per_step"] is None and summary["train_samples_per_sec"] is None
    assert harness.throughput(records, warmup_steps=4)["iters_per_sec"] is None
    sampled = [replace(record, samples=record.rays * 8) for record in records]
    assert harness.throughput(sampled, warmup_steps=1)["train_samples_per_sec"] == 400.0


def test_interleaved_ab_end_to_end(lego_dir: Path, lego_cache_dir: Path, tmp_path: Path) -> None:
    """Two configurations step by step in one process; B halves A's batch, which its step records must show."""
    output = tmp_path / "ab.json"
    env = {**os.environ, "NERFKIT_CACHE_DIR": str(lego_cache_dir)}
    tiny = " ".join(TINY_MODEL)
    half = f"{tiny} --pipeline.datamanager.train-num-rays-per-batch 32"
    command = [sys.executable, str(BENCH_AB), "--method", "vanilla-nerf", "--data", str(lego_dir), "--downscale", "8",
               "--steps", "4", "--warmup", "1", "--a", tiny, "--b", half, "--output", str(output)]  # fmt: skip
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "median over steps of B's step time / A's" in completed.stdout
    report = json.loads(output.read_text())
    records = report["steps_seconds_and_rays"]
    assert [rays for _, rays in records["A"]] == [64] * 4 and [rays for _, rays in records["B"]] == [32] * 4
    assert report["A"]["mean_rays_per_sec"] > 0 and report["B"]["median_sec_per_iter"] > 0
    assert report["median_step_ratio_b_over_a"] > 0


def test_interim_evaluations_are_left_out_of_the_training_clock(
    harness: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Steps take 10 s and an evaluation 25 s of a fake clock: scores land at the first step boundary past each due
    age of the training clock, and the 300 s budget counts training only."""
    now = [0.0]
    monkeypatch.setattr(harness.time, "perf_counter", lambda: now[0])

    def fake_evaluation(trainer: object, limit: int | None) -> dict[str, float]:
        now[0] += 25.0
        return {"psnr": 20.0 + trainer.step / 3, "ssim": 0.5}

    monkeypatch.setattr(harness, "evaluate_test_split", fake_evaluation)

    class Trainer:
        world_size, is_main, start_step, step = 1, True, 0, 0
        device = torch.device("cpu")
        config = SimpleNamespace(max_num_iterations=1000)
        pipeline = SimpleNamespace()

        def train_iteration(self, step: int) -> tuple[float, None, None]:
            now[0] += 10.0
            return 0.1, None, None

    entry = harness.Entry("e", "m", wall_seconds=300.0, eval_at_seconds=(120.0, 45.0))
    clock = harness.ProcessClock(0.0, "fake")
    records, reason, _, interim = harness.train_until_budget(Trainer(), entry, clock, SimpleNamespace(
        reset=lambda: None, step_rays=lambda configured: (None, "none"), samples=None))  # fmt: skip
    assert reason == "wall_seconds" and len(records) == 30  # the 300 s of training, evaluations aside
    assert [(test["train_clock_s"], test["step"]) for test in interim] == [(50.0, 5), (120.0, 12)]
    assert now[0] == 300.0 + 2 * 25.0
    assert harness.Entry.from_json(entry.to_json()) == entry
