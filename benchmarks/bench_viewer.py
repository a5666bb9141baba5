"""What the live viewer costs training, and how soon it shows a frame, on this machine.

    python benchmarks/bench_viewer.py --repeats 3

Throughput: instant-ngp on lego at 1/4 (200x200) trains `--warmup` untimed steps, then `--steps` timed ones, with
`--vis none`, with `--vis viewer` and no browser, and with `--vis viewer` and one browser (headless Chromium via
Playwright) connected and idle (its camera resting after its sharpest frame); the three runs alternate `--repeats`
times. Training rays/s is every timed step's rays over the timed wall time (the viewer's rendering included, as a
user waits for it), and each figure is compared with `--vis none`. The runs are seeded alike and the viewer leaves the
random state alone, so each run trains the same rays.

Latency: after the last run, training is paused and the browser's camera is moved `--moves` times; for each move,
the seconds until the first (preview, 64 px) frame and until the full frame (200x200, the viewer's max resolution
here) reach the browser. A direct render of the same 200x200 view (`Viewer.render_view`) is timed as the reference.
Prints a table and writes JSON (`--output`).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from nerfkit.engine.trainer import Trainer
from nerfkit.engine.training_run import setup_trainer
from nerfkit.plugins.registry import get_registry
from nerfkit.scripts.train import parse_args

LEGO = Path(__file__).resolve().parents[2] / "shared/data/lego"
CHROMIUM_FLAGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist", "--no-sandbox"]
MODES = ("none", "viewer, no browser", "viewer, one idle browser")
FULL_SIZE = 200


def wait_for(condition: Callable[[], bool], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark waited too long")
        time.sleep(0.005)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def build(mode: str, steps: int, output: Path, data: Path) -> Trainer:
    vis = ["--vis", "none"] if mode == "none" else ["--vis", "viewer", "--viewer.port", str(free_port()),
                                                    "--viewer.max-resolution", str(FULL_SIZE)]  # fmt: skip
    argv = ["instant-ngp", "--data", str(data), "--pipeline.datamanager.dataparser.downscale-factor", "4",
            "--max-num-iterations", str(steps), "--steps-per-eval-batch", "0", "--steps-per-eval-image", "0",
            "--steps-per-save", "0", "--output-dir", str(output), *vis]  # fmt: skip
    return setup_trainer(parse_args(argv, get_registry()), Console(file=io.StringIO()))


def count_rays(trainer: Trainer) -> list[int]:
    """Rays of each step, as the trainer asks the pipeline for them."""
    counts: list[int] = []
    original = trainer.pipeline.train_num_rays

    def counted() -> int:
        counts.append(original())
        return counts[-1]

    trainer.pipeline.train_num_rays = counted  # type: ignore[method-assign]
    return counts


def sharp(browser: Any) -> bool:
    return browser.sent_version == browser.version and browser.frame is None and browser.sent_level > 0


def time_run(mode: str, args: argparse.Namespace, chromium: Any, output: Path) -> dict[str, Any]:
    # Training goes on past the timed steps (paused for the latency) until the run is stopped, as Ctrl-C would.
    trainer = build(mode, args.warmup + args.steps + 100_000, output, args.data)
    rays = count_rays(trainer)
    page = None
    thread = threading.Thread(target=trainer.train)
    thread.start()
    try:
        if mode == MODES[2]:
            assert trainer.viewer is not None
            page = chromium.new_page(viewport={"width": 800, "height": 600})
            page.goto(trainer.viewer.url)
            wait_for(lambda: len(trainer.viewer.browsers) == 1)
            browser = next(iter(trainer.viewer.browsers.values()))
            wait_for(lambda: sharp(browser))
        wait_for(lambda: trainer.step >= args.warmup)
        start, first_step = time.perf_counter(), trainer.step
        wait_for(lambda: trainer.step >= args.warmup + args.steps)
        seconds = time.perf_counter() - start
        timed = trainer.step - first_step
        result = {"mode": mode, "steps": timed, "seconds": seconds, "iters_per_sec": timed / seconds,
                  "rays_per_sec": sum(rays[first_step:first_step + timed]) / seconds}  # fmt: skip
        if mode == MODES[2] and args.moves and args.latency:
            result["latency"] = measure_latency(trainer, page, args.moves)
        return result
    finally:
        trainer.stop.signal_number = signal.SIGINT
        thread.join()
        if page is not None:
            page.close()


def measure_latency(trainer: Trainer, page: Any, moves: int) -> dict[str, Any]:
    """Seconds from a camera move to the browser's first frame and to its full frame, with training paused."""
    viewer = trainer.viewer
    assert viewer is not None
    viewer.set_paused(True)
    browser = next(iter(viewer.browsers.values()))
    camera = browser.client.camera
    first, full, direct = [], [], []
    for move in range(moves):
        angle = math.radians(35.0 * (move + 1))
        with viewer.lock:
            version = browser.version
        start = time.perf_counter()
        camera.position = (4.0 * math.cos(angle), 4.0 * math.sin(angle), 2.0)
        camera.look_at = (0.0, 0.0, 0.0)
        wait_for(lambda version=version: browser.sent_version > version)
        first.append(time.perf_counter() - start)
        wait_for(lambda version=version: sharp(browser) and browser.sent_version > version)
        full.append(time.perf_counter() - start)
        start = time.perf_counter()
        viewer.render_view(browser.view, FULL_SIZE, FULL_SIZE)
        direct.append(time.perf_counter() - start)
    return {"first_frame_s": first, "full_frame_s": full, "render_view_200_s": direct,
            "first_frame_median_s": statistics.median(first), "full_frame_median_s": statistics.median(full),
            "render_view_200_median_s": statistics.median(direct)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=LEGO, help="Blender-format dataset (lego)")
    parser.add_argument("--warmup", type=int, default=300, help="untimed steps (the occupancy grid warms up in 256)")
    parser.add_argument("--steps", type=int, default=150, help="timed steps")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the three runs")
    parser.add_argument("--moves", type=int, default=5, help="camera moves timed for latency, in the last round")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/out/viewer.json"), help="JSON written here")
    args = parser.parse_args()
    chromium_path = shutil.which("chromium")
    if chromium_path is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    runs: list[dict[str, Any]] = []
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as scratch:
        chromium = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_FLAGS)
        for repeat in range(args.repeats):
            for mode in MODES:
                args.latency = repeat == args.repeats - 1
                runs.append(time_run(mode, args, chromium, Path(scratch) / f"{repeat}-{MODES.index(mode)}"))
                print(f"round {repeat + 1}, {mode}: {runs[-1]['rays_per_sec']:,.0f} rays/s", flush=True)
        chromium.close()
    report(runs, args)


def report(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    medians = {mode: statistics.median(run["rays_per_sec"] for run in runs if run["mode"] == mode) for mode in MODES}
    table = Table(title=f"instant-ngp, lego 200x200: {args.steps} timed steps after {args.warmup}, medians of "
                  f"{args.repeats} alternating runs")  # fmt: skip
    for column in ("run", "train rays/s", "it/s", "vs --vis none"):
        table.add_column(column, justify="left" if column == "run" else "right")
    for mode in MODES:
        its = statistics.median(run["iters_per_sec"] for run in runs if run["mode"] == mode)
        table.add_row(mode, f"{medians[mode]:,.0f}", f"{its:.2f}", f"{medians[mode] / medians['none']:.3f}")
    console = Console()
    console.print(table)
    latency = next((run["latency"] for run in runs if "latency" in run), None)
    if latency:
        console.print(
            f"latency over {args.moves} camera moves (training paused), medians: first 64 px frame "
            f"{latency['first_frame_median_s']:.3f} s, full {FULL_SIZE}x{FULL_SIZE} frame "
            f"{latency['full_frame_median_s']:.3f} s; a direct {FULL_SIZE}x{FULL_SIZE} render "
            f"{latency['render_view_200_median_s']:.3f} s"
        )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    machine = {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "python": platform.python_version()}  # fmt: skip
    settings = {key: value for key, value in vars(args).items() if key not in ("data", "output", "latency")}
    args.output.write_text(json.dumps({"machine": machine, "settings": settings, "runs": runs,
                                       "median_rays_per_sec": medians}, indent=2, default=str) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
