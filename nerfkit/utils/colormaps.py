"""Turning single-channel outputs (depth) into images that can be logged and compared by eye."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

VIRIDIS_CONTROL_POINTS = (
    (0.267, 0.005, 0.329),
    (0.283, 0.141, 0.458),
    (0.254, 0.265, 0.530),
    (0.207, 0.372, 0.553),
    (0.164, 0.471, 0.558),
    (0.128, 0.567, 0.551),
    (0.135, 0.659, 0.518),
    (0.267, 0.749, 0.441),
    (0.478, 0.821, 0.318),
    (0.741, 0.873, 0.150),
    (0.993, 0.906, 0.144),
)
"""Viridis at 0, 0.1, ..., 1: perceptually uniform and monotone in lightness, so depth order reads correctly."""

OPAQUE_THRESHOLD = 0.5
"""Pixels at least this opaque set the automatic depth range; nearly empty pixels have arbitrary depths."""


def apply_colormap(values: Float[Tensor, "*bs 1"]) -> Float[Tensor, "*bs 3"]:
    """Viridis colours of values in [0, 1] (clamped), interpolating linearly between the control points."""
    table = torch.tensor(VIRIDIS_CONTROL_POINTS, dtype=values.dtype, device=values.device)
    position = values[..., 0].clamp(0.0, 1.0) * (len(table) - 1)
    lower = position.floor().long().clamp(max=len(table) - 2)
    fraction = (position - lower)[..., None]
    return table[lower] * (1.0 - fraction) + table[lower + 1] * fraction


def apply_depth_colormap(
    depth: Float[Tensor, "*bs 1"],
    accumulation: Float[Tensor, "*bs 1"] | None = None,
    near: float | None = None,
    far: float | None = None,
) -> Float[Tensor, "*bs 3"]:
    """Colour-mapped depth, white where nothing was hit.

    The range is [near, far] where given, otherwise the depths of the mostly opaque pixels (all pixels if none are),
    so the colours spend their range on the object rather than on the empty space around it.
    """
    opaque = depth if accumulation is None else depth[accumulation > OPAQUE_THRESHOLD]
    reference = opaque if opaque.numel() > 0 else depth
    low = reference.min() if near is None else torch.tensor(near, dtype=depth.dtype, device=depth.device)
    high = reference.max() if far is None else torch.tensor(far, dtype=depth.dtype, device=depth.device)
    colors = apply_colormap((depth - low) / (high - low).clamp_min(torch.finfo(depth.dtype).eps))
    if accumulation is None:
        return colors
    return colors * accumulation + (1.0 - accumulation)
