"""Image quality metrics."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


def psnr(pred: Float[Tensor, "*bs channels"], target: Float[Tensor, "*bs channels"]) -> Float[Tensor, ""]:
    """Peak signal-to-noise ratio in dB of images with values in [0, 1] (so the peak is 1)."""
    return -10.0 * torch.log10(torch.mean((pred - target) ** 2))
