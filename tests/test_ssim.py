"""SSIM against scikit-image's `structural_similarity` and a plain-numpy window-by-window reference, and its basic
properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from nerfkit.utils.metrics import ssim

SIGMA, RADIUS, C1, C2 = 1.5, 5, 0.01**2, 0.03**2


def reference_ssim(pred: np.ndarray, target: np.ndarray) -> float:
    """Wang et al. 2004 window by window: an 11x11 Gaussian (built in 2-D, sigma 1.5) at every position where the
    window lies wholly inside the image, weighted population statistics, one channel at a time, then the mean."""
    offsets = np.arange(-RADIUS, RADIUS + 1)
    weights = np.exp(-(offsets[:, None] ** 2 + offsets[None, :] ** 2) / (2 * SIGMA**2))
    weights /= weights.sum()
    size = 2 * RADIUS + 1
    height, width, channels = pred.shape
    values = []
    for channel in range(channels):
        for top in range(height - size + 1):
            for left in range(width - size + 1):
                x = pred[top : top + size, left : left + size, channel]
                y = target[top : top + size, left : left + size, channel]
                mu_x, mu_y = (weights * x).sum(), (weights * y).sum()
                var_x = (weights * (x - mu_x) ** 2).sum()
                var_y = (weights * (y - mu_y) ** 2).sum()
                cov = (weights * (x - mu_x) * (y - mu_y)).sum()
                luminance = (2 * mu_x * mu_y + C1) / (mu_x**2 + mu_y**2 + C1)
                structure = (2 * cov + C2) / (var_x + var_y + C2)
                values.append(luminance * structure)
    return float(np.mean(values))


def image_pairs(height: int = 23, width: int = 19) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Noise, noise against a noisy copy, and smooth structure (gradients, a disc, stripes) against a distortion."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:height, 0:width] / np.array([height, width])[:, None, None]
    disc = ((ys - 0.5) ** 2 + (xs - 0.4) ** 2 < 0.1).astype(float)
    structured = np.stack([ys, disc, 0.5 + 0.5 * np.sin(12 * xs)], axis=-1)
    distorted = np.clip(0.8 * structured + 0.1 + 0.05 * rng.standard_normal(structured.shape), 0, 1)
    noise_a, noise_b = rng.random((height, width, 3)), rng.random((height, width, 3))
    noisy_copy = np.clip(noise_a + 0.1 * rng.standard_normal(noise_a.shape), 0, 1)
    return {
        "random": (noise_a, noise_b),
        "random-vs-noisy-copy": (noise_a, noisy_copy),
        "structured": (structured, distorted),
        "structured-vs-shifted": (structured, np.roll(structured, 2, axis=1)),
    }


@pytest.mark.parametrize("name", list(image_pairs()))
def test_matches_the_window_by_window_reference(name: str) -> None:
    pred, target = image_pairs()[name]
    expected = reference_ssim(pred, target)
    for dtype in (torch.float64, torch.float32):
        value = ssim(torch.tensor(pred, dtype=dtype), torch.tensor(target, dtype=dtype))
        assert value.dtype == dtype
        assert float(value) == pytest.approx(expected, abs=1e-4 if dtype == torch.float32 else 1e-10)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_matches_scikit_image(dtype: torch.dtype) -> None:
    # The settings under which scikit-image computes the standard SSIM (11x11 Gaussian window, sigma 1.5); float32 is
    # what evaluation passes, at a size where the window no longer covers most of the image.
    pairs = [*image_pairs().values(), image_pairs(height=120, width=90)["structured"]]
    for pred, target in pairs:
        expected = structural_similarity(
            pred, target, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1, channel_axis=-1
        )
        value = ssim(torch.tensor(pred, dtype=dtype), torch.tensor(target, dtype=dtype))
        assert float(value) == pytest.approx(expected, abs=1e-4)


def test_flat_images_follow_the_luminance_formula() -> None:
    # No variance: the structure term is c2 / c2 = 1, leaving the luminance term of the two constants.
    a, b = 0.2, 0.7
    value = ssim(torch.full((16, 16, 3), a, dtype=torch.float64), torch.full((16, 16, 3), b, dtype=torch.float64))
    assert float(value) == pytest.approx((2 * a * b + C1) / (a**2 + b**2 + C1), abs=1e-12)


def test_identity_symmetry_and_range() -> None:
    generator = torch.Generator().manual_seed(1)
    x, y = torch.rand(40, 33, 3, generator=generator), torch.rand(40, 33, 3, generator=generator)
    assert float(ssim(x, x)) == pytest.approx(1.0, abs=1e-6)
    assert float(ssim(x, y)) == pytest.approx(float(ssim(y, x)), abs=1e-7)
    assert -1.0 <= float(ssim(x, y)) < 0.1  # independent noise is nearly uncorrelated
    assert float(ssim(x, (x + 0.02).clamp(0, 1))) > 0.99


def test_rejects_mismatched_or_tiny_images() -> None:
    with pytest.raises(ValueError, match="one shape"):
        ssim(torch.rand(16, 16, 3), torch.rand(16, 15, 3))
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(torch.rand(10, 16, 3), torch.rand(10, 16, 3))
