"""A run folder survives what happens to real runs: signals during the final save, a second process on the same
folder, a full disk, a kill before the first checkpoint, and resuming after any of them (each as kit-train
subprocesses, except where a subprocess adds nothing)."""

from __future__ import annotations

import csv
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kit_flags import TINY_MODEL

from nerfkit.engine.checkpoints import list_checkpoints, load_checkpoint
from nerfkit.engine.run_folder import RunFolderLock
from nerfkit.errors import NerfkitError
from nerfkit.scripts.train import main as kit_train_main
from nerfkit.utils.writers import CsvWriter

KIT_TRAIN = Path(sys.executable).parent / "kit-train"
TINY = [
    *TINY_MODEL,
    "--pipeline.datamanager.dataparser.downscale-factor", "8",
    "--logging.steps-per-log", "1",
    "--steps-per-eval-batch", "0",
    "--steps-per-eval-image", "0",
    "--steps-per-eval-all-images", "0",
    "--vis", "none",
]  # fmt: skip
"""vanilla-nerf on lego at 1/8 with a tiny model: milliseconds a step, and a row of metrics for every step."""

FOREVER = ["--max-num-iterations", "1000000", "--steps-per-save", "1000000"]
"""A run that only ends when it is told to, and saves only then."""

PATIENCE = 240.0
"""Seconds a process may take to reach a point or to end, on a loaded 2-core machine."""


@pytest.fixture
def environment(lego_cache_dir: Path) -> dict[str, str]:
    """kit-train's environment: the session's image cache, none of the developer's NERFKIT_* settings."""
    kept = {key: value for key, value in os.environ.items() if not key.startswith("NERFKIT_")}
    return {**kept, "NERFKIT_CACHE_DIR": str(lego_cache_dir), "PYTHONUNBUFFERED": "1"}


def new_run(lego_dir: Path, run_dir: Path, *flags: str) -> list[str]:
    return [str(KIT_TRAIN), "vanilla-nerf", "--data", str(lego_dir), "--run-dir", str(run_dir), *TINY, *flags]


def resume(run_dir: Path, *flags: str) -> list[str]:
    return [str(KIT_TRAIN), "--resume", str(run_dir), *flags]


def start(command: list[str], log: Path, environment: dict[str, str], **options: object) -> subprocess.Popen[bytes]:
    """Runs `command` in the background with its output in `log` (a file, so a long run never blocks on a pipe)."""
    with log.open("wb") as file:
        return subprocess.Popen(command, stdout=file, stderr=subprocess.STDOUT, env=environment, **options)


def run(command: list[str], environment: dict[str, str], **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=PATIENCE, **options)


def rows(run_dir: Path) -> list[tuple[int, str]]:
    with (run_dir / "metrics.csv").open(newline="") as file:
        return [(int(row["step"]), row["name"]) for row in csv.DictReader(file)]


def loss_steps(run_dir: Path) -> list[int]:
    return [step for step, name in rows(run_dir) if name == "train/loss"] if (run_dir / "metrics.csv").exists() else []


def assert_each_step_logged_once(run_dir: Path, last_step: int) -> None:
    logged = rows(run_dir)
    repeated = [key for key, count in Counter(logged).items() if count > 1]
    assert not repeated, f"rows logged twice: {repeated[:5]}"
    assert loss_steps(run_dir) == list(range(1, last_step + 1))


def assert_checkpoints_load(run_dir: Path) -> int:
    """Every checkpoint loads and holds the step of its name; returns the latest step."""
    checkpoints = list_checkpoints(run_dir / "nerfkit_models")
    assert checkpoints, "no checkpoint"
    for step, path in checkpoints.items():
        assert load_checkpoint(path)["step"] == step
    return max(checkpoints)


def temporaries(folder: Path) -> list[Path]:
    return sorted(folder.rglob(".*tmp"))


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert process.poll() is None, f"kit-train ended early:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"kit-train took too long:\n{log.read_text()}"
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=PATIENCE)
    finally:
        process.kill()


def assert_one_error(output: str, *names: str) -> None:
    """Exit status 1 is checked by the caller; here: one message, naming `names`, and no traceback."""
    assert "Traceback" not in output, output
    assert output.count("error:") == 1, output
    for name in names:
        assert name in output, f"{name!r} not in:\n{output}"


SIGNALS_HALFWAY = '''\
"""kit-train, except that every checkpoint write is cut in two by a second SIGTERM and a Ctrl-C."""
import io
import os
import signal
import sys
import time

import torch

from nerfkit.scripts.train import entrypoint

write = torch.save


def save_with_signals_halfway(state, file, *args, **kwargs):
    buffer = io.BytesIO()
    write(state, buffer, *args, **kwargs)
    data = buffer.getvalue()
    file.write(data[: len(data) // 2])
    os.kill(os.getpid(), signal.SIGTERM)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.5)  # Python runs the handlers here, with half of the checkpoint written
    file.write(data[len(data) // 2 :])


torch.save = save_with_signals_halfway
sys.argv[0] = "kit-train"
entrypoint()
'''


def test_a_second_sigterm_and_ctrl_c_during_the_final_save_wait_for_it(
    lego_dir: Path, tmp_path: Path, environment: dict[str, str]
) -> None:
    """The run is stopped by SIGTERM; halfway through writing its final checkpoint it gets another SIGTERM and a
    Ctrl-C (sent by the process to itself, so they land inside the write every time). The save completes, the
    signals are reported, the resume command is printed, and the run resumes from that checkpoint."""
    script = tmp_path / "kit_train_signalled_while_saving.py"
    script.write_text(SIGNALS_HALFWAY)
    run_dir, log = tmp_path / "run", tmp_path / "train.log"
    command = [sys.executable, str(script), *new_run(lego_dir, run_dir, *FOREVER)[1:]]
    process = start(command, log, environment)
    wait_until(lambda: len(loss_steps(run_dir)) >= 3, process, log)
    code = stop(process)
    output = log.read_text()
    assert code == 128 + signal.SIGTERM, output
    assert "Traceback" not in output, output
    step = assert_checkpoints_load(run_dir)
    assert step == max(loss_steps(run_dir)) >= 3
    assert "then SIGTERM, SIGINT: held until the files were written" in output, output
    assert f"kit-train --resume {run_dir}" in output, output
    assert not temporaries(run_dir)

    resumed = run(resume(run_dir, "--max-num-iterations", str(step + 2)), environment)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"(step {step})" in resumed.stdout
    assert_each_step_logged_once(run_dir, step + 2)


def test_a_second_process_on_a_run_folder_is_refused_and_the_first_goes_on(
    lego_dir: Path, tmp_path: Path, environment: dict[str, str]
) -> None:
    """A resume of a running run and a new run into its folder are both refused, naming the owner's pid, and change
    nothing; the first run goes on, stops cleanly, and its folder then resumes (the lock went with it)."""
    run_dir, log = tmp_path / "run", tmp_path / "first.log"
    first = start(
        new_run(lego_dir, run_dir, "--max-num-iterations", "1000000", "--steps-per-save", "1"), log, environment
    )
    try:
        wait_until(
            lambda: len(loss_steps(run_dir)) >= 3 and bool(list_checkpoints(run_dir / "nerfkit_models")), first, log
        )
        config = (run_dir / "config.yml").read_bytes()
        for second in (
            resume(run_dir, "--max-num-iterations", "3"),
            new_run(lego_dir, run_dir, "--max-num-iterations", "2"),
        ):
            result = run(second, environment)
            assert result.returncode == 1, result.stdout + result.stderr
            assert_one_error(result.stdout + result.stderr, f"run folder {run_dir} is in use", f"(pid {first.pid})")
            assert first.poll() is None, log.read_text()
        assert (run_dir / "config.yml").read_bytes() == config
    finally:
        code = stop(first)
    assert code == 128 + signal.SIGTERM, log.read_text()
    step = assert_checkpoints_load(run_dir)
    assert_each_step_logged_once(run_dir, step)
    assert (run_dir / "config.yml").read_bytes() == config

    resumed = run(resume(run_dir, "--max-num-iterations", str(step + 1)), environment)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_each_step_logged_once(run_dir, step + 1)
    assert not (run_dir / ".lock").exists()


def test_the_lock_names_its_owner_and_is_free_again_once_released(tmp_path: Path) -> None:
    held = RunFolderLock.acquire(tmp_path)
    with pytest.raises(NerfkitError, match=rf"in use by another process \(pid {os.getpid()}\)"):
        RunFolderLock.acquire(tmp_path)
    held.release()
    RunFolderLock.acquire(tmp_path).release()
    assert not list(tmp_path.iterdir())


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: room for about ten checkpoints of the tiny model (187 KB each)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount_point)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({mounted.stderr.decode().strip()}); the file size limit test covers it"
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def fill(folder: Path) -> None:
    """Writes zeros into `folder` until its disk is full."""
    with (folder / "filler").open("wb", buffering=0) as file:
        try:
            while True:
                file.write(bytes(64 * 1024))
        except OSError:
            pass


def test_a_full_disk_ends_the_run_with_one_message_and_keeps_its_checkpoints(
    lego_dir: Path, small_disk: Path, environment: dict[str, str]
) -> None:
    """A run that saves every step and keeps every checkpoint fills a small tmpfs, a real filesystem running out of
    space: one message (the file, the space it needs and the space free), no temporary file left to hold the space,
    every checkpoint intact. A resume on the disk filled to the last byte fails the same way, and once the disk is
    larger, resumes and logs every step once."""
    run_dir = small_disk / "run"
    command = new_run(lego_dir, run_dir, "--max-num-iterations", "1000", "--steps-per-save", "1")
    full = run([*command, "--keep-last-checkpoints", "0"], environment)
    assert full.returncode == 1, full.stdout + full.stderr
    assert_one_error(
        full.stdout + full.stderr, "No space left on device", "it needs about", "free there", "kit-train --resume"
    )
    assert not temporaries(small_disk)
    step = assert_checkpoints_load(run_dir)

    fill(small_disk)
    on_full_disk = run(resume(run_dir), environment)
    assert on_full_disk.returncode == 1, on_full_disk.stdout + on_full_disk.stderr
    assert_one_error(on_full_disk.stdout + on_full_disk.stderr, "No space left on device")
    assert not temporaries(small_disk)
    assert assert_checkpoints_load(run_dir) == step

    (small_disk / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    resumed = run(resume(run_dir, "--max-num-iterations", str(step + 2)), environment)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_each_step_logged_once(run_dir, step + 2)


def test_a_checkpoint_write_cut_short_by_the_file_size_limit_is_one_message(
    lego_dir: Path, tmp_path: Path, environment: dict[str, str]
) -> None:
    """The same failure without root: RLIMIT_FSIZE below a checkpoint's size makes write(2) fail partway through the
    file with EFBIG (Python ignores SIGXFSZ, which would otherwise end the process), as ENOSPC does on a full disk. It
    takes the same path, torch's writer failing mid-archive with a partial temporary file, and differs only in the
    reason; being per file, it cannot show free space, which the tmpfs test does."""
    run_dir = tmp_path / "run"
    first = run(new_run(lego_dir, run_dir, "--max-num-iterations", "2", "--steps-per-save", "1"), environment)
    assert first.returncode == 0, first.stdout + first.stderr
    limit = (run_dir / "nerfkit_models" / "step-000000002.ckpt").stat().st_size // 2

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    limited = run(resume(run_dir, "--max-num-iterations", "4"), environment, preexec_fn=limit_file_size)
    assert limited.returncode == 1, limited.stdout + limited.stderr
    assert_one_error(limited.stdout + limited.stderr, "step-000000003.ckpt", "File too large")
    assert not temporaries(run_dir)
    assert assert_checkpoints_load(run_dir) == 2


def kit_train(*argv: str) -> int:
    return kit_train_main(list(argv))


def test_a_resumed_run_logs_the_steps_after_its_checkpoint_once(
    lego_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lego_cache_dir: Path
) -> None:
    """Steps logged after the last checkpoint (here 4 to 6, whose checkpoint a kill prevented) are trained and
    logged again by the resume, which first drops their old rows."""
    monkeypatch.setenv("NERFKIT_CACHE_DIR", str(lego_cache_dir))
    run_dir = tmp_path / "run"
    flags = ["--max-num-iterations", "6", "--steps-per-save", "3", "--keep-last-checkpoints", "0"]
    assert kit_train("vanilla-nerf", "--data", str(lego_dir), "--run-dir", str(run_dir), *TINY, *flags) == 0
    (run_dir / "nerfkit_models" / "step-000000006.ckpt").unlink()
    assert kit_train("--resume", str(run_dir)) == 0
    assert_each_step_logged_once(run_dir, 6)


def test_a_run_stopped_before_its_first_checkpoint_resumes_from_step_0(
    lego_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lego_cache_dir: Path
) -> None:
    monkeypatch.setenv("NERFKIT_CACHE_DIR", str(lego_cache_dir))
    run_dir = tmp_path / "run"
    assert (
        kit_train(
            "vanilla-nerf", "--data", str(lego_dir), "--run-dir", str(run_dir), *TINY, "--max-num-iterations", "2"
        )
        == 0
    )
    shutil.rmtree(run_dir / "nerfkit_models")  # as if killed after writing config.yml and metrics, before a save
    assert kit_train("--resume", str(run_dir)) == 0
    assert_each_step_logged_once(run_dir, 2)
    assert assert_checkpoints_load(run_dir) == 2


def test_an_empty_metrics_file_gets_its_header(tmp_path: Path) -> None:
    """A process killed before its first row leaves metrics.csv empty; the next one must still write the header."""
    path = tmp_path / "metrics.csv"
    path.touch()
    writer = CsvWriter(path)
    writer.write_scalars({"train/loss": 0.5}, 1)
    writer.close()
    assert rows(tmp_path) == [(1, "train/loss")]
