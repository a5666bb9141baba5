"""Losses, metrics and logged images of models that render each ray in one pass (no coarse pass to supervise)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from nerfkit.model_components.renderers import composite_ground_truth
from nerfkit.utils.colormaps import apply_depth_colormap
from nerfkit.utils.metrics import psnr


class SinglePassOutputs:
    """For models whose outputs hold rgb, accumulation, depth, background and num_samples_per_batch."""

    def get_metrics_dict(self, outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        target = composite_ground_truth(batch["image"], outputs["background"])
        return {
            "psnr": psnr(outputs["rgb"].detach(), target),
            "num_samples_per_batch": outputs["num_samples_per_batch"].float(),
        }

    def get_loss_dict(
        self, outputs: dict[str, Tensor], batch: dict[str, Tensor], metrics_dict: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        return {"rgb_loss": F.mse_loss(outputs["rgb"], composite_ground_truth(batch["image"], outputs["background"]))}

    def get_image_metrics_and_images(
        self, outputs: dict[str, Tensor], batch: dict[str, Tensor]
    ) -> tuple[dict[str, float], dict[str, Tensor]]:
        image = batch["image"].to(outputs["rgb"].device)
        target = composite_ground_truth(image, outputs["background"])
        images = {
            "img": torch.cat([target, outputs["rgb"]], dim=1),
            "depth": apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"]),
            "accumulation": outputs["accumulation"].expand(-1, -1, 3),
        }
        return {"psnr": float(psnr(outputs["rgb"], target))}, images
