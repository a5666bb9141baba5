"""Benchmark harness: named suites of training runs, each entry in its own process, reported as a table and JSON.

    python benchmarks/run.py --list                       # suites and their entries, and which run here
    python benchmarks/run.py --suite smoke                # under a minute: checks the harness itself
    python benchmarks/run.py --suite cpu-quick            # under 15 minutes on the 2-core CPU of RESULTS.md
    python benchmarks/run.py --suite cpu-nerfacto         # nerfacto on lego: about 10 minutes
    python benchmarks/run.py --suite cpu-nerfacto-poses   # nerfacto with and without pose refinement: ~3 minutes
    python benchmarks/run.py --suite cpu-full --only vanilla-nerf-small-lego-ds8
    python benchmarks/run.py --suite gpu-quick            # the GPU target and each kernel combination, ~5 minutes
    python benchmarks/run.py --suite gpu                  # lego at 800x800 on CUDA, every combination: ~1 hour

Each entry is built by kit-train's own parser and launcher (`parse_args` + `launch_training`, then `setup_trainer` in
each process), so it trains exactly what `kit-train <method> <flags>` would, on one GPU or, with
`--machine.num-devices`, one process per GPU. Its child process times every `Trainer.train_iteration(step)` until a
step or time budget, then renders every test image and scores it (PSNR, SSIM). Running each entry in a fresh process
makes peak memory per entry and lets "seconds since the process started" include interpreter start-up, imports and
data loading. Entries that this machine cannot run (no CUDA, too few GPUs, a CUDA package missing) are skipped with
the reason. See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nerfkit.configs.trainer import TrainerConfig
    from nerfkit.engine.distributed import Rank


def _kernel_process_age() -> float | None:
    """Seconds since the kernel started this process: /proc/self/stat's start time (field 22, clock ticks since
    boot) against /proc/uptime. None where /proc is missing or the figure is implausible."""
    try:
        stat = Path("/proc/self/stat").read_text()
        # Field 2 (the command name) may contain spaces and parentheses; count fields after its closing one.
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return age if 0.0 <= age < 120.0 else None


# Taken at import, before torch or nerfkit are imported (they are imported inside the child's functions).
_CLOCK_AT_IMPORT = time.perf_counter()
_AGE_AT_IMPORT = _kernel_process_age()

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
LEGO = REPO_DIR.parent / "shared" / "data" / "lego"
MIB = 1024 * 1024


# ----------------------------------------------------------------------------------------------------------------
# Suites, as data


@dataclass(frozen=True)
class Entry:
    """One benchmark run: what kit-train would train, on what, for how long, and what to leave out of the median."""

    name: str
    method: str
    data: Path | None = LEGO
    """Dataset folder; None trains on nerfkit's built-in scene, as kit-train does without --data."""
    downscale: int = 4
    flags: tuple[str, ...] = ()
    """kit-train flags after the harness's own (data, downscale, --vis none, output dir), so they win."""
    steps: int | None = None
    """Stop after this many training steps; also passed as --max-num-iterations, as a kit-train run of N steps."""
    wall_seconds: float | None = None
    """Stop training once the process is this many seconds old (start-up and data loading count; interim
    evaluations of `eval_at_seconds` do not); checked before each step, so the last step may end up to one step
    later. With `steps` too, whichever comes first."""
    train_seconds: float | None = None
    """Stop before a step that would take the training loop past this many seconds (a GPU target's "training loop
    <= 90 s"), judged from the last step's time; whichever budget comes first."""
    warmup_steps: int = 0
    """First steps left out of the throughput medians (allocator, lazy set-up, an occupancy grid's warm-up)."""
    eval_images: int | None = None
    """Test images to render and score: None every one, 0 none (throughput-only entries)."""
    eval_at_seconds: tuple[float, ...] = ()
    """Also score the test images during training, when the training clock (process age less the time these
    evaluations took) passes each of these seconds: PSNR over time, e.g. the time to 30 dB."""
    timeout_seconds: float = 1800.0
    """The child is killed after this long, so one stuck entry cannot hold up a suite."""
    description: str = ""

    def budget(self) -> str:
        parts = [f"{self.steps} steps"] if self.steps is not None else []
        parts += [f"{self.wall_seconds:g} s"] if self.wall_seconds is not None else []
        parts += [f"{self.train_seconds:g} s of training"] if self.train_seconds is not None else []
        return " or ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "data": None if self.data is None else str(self.data),
            "flags": list(self.flags),
            "eval_at_seconds": list(self.eval_at_seconds),
        }

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> Entry:
        data = None if values["data"] is None else Path(values["data"])
        tuples = {name: tuple(values[name]) for name in ("flags", "eval_at_seconds")}
        return cls(**{**values, "data": data, **tuples})


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    entries: tuple[Entry, ...]


SMOKE_MODEL = (
    "--pipeline.datamanager.train-num-rays-per-batch", "256",
    "--pipeline.model.coarse-sampler.num-samples", "16",
    "--pipeline.model.fine-sampler.num-samples", "16",
    "--pipeline.model.base-mlp-num-layers", "2",
    "--pipeline.model.base-mlp-layer-width", "64",
    "--pipeline.model.skip-connections", "1",
    "--pipeline.model.head-mlp-layer-width", "32",
)  # fmt: skip
"""vanilla-nerf shrunk until a step takes tens of milliseconds: enough to exercise every part of the harness."""

VANILLA_SMALL_LEARNING = (
    "--pipeline.datamanager.train-num-rays-per-batch", "512",
    "--pipeline.model.coarse-sampler.num-samples", "32",
    "--pipeline.model.fine-sampler.num-samples", "32",
    "--pipeline.model.base-mlp-num-layers", "4",
    "--pipeline.model.base-mlp-layer-width", "128",
    "--pipeline.model.skip-connections", "2",
    "--pipeline.model.head-mlp-layer-width", "64",
    "--optimizers.fields.optimizer.lr", "2e-3",
    "--optimizers.fields.scheduler.lr-final", "2e-4",
    "--optimizers.fields.scheduler.max-steps", "600",
)  # fmt: skip
"""The scaled-down vanilla-nerf of tests/test_train_e2e.py, which learns lego at 1/8 in 600 steps on 2 CPU cores."""

QUICK_GRID_WARMUP = 32
"""vanilla-nerf-occupancy's grid warm-up in the quick suite (256 by default), so its timed steps fit the budget."""

NERFACTO_WARMUP = 10
"""nerfacto's proposal networks get gradients on every one of the first 10 steps, later on every other step or less."""

INSTANT_NGP_GRID_WARMUP = 256
"""instant-ngp updates its occupancy grid every step for this many steps (the model's grid_warmup_steps), then
every 16: steps before it are not representative of training throughput."""

KERNEL_OPERATIONS = ("occupancy-grid", "volume-rendering", "hash-encoding", "mlp")
"""The operations of `--machine.kernels.*`: nerfacc provides the first two, tiny-cuda-nn the last two."""

BACKEND_COMBINATIONS: dict[str, tuple[str, ...]] = {
    "torch": (),
    "nerfacc": ("occupancy-grid", "volume-rendering"),
    "tcnn": ("hash-encoding", "mlp"),
    "cuda": KERNEL_OPERATIONS,
}
"""Each combination the GPU suites compare, as the operations it runs on CUDA kernels (the rest on torch)."""

NERFACTO_FLAGS = ("--pipeline.model.camera-optimizer.mode", "off")
"""Blender poses are exact, so nerfacto's pose refinement only costs time on lego."""

POSE_REFINEMENT_STEPS = 300
"""Steps of each `cpu-nerfacto-poses` entry: about a minute each on an idle 2-core machine. Until step 1000 the
proposal networks are updated on every other step, so both entries time the same mix of steps."""


def pose_refinement_entry(refine: bool) -> Entry:
    """nerfacto with its registered settings (pose refinement on, SO3xR3), or the same with refinement off: the pair
    whose step times give the cost of refinement (issue 18: at most 1.3 times)."""
    return Entry(
        f"nerfacto-lego-ds4-poses-{'on' if refine else 'off'}",
        "nerfacto",
        downscale=4,
        flags=() if refine else NERFACTO_FLAGS,
        steps=POSE_REFINEMENT_STEPS,
        wall_seconds=300,
        warmup_steps=NERFACTO_WARMUP,
        eval_images=0,
        timeout_seconds=600,
        description=f"registered settings{'' if refine else ' with pose refinement off'}, "
        f"{POSE_REFINEMENT_STEPS} steps (300 s cap), throughput only",
    )


NGP_PROGRESS_SECONDS = (45.0, 60.0, 75.0, 90.0, 105.0, 120.0, 150.0, 180.0, 240.0)
"""Training-clock ages at which `cpu-ngp-5min` scores the test images on the way to its 300 s."""

GPU_TARGET_TRAIN_SECONDS = 90.0
"""Issue 15's target: instant-ngp with every CUDA kernel reaches >= 35.5 dB on lego's test views with a training loop
of at most this long, on one H200-class GPU."""


def kernel_flags(combination: str) -> tuple[str, ...]:
    """Every backend flag spelled out, so `auto` can never pick a different backend on another machine."""
    on_cuda = BACKEND_COMBINATIONS[combination]
    return tuple(
        item
        for operation in KERNEL_OPERATIONS
        for item in (f"--machine.kernels.{operation}", "cuda-kernels" if operation in on_cuda else "torch")
    )


def gpu_entry(
    method: str,
    combination: str,
    *,
    amp: bool = False,
    gpus: int = 1,
    suffix: str = "",
    flags: tuple[str, ...] = (),
    description: str = "",
    **budget: Any,
) -> Entry:
    """An entry on lego at 800x800 on CUDA, named after what it varies: method, kernels, precision, GPUs."""
    name = f"{method}-lego-ds1-{combination}{'-amp' if amp else ''}{f'-{gpus}gpu' if gpus > 1 else ''}{suffix}"
    gpu_flags = ("--machine.device-type", "cuda", *kernel_flags(combination))
    gpu_flags += ("--mixed-precision",) if amp else ("--no-mixed-precision",)  # a method's default may be either
    gpu_flags += ("--machine.num-devices", str(gpus)) if gpus > 1 else ()
    what = f"{combination} kernels, {'mixed' if amp else 'fp32'} precision, {gpus} GPU{'s' if gpus > 1 else ''}"
    description = "; ".join(filter(None, (what, description)))
    return Entry(name, method, downscale=1, flags=gpu_flags + flags, description=description, **budget)


def gpu_target_entry(**budget: Any) -> Entry:
    """Issue 15's target run: instant-ngp with every CUDA kernel, registered settings, 90 s of training."""
    return gpu_entry(
        "instant-ngp",
        "cuda",
        train_seconds=GPU_TARGET_TRAIN_SECONDS,
        warmup_steps=INSTANT_NGP_GRID_WARMUP,
        timeout_seconds=420,
        description="registered settings, 90 s of training, all test images (target: >= 35.5 dB)",
        **budget,
    )


def gpu_sweep(method: str, combinations: Iterable[str], **budget: Any) -> tuple[Entry, ...]:
    """One entry per backend combination, each without and with mixed precision."""
    return tuple(gpu_entry(method, name, amp=amp, **budget) for name in combinations for amp in (False, True))


GPU_SHORT = {"train_seconds": 20.0, "eval_images": 2, "timeout_seconds": 180}
"""The short entries of gpu-quick: 20 s of training, 2 test images, about 35 s each with start-up."""

QUICK_GPU_GRID_WARMUP = 64
"""instant-ngp's grid warm-up in gpu-quick's 20 s entries (256 by default), so that the slowest combination (all
torch) still has timed steps after it."""


def quick_gpu_ngp_entry(combination: str, **options: Any) -> Entry:
    """A 20 s instant-ngp entry of gpu-quick, with the shorter grid warm-up."""
    warmup = ("--pipeline.model.sampler.warmup-steps", str(QUICK_GPU_GRID_WARMUP))
    return gpu_entry(
        "instant-ngp", combination, flags=warmup, warmup_steps=QUICK_GPU_GRID_WARMUP, **options, **GPU_SHORT
    )


GPU_LONG = {"train_seconds": 120.0, "timeout_seconds": 900}
"""The longer entries of the full gpu suite: 2 minutes of training."""

SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite(
            "smoke",
            "a tiny vanilla-nerf run end to end, under a minute: checks the harness, not the method",
            (
                Entry(
                    "vanilla-nerf-tiny-lego-ds8",
                    "vanilla-nerf",
                    downscale=8,
                    flags=SMOKE_MODEL,
                    steps=20,
                    wall_seconds=40,
                    warmup_steps=5,
                    eval_images=2,
                    timeout_seconds=180,
                    description="2x64 MLPs, 16+16 samples, 256 rays; 2 of the 10 test images at 100x100",
                ),
            ),
        ),
        Suite(
            "first-run",
            "the README's main job: instant-ngp on the built-in scene, 800 steps, then every test image",
            (
                Entry(
                    "instant-ngp-builtin",
                    "instant-ngp",
                    data=None,
                    steps=800,
                    warmup_steps=INSTANT_NGP_GRID_WARMUP,
                    timeout_seconds=600,
                    description="registered settings, 800 steps on the built-in scene (200x200), all 20 test images",
                ),
            ),
        ),
        Suite(
            "cpu-quick",
            "the CPU targets in under 15 minutes: instant-ngp to 10 minutes with eval, vanilla-nerf rays/s with "
            "and without the occupancy grid",
            (
                Entry(
                    "instant-ngp-lego-ds4",
                    "instant-ngp",
                    downscale=4,
                    wall_seconds=540,
                    warmup_steps=INSTANT_NGP_GRID_WARMUP,
                    timeout_seconds=720,
                    description="registered settings; trains to 9 min of process age, then renders all 10 test "
                    "images at 200x200 (target: eval finished by 600 s)",
                ),
                Entry(
                    "vanilla-nerf-lego-ds4",
                    "vanilla-nerf",
                    downscale=4,
                    steps=6,
                    wall_seconds=100,
                    warmup_steps=1,
                    eval_images=0,
                    timeout_seconds=300,
                    description="paper settings, throughput only",
                ),
                Entry(
                    "vanilla-nerf-grid-lego-ds4",
                    "vanilla-nerf-occupancy",
                    downscale=4,
                    flags=("--pipeline.model.sampler.warmup-steps", str(QUICK_GRID_WARMUP)),
                    wall_seconds=150,
                    warmup_steps=QUICK_GRID_WARMUP,
                    eval_images=0,
                    timeout_seconds=400,
                    description="paper-size field with the occupancy grid (short grid warm-up), throughput only",
                ),
            ),
        ),
        Suite(
            "cpu-nerfacto",
            "nerfacto to about 10 minutes on lego at 1/4 scale, then every test image",
            (
                Entry(
                    "nerfacto-lego-ds4",
                    "nerfacto",
                    downscale=4,
                    flags=("--pipeline.model.camera-optimizer.mode", "off"),
                    wall_seconds=500,
                    warmup_steps=NERFACTO_WARMUP,
                    timeout_seconds=900,
                    description="registered settings with pose refinement off (Blender poses are exact); trains to "
                    "500 s of process age, then renders all 10 test images at 200x200 (25 s on an idle machine)",
                ),
            ),
        ),
        Suite(
            "cpu-ngp-5min",
            "instant-ngp's first five minutes on lego at 1/4 scale: the test PSNR on the way and at the end",
            (
                Entry(
                    "instant-ngp-lego-ds4-5min",
                    "instant-ngp",
                    downscale=4,
                    wall_seconds=300,
                    eval_at_seconds=NGP_PROGRESS_SECONDS,
                    warmup_steps=INSTANT_NGP_GRID_WARMUP,
                    timeout_seconds=900,
                    description="registered settings; trains to 300 s of process age (the interim evaluations left "
                    "out of the clock), scoring all 10 test images at each of NGP_PROGRESS_SECONDS and at the end "
                    "(targets: 30 dB by 120 s, 33 dB at 300 s)",
                ),
            ),
        ),
        Suite(
            "cpu-nerfacto-poses",
            "the cost of nerfacto's pose refinement on lego at 1/4 scale: registered settings (refinement on), then "
            "refinement off, 300 steps each, throughput only; about 3 minutes on an idle machine",
            (pose_refinement_entry(True), pose_refinement_entry(False)),
        ),
        Suite(
            "cpu-full",
            "longer CPU runs: instant-ngp for 30 minutes at two resolutions, more vanilla-nerf steps, and a "
            "vanilla-nerf that learns",
            (
                Entry(
                    "instant-ngp-lego-ds4-30min",
                    "instant-ngp",
                    downscale=4,
                    wall_seconds=1800,
                    warmup_steps=INSTANT_NGP_GRID_WARMUP,
                    timeout_seconds=2400,
                ),
                Entry(
                    "instant-ngp-lego-ds2-30min",
                    "instant-ngp",
                    downscale=2,
                    wall_seconds=1800,
                    warmup_steps=INSTANT_NGP_GRID_WARMUP,
                    timeout_seconds=2400,
                ),
                Entry(
                    "vanilla-nerf-lego-ds4-22steps",
                    "vanilla-nerf",
                    downscale=4,
                    steps=22,
                    wall_seconds=600,
                    warmup_steps=2,
                    eval_images=0,
                    timeout_seconds=900,
                    description="paper settings, throughput only",
                ),
                Entry(
                    "vanilla-nerf-grid-lego-ds4-30min",
                    "vanilla-nerf-occupancy",
                    downscale=4,
                    wall_seconds=1800,
                    warmup_steps=INSTANT_NGP_GRID_WARMUP,
                    eval_images=0,
                    timeout_seconds=2400,
                    description="paper settings with the occupancy grid, throughput only",
                ),
                Entry(
                    "vanilla-nerf-small-lego-ds8",
                    "vanilla-nerf",
                    downscale=8,
                    flags=VANILLA_SMALL_LEARNING,
                    steps=600,
                    wall_seconds=1800,
                    warmup_steps=5,
                    timeout_seconds=2700,
                    description="4x128 MLPs, 32+32 samples, 512 rays, 600 steps; all 10 test images at 100x100",
                ),
            ),
        ),
        Suite(
            "gpu-quick",
            "the GPU target (instant-ngp, every CUDA kernel, 90 s of training, lego at 800x800), then 20 s of each "
            "other combination: about 5 minutes on one GPU once the kernels are built (benchmarks/gpu_check.sh)",
            (
                gpu_target_entry(),
                *(quick_gpu_ngp_entry(name) for name in ("torch", "nerfacc", "tcnn")),
                quick_gpu_ngp_entry("cuda", amp=True),
                gpu_entry("nerfacto", "cuda", flags=NERFACTO_FLAGS, warmup_steps=NERFACTO_WARMUP, **GPU_SHORT),
                gpu_entry("vanilla-nerf", "torch", warmup_steps=2, **{**GPU_SHORT, "eval_images": 0}),
                quick_gpu_ngp_entry("cuda", gpus=2),
            ),
        ),
        Suite(
            "gpu",
            "lego at 800x800 on CUDA: instant-ngp (90 s of training) and nerfacto (2 minutes) per backend "
            "combination, fp32 and mixed precision; vanilla-nerf; 2 GPUs; about an hour",
            (
                *gpu_sweep(
                    "instant-ngp",
                    BACKEND_COMBINATIONS,
                    train_seconds=GPU_TARGET_TRAIN_SECONDS,
                    warmup_steps=INSTANT_NGP_GRID_WARMUP,
                    timeout_seconds=600,
                ),
                gpu_entry(
                    "instant-ngp",
                    "cuda",
                    suffix="-20k",
                    flags=("--optimizers.fields.scheduler.max-steps", "20000"),
                    steps=20000,
                    wall_seconds=1200,
                    warmup_steps=INSTANT_NGP_GRID_WARMUP,
                    timeout_seconds=1500,
                    description="20,000 steps with the schedule fitted to them: the PSNR "
                    "the method reaches without a time limit",
                ),
                *(
                    gpu_entry(
                        "instant-ngp",
                        "cuda",
                        amp=amp,
                        gpus=2,
                        train_seconds=GPU_TARGET_TRAIN_SECONDS,
                        warmup_steps=INSTANT_NGP_GRID_WARMUP,
                        timeout_seconds=600,
                    )
                    for amp in (False, True)
                ),
                *gpu_sweep(
                    "nerfacto", BACKEND_COMBINATIONS, flags=NERFACTO_FLAGS, warmup_steps=NERFACTO_WARMUP, **GPU_LONG
                ),
                gpu_entry("nerfacto", "cuda", gpus=2, flags=NERFACTO_FLAGS, warmup_steps=NERFACTO_WARMUP, **GPU_LONG),
                *gpu_sweep("vanilla-nerf", ("torch",), warmup_steps=2, eval_images=2, **GPU_LONG),
                gpu_entry("vanilla-nerf", "torch", gpus=2, warmup_steps=2, eval_images=2, **GPU_LONG),
                *(
                    gpu_entry(
                        "vanilla-nerf-occupancy", name, warmup_steps=INSTANT_NGP_GRID_WARMUP, eval_images=2, **GPU_LONG
                    )
                    for name in ("torch", "nerfacc")
                ),
            ),
        ),
    )
}


# ----------------------------------------------------------------------------------------------------------------
# Child: one entry in this process


@dataclass(frozen=True)
class ProcessClock:
    """Seconds since the entry's child process started. perf_counter is CLOCK_MONOTONIC on Linux, one clock for every
    process, so the ranks a child spawns for a multi-GPU entry measure from the child's start too."""

    start: float
    source: str

    @classmethod
    def of_this_process(cls) -> ProcessClock:
        if _AGE_AT_IMPORT is not None:
            return cls(_CLOCK_AT_IMPORT - _AGE_AT_IMPORT, "/proc/self/stat start time")
        # Not Linux: the import of this module, which misses the interpreter's own start-up.
        return cls(_CLOCK_AT_IMPORT, "import of benchmarks/run.py")

    def age(self) -> float:
        return time.perf_counter() - self.start


def kit_train_argv(entry: Entry, output_dir: Path) -> list[str]:
    """The kit-train command line of an entry; the entry's own flags come last, so they override the harness's."""
    argv = [entry.method, "--vis", "none", "--output-dir", str(output_dir)]
    if entry.data is not None:
        argv += ["--data", str(entry.data), "--pipeline.datamanager.dataparser.downscale-factor", str(entry.downscale)]
    if entry.steps is not None:
        argv += ["--max-num-iterations", str(entry.steps)]
    return argv + list(entry.flags)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _count(value: Any) -> float | None:
    """A count a model or pipeline reports, as a float, or None if it is not a number."""
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):
        return None


def _num_rays(ray_bundle: Any) -> int | None:
    shape = getattr(ray_bundle, "shape", None)
    if shape is not None:
        return math.prod(shape)
    try:
        return len(ray_bundle)
    except TypeError:
        return None


RAY_COUNT_KEYS = ("num_rays", "num_rays_per_batch")
SAMPLE_COUNT_KEY = "num_samples_per_batch"


class StepProbe:
    """Observes each training step's actual batch without changing it.

    It wraps, on these instances only, `datamanager.next_train` (to count the rays it really returned, however the
    batch size was chosen: fixed, or by a dynamic-batch pipeline) and `pipeline.get_train_loss_dict` (to read a
    `num_samples_per_batch` or ray count the model reports). Values are read as the step runs, so nothing a later
    callback changes can mislabel the step.
    """

    def __init__(self, pipeline: Any) -> None:
        self.rays: int | None = None
        self.reported_rays: float | None = None
        self.samples: float | None = None
        datamanager = getattr(pipeline, "datamanager", None)
        if datamanager is not None and callable(getattr(datamanager, "next_train", None)):
            datamanager.next_train = self._counting_rays(datamanager.next_train)
        if callable(getattr(pipeline, "get_train_loss_dict", None)):
            pipeline.get_train_loss_dict = self._reading_counts(pipeline.get_train_loss_dict)

    def reset(self) -> None:
        self.rays = self.reported_rays = self.samples = None

    def _counting_rays(self, next_train: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = next_train(*args, **kwargs)
            rays = _num_rays(result[0]) if isinstance(result, tuple) and result else None
            if rays is not None:
                self.rays = (self.rays or 0) + rays
            return result

        return wrapped

    def _reading_counts(self, get_train_loss_dict: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = get_train_loss_dict(*args, **kwargs)
            outputs, _, metrics = result
            for source in (outputs, metrics):
                if self.samples is None and SAMPLE_COUNT_KEY in source:
                    self.samples = _count(source[SAMPLE_COUNT_KEY])
                for key in RAY_COUNT_KEYS:
                    if self.reported_rays is None and key in source:
                        self.reported_rays = _count(source[key])
            return result

        return wrapped

    def step_rays(self, configured: int | None) -> tuple[float | None, str]:
        """Rays of the step just run and where the figure came from, most direct source first."""
        if self.rays is not None:
            return float(self.rays), "datamanager.next_train"
        if self.reported_rays is not None:
            return self.reported_rays, "reported by the pipeline"
        if configured is not None:
            return float(configured), "datamanager.config.train_num_rays_per_batch"
        return None, "unknown"


@dataclass
class StepRecord:
    step: int
    seconds: float
    rays: float | None
    samples: float | None
    loss: float


def stop_reason(
    steps_done: int, age: float, entry: Entry, max_num_iterations: int, train_elapsed: float = 0.0
) -> str | None:
    """Why training stops before the next step, or None to take it."""
    if entry.steps is not None and steps_done >= entry.steps:
        return "steps"
    if steps_done >= max_num_iterations:
        return "max_num_iterations"
    if entry.wall_seconds is not None and age >= entry.wall_seconds:
        return "wall_seconds"
    if entry.train_seconds is not None and train_elapsed >= entry.train_seconds:
        return "train_seconds"
    return None


def agreed_stop(reason: str | None, trainer: Any) -> str | None:
    """Rank 0's stop decision, on every rank: ranks that took different numbers of steps would wait for each other's
    gradients forever, and only rank 0's clock counts."""
    if trainer.world_size == 1:
        return reason
    from nerfkit.engine.distributed import any_rank

    stop = any_rank(trainer.is_main and reason is not None, trainer.device)
    return (reason or "rank 0's budget") if stop else None


def _synchronizer(device: Any) -> Callable[[], None]:
    """Waits for queued GPU work, so a step's time is the step's and not the next one's."""
    import torch

    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def _scaled(count: float | None, factor: int) -> float | None:
    return None if count is None else count * factor


def evaluate_during_training(trainer: Any, entry: Entry, age: float, step: int) -> dict[str, Any]:
    """One interim score of the test images, at training-clock `age`."""
    test = evaluate_test_split(trainer, entry.eval_images)
    print(f"[{entry.name}] {age:.0f} s, step {step}: test PSNR {test['psnr']:.2f} dB", file=sys.stderr, flush=True)
    return {"train_clock_s": age, "step": step, "psnr": test["psnr"], "ssim": test["ssim"]}


def train_until_budget(
    trainer: Any, entry: Entry, clock: ProcessClock, probe: StepProbe
) -> tuple[list[StepRecord], str, set[str], list[dict[str, Any]]]:
    """Times every `train_iteration` (callbacks included) from the first step until the budget runs out, scoring the
    test images at the entry's `eval_at_seconds` on the way; the time those evaluations take is left out of every
    budget and of the ages reported.

    With several ranks every rank runs this; a step's rays and samples are this rank's times the world size, as every
    rank draws a batch of the same size (a dynamic batch is resized from the mean over ranks)."""
    if entry.eval_at_seconds and trainer.world_size > 1:
        raise ValueError(f"{entry.name}: eval_at_seconds needs a single process")
    sync = _synchronizer(trainer.device)
    datamanager_config = getattr(getattr(trainer.pipeline, "datamanager", None), "config", None)
    records: list[StepRecord] = []
    sources: set[str] = set()
    interim: list[dict[str, Any]] = []
    pending = sorted(entry.eval_at_seconds)
    evaluating = 0.0
    loop_start = clock.age()
    next_report = loop_start + 15.0
    step = trainer.start_step
    while True:
        age = clock.age() - evaluating
        if pending and age >= pending[0]:
            pending = [due for due in pending if due > age]
            interim.append(evaluate_during_training(trainer, entry, age, step))
            evaluating = clock.age() - age
            continue
        # The training budget is a limit ("training loop <= 90 s"): no step is started that would end past it, judged
        # from the last step's time.
        projected = age - loop_start + (records[-1].seconds if records else 0.0)
        reason = stop_reason(len(records), age, entry, trainer.config.max_num_iterations, projected)
        if (reason := agreed_stop(reason, trainer)) is not None:
            return records, reason, sources, interim
        step += 1
        configured = getattr(datamanager_config, "train_num_rays_per_batch", None)
        probe.reset()
        start = time.perf_counter()
        loss, _, _ = trainer.train_iteration(step)
        sync()
        seconds = time.perf_counter() - start
        trainer.step = step
        rays, source = probe.step_rays(configured)
        sources.add(source)
        world = trainer.world_size
        records.append(StepRecord(step, seconds, _scaled(rays, world), _scaled(probe.samples, world), loss))
        if trainer.is_main and clock.age() >= next_report:
            next_report += 15.0
            print(f"[{entry.name}] step {step}, {clock.age():.0f} s, loss {loss:.4g}", file=sys.stderr, flush=True)


def _median(values: Iterable[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def throughput(records: list[StepRecord], warmup_steps: int) -> dict[str, Any]:
    """Medians over the timed steps (after warm-up): a step slowed by another process moves the mean, not these."""
    timed = records[warmup_steps:]
    summary: dict[str, Any] = {"steps": len(records), "timed_steps": len(timed)}
    if not timed:
        note = f"{len(records)} steps, not more than the {warmup_steps} warm-up steps: no throughput median"
        empty = dict.fromkeys(("iters_per_sec", "train_rays_per_sec", "train_samples_per_sec", "sec_per_iter"))
        return summary | empty | {"notes": [note]}
    seconds = [record.seconds for record in timed]
    rates = [record.rays / record.seconds for record in timed if record.rays is not None]
    sample_rates = [record.samples / record.seconds for record in timed if record.samples is not None]
    rays = [record.rays for record in timed if record.rays is not None]
    median_seconds = statistics.median(seconds)
    summary |= {
        "iters_per_sec": 1.0 / median_seconds,
        "train_rays_per_sec": statistics.median(rates) if rates else None,
        "train_samples_per_sec": statistics.median(sample_rates) if sample_rates else None,
        "sec_per_iter": median_seconds,
        "min_sec_per_iter": min(seconds),
        "max_sec_per_iter": max(seconds),
        "mean_iters_per_sec": len(timed) / sum(seconds),
        "mean_train_rays_per_sec": sum(rays) / sum(seconds) if len(rays) == len(timed) else None,
        "rays_per_step": {"min": min(rays), "median": statistics.median(rays), "max": max(rays)} if rays else None,
        "samples_per_step": _median(record.samples for record in timed),
    }
    return summary


def evaluate_test_split(trainer: Any, limit: int | None) -> dict[str, Any]:
    """Scores the first `limit` test images at the training resolution, as --eval-when-finished does."""
    from nerfkit.engine.evaluation import evaluate_dataset, load_split

    dataset = load_split(trainer.pipeline.datamanager, "test")
    return {"split": "test", **evaluate_dataset(trainer.pipeline.model, dataset, limit)}


def cuda_facts(device: Any) -> dict[str, Any]:
    """Which GPU a CUDA entry ran on (rank 0's), and torch's CUDA version; nothing on the CPU."""
    import torch

    if device.type != "cuda":
        return {}
    capability = torch.cuda.get_device_capability(device)
    return {"gpu": torch.cuda.get_device_name(device), "gpu_capability": list(capability), "cuda": torch.version.cuda}


def cuda_memory_peaks(device: Any, when: str = "") -> dict[str, float | None]:
    """Peak GPU memory of this process so far: what tensors held (allocated) and what torch's caching allocator took
    from the driver (reserved, closer to what nvidia-smi shows)."""
    import torch

    cuda = device.type == "cuda"
    return {
        f"peak_cuda_allocated{when}_mib": torch.cuda.max_memory_allocated(device) / MIB if cuda else None,
        f"peak_cuda_reserved{when}_mib": torch.cuda.max_memory_reserved(device) / MIB if cuda else None,
    }


@dataclass(frozen=True)
class ResultFile:
    """The entry's result as JSON: the child writes what it knows before training, then rank 0 (the child itself, or
    the process it spawned for the first GPU) fills in the rest, so the parent reads one file either way."""

    path: Path
    clock: ProcessClock

    def load(self) -> dict[str, Any]:
        return json.loads(self.path.read_text())

    def write(self, result: dict[str, Any]) -> None:
        self.path.write_text(json.dumps(result, indent=2, default=str) + "\n")

    def save(self, result: dict[str, Any]) -> None:
        """Writes what is known so far, with the entry's age and the writing process's peak memory as of now."""
        result.update(wall_seconds=self.clock.age(), peak_rss_mib=peak_rss_mib(), load_average_at_end=os.getloadavg())
        self.write(result)


@dataclass(frozen=True)
class RankTask:
    """What each process of an entry needs; picklable, for the ranks a multi-GPU entry spawns."""

    entry: Entry
    record: ResultFile


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {getattr(error, 'message', None) or error}".strip()


def measure(task: RankTask, config: TrainerConfig, rank: Rank, result: dict[str, Any]) -> None:
    """Rank 0's part: set-up as kit-train does it, the timed training loop, then the test split.

    `result` is saved after set-up and after training, so an entry killed by its timeout or a crash still reports how
    far it got (its `note` says where it stopped)."""
    import torch
    from rich.console import Console

    from nerfkit.engine.training_run import setup_trainer

    entry, clock = task.entry, task.record.clock
    trainer = setup_trainer(config, Console(quiet=True), rank)
    _synchronizer(trainer.device)()
    backends = getattr(trainer, "backends", None)
    result |= {
        "device": str(trainer.device),
        **cuda_facts(trainer.device),
        "world_size": trainer.world_size,
        "mixed_precision": trainer.mixed_precision,
        "torch_version": torch.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "backends": backends.describe() if hasattr(backends, "describe") else None,
        "setup_finished_s": (setup_done := clock.age()),
        "setup_seconds": setup_done - result["imports_finished_s"],
        "peak_rss_after_setup_mib": peak_rss_mib(),
        "note": "stopped during training",
    }
    task.record.save(result)
    cpu_start = time.process_time()
    records, reason, sources, interim = train_until_budget(trainer, entry, clock, StepProbe(trainer.pipeline))
    result |= {
        "train_finished_s": (train_done := clock.age()),
        "train_seconds": train_done - setup_done,
        "stop_reason": reason,
        "interim_tests": interim,
        "seconds_to_30db": next((test["train_clock_s"] for test in interim if test["psnr"] >= 30.0), None),
        "warmup_steps": entry.warmup_steps,
        **throughput(records, entry.warmup_steps),
        "rays_source": sorted(sources),
        "train_cores_used": (time.process_time() - cpu_start) / max(train_done - setup_done, 1e-9),
        "final_loss": records[-1].loss if records else None,
        "peak_rss_after_train_mib": peak_rss_mib(),
        **cuda_memory_peaks(trainer.device, "_after_train"),
        "step_seconds": [record.seconds for record in records],
        "step_rays": [record.rays for record in records],
        "step_samples": [record.samples for record in records],
        "note": "stopped during evaluation of the test split",
    }
    task.record.save(result)
    result["test"] = evaluate_test_split(trainer, entry.eval_images) if entry.eval_images != 0 else None
    result["eval_finished_s"] = clock.age() if result["test"] is not None else None
    result["eval_seconds"] = clock.age() - train_done
    result |= {**cuda_memory_peaks(trainer.device), "status": "ok", "note": None}


def run_rank(task: RankTask, rank: Rank, config: TrainerConfig) -> int:
    """What each process of the entry runs, as kit-train's worker: rank 0 measures and writes the result, other ranks
    only train alongside it. Module-level, so the ranks a multi-GPU entry spawns can unpickle it."""
    from rich.console import Console

    from nerfkit.engine.training_run import setup_trainer

    if not rank.is_main:
        trainer = setup_trainer(config, Console(quiet=True), rank)
        train_until_budget(trainer, task.entry, task.record.clock, StepProbe(trainer.pipeline))
        return 0
    result = task.record.load()
    try:
        measure(task, config, rank, result)
    except Exception as error:
        traceback.print_exc()
        result |= {"error": _describe(error), "note": f"{result['note']}: {_describe(error)}"}
        raise
    finally:
        task.record.save(result)
    return 0


def launch_entry(entry: Entry, record: ResultFile, result: dict[str, Any]) -> None:
    """Builds the config with kit-train's parser and launches it with kit-train's launcher: in this process, or in
    one process per device for `--machine.num-devices` > 1."""
    result["load_average_at_start"] = os.getloadavg()
    from rich.console import Console

    from nerfkit.engine.training_run import launch_training
    from nerfkit.plugins.registry import discover_methods
    from nerfkit.scripts.train import parse_args

    result["imports_finished_s"] = record.clock.age()
    with tempfile.TemporaryDirectory(prefix="nerfkit-benchmark-") as tmp:
        result["kit_train_argv"] = argv = kit_train_argv(entry, Path(tmp) / "outputs")
        # The parent has already reported any plug-in that fails to load; the child stays quiet about it.
        registry = discover_methods(Console(stderr=True, quiet=True))
        config = parse_args(argv, registry)
        record.save(result)
        exit_code = launch_training(config, worker=functools.partial(run_rank, RankTask(entry, record)))
    if exit_code != 0:
        raise RuntimeError(f"the entry's processes exited with {exit_code}")


def child_main(entry_json: str, result_path: Path) -> int:
    """Runs one entry and leaves its result, an error included, as JSON: the parent never has to parse a crash."""
    clock = ProcessClock.of_this_process()
    record = ResultFile(result_path, clock)
    result: dict[str, Any] = {
        "status": "error",
        "note": "stopped during set-up",
        "process_start": {"source": clock.source, "seconds_before_harness_import": _CLOCK_AT_IMPORT - clock.start},
    }
    record.save(result)
    failure: str | None = None
    try:
        launch_entry(Entry.from_json(json.loads(entry_json)), record, result)
    except SystemExit as error:  # tyro rejects bad flags by printing and exiting
        failure = f"kit-train rejected the command line (exit {error.code}; see above)"
    except Exception as error:  # noqa: BLE001 - any failure is reported in the suite's table and JSON
        failure = _describe(error)
        if "error" not in record.load():  # rank 0 has already printed and recorded its own error
            traceback.print_exception(error)
    final = record.load()
    if failure is not None and "error" not in final:  # a failure outside rank 0's measuring: parsing, another rank
        record.write(final | {"error": failure, "note": f"{final['note']}: {failure}"})
    return 0 if failure is None and final["status"] == "ok" else 1


# ----------------------------------------------------------------------------------------------------------------
# Parent: suites, skipping, machine facts, table and JSON


@dataclass(frozen=True)
class Capabilities:
    """What this machine offers the GPU entries."""

    cuda_devices: int
    """CUDA devices torch sees."""
    package_problems: dict[str, str]
    """Why each optional CUDA package cannot run its kernels here; usable packages are left out."""


def local_capabilities() -> Capabilities:
    import torch

    from nerfkit.kernels.backends import OPERATIONS, package_status

    devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    statuses = [package_status(name) for name in sorted(set(OPERATIONS.values()))]
    return Capabilities(devices, {status.name: status.reason for status in statuses if not status.usable})


def entry_needs(entry: Entry) -> tuple[int, list[str]]:
    """CUDA devices and optional packages an entry's flags ask for: `--machine.device-type cuda` (or any operation
    forced onto CUDA kernels) needs `--machine.num-devices` GPUs, and each forced operation its package."""
    from nerfkit.kernels.backends import OPERATIONS
    from nerfkit.utils.cli import flag_value

    flags = list(entry.flags)
    forced = {
        package
        for operation, package in OPERATIONS.items()
        if flag_value(flags, f"--machine.kernels.{operation.replace('_', '-')}") == "cuda-kernels"
    }
    on_cuda = flag_value(flags, "--machine.device-type") == "cuda" or bool(forced)
    return (int(flag_value(flags, "--machine.num-devices") or 1) if on_cuda else 0), sorted(forced)


def skip_reason(
    entry: Entry, methods: Iterable[str], failures: dict[str, str], capabilities: Capabilities
) -> str | None:
    """Why an entry cannot run here (method not registered or broken, too few GPUs, a CUDA package that cannot
    run), or None."""
    if entry.method in failures:
        return f"method {entry.method!r} is registered but does not load: {failures[entry.method]}"
    methods = sorted(methods)
    if entry.method not in methods:
        return f"method {entry.method!r} is not registered (registered: {', '.join(methods) or 'none'})"
    gpus, packages = entry_needs(entry)
    problems = []
    if gpus > capabilities.cuda_devices:
        problems.append(f"needs {gpus} CUDA device{'s' if gpus > 1 else ''}, torch sees {capabilities.cuda_devices}")
    unusable = capabilities.package_problems
    problems += [f"needs {name}: {unusable[name]}" for name in packages if name in unusable]
    return "; ".join(problems) or None


def registered_methods() -> tuple[list[str], dict[str, str]]:
    from rich.console import Console

    from nerfkit.plugins.registry import discover_methods

    registry = discover_methods(Console(stderr=True, quiet=True))
    return list(registry.methods), dict(registry.failures)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=REPO_DIR, capture_output=True, text=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip()


def machine_info(capabilities: Capabilities) -> dict[str, Any]:
    import torch

    status = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3,
        "platform": platform.platform(),
        "python_version": platform.python_version(),
        "cuda_devices": [torch.cuda.get_device_name(index) for index in range(capabilities.cuda_devices)],
        "cuda_package_problems": capabilities.package_problems,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "env": {k: v for k, v in sorted(os.environ.items()) if k.startswith(("OMP_", "MKL_", "MALLOC_", "NERFKIT_"))},
    }


def run_child(entry: Entry) -> dict[str, Any]:
    """Runs one entry in a fresh Python process and returns its result, or as much of it as the child saved."""
    with tempfile.TemporaryDirectory(prefix="nerfkit-benchmark-result-") as tmp:
        result_path = Path(tmp) / "result.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(entry.to_json())]
        start = time.perf_counter()
        try:
            returncode = subprocess.run(
                [*command, "--result", str(result_path)], timeout=entry.timeout_seconds
            ).returncode
            ending = f"the child exited with {returncode}"
        except subprocess.TimeoutExpired:
            returncode, ending = None, f"killed after its timeout of {entry.timeout_seconds:g} s"
        result = json.loads(result_path.read_text()) if result_path.is_file() else {"note": "no result written"}
    result["child_seconds"] = time.perf_counter() - start
    if returncode != 0 or result.get("status") != "ok":
        result |= {"status": "error", "note": f"{ending}; {result.get('note')}"}
    return result


def _format(value: Any, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def print_table(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(190, Console().width))
    table = Table(title=f"suite {report['suite']}: median over timed steps after warm-up")
    columns = ("entry", "method", "ds", "steps", "it/s", "rays/s", "samples/step", "samples/s", "wall s")
    for column in (*columns, "peak RSS MiB", "peak GPU MiB", "PSNR", "SSIM", "render rays/s", "status"):
        left = column in ("entry", "method", "status")
        table.add_column(column, justify="left" if left else "right", no_wrap=column == "entry")
    for result in report["entries"]:
        entry, test = result["entry"], result.get("test") or {}
        steps = f"{result['timed_steps']}/{result['steps']}" if "steps" in result else "-"
        table.add_row(
            entry["name"],
            entry["method"],
            str(entry["downscale"]),
            steps,
            _format(result.get("iters_per_sec"), ",.3g"),
            _format(result.get("train_rays_per_sec"), ",.0f"),
            _format(result.get("samples_per_step"), ",.0f"),
            _format(result.get("train_samples_per_sec"), ",.0f"),
            _format(result.get("wall_seconds"), ".1f"),
            _format(result.get("peak_rss_mib") if result["status"] == "ok" else None, ",.0f"),
            _format(result.get("peak_cuda_allocated_mib"), ",.0f"),
            _format(test.get("psnr"), ".2f"),
            _format(test.get("ssim"), ".4f"),
            _format(test.get("render_rays_per_sec"), ",.0f"),
            result["status"],
        )
    console.print(table)
    console.print("steps: timed/total; wall s: seconds from the child's process start to the end of its evaluation")
    for result in report["entries"]:
        notes = [result.get("note"), *result.get("notes", []), *(result.get("test") or {}).get("notes", [])]
        for note in filter(None, notes):
            console.print(f"  {result['entry']['name']}: {note}", highlight=False, soft_wrap=True)
        if result.get("interim_tests"):
            scores = ", ".join(f"{test['train_clock_s']:.0f} s {test['psnr']:.2f}" for test in result["interim_tests"])
            console.print(f"  {result['entry']['name']}: test PSNR by training clock: {scores} dB", highlight=False)
    machine = report["machine"]
    ran = [result for result in report["entries"] if result["status"] == "ok"]
    versions = sorted(
        {f"torch {r['torch_version']}, {r['torch_num_threads']} threads, {r.get('gpu') or r['device']}" for r in ran}
    )
    backends = sorted({r["backends"] for r in ran if r.get("backends")})
    console.print(
        f"machine: {machine['cpu_model']}, {machine['cpus_available']} cores available | "
        f"{'; '.join(versions) or 'torch: no entry ran'} | kernels: {'; '.join(backends) or '-'}\n"
        f"commit {machine['git_commit']}{' (with local changes)' if machine['git_dirty'] else ''} | "
        f"suite took {report['total_seconds']:.0f} s",
        highlight=False,
        soft_wrap=True,
    )


def select_entries(suite: Suite, only: list[str], data: Path | None, flags: list[str] | None = None) -> list[Entry]:
    """The entries named by --only (all when none), with --data and --flags applied."""
    names = [name for item in only for name in item.split(",") if name]
    known = {entry.name for entry in suite.entries}
    if unknown := [name for name in names if name not in known]:
        raise SystemExit(f"--only: no entry {', '.join(unknown)} in suite {suite.name} (has: {', '.join(known)})")
    entries = [entry for entry in suite.entries if not names or entry.name in names]
    entries = [replace(entry, flags=entry.flags + tuple(flags or ())) for entry in entries]
    return [replace(entry, data=data) if data is not None else entry for entry in entries]


def run_suite(suite: Suite, entries: list[Entry], output: Path) -> dict[str, Any]:
    """Runs the entries one after another; the JSON is rewritten after each, so a long suite's partial results
    survive an interruption."""
    methods, failures = registered_methods()
    capabilities = local_capabilities()
    report: dict[str, Any] = {
        "suite": suite.name,
        "description": suite.description,
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(capabilities),
        "entries": [],
        "total_seconds": 0.0,
    }
    start = time.perf_counter()
    output.parent.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        reason = skip_reason(entry, methods, failures, capabilities)
        if reason is None and entry.data is not None and not entry.data.is_dir():
            result = {"status": "error", "note": f"data folder {entry.data} not found (use --data)"}
        elif reason is not None:
            result = {"status": "skipped", "note": reason}
        else:
            print(f"[{entry.name}] {entry.method}, budget {entry.budget()} ...", file=sys.stderr, flush=True)
            result = run_child(entry)
        report["entries"].append({"entry": entry.to_json(), **result})
        report["total_seconds"] = time.perf_counter() - start
        output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def print_suites() -> None:
    """The suites' entries, and which of them would be skipped here and why (each reason once, as a footnote)."""
    from rich.console import Console
    from rich.table import Table

    methods, failures = registered_methods()
    capabilities = local_capabilities()
    reasons: list[str] = []
    table = Table(title="benchmark suites")
    for column in ("suite", "entry", "method", "ds", "budget", "warm-up", "eval images", "runs here?"):
        table.add_column(column)
    for suite in SUITES.values():
        for entry in suite.entries:
            reason = skip_reason(entry, methods, failures, capabilities)
            if reason is not None and reason not in reasons:
                reasons.append(reason)
            runs = "yes" if reason is None else f"skipped [{reasons.index(reason) + 1}]"
            eval_images = "all" if entry.eval_images is None else str(entry.eval_images)
            table.add_row(
                suite.name, entry.name, entry.method, str(entry.downscale), entry.budget(), str(entry.warmup_steps),
                eval_images, runs,
            )  # fmt: skip
    console = Console(width=max(170, Console().width))
    console.print(table)
    for number, reason in enumerate(reasons, start=1):
        console.print(f"[{number}] {reason}", highlight=False, markup=False, soft_wrap=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES), help="suite to run")
    parser.add_argument("--list", action="store_true", help="list the suites and their entries, then exit")
    parser.add_argument("--only", action="append", default=[], metavar="ENTRY", help="run only these entries")
    parser.add_argument("--data", type=Path, default=None, help="dataset folder for every entry (default: lego)")
    parser.add_argument(
        "--flags", default="", help="kit-train flags appended to every entry's, e.g. --flags='--pipeline.model.x 1'"
    )
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default: benchmarks/out/SUITE.json)")
    parser.add_argument(
        "--show", type=Path, metavar="JSON", help="print the table of a suite's JSON (also a partial one)"
    )
    parser.add_argument("--child", metavar="ENTRY_JSON", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.child is not None:
        return child_main(args.child, args.result)
    if args.list:
        print_suites()
        return 0
    if args.show is not None:
        print_table(json.loads(args.show.read_text()))
        return 0
    if args.suite is None:
        build_parser().error("--suite is required (or --list)")
    suite = SUITES[args.suite]
    output = args.output or BENCH_DIR / "out" / f"{suite.name}.json"
    report = run_suite(suite, select_entries(suite, args.only, args.data, shlex.split(args.flags)), output)
    print_table(report)
    print(f"wrote {output}")
    return 1 if any(result["status"] == "error" for result in report["entries"]) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
