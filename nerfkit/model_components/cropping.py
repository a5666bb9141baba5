"""A render-time crop box: matter outside it is removed from what a model renders (the viewer's crop).

Cropping acts on densities rather than on rays, so it removes what lies in front of and behind the box along a ray
as well as beside it, and it works the same for every sampler (packed or per-ray samples, proposal levels).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaxtyping import Bool, Float
from torch import Tensor

from nerfkit.utils.precision import P, R


def inside_box(positions: Float[Tensor, "*bs 3"], aabb: Float[Tensor, "2 3"]) -> Bool[Tensor, "*bs 1"]:
    return ((positions >= aabb[0]) & (positions <= aabb[1])).all(dim=-1, keepdim=True)


def _positions(first_argument: Any) -> Float[Tensor, "*bs 3"]:
    """Fields take positions, or ray samples that carry them."""
    return getattr(first_argument, "positions", first_argument)


def cropped(function: Callable[P, R], aabb: Float[Tensor, "2 3"]) -> Callable[P, R]:
    """`function` (a field: positions or ray samples in, a density or (density, ...) out) with zero density outside
    `aabb`."""

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        outputs = function(*args, **kwargs)
        positions = _positions(args[0])
        inside = inside_box(positions, aabb.to(positions.device))
        if isinstance(outputs, tuple):
            return (outputs[0] * inside, *outputs[1:])  # type: ignore[return-value]
        return outputs * inside  # type: ignore[operator]

    return run
