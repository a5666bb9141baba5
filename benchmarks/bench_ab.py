"""Interleaved A/B: two kit-train configurations of one method trained step by step in turn, in one process.

On a shared machine the load changes within minutes, so two runs one after the other can differ by 2-3 times for
reasons that have nothing to do with the code. Here step N of A and step N of B run back to back, so a burst of load
hits both; the figure to read is the median over steps of B's step time over A's.

    python benchmarks/bench_ab.py --method nerfacto --b "--pipeline.model.camera-optimizer.mode off"
    python benchmarks/bench_ab.py --method instant-ngp --a "--machine.num-threads 1" --b "--machine.num-threads 2"
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from nerfkit.engine.trainer import Trainer
from nerfkit.engine.training_run import setup_trainer
from nerfkit.plugins.registry import get_registry
from nerfkit.scripts.train import parse_args

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "lego"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="nerfacto", help="registered method (the kit-train subcommand)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset folder")
    parser.add_argument("--downscale", type=int, default=4, help="image downscale factor")
    parser.add_argument("--a", default="", help="kit-train flags of configuration A, one string")
    parser.add_argument("--b", default="", help="kit-train flags of configuration B, one string")
    parser.add_argument("--steps", type=int, default=300, help="training steps of each configuration")
    parser.add_argument("--warmup", type=int, default=10, help="first steps left out of the medians")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/out/ab.json"), help="JSON file")
    return parser


def make_trainer(args: argparse.Namespace, flags: str, output_dir: Path) -> Trainer:
    """kit-train's parser and set-up, as bench_train.py and run.py use them."""
    argv = [args.method, "--data", str(args.data), "--pipeline.datamanager.dataparser.downscale-factor",
            str(args.downscale), "--vis", "none", "--output-dir", str(output_dir), *shlex.split(flags)]  # fmt: skip
    return setup_trainer(parse_args(argv, get_registry()), Console(quiet=True))


def next_batch_rays(trainer: Trainer) -> int:
    """Rays of the next training batch, which a dynamic batch resizes every step."""
    return trainer.pipeline.train_num_rays()


def interleaved_steps(trainers: dict[str, Trainer], steps: int) -> dict[str, list[tuple[float, int]]]:
    """(seconds, rays) of each training step, A's step N right before B's step N."""
    records: dict[str, list[tuple[float, int]]] = {name: [] for name in trainers}
    for step in range(1, steps + 1):
        for name, trainer in trainers.items():
            rays = next_batch_rays(trainer)
            start = time.perf_counter()
            trainer.train_iteration(step)
            records[name].append((time.perf_counter() - start, rays))
    return records


def summary(records: list[tuple[float, int]]) -> dict[str, float]:
    seconds = [record[0] for record in records]
    return {
        "median_sec_per_iter": statistics.median(seconds),
        "median_rays_per_sec": statistics.median(rays / step_seconds for step_seconds, rays in records),
        "mean_rays_per_sec": sum(record[1] for record in records) / sum(seconds),
    }


def build_report(args: argparse.Namespace, records: dict[str, list[tuple[float, int]]]) -> dict:
    timed = {name: values[args.warmup :] for name, values in records.items()}
    ratios = [b[0] / a[0] for a, b in zip(timed["A"], timed["B"], strict=True)]
    return {
        "method": args.method,
        "flags": {"A": args.a, "B": args.b},
        "steps": args.steps,
        "warmup": args.warmup,
        **{name: summary(values) for name, values in timed.items()},
        "median_step_ratio_b_over_a": statistics.median(ratios),
        "steps_seconds_and_rays": records,
    }


def print_report(report: dict) -> None:
    table = Table(title=f"{report['method']}: {report['steps']} steps each, interleaved; medians after "
                        f"{report['warmup']} warm-up steps")  # fmt: skip
    for column in ("config", "flags", "s/step", "rays/s", "mean rays/s"):
        table.add_column(column, justify="left" if column in ("config", "flags") else "right")
    for name in ("A", "B"):
        figures = report[name]
        table.add_row(name, report["flags"][name] or "(registered settings)", f"{figures['median_sec_per_iter']:.3f}",
                      f"{figures['median_rays_per_sec']:,.0f}", f"{figures['mean_rays_per_sec']:,.0f}")  # fmt: skip
    console = Console(width=max(120, Console().width))
    console.print(table)
    load = report["load_average_at_start"][0], report["load_average_at_end"][0]
    console.print(f"median over steps of B's step time / A's: {report['median_step_ratio_b_over_a']:.3f}; "
                  f"load average {load[0]:.2f} at start, {load[1]:.2f} at end")  # fmt: skip


def main() -> None:
    args = build_parser().parse_args()
    with tempfile.TemporaryDirectory(prefix="nerfkit-ab-") as tmp:
        trainers = {"A": make_trainer(args, args.a, Path(tmp) / "a"), "B": make_trainer(args, args.b, Path(tmp) / "b")}
        load_at_start = os.getloadavg()
        records = interleaved_steps(trainers, args.steps)
    report = build_report(args, records)
    report |= {"load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg()}
    print_report(report)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
