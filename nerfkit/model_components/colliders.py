"""Colliders decide the interval along each ray worth sampling."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from nerfkit.cameras.rays import RayBundle
from nerfkit.errors import NerfkitError


class NearFarCollider(nn.Module):
    """The same fixed [near, far] interval for every ray (NeRF's Blender setting: 2 to 6).

    Returns a new bundle rather than filling in the given one, so a caller's rays are never changed under it.
    """

    def __init__(self, near_plane: float, far_plane: float) -> None:
        super().__init__()
        if not 0 <= near_plane < far_plane:
            raise NerfkitError(
                f"near_plane {near_plane} and far_plane {far_plane} do not make an interval to sample",
                hint="set 0 <= near-plane < far-plane in the model config",
            )
        self.near_plane = near_plane
        self.far_plane = far_plane

    def forward(self, ray_bundle: RayBundle) -> RayBundle:
        ones = torch.ones_like(ray_bundle.origins[..., :1])
        return replace(ray_bundle, nears=ones * self.near_plane, fars=ones * self.far_plane)
