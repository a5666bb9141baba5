"""Scores a trained model on every image of a split: the evaluation behind `--eval-when-finished` and the benchmarks.

PSNR is the model's own (`get_image_metrics_and_images`), so it is the figure training logs; SSIM is computed here
against the ground truth composited on the background the model rendered with, and the PSNR of that same target is
checked against the model's, so a compositing mismatch shows up in `notes` instead of silently skewing SSIM.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from nerfkit import __version__
from nerfkit.data.dataparsers.base_dataparser import Split
from nerfkit.data.datasets import InputDataset
from nerfkit.model_components.renderers import composite_ground_truth
from nerfkit.models.base_model import Model
from nerfkit.pipelines.base_pipeline import evaluating
from nerfkit.utils.metrics import psnr, ssim


def load_split(datamanager: Any, split: Split) -> InputDataset:
    """One split at the training resolution: the datamanager's own copy when it holds that split, else read with the
    same dataparser settings and image cache."""
    config = datamanager.config
    if split == "train":
        return datamanager.train_dataset
    if split == config.eval_split:
        return datamanager.eval_dataset
    dataparser_config = (
        config.dataparser if config.data is None else dataclasses.replace(config.dataparser, data=config.data)
    )
    outputs = dataparser_config.setup().get_dataparser_outputs(split)
    return InputDataset(outputs, datamanager.device, config.cache_dir)


def composited_target(image: Tensor, outputs: dict[str, Tensor]) -> Tensor:
    """The ground truth as the model scores it: RGBA composited on the model's background (white if it reports
    none; the PSNR cross-check in `evaluate_dataset` flags a wrong guess)."""
    if image.shape[-1] == 3:
        return image
    background = outputs.get("background")
    return composite_ground_truth(image, torch.ones_like(image[..., :3]) if background is None else background)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def evaluate_dataset(model: Model, dataset: InputDataset, limit: int | None = None) -> dict[str, Any]:
    """Renders the first `limit` images (all when None) in eval mode without gradients, and scores each."""
    count = len(dataset) if limit is None else min(limit, len(dataset))
    psnrs: list[float] = []
    ssims: list[float] = []
    seconds: list[float] = []
    notes: list[str] = []
    with evaluating(model):
        for index in range(count):
            image = dataset.get_image(index)
            _synchronize(model.device)
            start = time.perf_counter()
            outputs = model.get_outputs_for_camera(dataset.cameras, index)
            _synchronize(model.device)
            seconds.append(time.perf_counter() - start)
            metrics, _ = model.get_image_metrics_and_images(outputs, {"image": image})
            target = composited_target(image, outputs)
            own_psnr = float(psnr(outputs["rgb"], target))
            model_psnr = metrics.get("psnr", own_psnr)
            if abs(model_psnr - own_psnr) > 1e-3:
                notes.append(f"image {index}: model PSNR {model_psnr:.3f} vs recomputed {own_psnr:.3f} dB")
            psnrs.append(model_psnr)
            ssims.append(float(ssim(outputs["rgb"], target)))
    height, width = dataset.images.shape[1:3]
    pixels = int(height) * int(width)
    return {
        "num_images": count,
        "image_size": [int(height), int(width)],
        "psnr": statistics.fmean(psnrs),
        "ssim": statistics.fmean(ssims),
        "psnr_per_image": psnrs,
        "ssim_per_image": ssims,
        "render_seconds": sum(seconds),
        "seconds_per_image": sum(seconds) / count,
        "render_rays_per_sec": pixels * count / sum(seconds),
        "median_image_rays_per_sec": statistics.median(pixels / s for s in seconds),
        "notes": notes,
    }


def evaluation_report(scores: dict[str, Any], *, method: str, run_dir: Path, step: int, split: Split) -> dict[str, Any]:
    """The scores with what they belong to, and the versions that produced them."""
    return {
        "method": method,
        "run": str(run_dir),
        "checkpoint_step": step,
        "split": split,
        **scores,
        "versions": {"nerfkit": __version__, "torch": torch.__version__},
    }


def write_report(report: dict[str, Any], path: Path) -> None:
    """Writes atomically, so an interrupted evaluation never leaves a truncated report."""
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(json.dumps(report, indent=2) + "\n")
    staging.replace(path)
