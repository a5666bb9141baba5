"""kit-viewer: look at a trained run in the browser, from any checkpoint, on the CPU or a GPU.

Example: `kit-viewer --load-config outputs/lego/instant-ngp/<timestamp>` then open the URL it prints. The same viewer
as `kit-train --vis viewer`, without training: fly the camera, switch outputs, crop, and author camera paths, which
are saved to <run folder>/camera_paths/ for `kit-render camera-path`. Ctrl-C closes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import tyro
from rich.console import Console

from nerfkit.configs.ranges import check_ranges, ranged
from nerfkit.configs.viewer import ViewerConfig
from nerfkit.utils.cli import run_cli


@dataclass
class ViewerCommand:
    """Serves a trained run's viewer until Ctrl-C."""

    load_config: Path
    """The run's config.yml (or the run folder), as kit-train printed at the end of training."""
    load_step: ranged(int | None, min=0) = None
    """Show this step's checkpoint instead of the latest one."""
    device_type: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to render; auto takes the GPU when torch sees one."""
    viewer: ViewerConfig = field(default_factory=ViewerConfig)
    """The viewer's port and rendering settings."""
    debug: bool = False
    """Show the full traceback of errors (NERFKIT_DEBUG=1 does too)."""


def serve(command: ViewerCommand, console: Console) -> None:
    from nerfkit.engine.run_loading import load_run
    from nerfkit.viewer.viewer import ViewedRun, Viewer

    run = load_run(command.load_config, load_step=command.load_step, device_type=command.device_type, console=console)
    viewed = ViewedRun.of(run.pipeline, run.run_dir, run.step)
    viewer = Viewer(command.viewer, run.pipeline.model, viewed, console, training=False)
    console.print(f"showing {run.checkpoint} on {run.device}")
    viewer.announce()
    console.print("Ctrl-C closes the viewer")
    try:
        viewer.serve()
    finally:
        viewer.close()


def main(argv: list[str]) -> int:
    command = tyro.cli(ViewerCommand, args=argv, prog="kit-viewer", description=__doc__)
    check_ranges(command)
    serve(command, Console(highlight=False, soft_wrap=True))
    return 0


def entrypoint() -> None:
    run_cli(main)


if __name__ == "__main__":
    entrypoint()
