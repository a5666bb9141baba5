"""Image quality metrics."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def psnr(pred: Float[Tensor, "*bs channels"], target: Float[Tensor, "*bs channels"]) -> Float[Tensor, ""]:
    """Peak signal-to-noise ratio in dB of images with values in [0, 1] (so the peak is 1)."""
    return -10.0 * torch.log10(torch.mean((pred - target) ** 2))


def _gaussian_window(size: int, sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """1-D Gaussian taps centred on the middle tap and summing to 1 (the 2-D window is its outer product)."""
    offsets = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    taps = torch.exp(-(offsets**2) / (2 * sigma**2))
    return taps / taps.sum()


def _filter_valid(images: Float[Tensor, "n 1 h w"], taps: Float[Tensor, " k"]) -> Float[Tensor, "n 1 hv wv"]:
    """Gaussian-weighted local means over every window that lies wholly inside the image (no padding)."""
    size = taps.shape[0]
    rows = F.conv2d(images, taps.view(1, 1, size, 1))
    return F.conv2d(rows, taps.view(1, 1, 1, size))


def ssim(pred: Float[Tensor, "height width channels"], target: Float[Tensor, "height width channels"]) -> Tensor:
    """Structural similarity (Wang et al. 2004) of two images with values in [0, 1], as NeRF papers report it.

    The convention is the one shared by the original NeRF code (`tf.image.ssim`), Nerfstudio (torchmetrics'
    `structural_similarity_index_measure(data_range=1.0)` defaults) and scikit-image's
    `structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1,
    channel_axis=-1)`: an 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03, data range 1, population
    (not sample) variances, the SSIM map computed per channel over the 'valid' windows only (no padding, so the
    map is (H - 10) x (W - 10)) and averaged over positions and channels. Computed in float64 so the figure does
    not depend on the input precision; returned as a scalar tensor of `pred`'s dtype.
    """
    if pred.shape != target.shape or pred.dim() != 3:
        shapes = f"{tuple(pred.shape)} and {tuple(target.shape)}"
        raise ValueError(f"ssim takes two (height, width, channels) images of one shape, got {shapes}")
    if min(pred.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"ssim needs images at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(pred.shape[:2])}")
    # (channels, 1, height, width): every channel is filtered on its own.
    x = pred.detach().to(torch.float64).permute(2, 0, 1).unsqueeze(1)
    y = target.detach().to(device=pred.device, dtype=torch.float64).permute(2, 0, 1).unsqueeze(1)
    taps = _gaussian_window(SSIM_WINDOW, SSIM_SIGMA, torch.float64, x.device)
    mu_x, mu_y = _filter_valid(x, taps), _filter_valid(y, taps)
    # Clamped because E[x^2] - E[x]^2 can round to a tiny negative number on flat regions.
    var_x = (_filter_valid(x * x, taps) - mu_x**2).clamp(min=0)
    var_y = (_filter_valid(y * y, taps) - mu_y**2).clamp(min=0)
    cov = _filter_valid(x * y, taps) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2  # (K * data range)^2 with a data range of 1
    ssim_map = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return ssim_map.mean().to(pred.dtype)
