"""What the live viewer costs training, and how soon it shows a frame, on this machine.

    python benchmarks/bench_viewer.py --pairs 6 --block 20

One instant-ngp run on lego at 1/4 (200x200) with `--vis viewer` trains past the occupancy grid's warm-up, then
alternates blocks of `--block` steps, so that both sides of each comparison see the same model and the same moment
of this shared machine (separate runs here differ by up to 20% on their own):
- no browser: the viewer detached from the loop (as with `--vis none`; its server idles either way) against the
  viewer attached, `--pairs` times;
- one idle browser: no page against a headless Chromium page (Playwright) connected and resting after its sharpest
  frame, `--pairs` times. Chromium draws the page with software WebGL on this machine's own two cores, which a
  browser on a user's laptop does not, so each block also records the cores Chromium used (from /proc) and the
  share of the block's wall time that the training thread spent in the viewer's calls (what the viewer itself
  costs, wherever the browser runs).
Each block's training rays/s is its steps' rays over its wall time (the viewer's work between steps included). The
figure per comparison is the median over pairs of the ratio (with / without).

Latency: training is then paused and the page's camera moved `--moves` times; for each move, the seconds until the
first (64 px) frame and until the full 200x200 frame (the viewer's max resolution here) reach the page.
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
FULL_SIZE = 200
COMPARISONS = ("no browser", "idle browser")
IDLE_SECONDS = 3.0


def wait_for(condition: Callable[[], bool], timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the benchmark waited too long")
        time.sleep(0.005)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def build(output: Path, data: Path) -> Trainer:
    argv = ["instant-ngp", "--data", str(data), "--pipeline.datamanager.dataparser.downscale-factor", "4",
            "--max-num-iterations", "1000000", "--steps-per-eval-batch", "0", "--steps-per-eval-image", "0",
            "--steps-per-save", "0", "--output-dir", str(output), "--vis", "viewer", "--viewer.port", str(free_port()),
            "--viewer.max-resolution", str(FULL_SIZE)]  # fmt: skip
    return setup_trainer(parse_args(argv, get_registry()), Console(file=io.StringIO()))


class StepClock:
    """When each step ended and how many rays it trained, recorded by the trainer's own calls."""

    def __init__(self, trainer: Trainer) -> None:
        self.ends: dict[int, float] = {}
        self.rays: list[int] = []
        train_iteration, train_num_rays = trainer.train_iteration, trainer.pipeline.train_num_rays

        def timed_iteration(step: int) -> Any:
            result = train_iteration(step)
            self.ends[step] = time.perf_counter()
            return result

        def counted_rays() -> int:
            self.rays.append(train_num_rays())
            return self.rays[-1]

        trainer.train_iteration = timed_iteration  # type: ignore[method-assign]
        trainer.pipeline.train_num_rays = counted_rays  # type: ignore[method-assign]
        self.viewer_seconds = 0.0
        viewer = trainer.viewer
        assert viewer is not None
        after_step = viewer.after_step

        def timed_after_step(*args: Any) -> None:
            start = time.perf_counter()
            after_step(*args)
            self.viewer_seconds += time.perf_counter() - start

        viewer.after_step = timed_after_step  # type: ignore[method-assign]

    def block(self, trainer: Trainer, steps: int) -> float:
        """Training rays/s over the next `steps` steps, from the end of the current step to the end of the last."""
        first = trainer.step
        wait_for(lambda: trainer.step >= first + steps)
        last = first + steps
        return sum(self.rays[first:last]) / (self.ends[last] - self.ends[first])


def chromium_cpu_seconds() -> float:
    """CPU time used so far by every Chromium process on the machine (from /proc)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and "chrom" in (entry / "comm").read_text():
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return total


def sharp(browser: Any) -> bool:
    return browser.sent_version == browser.version and browser.frame is None and browser.sent_level > 0


def open_page(chromium: Any, trainer: Trainer) -> Any:
    viewer = trainer.viewer
    assert viewer is not None
    page = chromium.new_page(viewport={"width": 800, "height": 600})
    page.goto(viewer.url)
    wait_for(lambda: len(viewer.browsers) == 1)
    browser = next(iter(viewer.browsers.values()))
    # Idle: the page has its sharpest frame and its camera has not moved for a while (a page that just loaded reports
    # its canvas size again once it has laid out).
    while True:
        wait_for(lambda: sharp(browser))
        version = browser.version
        time.sleep(IDLE_SECONDS)
        if browser.version == version and sharp(browser):
            return page


def compare(trainer: Trainer, clock: StepClock, args: argparse.Namespace, chromium: Any, what: str) -> dict[str, Any]:
    """Blocks without and with the viewer (what='no browser') or without and with an idle page ('idle browser')."""
    viewer = trainer.viewer
    pairs = []
    for _ in range(args.pairs):
        if what == "no browser":
            trainer.viewer = None
            without = clock.block(trainer, args.block)
            trainer.viewer = viewer
            with_ = clock.block(trainer, args.block)
        else:
            without = clock.block(trainer, args.block)
            page = open_page(chromium, trainer)
            browser = next(iter(viewer.browsers.values()))
            version, frames = browser.version, viewer.frames_sent
            chromium_before, viewer_before, start = chromium_cpu_seconds(), clock.viewer_seconds, time.perf_counter()
            with_ = clock.block(trainer, args.block)
            camera_reports, frames = browser.version - version, viewer.frames_sent - frames
            wall = time.perf_counter() - start
            chromium_cores = (chromium_cpu_seconds() - chromium_before) / wall
            viewer_share = (clock.viewer_seconds - viewer_before) / wall
            page.close()
            wait_for(lambda: not viewer.browsers)
        pairs.append({"without_rays_per_sec": without, "with_rays_per_sec": with_, "ratio": with_ / without})
        if what != "no browser":
            pairs[-1] |= {
                "chromium_cores_used": chromium_cores,
                "viewer_share_of_wall_time": viewer_share,
                "camera_reports_during_block": camera_reports,
                "frames_sent_during_block": frames,
            }
    medians = {
        f"median_{key}": statistics.median(pair[key] for pair in pairs)
        for key in ("chromium_cores_used", "viewer_share_of_wall_time")
        if key in pairs[0]
    }
    return {"comparison": what, "pairs": pairs, "median_ratio": statistics.median(pair["ratio"] for pair in pairs),
            **medians,
            "median_without": statistics.median(pair["without_rays_per_sec"] for pair in pairs),
            "median_with": statistics.median(pair["with_rays_per_sec"] for pair in pairs)}  # fmt: skip


def measure_latency(trainer: Trainer, page: Any, moves: int) -> dict[str, Any]:
    """Seconds from a camera move to the page's first frame and to its full frame, with training paused."""
    viewer = trainer.viewer
    assert viewer is not None
    viewer.set_paused(True)
    browser = next(iter(viewer.browsers.values()))
    camera = browser.client.camera
    first, full = [], []
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
        time.sleep(1.0)
    return {"first_frame_s": first, "full_frame_s": full, "first_frame_median_s": statistics.median(first),
            "full_frame_median_s": statistics.median(full)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=LEGO, help="Blender-format dataset (lego)")
    parser.add_argument("--warmup", type=int, default=270, help="untimed steps (the occupancy grid warms up in 256)")
    parser.add_argument("--block", type=int, default=20, help="steps per timed block")
    parser.add_argument("--pairs", type=int, default=6, help="pairs of blocks per comparison")
    parser.add_argument("--moves", type=int, default=5, help="camera moves timed for latency")
    parser.add_argument("--comparisons", nargs="+", choices=COMPARISONS, default=COMPARISONS, help="which to make")
    parser.add_argument("--output", type=Path, default=Path("benchmarks/out/viewer.json"), help="JSON written here")
    args = parser.parse_args()
    chromium_path = shutil.which("chromium")
    if chromium_path is None:
        raise SystemExit("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as scratch:
        chromium = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_FLAGS)
        trainer = build(Path(scratch), args.data)
        clock = StepClock(trainer)
        thread = threading.Thread(target=trainer.train)
        thread.start()
        try:
            wait_for(lambda: trainer.step >= args.warmup)
            comparisons = [compare(trainer, clock, args, chromium, what) for what in args.comparisons]
            page = open_page(chromium, trainer)
            latency = measure_latency(trainer, page, args.moves)
            page.close()
        finally:
            trainer.stop.signal_number = signal.SIGINT
            thread.join()
        chromium.close()
    report(comparisons, latency, args)


def report(comparisons: list[dict[str, Any]], latency: dict[str, Any], args: argparse.Namespace) -> None:
    table = Table(title=f"instant-ngp, lego 200x200, --vis viewer: {args.pairs} pairs of {args.block}-step blocks")
    for column in ("comparison", "rays/s without", "rays/s with", "median ratio with / without"):
        table.add_column(column, justify="left" if column == "comparison" else "right")
    for row in comparisons:
        table.add_row(row["comparison"], f"{row['median_without']:,.0f}", f"{row['median_with']:,.0f}",
                      f"{row['median_ratio']:.3f}")  # fmt: skip
    console = Console()
    console.print(table)
    for row in comparisons:
        if "median_chromium_cores_used" in row:
            console.print(
                f"{row['comparison']}: Chromium used {row['median_chromium_cores_used']:.2f} cores; the viewer's calls "
                f"took {row['median_viewer_share_of_wall_time']:.2%} of the training thread's wall time (medians)"
            )
    first, full = latency["first_frame_median_s"], latency["full_frame_median_s"]
    console.print(
        f"latency over {args.moves} camera moves (training paused), medians: first 64 px frame {first:.3f} s, "
        f"full {FULL_SIZE}x{FULL_SIZE} frame {full:.3f} s"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    machine = {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
               "python": platform.python_version()}  # fmt: skip
    settings = {key: value for key, value in vars(args).items() if key not in ("data", "output")}
    args.output.write_text(json.dumps({"machine": machine, "settings": settings, "comparisons": comparisons,
                                       "latency": latency}, indent=2, default=str) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
