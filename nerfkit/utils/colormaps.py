"""Turning single-channel outputs (depth) into images that can be logged and compared by eye."""

from __future__ import annotations

from typing import Literal

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

Colormap = Literal["default", "viridis", "gray"]
"""How single-channel outputs become colours: default is viridis for depths and grey for the rest."""

OPAQUE_THRESHOLD = 0.5
"""Pixels at least this opaque set the automatic depth range; nearly empty pixels have arbitrary depths."""


def apply_colormap(values: Float[Tensor, "*bs 1"], colormap: Colormap = "viridis") -> Float[Tensor, "*bs 3"]:
    """Colours of values in [0, 1] (clamped): viridis, interpolating linearly between its control points, or grey."""
    if colormap == "gray":
        return values.clamp(0.0, 1.0).expand(*values.shape[:-1], 3)
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
    colormap: Colormap = "viridis",
) -> Float[Tensor, "*bs 3"]:
    """Colour-mapped depth, white where nothing was hit.

    The range is [near, far] where given, otherwise the depths of the mostly opaque pixels (all pixels if none are),
    so the colours spend their range on the object rather than on the empty space around it.
    """
    opaque = depth if accumulation is None else depth[accumulation > OPAQUE_THRESHOLD]
    reference = opaque if opaque.numel() > 0 else depth
    low = reference.min() if near is None else torch.tensor(near, dtype=depth.dtype, device=depth.device)
    high = reference.max() if far is None else torch.tensor(far, dtype=depth.dtype, device=depth.device)
    colors = apply_colormap((depth - low) / (high - low).clamp_min(torch.finfo(depth.dtype).eps), colormap)
    if accumulation is None:
        return colors
    return colors * accumulation + (1.0 - accumulation)


def renderable_names(outputs: dict[str, Tensor]) -> list[str]:
    """The outputs that are images (height, width, 1 or 3), in the order a menu lists them: rgb first."""
    names = sorted(name for name, value in outputs.items() if value.dim() == 3 and value.shape[-1] in (1, 3))
    return sorted(names, key=lambda name: name != "rgb")


def output_image(
    outputs: dict[str, Tensor],
    name: str,
    depth_range: tuple[float | None, float | None] = (None, None),
    colormap: Colormap = "default",
) -> Float[Tensor, "height width 3"]:
    """One output as an RGB image in [0, 1]. Depths are colour-mapped over `depth_range` (default: the opaque
    pixels' depths) and white where nothing was hit; other single channels in [0, 1] map as they are, and any
    others over their own range."""
    value = outputs[name]
    if value.shape[-1] == 3:
        return value
    if name.startswith("depth"):
        accumulation = outputs.get(name.replace("depth", "accumulation", 1))
        return apply_depth_colormap(value, accumulation, *depth_range, "viridis" if colormap == "default" else colormap)
    low, high = value.min(), value.max()
    if low < 0.0 or high > 1.0:
        value = (value - low) / (high - low).clamp_min(torch.finfo(value.dtype).eps)
    return apply_colormap(value, "gray" if colormap == "default" else colormap)
