"""Scene contraction (Mip-NeRF 360): all of unbounded space squeezed into a ball of radius 2, so a grid covers it.

Positions are first normalised so the scene box becomes [-1, 1]^3; inside the unit ball (L2) or cube (L-inf) nothing
moves, and a point at distance r > 1 goes to distance 2 - 1/r along the same direction. The box keeps the grid's full
resolution and the far background shares the shell between radius 1 and 2, ever coarser with distance.
"""

from __future__ import annotations

from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn

ContractionNorm = Literal["l-inf", "l2"]
"""Norm that measures distance from the scene's centre: L-inf keeps the box exact, L2 is Mip-NeRF 360's ball."""


def contract(positions: Float[Tensor, "*bs 3"], norm: ContractionNorm) -> Float[Tensor, "*bs 3"]:
    """Identity within distance 1 of the origin, (2 - 1/r) x / r beyond: every finite point lands within distance 2.

    Written with r clamped to at least 1, one formula covers both regions, so there is no division by a zero norm in
    either the value or the gradient.
    """
    if norm == "l-inf":  # not vector_norm(ord=inf), which is an order of magnitude slower on the CPU
        radius = positions.abs().amax(dim=-1, keepdim=True)
    else:
        radius = torch.linalg.vector_norm(positions, dim=-1, keepdim=True)
    radius = radius.clamp_min(1.0)
    return (2.0 - 1.0 / radius) * positions / radius


class SceneContraction(nn.Module):
    """World positions to [0, 1]^3, the domain of grid encodings.

    With a contraction norm the box is normalised to [-1, 1]^3 and contracted (everything lands inside); without one
    the box itself maps to [0, 1]^3 and points outside it fall outside, for fields to mask (bounded scenes).
    """

    def __init__(self, aabb: Float[Tensor, "2 3"], norm: ContractionNorm | None) -> None:
        super().__init__()
        self.norm = norm
        # Derived from the scene box at construction, so kept out of checkpoints.
        self.register_buffer("aabb", aabb.clone(), persistent=False)
        self.register_buffer("center", aabb.mean(dim=0), persistent=False)
        self.register_buffer("half_size", (aabb[1] - aabb[0]) / 2, persistent=False)

    def forward(self, positions: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs 3"]:
        if self.norm is None:  # SceneBox.normalize_positions's arithmetic, which instant-ngp's renders were made with
            return (positions - self.aabb[0]) / (self.aabb[1] - self.aabb[0])
        normalized = (positions - self.center) / self.half_size
        return (contract(normalized, self.norm) + 2.0) / 4.0
