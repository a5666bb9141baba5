"""benchmarks/run.py: the smoke suite end to end in a subprocess, and the harness's pure parts on fakes."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch

RUN_PY = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


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


def test_skips_unregistered_and_broken_methods(harness: ModuleType) -> None:
    entry = harness.Entry("e", "vanilla-nerf", steps=1)
    assert harness.skip_reason(entry, ["vanilla-nerf"], {}) is None
    missing = harness.skip_reason(harness.Entry("e", "no-such-method", steps=1), ["vanilla-nerf"], {})
    assert "'no-such-method' is not registered" in missing and "vanilla-nerf" in missing
    broken = harness.skip_reason(harness.Entry("e", "ngp", steps=1), ["vanilla-nerf"], {"ngp": "ImportError: x"})
    assert "does not load: ImportError: x" in broken
    for suite in harness.SUITES.values():
        for candidate in suite.entries:
            assert candidate.steps is not None or candidate.wall_seconds is not None, candidate.name
            assert harness.Entry.from_json(json.loads(json.dumps(candidate.to_json()))) == candidate


def test_stops_at_the_first_budget_reached(harness: ModuleType) -> None:
    both = harness.Entry("e", "m", steps=10, wall_seconds=60.0)
    assert harness.stop_reason(9, 59.0, both, 1000) is None
    assert harness.stop_reason(10, 1.0, both, 1000) == "steps"
    assert harness.stop_reason(3, 60.0, both, 1000) == "wall_seconds"
    assert harness.stop_reason(5, 1.0, harness.Entry("e", "m", wall_seconds=60.0), 5) == "max_num_iterations"


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
    assert summary["samples_per_step"] is None
    assert harness.throughput(records, warmup_steps=4)["iters_per_sec"] is None
