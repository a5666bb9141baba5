"""Scores a trained model on every image of a split: the evaluation behind `--eval-when-finished` and the benchmarks.

PSNR is the model's own (`get_image_metrics_and_images`), so it is the figure training logs; SSIM is computed here
against the ground truth composited on the background the model rendered with, and the PSNR of that same target is
checked against the model's, so a compositing mismatch shows up in `notes` instead of silently skewing SSIM.
LPIPS is scored only when the `lpips` package and its backbone weights are already on this machine: evaluation never
downloads anything.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from nerfkit import __version__
from nerfkit.configs.data import Split
from nerfkit.data.datasets import InputDataset
from nerfkit.model_components.renderers import composite_ground_truth
from nerfkit.models.base_model import Model
from nerfkit.pipelines.base_pipeline import evaluating
from nerfkit.utils.metrics import psnr, ssim
from nerfkit.utils.timing import synchronize


def load_split(datamanager: Any, split: Split, data: Path | None = None) -> InputDataset:
    """One split at the training resolution: the datamanager's own copy when it holds that split, else read with the
    same dataparser settings and image cache, from `data` when given (another folder of the dataset's format, of which
    only that split is read)."""
    config = datamanager.config
    data = data or config.data or config.dataparser.data
    if data == (config.data or config.dataparser.data):
        if split == "train":
            return datamanager.train_dataset
        if split == config.eval_split:
            return datamanager.eval_dataset
    dataparser_config = dataclasses.replace(config.dataparser, data=data)
    outputs = dataparser_config.setup().get_dataparser_outputs(split)
    return InputDataset(outputs, datamanager.device, config.cache_dir)


def composited_target(image: Tensor, outputs: dict[str, Tensor]) -> Tensor:
    """The ground truth as the model scores it: RGBA composited on the model's background (white if it reports
    none; the PSNR cross-check in `evaluate_dataset` flags a wrong guess)."""
    if image.shape[-1] == 3:
        return image
    background = outputs.get("background")
    return composite_ground_truth(image, torch.ones_like(image[..., :3]) if background is None else background)


ImageMetric = Callable[[Float[Tensor, "height width 3"], Float[Tensor, "height width 3"]], float]
"""A score of a rendered image against its composited ground truth."""

ImageCallback = Callable[[int, dict[str, Tensor], Float[Tensor, "height width 3"]], None]
"""Called with each image's index, the model's outputs and the composited ground truth, e.g. to save them."""


def evaluate_dataset(
    model: Model,
    dataset: InputDataset,
    limit: int | None = None,
    *,
    extra_metrics: Mapping[str, ImageMetric] | None = None,
    on_image: ImageCallback | None = None,
) -> dict[str, Any]:
    """Renders the first `limit` images (all when None) in eval mode without gradients, and scores each.

    `extra_metrics` are reported like SSIM (mean and per image); `on_image` sees every rendering, so callers can save
    images without rendering twice. Neither counts towards the render time.
    """
    count = len(dataset) if limit is None else min(limit, len(dataset))
    extra_metrics = extra_metrics or {}
    psnrs: list[float] = []
    ssims: list[float] = []
    extras: dict[str, list[float]] = {name: [] for name in extra_metrics}
    seconds: list[float] = []
    notes: list[str] = []
    with evaluating(model):
        for index in range(count):
            image = dataset.get_image(index)
            synchronize(model.device)
            start = time.perf_counter()
            outputs = model.get_outputs_for_camera(dataset.cameras, index)
            synchronize(model.device)
            seconds.append(time.perf_counter() - start)
            metrics, _ = model.get_image_metrics_and_images(outputs, {"image": image})
            target = composited_target(image, outputs)
            own_psnr = float(psnr(outputs["rgb"], target))
            model_psnr = metrics.get("psnr", own_psnr)
            if abs(model_psnr - own_psnr) > 1e-3:
                notes.append(f"image {index}: model PSNR {model_psnr:.3f} vs recomputed {own_psnr:.3f} dB")
            psnrs.append(model_psnr)
            ssims.append(float(ssim(outputs["rgb"], target)))
            for name, metric in extra_metrics.items():
                extras[name].append(metric(outputs["rgb"], target))
            if on_image is not None:
                on_image(index, outputs, target)
    height, width = dataset.images.shape[1:3]
    pixels = int(height) * int(width)
    return {
        "num_images": count,
        "images": [filename.name for filename in dataset.image_filenames[:count]],
        "image_size": [int(height), int(width)],
        "psnr": statistics.fmean(psnrs),
        "ssim": statistics.fmean(ssims),
        **{name: statistics.fmean(values) for name, values in extras.items()},
        "psnr_per_image": psnrs,
        "ssim_per_image": ssims,
        **{f"{name}_per_image": values for name, values in extras.items()},
        "render_seconds": sum(seconds),
        "seconds_per_image": sum(seconds) / count,
        "render_rays_per_sec": pixels * count / sum(seconds),
        "median_image_rays_per_sec": statistics.median(pixels / s for s in seconds),
        "notes": notes,
    }


def lpips_metric(device: torch.device) -> tuple[ImageMetric | None, str | None]:
    """LPIPS (AlexNet, as NeRF papers report it) if the `lpips` package and the AlexNet weights it builds on are
    already installed, else None and a one-line note why. Nothing is downloaded, so evaluation runs offline and a
    missing figure is explained rather than fetched behind the user's back."""
    try:
        import lpips
        from torchvision.models import AlexNet_Weights
    except ImportError:
        return None, "LPIPS left out: the lpips package (with torchvision >= 0.13) is not installed"
    weights = Path(torch.hub.get_dir()) / "checkpoints" / Path(AlexNet_Weights.IMAGENET1K_V1.url).name
    if not weights.is_file():
        return None, f"LPIPS left out: its AlexNet weights {weights} are not there, and evaluation never downloads"
    network = lpips.LPIPS(net="alex", verbose=False).to(device).eval()

    def score(pred: Float[Tensor, "height width 3"], target: Float[Tensor, "height width 3"]) -> float:
        # lpips takes (batch, 3, height, width); normalize=True maps [0, 1] to the [-1, 1] it was trained on.
        batch = [image.clamp(0.0, 1.0).permute(2, 0, 1).unsqueeze(0).to(device) for image in (pred, target)]
        with torch.no_grad():
            return float(network(*batch, normalize=True))

    return score, None


def evaluation_report(
    scores: dict[str, Any], *, method: str, run_dir: Path, step: int, split: Split, data: Path | None = None
) -> dict[str, Any]:
    """The scores with what they belong to (`data`: the dataset folder, when known), and the versions that produced
    them."""
    return {
        "method": method,
        "run": str(run_dir),
        "checkpoint_step": step,
        "split": split,
        **({} if data is None else {"data": str(data)}),
        **scores,
        "versions": {"nerfkit": __version__, "torch": torch.__version__},
    }
