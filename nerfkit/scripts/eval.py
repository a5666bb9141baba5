"""kit-eval: score a trained run on every image of a split and write the figures as JSON.

Examples: `kit-eval --load-config outputs/lego/vanilla-nerf/<timestamp>/config.yml --output-path metrics.json`,
`kit-eval --load-config <run folder> --split val --load-step 15 --render-output-path views`.

The report holds the method, run, checkpoint step, split, dataset folder, number of images, mean and per-image PSNR
and SSIM (and LPIPS when its weights are already on this machine; never downloaded), render time and rays/s, and the
nerfkit and torch versions. Without --output-path it goes to <run folder>/eval_<split>_step-<step>.json, next to (never
over) the eval_<split>.json of kit-train --eval-when-finished. Nothing is written unless the evaluation succeeds, and
the report is written atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import tyro
from jaxtyping import Float
from PIL import Image
from rich.console import Console
from torch import Tensor

from nerfkit.configs.data import Split
from nerfkit.configs.ranges import check_ranges, ranged
from nerfkit.engine.evaluation import (
    ImageCallback,
    evaluate_dataset,
    evaluation_report,
    load_split,
    lpips_metric,
)
from nerfkit.engine.run_loading import load_run
from nerfkit.errors import NerfkitError
from nerfkit.utils.cli import run_cli
from nerfkit.utils.colormaps import apply_depth_colormap
from nerfkit.utils.files import check_writable_folder, write_json

VIEW_KINDS = ("rgb", "gt", "depth")
"""The subfolders of --render-output-path: the rendering, the ground truth it is scored against, and its depth."""


@dataclass
class EvalConfig:
    """Evaluates a run's checkpoint on a split of its dataset (or of another one of the same format)."""

    load_config: Path
    """The run's config.yml (or the run folder), as kit-train printed at the end of training."""
    output_path: Path | None = None
    """Where to write the JSON report; default <run folder>/eval_<split>_step-<step>.json."""
    load_step: ranged(int | None, min=0) = None
    """Evaluate this step's checkpoint instead of the latest one."""
    split: Split = "test"
    """The split whose images are scored."""
    data: Path | None = None
    """Another dataset folder of the same format to evaluate on, e.g. a held-out set; only --split is read from it."""
    render_output_path: Path | None = None
    """Also save every view as PNG: the rendering, its ground truth and its depth in rgb/, gt/ and depth/ here."""
    eval_num_rays_per_chunk: ranged(int | None, min=1) = None
    """Rays rendered at once (default: the run's); lower it if rendering runs out of memory."""
    num_images: ranged(int | None, min=1) = None
    """Score only the first N images of the split, for a quick look; default all."""
    device_type: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to render; auto takes the GPU when torch sees one."""
    debug: bool = False
    """Show the full traceback of errors (NERFKIT_DEBUG=1 does too)."""


def check_outputs(output_path: Path, render_output_path: Path | None) -> None:
    """Fails before rendering rather than after it, when the outputs could not be written."""
    if output_path.is_dir():
        raise NerfkitError(f"--output-path {output_path} is a folder", hint="name the JSON file to write")
    check_writable_folder(output_path.parent, "--output-path", output_path)
    if render_output_path is not None:
        check_writable_folder(render_output_path, "--render-output-path", render_output_path)


def save_png(image: Float[Tensor, "height width 3"], path: Path) -> None:
    """Through a temporary file, so an interrupted run never leaves a truncated PNG over an earlier one."""
    pixels = (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).cpu().numpy()
    staging = path.with_name(f".{path.name}.tmp")
    Image.fromarray(pixels).save(staging, format="PNG")
    staging.replace(path)


def view_saver(folder: Path, image_filenames: Sequence[Path]) -> ImageCallback:
    """Saves each scored view as <kind>/<index>_<image name>.png; the index keeps the split's order and the name
    says which image it is."""
    for kind in VIEW_KINDS:
        (folder / kind).mkdir(parents=True, exist_ok=True)

    def save(index: int, outputs: dict[str, Tensor], target: Float[Tensor, "height width 3"]) -> None:
        name = f"{index:04d}_{image_filenames[index].stem}.png"
        depth = apply_depth_colormap(outputs["depth"], outputs["accumulation"])
        for kind, image in zip(VIEW_KINDS, (outputs["rgb"], target, depth), strict=True):
            save_png(image, folder / kind / name)

    return save


def summary(report: dict[str, Any]) -> str:
    """One line with the figures a reader looks for first."""
    lpips = f", LPIPS {report['lpips']:.4f}" if "lpips" in report else ""
    return (
        f"{report['method']} step {report['checkpoint_step']}, {report['split']} split: PSNR {report['psnr']:.2f} dB, "
        f"SSIM {report['ssim']:.4f}{lpips} over {report['num_images']} images "
        f"({report['seconds_per_image']:.2f} s per image, {report['render_rays_per_sec']:,.0f} rays/s)"
    )


def evaluate(config: EvalConfig, console: Console) -> Path:
    """Loads, renders and scores; returns where the report was written."""
    loaded = load_run(
        config.load_config,
        load_step=config.load_step,
        device_type=config.device_type,
        data=config.data,
        eval_num_rays_per_chunk=config.eval_num_rays_per_chunk,
        console=Console(stderr=True),
    )
    data = config.data.absolute() if config.data is not None else loaded.config.data
    dataset = load_split(loaded.pipeline.datamanager, config.split, data)
    output_path = config.output_path or loaded.run_dir / f"eval_{config.split}_step-{loaded.step}.json"
    check_outputs(output_path, config.render_output_path)
    lpips, lpips_note = lpips_metric(loaded.device)
    saver = (
        None if config.render_output_path is None else view_saver(config.render_output_path, dataset.image_filenames)
    )
    console.print(f"evaluating {loaded.checkpoint} on the {config.split} split of {data} ...")
    scores = evaluate_dataset(
        loaded.pipeline.model,
        dataset,
        config.num_images,
        extra_metrics=None if lpips is None else {"lpips": lpips},
        on_image=saver,
    )
    if lpips_note is not None:
        scores["notes"].append(lpips_note)
    report = evaluation_report(
        scores,
        method=loaded.config.method_name,
        run_dir=loaded.run_dir.absolute(),
        step=loaded.step,
        split=config.split,
        data=data,
    )
    output_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(output_path, report)
    console.print(summary(report))
    for note in report["notes"]:
        console.print(f"note: {note}")
    if config.render_output_path is not None:
        console.print(f"views saved in {config.render_output_path}/{{{','.join(VIEW_KINDS)}}}")
    console.print(f"written to {output_path}")
    return output_path


def main(argv: list[str]) -> int:
    config = tyro.cli(EvalConfig, args=argv, prog="kit-eval", description=__doc__)
    check_ranges(config)
    evaluate(config, Console(highlight=False, markup=False, soft_wrap=True))
    return 0


def entrypoint() -> None:
    run_cli(main)


if __name__ == "__main__":
    entrypoint()
