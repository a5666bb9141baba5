"""Spacings along a ray: where evenly spread samples land in distance, for scenes near and far.

A spacing maps distance t to s in [0, 1] between the near and far planes. With lin-disp, s grows linearly with
distance up to a switch distance and with disparity (1 / distance) beyond it: half of the samples lie within the switch
distance, half beyond, however far the far plane.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from nerfkit.configs.model_components import InitialSpacing


def spacing_fn(
    distances: Float[Tensor, "*bs"], spacing: InitialSpacing, switch_distance: float
) -> Float[Tensor, "*bs"]:
    """The unnormalised spacing g(t): t for uniform; for lin-disp t / 2r up to r, 1 - r / 2t beyond (continuous, with
    a continuous slope, reaching 1 at infinity)."""
    if spacing == "uniform":
        return distances
    r = switch_distance
    return torch.where(distances < r, distances / (2 * r), 1 - r / (2 * distances.clamp_min(r)))


def inverse_spacing_fn(
    values: Float[Tensor, "*bs"], spacing: InitialSpacing, switch_distance: float
) -> Float[Tensor, "*bs"]:
    """The distance t with g(t) = `values`."""
    if spacing == "uniform":
        return values
    r = switch_distance
    return torch.where(values < 0.5, 2 * r * values, r / (2 * (1 - values.clamp(0.5, 1 - 1e-7))))


def spacing_to_distance(
    spacing_bins: Float[Tensor, "num_rays num_edges"],
    nears: Float[Tensor, "num_rays 1"],
    fars: Float[Tensor, "num_rays 1"],
    spacing: InitialSpacing,
    switch_distance: float,
) -> Float[Tensor, "num_rays num_edges"]:
    """Distances along each ray of normalised spacings: s = 0 is the near plane, s = 1 the far plane."""
    g_near, g_far = (spacing_fn(bound, spacing, switch_distance) for bound in (nears, fars))
    distances = inverse_spacing_fn(torch.lerp(g_near, g_far, spacing_bins), spacing, switch_distance)
    return torch.minimum(torch.maximum(distances, nears), fars)
