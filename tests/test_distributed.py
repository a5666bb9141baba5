"""Distributed training on the CPU (gloo, 2 ranks): one set of outputs, identical ranks, the loss of one process with
twice the batch, torchrun, a killed rank, and checkpoints that load whatever the world size."""

from __future__ import annotations

import csv
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from kit_flags import TINY_MODEL, TINY_NGP_MODEL
from rich.console import Console

from nerfkit.configs.base_config import MachineConfig
from nerfkit.configs.ranges import check_ranges
from nerfkit.configs.trainer import TrainerConfig
from nerfkit.engine.checkpoints import list_checkpoints, load_checkpoint
from nerfkit.engine.distributed import Rank, check_machine, launch
from nerfkit.engine.training_run import launch_training, setup_trainer
from nerfkit.errors import NerfkitError
from nerfkit.plugins.registry import get_registry
from nerfkit.scripts.train import main, parse_args

TINY_VANILLA = [
    *TINY_MODEL,
    "--pipeline.datamanager.dataparser.downscale-factor", "8",
    "--logging.steps-per-log", "1",
    "--steps-per-eval-batch", "0",
    "--steps-per-eval-image", "5",
    "--steps-per-eval-all-images", "0",
    "--vis", "none",
]  # fmt: skip
"""vanilla-nerf in milliseconds per step; rank 0 renders an eval image every 5 steps while rank 1 waits."""

TINY_NGP = [*TINY_NGP_MODEL, "--steps-per-eval-batch", "0", "--steps-per-eval-image", "0", "--vis", "none"]
"""instant-ngp shrunk; past its 4 warm-up steps each grid update draws random cells, which differ between ranks."""

TINY_NERFACTO = [
    "--pipeline.datamanager.dataparser.downscale-factor", "8",
    "--pipeline.datamanager.train-num-rays-per-batch", "64",
    "--pipeline.model.num-levels", "4",
    "--pipeline.model.log2-hashmap-size", "12",
    "--pipeline.model.max-resolution", "64",
    "--pipeline.model.sampler.num-proposal-samples-per-ray", "16", "8",
    "--pipeline.model.sampler.num-nerf-samples-per-ray", "8",
    "--steps-per-eval-batch", "0",
    "--steps-per-eval-image", "0",
    "--vis", "none",
]  # fmt: skip
"""nerfacto in milliseconds per step, with its default pose refinement."""

STEPS = 12
TWO_RANKS = ["--machine.num-devices", "2", "--machine.dist-timeout", "60"]


@pytest.fixture(autouse=True)
def cache(lego_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NERFKIT_CACHE_DIR", str(lego_cache_dir))


def train_and_keep_weights(rank: Rank, config: TrainerConfig) -> int:
    """Trains this rank, then writes the weights it holds in memory beside the run (rank-R.pt), to compare ranks."""
    trainer = setup_trainer(config, Console(quiet=True), rank)
    trainer.train()
    torch.save(trainer.pipeline.state_dict(), trainer.run_dir / f"rank-{rank.rank}.pt")
    return 0


def train_and_note_the_viewer(rank: Rank, config: TrainerConfig) -> int:
    """Trains this rank and writes whether it served a viewer (viewer-rank-R.txt)."""
    trainer = setup_trainer(config, Console(quiet=True), rank)
    trainer.train()
    (trainer.run_dir / f"viewer-rank-{rank.rank}.txt").write_text(str(trainer.viewer is not None))
    return 0


def config_for(*argv: str) -> TrainerConfig:
    return parse_args(list(argv), get_registry())


def losses(run_dir: Path) -> dict[int, float]:
    with open(run_dir / "metrics.csv") as file:
        return {int(row["step"]): float(row["value"]) for row in csv.DictReader(file) if row["name"] == "train/loss"}


def latest_checkpoint(run_dir: Path) -> dict:
    checkpoints = list_checkpoints(run_dir / "nerfkit_models")
    return load_checkpoint(checkpoints[max(checkpoints)])


def assert_same_weights(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor], atol: float = 0.0) -> None:
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=atol, msg=name)


@pytest.fixture(scope="module")
def runs(lego_dir: Path, lego_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Runs trained on first use and shared by the tests: runs(name, *flags) keeps each rank's final weights."""

    @functools.cache
    def run(name: str, *flags: str) -> Path:
        os.environ["NERFKIT_CACHE_DIR"] = str(lego_cache_dir)
        run_dir = tmp_path_factory.mktemp(name) / "run"
        config = config_for(*flags, "--data", str(lego_dir), "--run-dir", str(run_dir))
        assert launch_training(config, debug=True, worker=train_and_keep_weights) == 0
        return run_dir

    return run


def vanilla_two_ranks(runs: Callable[..., Path]) -> Path:
    return runs("two-ranks", "vanilla-nerf", *TINY_VANILLA, *TWO_RANKS, "--max-num-iterations", str(STEPS),
                "--steps-per-save", str(STEPS // 2))  # fmt: skip


def test_two_ranks_write_one_run_and_hold_identical_parameters(runs: Callable[..., Path]) -> None:
    run_dir = vanilla_two_ranks(runs)
    assert sorted(path.name for path in run_dir.iterdir()) == [
        "config.yml", "dataparser_transforms.json", "metrics.csv", "nerfkit_models", "rank-0.pt", "rank-1.pt"
    ]  # fmt: skip
    assert sorted(list_checkpoints(run_dir / "nerfkit_models")) == [STEPS // 2, STEPS]
    assert sorted(losses(run_dir)) == list(range(1, STEPS + 1)), "one train/loss row per step: rank 0 alone logs"
    rank_0, rank_1 = (torch.load(run_dir / f"rank-{rank}.pt") for rank in (0, 1))
    assert_same_weights(rank_0, rank_1)
    checkpoint = latest_checkpoint(run_dir)
    assert_same_weights(checkpoint["pipeline"], rank_0)
    streams = checkpoint["rng_per_rank"]
    assert len(streams) == 2 and torch.equal(streams[0]["torch"], checkpoint["rng"]["torch"])
    assert not torch.equal(streams[0]["torch"], streams[1]["torch"]), "ranks must draw different rays"


def test_occupancy_grid_and_batch_size_stay_identical_across_ranks(runs: Callable[..., Path]) -> None:
    run_dir = runs("ngp-two-ranks", "instant-ngp", *TINY_NGP, *TWO_RANKS, "--max-num-iterations", "10")
    rank_0, rank_1 = (torch.load(run_dir / f"rank-{rank}.pt") for rank in (0, 1))
    grid = [name for name in rank_0 if name.endswith(("occs", "binaries"))]
    assert grid and rank_0["num_rays_per_batch"] != 256, "the grid and the dynamic batch must have been updated"
    assert rank_0[grid[0]].unique().numel() > 2, "the grid must hold estimates, not its initial zeros"
    assert_same_weights(rank_0, rank_1)


def test_every_parameter_group_stays_identical_across_ranks(runs: Callable[..., Path]) -> None:
    """nerfacto's pose refinement (the camera_opt group) and proposal networks are averaged like its field."""
    run_dir = runs("nerfacto-two-ranks", "nerfacto", *TINY_NERFACTO, *TWO_RANKS, "--max-num-iterations", "6")
    rank_0, rank_1 = (torch.load(run_dir / f"rank-{rank}.pt") for rank in (0, 1))
    poses = [name for name in rank_0 if name.endswith("pose_adjustment")]
    assert poses and rank_0[poses[0]].abs().sum() > 0, "pose refinement must have moved the cameras"
    assert_same_weights(rank_0, rank_1)


def test_two_ranks_follow_the_loss_of_one_process_with_twice_the_batch(
    runs: Callable[..., Path], lego_dir: Path
) -> None:
    """DDP averages the two ranks' gradients, each from 64 rays: the gradient of 128 rays' mean loss. Both runs start
    from the same weights (rank 0's seed is the single run's) and differ only in which rays they draw. Their loss
    curves, smoothed over 10 steps, agree within 5% at every point (measured: 2%); a run started from other initial
    weights (--machine.seed 7) is 16 to 19% away, and both curves must have fallen, so the test cannot pass on a
    curve that merely stays near its start."""
    steps, window = 60, 10
    flags = ["vanilla-nerf", *TINY_VANILLA, "--max-num-iterations", str(steps), "--steps-per-eval-image", "0"]
    two = runs("curve-two-ranks", *flags, *TWO_RANKS)
    # One thread, as each rank has: on 2 busy cores torch's 2 threads wait on each other and the run takes 3x longer.
    one = runs("curve-one-process", *flags, "--pipeline.datamanager.train-num-rays-per-batch", "128",
               "--machine.num-threads", "1")  # fmt: skip
    curves = []
    for run_dir in (two, one):
        loss = torch.tensor([losses(run_dir)[step] for step in range(1, steps + 1)])
        curves.append(loss.unfold(0, window, 1).mean(dim=1))
    assert all(curve[-1] < 0.8 * curve[0] for curve in curves)
    torch.testing.assert_close(curves[0], curves[1], rtol=0.05, atol=0)


def test_torchrun_trains_exactly_like_kit_train(runs: Callable[..., Path], lego_dir: Path, tmp_path: Path) -> None:
    spawned = vanilla_two_ranks(runs)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "nerfkit.scripts.train", "vanilla-nerf", *TINY_VANILLA, "--data", str(lego_dir),
        "--run-dir", str(tmp_path / "run"), "--max-num-iterations", str(STEPS), "--steps-per-save", str(STEPS // 2),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("finished at step") == 1, "rank 1 prints nothing"
    assert losses(tmp_path / "run") == pytest.approx(losses(spawned), abs=1e-6)
    assert_same_weights(latest_checkpoint(tmp_path / "run")["pipeline"], torch.load(spawned / "rank-0.pt"), atol=1e-6)


def spawned_ranks(pid: int) -> list[int]:
    """The processes kit-train spawned for its ranks (its other child is multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def test_a_killed_rank_ends_the_run_naming_it_and_the_checkpoint_resumes(lego_dir: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "nerfkit.scripts.train", "vanilla-nerf", *TINY_VANILLA, *TWO_RANKS,
        "--data", str(lego_dir), "--run-dir", str(run_dir), "--max-num-iterations", "1000000",
        "--steps-per-save", "10", "--steps-per-eval-image", "0",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not list_checkpoints(run_dir / "nerfkit_models") and time.monotonic() < deadline:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            time.sleep(0.2)
        victim = spawned_ranks(process.pid)[-1]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert time.monotonic() - killed_at < 30
    assert process.returncode == 1
    assert f"(pid {victim}) was killed by signal SIGKILL" in stderr and "rank " in stderr
    assert "Traceback" not in stderr
    checkpoints = list_checkpoints(run_dir / "nerfkit_models")
    assert str(checkpoints[max(checkpoints)]) in stderr.replace("\n", "")
    step = load_checkpoint(checkpoints[max(checkpoints)])["step"]
    # The distributed run's checkpoint continues in one process (its random streams reseeded, since 2 saved them).
    resumed = tmp_path / "resumed"
    argv = ["vanilla-nerf", *TINY_VANILLA, "--data", str(lego_dir), "--run-dir", str(resumed),
            "--load-dir", str(run_dir / "nerfkit_models"), "--max-num-iterations", str(step + 2)]  # fmt: skip
    assert main(argv) == 0
    assert sorted(losses(resumed)) == [step + 1, step + 2]


def test_a_single_process_checkpoint_continues_in_two_ranks(runs: Callable[..., Path]) -> None:
    single = runs("single", "vanilla-nerf", *TINY_VANILLA, "--max-num-iterations", "4")
    resumed = runs("single-then-two-ranks", "vanilla-nerf", *TINY_VANILLA, *TWO_RANKS, "--max-num-iterations", "6",
                   "--load-dir", str(single / "nerfkit_models"))  # fmt: skip
    assert sorted(losses(resumed)) == [5, 6]
    rank_0, rank_1 = (torch.load(resumed / f"rank-{rank}.pt") for rank in (0, 1))
    assert_same_weights(rank_0, rank_1)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"num_machines": 2}, "needs the address of machine 0"),
        ({"num_machines": 2, "machine_rank": 2, "dist_url": "tcp://10.0.0.1:29500"}, "outside 0..1"),
        ({"num_devices": 2, "dist_backend": "nccl"}, "nccl needs CUDA devices"),
    ],
)
def test_impossible_settings_are_clear_errors(settings: dict, message: str) -> None:
    with pytest.raises(NerfkitError, match=message):
        check_machine(MachineConfig(**settings), torch.device("cpu"))


def test_machine_counts_and_timeout_are_checked_by_their_ranges() -> None:
    with pytest.raises(NerfkitError, match="--num-devices must be >= 1, got 0.*--dist-timeout must be > 0"):
        check_ranges(MachineConfig(num_devices=0, dist_timeout=-1.0))


def test_more_processes_than_gpus_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(NerfkitError, match="torch sees 1 CUDA devices"):
        check_machine(MachineConfig(num_devices=2), torch.device("cuda", 0))


def test_a_user_error_in_the_ranks_is_one_line_naming_the_rank(lego_dir: Path, tmp_path: Path) -> None:
    argv = ["vanilla-nerf", *TINY_VANILLA, *TWO_RANKS, "--data", str(lego_dir), "--run-dir", str(tmp_path / "run"),
            "--load-dir", str(tmp_path / "missing")]  # fmt: skip
    with pytest.raises(NerfkitError, match=r"^rank [01]: --load-dir .*missing is not a folder"):
        main(argv)
    assert not (tmp_path / "run").exists()


def fail_in_rank_1_or_wait(rank: Rank, seconds: float) -> int:
    """Rank 1 raises (or, with seconds > 0, sleeps that long first) while rank 0 waits for it in a collective."""
    if rank.rank == 1:
        time.sleep(seconds)
        raise ValueError("boom")
    torch.distributed.barrier()
    return 0


@pytest.mark.parametrize(
    ("seconds", "timeout", "message"),
    [(0.0, 60.0, "rank 1 failed: ValueError: boom"), (60.0, 2.0, "rank 0 failed: .*(timed out|Timed out)")],
    ids=["exception", "collective-timeout"],
)
def test_a_failing_or_silent_rank_ends_the_run_instead_of_hanging(
    seconds: float, timeout: float, message: str, tmp_path: Path
) -> None:
    """An exception in one rank stops the rank waiting for it; a rank that never joins a collective is caught by
    --machine.dist-timeout on the rank waiting for it."""
    machine = MachineConfig(num_devices=2, dist_timeout=timeout)
    start = time.monotonic()
    with pytest.raises(NerfkitError, match=message):
        launch(fail_in_rank_1_or_wait, machine, torch.device("cpu"), seconds, checkpoint_dir=tmp_path, debug=False)
    assert time.monotonic() - start < 30


def test_the_viewer_runs_on_rank_0_only(lego_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("", 0))
        port = probe.getsockname()[1]
    run_dir = tmp_path / "run"
    config = config_for("vanilla-nerf", *TINY_VANILLA, *TWO_RANKS, "--max-num-iterations", "4", "--vis", "viewer",
                        "--viewer.port", str(port), "--data", str(lego_dir), "--run-dir", str(run_dir))  # fmt: skip
    assert launch_training(config, debug=True, worker=train_and_note_the_viewer) == 0
    assert [(run_dir / f"viewer-rank-{rank}.txt").read_text() for rank in (0, 1)] == ["True", "False"]
