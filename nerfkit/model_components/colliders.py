"""Colliders decide the interval along each ray worth sampling."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from nerfkit.cameras.rays import RayBundle
from nerfkit.data.scene_box import SceneBox
from nerfkit.errors import NerfkitError
from nerfkit.kernels.occupancy_grid import ray_aabb_intersect


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


class AABBCollider(NearFarCollider):
    """Each ray's stretch inside the scene box, within [near, far]: no samples are spent on empty space around it.

    A ray that misses the box gets an empty interval at the near plane, so it renders as pure background.
    """

    def __init__(self, scene_box: SceneBox, near_plane: float, far_plane: float) -> None:
        super().__init__(near_plane, far_plane)
        self.register_buffer("aabb", scene_box.aabb.flatten().clone(), persistent=False)

    def forward(self, ray_bundle: RayBundle) -> RayBundle:
        t_enter, t_exit, hits = ray_aabb_intersect(ray_bundle.origins, ray_bundle.directions, self.aabb)
        near = torch.full_like(t_enter, self.near_plane)
        nears = torch.where(hits, t_enter.clamp(self.near_plane, self.far_plane), near)
        fars = torch.where(hits, t_exit.clamp(self.near_plane, self.far_plane), near)
        return replace(ray_bundle, nears=nears[:, None], fars=fars[:, None])
