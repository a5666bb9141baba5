"""The axis-aligned box that holds the scene."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor


@dataclass
class SceneBox:
    """An axis-aligned box: row 0 is the minimum corner, row 1 the maximum."""

    aabb: Float[Tensor, "2 3"]

    @property
    def center(self) -> Float[Tensor, "3"]:
        return self.aabb.mean(dim=0)

    @property
    def size(self) -> Float[Tensor, "3"]:
        return self.aabb[1] - self.aabb[0]

    def normalize_positions(self, positions: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs 3"]:
        """Maps the box to [0, 1]^3, the domain of grid encodings."""
        return (positions - self.aabb[0]) / self.size

    @classmethod
    def cube(cls, half_size: float) -> SceneBox:
        return cls(aabb=torch.tensor([[-half_size] * 3, [half_size] * 3], dtype=torch.float32))
