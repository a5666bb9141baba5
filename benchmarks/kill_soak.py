"""Kill soak: kit-train killed with SIGKILL at random moments and resumed, again and again, saving every step.

    python benchmarks/kill_soak.py                                  # 20 kills, tiny instant-ngp on lego at 1/8
    python benchmarks/kill_soak.py --kills 50 --method vanilla-nerf --seed 1

Each round starts kit-train on one run folder (a new run while the folder holds no config.yml, then --resume) and
kills it: rounds 4, 8, ... at a random moment of its start-up (imports, data, model, loading the checkpoint, writing
config.yml), the others at a random moment of the first --window seconds after its first new checkpoint (steps,
metrics rows and checkpoint saves interleave there, as a checkpoint is saved every step). After each kill the latest
checkpoint must load and hold the step of its name, and the next round must resume from exactly that step. A last
resume then trains two more steps and ends normally: metrics.csv must hold one row per step and name, every step
from the first, and no temporary file may be left. Prints a table and writes JSON (benchmarks/out/kill_soak.json).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from run import LEGO, machine_info

from nerfkit.engine.checkpoints import list_checkpoints, load_checkpoint

KIT_TRAIN = Path(sys.executable).parent / "kit-train"
TINY_FLAGS = {
    "instant-ngp": (
        "--pipeline.datamanager.train-num-rays-per-batch", "256",
        "--pipeline.target-num-samples", "4096",
        "--pipeline.model.num-levels", "4",
        "--pipeline.model.log2-hashmap-size", "12",
        "--pipeline.model.max-resolution", "64",
        "--pipeline.model.hidden-dim", "16",
        "--pipeline.model.hidden-dim-color", "16",
        "--pipeline.model.sampler.grid-resolution", "32",
        "--pipeline.model.sampler.warmup-steps", "4",
        "--pipeline.model.sampler.update-every", "2",
    ),
    "vanilla-nerf": (
        "--pipeline.datamanager.train-num-rays-per-batch", "64",
        "--pipeline.model.coarse-sampler.num-samples", "8",
        "--pipeline.model.fine-sampler.num-samples", "8",
        "--pipeline.model.base-mlp-num-layers", "2",
        "--pipeline.model.base-mlp-layer-width", "32",
        "--pipeline.model.skip-connections", "1",
        "--pipeline.model.head-mlp-layer-width", "16",
    ),
}  # fmt: skip
"""Models of milliseconds a step (those of tests/kit_flags.py), so that a round is mostly start-up and saving."""

RUN_FLAGS = (
    "--pipeline.datamanager.dataparser.downscale-factor", "8",
    "--max-num-iterations", "1000000",
    "--steps-per-save", "1",
    "--logging.steps-per-log", "1",
    "--steps-per-eval-batch", "0",
    "--steps-per-eval-image", "0",
    "--steps-per-eval-all-images", "0",
    "--vis", "none",
)  # fmt: skip
"""A checkpoint and a metrics row every step, and nothing else written."""

STARTUP_EVERY = 4
"""Every this many rounds, one is killed during start-up instead of during training."""


@dataclass
class Round:
    """One start and kill of kit-train, and what the run folder held afterwards."""

    index: int
    started_as: str
    """'new' (the folder held no config.yml) or 'resume'."""
    expected_step: int | None
    """The latest checkpoint's step before the start (None: none), which a resume must continue from."""
    resumed_from: int | None
    """The step the process said it loaded (0: it started the run over); None if killed before it said."""
    aimed_at: str
    """'start-up' or 'training'."""
    killed_after_s: float
    """Seconds from the start of the process to SIGKILL."""
    steps_saved: int
    """Steps past `expected_step` whose checkpoint the process saved before it was killed."""
    latest_step: int | None
    """The latest checkpoint's step after the kill (None: none yet)."""
    latest_loads: bool
    """Whether that checkpoint loads and holds the step of its name (True when there is none)."""
    temporaries_left: int
    """Temporary files in the run folder after the kill (a write it cut short); the next round removes them."""
    problem: str | None = None


def latest_checkpoint(run_dir: Path) -> tuple[int | None, bool]:
    """The latest checkpoint's step and whether it loads whole; (None, True) when there is none."""
    checkpoints = list_checkpoints(run_dir / "nerfkit_models")
    if not checkpoints:
        return None, True
    step = max(checkpoints)
    try:
        return step, load_checkpoint(checkpoints[step])["step"] == step
    except Exception:  # noqa: BLE001 - any failure to load is what this benchmark counts
        return step, False


def temporaries(run_dir: Path) -> list[Path]:
    return sorted(run_dir.rglob(".*tmp")) if run_dir.exists() else []


def resumed_step(log: str) -> int | None:
    """The step a resumed process said it continues from, from its console output."""
    if "training the run from step 0" in log:
        return 0
    match = re.search(r"loaded \S+ \(step (\d+)\)", log)
    return int(match.group(1)) if match else None


def wait_for_a_save(process: subprocess.Popen[bytes], run_dir: Path, after: int | None, timeout: float) -> bool:
    """Waits until the run holds a checkpoint newer than step `after` (None: any), which the process saves after
    training its first step; False if the process ended or the time ran out."""
    deadline = time.monotonic() + timeout
    while (latest := max(list_checkpoints(run_dir / "nerfkit_models"), default=None)) is None or (
        after is not None and latest <= after
    ):
        if process.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def kit_train_command(args: argparse.Namespace, run_dir: Path) -> tuple[str, list[str]]:
    if (run_dir / "config.yml").exists():
        return "resume", [str(KIT_TRAIN), "--resume", str(run_dir)]
    flags = [*TINY_FLAGS[args.method], *RUN_FLAGS]
    return "new", [str(KIT_TRAIN), args.method, "--data", str(args.data), "--run-dir", str(run_dir), *flags]


def play_round(index: int, args: argparse.Namespace, run_dir: Path, rng: random.Random, startup_s: float) -> Round:
    """Starts kit-train, kills it at a random moment, and checks what it left."""
    started_as, command = kit_train_command(args, run_dir)
    expected, _ = latest_checkpoint(run_dir)
    aimed_at = "start-up" if index % STARTUP_EVERY == 0 else "training"
    log_path = run_dir.parent / f"round-{index:02d}.log"
    with log_path.open("wb") as log:
        start = time.monotonic()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=child_environment())
    problem = None
    if aimed_at == "start-up":
        time.sleep(rng.uniform(0.0, startup_s))
    elif wait_for_a_save(process, run_dir, expected, args.timeout):
        time.sleep(rng.uniform(0.0, args.window))
    else:
        problem = "trained no step"
    if process.poll() is not None:
        problem = f"kit-train exited by itself with status {process.returncode}"
    process.kill()
    process.wait()
    killed_after = time.monotonic() - start
    text = log_path.read_text(errors="replace")
    resumed = resumed_step(text) if started_as == "resume" else None
    if resumed is not None and resumed != (expected or 0):
        problem = f"resumed from step {resumed}, not from the latest checkpoint's {expected}"
    if "is in use by another process" in text:
        problem = "refused: the folder was still locked"
    latest, loads = latest_checkpoint(run_dir)
    return Round(
        index=index,
        started_as=started_as,
        expected_step=expected,
        resumed_from=resumed,
        aimed_at=aimed_at,
        killed_after_s=killed_after,
        steps_saved=0 if latest is None else latest - (expected or 0),
        latest_step=latest,
        latest_loads=loads,
        temporaries_left=len(temporaries(run_dir)),
        problem=problem or (None if loads else "the latest checkpoint does not load"),
    )


def child_environment() -> dict[str, str]:
    """Unbuffered, wide output, so the log holds whole lines up to the moment of the kill."""
    return {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "400"}


def measure_startup(args: argparse.Namespace, run_dir: Path) -> float:
    """Seconds from starting kit-train to its first checkpoint, in a separate folder (kit-train's own start-up
    on this machine, which the start-up kills are spread over)."""
    start = time.monotonic()
    _, command = kit_train_command(args, run_dir)
    with (run_dir.parent / "startup.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=child_environment())
    reached = wait_for_a_save(process, run_dir, None, args.timeout)
    process.kill()
    process.wait()
    if not reached:
        raise SystemExit(f"kit-train trained no step; see {run_dir.parent / 'startup.log'}")
    return time.monotonic() - start


def finish(run_dir: Path, timeout: float) -> dict[str, Any]:
    """A last resume that trains two more steps and ends normally, then the checks of the whole run."""
    latest, _ = latest_checkpoint(run_dir)
    target = (latest or 0) + 2
    command = [str(KIT_TRAIN), "--resume", str(run_dir), "--max-num-iterations", str(target)]
    result = subprocess.run(command, capture_output=True, text=True, env=child_environment(), timeout=timeout)
    with (run_dir / "metrics.csv").open(newline="") as file:
        rows = [(int(row["step"]), row["name"]) for row in csv.DictReader(file)]
    repeated = [f"{step} {name}" for (step, name), count in Counter(rows).items() if count > 1]
    steps = [step for step, name in rows if name == "train/loss"]
    final, loads = latest_checkpoint(run_dir)
    return {
        "exit_status": result.returncode,
        "resumed_from": resumed_step(result.stdout),
        "final_step": final,
        "final_checkpoint_loads": loads,
        "target_step": target,
        "metrics_rows": len(rows),
        "metrics_rows_repeated": repeated[:20],
        "metrics_steps_are_1_to_final": steps == list(range(1, target + 1)),
        "temporaries_left": [str(path) for path in temporaries(run_dir)],
        "ok": result.returncode == 0
        and final == target
        and loads
        and not repeated
        and steps == list(range(1, target + 1))
        and not temporaries(run_dir),
    }


def print_table(rounds: list[Round], final: dict[str, Any], console: Console) -> None:
    table = Table(
        title="kill -9 soak: each round started, killed at a random moment, checked",
        caption="as: new run or --resume; kill in: start-up or training; after: seconds from the start; saved: "
        "checkpoints saved in the round; from: the step the resume loaded; latest: the latest checkpoint after the "
        "kill; tmp: temporary files the kill left (the next round removes them)",
    )
    columns = ("#", "as", "kill in", "after", "saved", "from", "latest", "loads", "tmp")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_column("problem", justify="left")
    for item in rounds:
        resumed = "-" if item.resumed_from is None else str(item.resumed_from)
        table.add_row(
            str(item.index),
            item.started_as,
            item.aimed_at,
            f"{item.killed_after_s:.1f}s",
            str(item.steps_saved),
            resumed,
            "-" if item.latest_step is None else str(item.latest_step),
            "yes" if item.latest_loads else "NO",
            str(item.temporaries_left),
            item.problem or "",
        )
    console.print(table)
    console.print(
        f"final resume: exit {final['exit_status']}, from step {final['resumed_from']} to {final['final_step']} "
        f"(target {final['target_step']}); metrics.csv {final['metrics_rows']} rows, "
        f"{len(final['metrics_rows_repeated'])} repeated, steps 1..final each once: "
        f"{final['metrics_steps_are_1_to_final']}; temporary files left: {len(final['temporaries_left'])}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=20, help="rounds, each ended by SIGKILL")
    parser.add_argument("--method", choices=sorted(TINY_FLAGS), default="instant-ngp")
    parser.add_argument("--data", type=Path, default=LEGO)
    parser.add_argument("--window", type=float, default=1.5, help="seconds after the first step to kill within")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random kill moments")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a round may take to train a step")
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "out" / "kill_soak.json")
    args = parser.parse_args()
    console = Console()
    rng = random.Random(args.seed)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="nerfkit-kill-soak-") as tmp:
        startup_s = measure_startup(args, Path(tmp) / "startup-run")
        run_dir = Path(tmp) / "run"
        rounds = []
        for index in range(1, args.kills + 1):
            rounds.append(play_round(index, args, run_dir, rng, startup_s))
            console.print(f"round {index}: {rounds[-1].problem or 'ok'}")
        final = finish(run_dir, args.timeout)
    print_table(rounds, final, console)
    ok = final["ok"] and not any(item.problem for item in rounds)
    report = {
        "ok": ok,
        "command": " ".join(sys.argv),
        "method": args.method,
        "data": str(args.data),
        "kills": args.kills,
        "seed": args.seed,
        "window_s": args.window,
        "startup_s": startup_s,
        "seconds": time.monotonic() - started,
        "kit_train_flags": [*TINY_FLAGS[args.method], *RUN_FLAGS],
        "rounds": [asdict(item) for item in rounds],
        "final": final,
        "machine": machine_info(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    console.print(f"{'all checks passed' if ok else 'CHECKS FAILED'}; written to {args.output}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
