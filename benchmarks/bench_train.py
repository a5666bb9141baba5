"""Training-throughput benchmark: how many iterations and rays per second a method trains at on this machine.

The config is built by kit-train's own parser, so the figures describe exactly what `kit-train <method> <flags>`
would run; only the loop differs (no progress bar, no eval, no checkpoints), so the timing is of the training step.

    python benchmarks/bench_train.py                              # vanilla-nerf, paper settings, lego at 1/4
    python benchmarks/bench_train.py --preset small               # 256 rays, 32+32 samples, 4x128 MLP
    python benchmarks/bench_train.py -- --pipeline.model.fine-sampler.num-samples 64   # any kit-train flag
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from nerfkit.configs.serialization import to_data
from nerfkit.configs.trainer import TrainerConfig
from nerfkit.engine.trainer import Trainer
from nerfkit.engine.training_run import setup_trainer
from nerfkit.plugins.registry import get_registry
from nerfkit.scripts.train import parse_args
from nerfkit.utils.cli import run_cli

BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_DATA = BENCH_DIR.parent.parent / "shared" / "data" / "lego"

PRESETS: dict[str, list[str]] = {
    # The method's registered defaults; for vanilla-nerf these are the paper's (1024 rays, 64+128, 8x256).
    "default": [],
    # A quarter of the rays, a third of the samples and a much smaller MLP, to show how the cost scales.
    "small": [
        "--pipeline.datamanager.train-num-rays-per-batch",
        "256",
        "--pipeline.model.coarse-sampler.num-samples",
        "32",
        "--pipeline.model.fine-sampler.num-samples",
        "32",
        "--pipeline.model.base-mlp-num-layers",
        "4",
        "--pipeline.model.base-mlp-layer-width",
        "128",
        "--pipeline.model.skip-connections",
        "2",
    ],
}


@dataclass
class Repeat:
    """One timed block of K iterations."""

    iterations: int
    seconds: float
    rays_per_batch: int
    iteration_seconds: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    """User plus system CPU time of this process in the block; over `seconds`, the cores it actually got."""
    system_seconds: float = 0.0
    """System (kernel) share of `cpu_seconds`: page faults from fresh allocations show up here."""
    minor_page_faults: int = 0
    """Pages the kernel had to map (and zero) for this process in the block."""

    @property
    def iters_per_sec(self) -> float:
        return self.iterations / self.seconds

    @property
    def rays_per_sec(self) -> float:
        return self.iterations * self.rays_per_batch / self.seconds

    @property
    def sec_per_iter(self) -> float:
        return self.seconds / self.iterations

    @property
    def cpu_sec_per_iter(self) -> float:
        """Less sensitive to other processes than s/iter: it counts only the CPU time this process got."""
        return self.cpu_seconds / self.iterations

    @property
    def cores_used(self) -> float:
        return self.cpu_seconds / self.seconds

    def summary(self) -> dict[str, float]:
        return {
            "iters_per_sec": self.iters_per_sec,
            "rays_per_sec": self.rays_per_sec,
            "sec_per_iter": self.sec_per_iter,
            "cores_used": self.cores_used,
            "cpu_sec_per_iter": self.cpu_sec_per_iter,
        }


def split_passthrough(argv: list[str]) -> tuple[list[str], list[str]]:
    """Everything after the first `--` goes to kit-train's parser untouched, so any of its flags can be used."""
    if "--" in argv:
        index = argv.index("--")
        return argv[:index], argv[index + 1 :]
    return argv, []


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Measure a nerfkit method's training throughput (iterations/s, rays/s, peak memory).",
        epilog="Flags after `--` go to kit-train's parser, e.g. -- --pipeline.model.fine-sampler.num-samples 64",
    )
    parser.add_argument("--method", default="vanilla-nerf", help="registered method to train")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset folder (Blender format)")
    parser.add_argument("--downscale", type=int, default=4, help="image downscale factor (4: lego at 200x200)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default", help="flag set applied first")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first (allocator, caches)")
    parser.add_argument("--repeats", type=int, default=3, help="timed blocks; the median is reported")
    parser.add_argument("--iters", type=int, default=None, help="iterations per block (default: --repeat-seconds)")
    parser.add_argument(
        "--repeat-seconds", type=float, default=60.0, help="without --iters, size blocks to about this long"
    )
    parser.add_argument("--num-threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--eval-image", action="store_true", help="also render one eval image (eval rays/s)")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile N more iterations")
    parser.add_argument("--cold-cache", action="store_true", help="empty image cache, so setup includes resizing")
    parser.add_argument("--name", default=None, help="run name (default: method-preset-dsD)")
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default: benchmarks/out/NAME.json)")
    return parser


def kit_train_argv(args: argparse.Namespace, extra: list[str], workdir: Path) -> list[str]:
    """The kit-train command line the benchmark runs; later flags override earlier ones, so `extra` wins."""
    argv = [
        args.method,
        "--data",
        str(args.data),
        "--pipeline.datamanager.dataparser.downscale-factor",
        str(args.downscale),
        "--vis",
        "none",
        "--output-dir",
        str(workdir / "outputs"),
        *PRESETS[args.preset],
    ]
    if args.num_threads is not None:
        argv += ["--machine.num-threads", str(args.num_threads)]
    if args.cold_cache:
        argv += ["--pipeline.datamanager.cache-dir", str(workdir / "cache")]
    return argv + extra


def timed_setup(config: TrainerConfig) -> tuple[Trainer, float]:
    """kit-train's own set-up (threads, seed, memory policy, data, model); returns the trainer and its seconds."""
    start = time.perf_counter()
    trainer = setup_trainer(config, Console(quiet=True))
    return trainer, time.perf_counter() - start


def run_iterations(trainer: Trainer, first_step: int, count: int) -> list[float]:
    """Seconds of each of `count` training steps (forward, backward, optimizer and scheduler, callbacks)."""
    times = []
    for step in range(first_step, first_step + count):
        start = time.perf_counter()
        trainer.train_iteration(step)
        times.append(time.perf_counter() - start)
    return times


def auto_iters(args: argparse.Namespace, warmup_times: list[float]) -> int:
    """Iterations per block that fill about --repeat-seconds, judged from the last warm-up iteration."""
    if args.iters is not None:
        return args.iters
    if not warmup_times:
        return 10
    return max(1, round(args.repeat_seconds / warmup_times[-1]))


def timed_block(trainer: Trainer, first_step: int, count: int, rays_per_batch: int) -> Repeat:
    """Times `count` steps as a whole, with the CPU time and page faults they cost (getrusage deltas)."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    # The per-iteration timer calls are inside the block's figure but cost microseconds against seconds.
    times = run_iterations(trainer, first_step, count)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    return Repeat(
        iterations=count,
        seconds=seconds,
        rays_per_batch=rays_per_batch,
        iteration_seconds=times,
        cpu_seconds=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        system_seconds=after.ru_stime - before.ru_stime,
        minor_page_faults=after.ru_minflt - before.ru_minflt,
    )


def time_repeats(trainer: Trainer, args: argparse.Namespace, console: Console) -> tuple[list[float], list[Repeat]]:
    """Warm-up times and the timed blocks, in order, on consecutive steps as a real run would take them."""
    rays_per_batch = trainer.config.pipeline.datamanager.train_num_rays_per_batch
    warmup = run_iterations(trainer, 1, args.warmup)
    if warmup:
        console.print(f"warm-up: {len(warmup)} iterations, {sum(warmup):.2f} s")
    iters = auto_iters(args, warmup)
    step = 1 + args.warmup
    repeats = []
    for index in range(args.repeats):
        repeat = timed_block(trainer, step, iters, rays_per_batch)
        console.print(
            f"repeat {index + 1}/{args.repeats}: {iters} iterations, {repeat.iters_per_sec:.3f} it/s, "
            f"{repeat.rays_per_sec:,.0f} rays/s, {repeat.cores_used:.2f} cores"
        )
        repeats.append(repeat)
        step += iters
    return warmup, repeats


def render_eval_image(trainer: Trainer) -> dict[str, float]:
    """Renders the eval image that step 0 picks, as kit-train's scheduled eval would, and times it."""
    start = time.perf_counter()
    metrics, _ = trainer.pipeline.get_eval_image_metrics_and_images(0)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, **metrics}


def profile_iterations(trainer: Trainer, first_step: int, count: int) -> str:
    """Operator table of `count` steps from torch.profiler, sorted by time spent in the operator itself."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run_iterations(trainer, first_step, count)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_commit() -> str | None:
    """The commit benchmarked, so a figure can be traced to the code (the tree may have local edits)."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=BENCH_DIR, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


RUNTIME_ENV_PREFIXES = ("OMP_", "MKL_", "KMP_", "MALLOC_", "LD_PRELOAD", "NERFKIT_")


def runtime_env() -> dict[str, str]:
    """Environment variables that change the speed (threads, allocator), so a figure can be reproduced."""
    return {key: value for key, value in sorted(os.environ.items()) if key.startswith(RUNTIME_ENV_PREFIXES)}


def machine_info() -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_at_start": os.getloadavg(),
        "torch_version": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "python_version": platform.python_version(),
        "env": runtime_env(),
        "platform": platform.platform(),
    }


def median_summary(repeats: list[Repeat]) -> dict[str, float]:
    """Median of each figure across repeats (each taken separately, so they need not come from one repeat)."""
    keys = repeats[0].summary().keys()
    return {key: statistics.median(r.summary()[key] for r in repeats) for key in keys}


def _loads(loads: tuple[float, ...]) -> str:
    return " ".join(f"{load:.2f}" for load in loads)


def print_report(console: Console, report: dict[str, Any]) -> None:
    table = Table(title=f"{report['name']}: {report['method']} training throughput")
    for column in (
        "repeat",
        "iters",
        "iter/s",
        "rays/s",
        "s/iter",
        "min s/iter",
        "max s/iter",
        "cores",
        "CPU s/iter",
        "sys s",
    ):
        table.add_column(column, justify="right")
    for index, repeat in enumerate(report["repeats"], start=1):
        times = repeat["iteration_seconds"]
        table.add_row(
            str(index),
            str(repeat["iterations"]),
            f"{repeat['iters_per_sec']:.3f}",
            f"{repeat['rays_per_sec']:,.0f}",
            f"{repeat['sec_per_iter']:.3f}",
            f"{min(times):.3f}",
            f"{max(times):.3f}",
            f"{repeat['cores_used']:.2f}",
            f"{repeat['cpu_sec_per_iter']:.3f}",
            f"{repeat['system_seconds']:.1f}",
        )
    median = report["median"]
    table.add_row(
        "median",
        "",
        f"{median['iters_per_sec']:.3f}",
        f"{median['rays_per_sec']:,.0f}",
        f"{median['sec_per_iter']:.3f}",
        "",
        "",
        f"{median['cores_used']:.2f}",
        f"{median['cpu_sec_per_iter']:.3f}",
        "",
        style="bold",
    )
    console.print(table)
    machine = report["machine"]
    console.print(
        f"setup (data + model): {report['setup_seconds']:.2f} s | peak RSS: {report['peak_rss_mib']:.0f} MiB "
        f"(after setup {report['peak_rss_after_setup_mib']:.0f} MiB)\n"
        f"CPU: {machine['cpu_model']} ({machine['cpus_available']} available) | torch {machine['torch_version']}, "
        f"{machine['torch_num_threads']} threads | load average at start / end: "
        f"{_loads(machine['load_average_at_start'])} / {_loads(report['load_average_at_end'])}"
    )
    if "eval_image" in report:
        evaluation = report["eval_image"]
        console.print(f"eval image: {evaluation['seconds']:.1f} s, {evaluation['num_rays_per_sec']:,.0f} rays/s")
    console.print(f"kit-train {' '.join(report['kit_train_argv'])}", highlight=False, soft_wrap=True)


def benchmark(args: argparse.Namespace, extra: list[str], console: Console) -> dict[str, Any]:
    """Sets up one run in a temporary folder, times it, and returns the report (everything the JSON holds)."""
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    machine = machine_info()
    with tempfile.TemporaryDirectory(prefix="nerfkit-bench-") as tmp:
        argv = kit_train_argv(args, extra, Path(tmp))
        config = parse_args(argv, get_registry())
        trainer, setup_seconds = timed_setup(config)
        rss_after_setup = peak_rss_mib()
        console.print(f"setup: {setup_seconds:.2f} s; training on {trainer.device}, {torch.get_num_threads()} threads")
        warmup, repeats = time_repeats(trainer, args, console)
        report: dict[str, Any] = {
            "name": args.name,
            "method": args.method,
            "preset": args.preset,
            "started_utc": started,
            "git_commit": git_commit(),
            "kit_train_argv": argv,
            "benchmark_args": {key: str(value) for key, value in vars(args).items()},
            "warmup_iteration_seconds": warmup,
            "repeats_count": len(repeats),
            "iters_per_repeat": repeats[0].iterations,
            "rays_per_batch": trainer.config.pipeline.datamanager.train_num_rays_per_batch,
            "image_shape": list(trainer.pipeline.datamanager.train_dataset.images.shape),
            "num_parameters": sum(p.numel() for p in trainer.pipeline.parameters()),
            "setup_seconds": setup_seconds,
            "median": median_summary(repeats),
            "repeats": [{**r.summary(), **asdict(r)} for r in repeats],
            "peak_rss_after_setup_mib": rss_after_setup,
            "peak_rss_mib": peak_rss_mib(),
            "machine": machine | {"torch_num_threads": torch.get_num_threads()},
            "config": to_data(trainer.config),
        }
        if args.eval_image:
            report["eval_image"] = render_eval_image(trainer)
        if args.profile:
            first_step = 1 + args.warmup + sum(r.iterations for r in repeats)
            report["profile_table"] = profile_iterations(trainer, first_step, args.profile)
        report["peak_rss_end_mib"] = peak_rss_mib()
        report["load_average_at_end"] = os.getloadavg()
    return report


def main(argv: list[str]) -> int:
    own, extra = split_passthrough(argv)
    args = build_parser().parse_args(own)
    if args.repeats < 1 or (args.iters is not None and args.iters < 1) or args.warmup < 0:
        raise SystemExit("--repeats and --iters must be at least 1, --warmup at least 0")
    args.name = args.name or f"{args.method}-{args.preset}-ds{args.downscale}"
    output = args.output or BENCH_DIR / "out" / f"{args.name}.json"
    console = Console(width=max(120, Console().width))
    report = benchmark(args, extra, console)
    print_report(console, report)
    if "profile_table" in report:
        console.print(report["profile_table"], highlight=False, markup=False, soft_wrap=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    console.print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    # Bad kit-train flags or data end as one error line, as they do for kit-train itself.
    run_cli(main)
