"""Rays and the samples taken along them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch
from jaxtyping import Float, Int
from torch import Tensor


@dataclass
class RayBundle:
    """A batch of rays; a collider fills in the interval along each that is worth sampling."""

    origins: Float[Tensor, "*bs 3"]
    """Ray origins in world coordinates."""
    directions: Float[Tensor, "*bs 3"]
    """Unit ray directions in world coordinates."""
    camera_indices: Int[Tensor, "*bs 1"]
    """Index of the camera each ray comes from."""
    nears: Float[Tensor, "*bs 1"] | None = None
    """Distance along the ray where sampling starts (set by a collider)."""
    fars: Float[Tensor, "*bs 1"] | None = None
    """Distance along the ray where sampling ends (set by a collider)."""

    @property
    def shape(self) -> torch.Size:
        return self.origins.shape[:-1]

    def __len__(self) -> int:
        return self.origins.shape[0]

    def _map(self, fn: Callable[[Tensor], Tensor]) -> RayBundle:
        return RayBundle(**{f.name: None if (v := getattr(self, f.name)) is None else fn(v) for f in fields(self)})

    def flatten(self) -> RayBundle:
        return self._map(lambda t: t.reshape(-1, t.shape[-1]))

    def __getitem__(self, index: slice | Tensor) -> RayBundle:
        return self._map(lambda t: t[index])

    def to(self, device: torch.device | str) -> RayBundle:
        return self._map(lambda t: t.to(device))


@dataclass
class RaySamples:
    """Intervals along each ray of a bundle; a sample's point is its interval's midpoint."""

    origins: Float[Tensor, "num_rays 3"]
    """Origins of the rays the samples lie on."""
    directions: Float[Tensor, "num_rays 3"]
    """Unit directions of the rays the samples lie on."""
    starts: Float[Tensor, "num_rays num_samples 1"]
    """Distance along the ray where each interval starts."""
    ends: Float[Tensor, "num_rays num_samples 1"]
    """Distance along the ray where each interval ends."""

    @property
    def num_samples(self) -> int:
        return self.starts.shape[-2]

    @property
    def deltas(self) -> Float[Tensor, "num_rays num_samples 1"]:
        return self.ends - self.starts

    @property
    def midpoints(self) -> Float[Tensor, "num_rays num_samples 1"]:
        return (self.starts + self.ends) / 2

    @property
    def positions(self) -> Float[Tensor, "num_rays num_samples 3"]:
        return self.origins[:, None, :] + self.directions[:, None, :] * self.midpoints

    @property
    def bins(self) -> Float[Tensor, "num_rays num_samples_plus_1"]:
        """Interval edges, for samplers that resample between them."""
        return torch.cat([self.starts[..., 0], self.ends[:, -1:, 0]], dim=-1)

    @classmethod
    def from_bins(cls, ray_bundle: RayBundle, bins: Float[Tensor, "num_rays num_samples_plus_1"]) -> RaySamples:
        return cls(
            origins=ray_bundle.origins,
            directions=ray_bundle.directions,
            starts=bins[:, :-1, None],
            ends=bins[:, 1:, None],
        )
