"""Spherical-harmonics direction encoding: tiny-cuda-nn's order and constants, orthonormal on the sphere."""

from __future__ import annotations

import math

import pytest
import torch

from nerfkit.configs.fields import MAX_SH_LEVELS
from nerfkit.errors import NerfkitError
from nerfkit.field_components.encodings import SHEncoding
from nerfkit.kernels.backends import package_status

SQRT_PI = math.sqrt(math.pi)


def closed_form(x: float, y: float, z: float) -> list[float]:
    """The 25 harmonics of degrees 0-4 in tiny-cuda-nn's order, from their closed forms."""
    x2, y2, z2 = x * x, y * y, z * z
    return [
        1 / (2 * SQRT_PI),
        -math.sqrt(3) * y / (2 * SQRT_PI),
        math.sqrt(3) * z / (2 * SQRT_PI),
        -math.sqrt(3) * x / (2 * SQRT_PI),
        math.sqrt(15) * x * y / (2 * SQRT_PI),
        -math.sqrt(15) * y * z / (2 * SQRT_PI),
        math.sqrt(5) * (3 * z2 - 1) / (4 * SQRT_PI),
        -math.sqrt(15) * x * z / (2 * SQRT_PI),
        math.sqrt(15) * (x2 - y2) / (4 * SQRT_PI),
        math.sqrt(70) * y * (y2 - 3 * x2) / (8 * SQRT_PI),
        math.sqrt(105) * x * y * z / (2 * SQRT_PI),
        math.sqrt(42) * y * (1 - 5 * z2) / (8 * SQRT_PI),
        math.sqrt(7) * z * (5 * z2 - 3) / (4 * SQRT_PI),
        math.sqrt(42) * x * (1 - 5 * z2) / (8 * SQRT_PI),
        math.sqrt(105) * z * (x2 - y2) / (4 * SQRT_PI),
        math.sqrt(70) * x * (3 * y2 - x2) / (8 * SQRT_PI),
        3 * math.sqrt(35) * x * y * (x2 - y2) / (4 * SQRT_PI),
        3 * math.sqrt(70) * y * z * (y2 - 3 * x2) / (8 * SQRT_PI),
        3 * math.sqrt(5) * x * y * (7 * z2 - 1) / (4 * SQRT_PI),
        3 * math.sqrt(10) * y * z * (3 - 7 * z2) / (8 * SQRT_PI),
        3 * (35 * z2 * z2 - 30 * z2 + 3) / (16 * SQRT_PI),
        3 * math.sqrt(10) * x * z * (3 - 7 * z2) / (8 * SQRT_PI),
        3 * math.sqrt(5) * (x2 - y2) * (7 * z2 - 1) / (8 * SQRT_PI),
        3 * math.sqrt(70) * x * z * (3 * y2 - x2) / (8 * SQRT_PI),
        3 * math.sqrt(35) * (x2 * x2 - 6 * x2 * y2 + y2 * y2) / (16 * SQRT_PI),
    ]


DIRECTIONS = [(1, 0, 0), (0, 1, 0), (0, 0, 1), (-1, 0, 0), (0, -1, 0), (0, 0, -1), (0.48, -0.6, 0.64)]


def test_default_is_instant_ngp_16_features() -> None:
    encoding = SHEncoding()
    assert encoding.get_out_dim() == 16
    assert encoding(torch.nn.functional.normalize(torch.randn(4, 5, 3), dim=-1)).shape == (4, 5, 16)


@pytest.mark.parametrize("levels", range(1, MAX_SH_LEVELS + 1))
def test_values_match_the_closed_forms(levels: int) -> None:
    encoding = SHEncoding(levels=levels)
    directions = torch.tensor(DIRECTIONS, dtype=torch.float64)
    expected = torch.tensor([closed_form(*d)[: levels**2] for d in DIRECTIONS], dtype=torch.float64)
    assert encoding.get_out_dim() == levels**2
    torch.testing.assert_close(encoding(directions), expected)


def test_harmonics_are_orthonormal_on_the_sphere() -> None:
    """4*pi * mean(Y_i Y_j) over uniform directions estimates the inner products, which must form the identity."""
    generator = torch.Generator().manual_seed(0)
    directions = torch.nn.functional.normalize(
        torch.randn(400_000, 3, generator=generator, dtype=torch.float64), dim=-1
    )
    features = SHEncoding(levels=MAX_SH_LEVELS)(directions)
    gram = 4 * math.pi * features.T @ features / len(directions)
    torch.testing.assert_close(gram, torch.eye(MAX_SH_LEVELS**2, dtype=torch.float64), atol=0.03, rtol=0)


@pytest.mark.parametrize("levels", [0, MAX_SH_LEVELS + 1])
def test_unsupported_levels_are_a_user_error(levels: int) -> None:
    with pytest.raises(NerfkitError, match="levels"):
        SHEncoding(levels=levels)


def test_cuda_kernels_without_tiny_cuda_nn_is_a_user_error() -> None:
    if package_status("tinycudann").usable:
        pytest.skip("tiny-cuda-nn is usable here")
    with pytest.raises(NerfkitError, match="tiny-cuda-nn") as raised:
        SHEncoding(backend="cuda-kernels")
    assert raised.value.hint is not None and "tiny-cuda-nn" in raised.value.hint


def test_matches_tiny_cuda_nn() -> None:
    status = package_status("tinycudann")
    if not status.usable:
        pytest.skip(f"tiny-cuda-nn is not usable here: {status.reason}")
    directions = torch.nn.functional.normalize(torch.randn(1024, 3, device="cuda"), dim=-1)
    for levels in range(1, MAX_SH_LEVELS + 1):
        fused = SHEncoding(levels=levels, backend="cuda-kernels").cuda()(directions).float()
        # tiny-cuda-nn computes in half precision by default, where the degree-4 harmonics reach about 1.
        torch.testing.assert_close(fused, SHEncoding(levels=levels)(directions), atol=2e-3, rtol=1e-2)
