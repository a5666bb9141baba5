"""Pinhole cameras with camera-to-world poses in the OpenGL convention, and the rays through their pixels."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from jaxtyping import Float, Int
from torch import Tensor

from nerfkit.cameras.rays import RayBundle


@dataclass
class Cameras:
    """A set of pinhole cameras. OpenGL convention: the camera looks down its -z axis with +y up and +x right."""

    camera_to_worlds: Float[Tensor, "num_cameras 3 4"]
    """Camera-to-world rotation and translation."""
    fx: Float[Tensor, " num_cameras"]
    """Focal length along x, in pixels."""
    fy: Float[Tensor, " num_cameras"]
    """Focal length along y, in pixels."""
    cx: Float[Tensor, " num_cameras"]
    """Principal point x, in pixels from the left edge."""
    cy: Float[Tensor, " num_cameras"]
    """Principal point y, in pixels from the top edge."""
    width: Int[Tensor, " num_cameras"]
    """Image width in pixels."""
    height: Int[Tensor, " num_cameras"]
    """Image height in pixels."""

    def __len__(self) -> int:
        return self.camera_to_worlds.shape[0]

    @property
    def device(self) -> torch.device:
        return self.camera_to_worlds.device

    def to(self, device: torch.device | str) -> Cameras:
        return Cameras(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    def __getitem__(self, index: int | slice | Tensor) -> Cameras:
        if isinstance(index, int):
            index = slice(index, index + 1)
        return Cameras(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def rescale_output_resolution(self, scale: float) -> Cameras:
        """The same cameras with images scaled by `scale` (used for downscaled datasets)."""
        return Cameras(
            camera_to_worlds=self.camera_to_worlds,
            fx=self.fx * scale,
            fy=self.fy * scale,
            cx=self.cx * scale,
            cy=self.cy * scale,
            width=(self.width * scale).round().long(),
            height=(self.height * scale).round().long(),
        )

    def generate_rays(self, camera_indices: Int[Tensor, " num_rays"], pixels: Float[Tensor, "num_rays 2"]) -> RayBundle:
        """Rays through image points given as (x, y) in pixels; a pixel's centre is at integer + 0.5."""
        fx, fy = self.fx[camera_indices], self.fy[camera_indices]
        cx, cy = self.cx[camera_indices], self.cy[camera_indices]
        directions_camera = torch.stack(
            [(pixels[:, 0] - cx) / fx, -(pixels[:, 1] - cy) / fy, -torch.ones_like(fx)], dim=-1
        )
        c2w = self.camera_to_worlds[camera_indices]
        directions = torch.einsum("nij,nj->ni", c2w[:, :, :3], directions_camera)
        return RayBundle(
            origins=c2w[:, :, 3],
            directions=torch.nn.functional.normalize(directions, dim=-1),
            camera_indices=camera_indices[:, None],
        )

    def generate_image_rays(self, camera_index: int) -> RayBundle:
        """Rays through every pixel centre of one camera, shaped (height, width)."""
        height, width = int(self.height[camera_index]), int(self.width[camera_index])
        ys, xs = torch.meshgrid(
            torch.arange(height, device=self.device), torch.arange(width, device=self.device), indexing="ij"
        )
        pixels = torch.stack([xs, ys], dim=-1).reshape(-1, 2).float() + 0.5
        indices = torch.full((height * width,), camera_index, dtype=torch.long, device=self.device)
        rays = self.generate_rays(indices, pixels)
        return RayBundle(
            origins=rays.origins.reshape(height, width, 3),
            directions=rays.directions.reshape(height, width, 3),
            camera_indices=rays.camera_indices.reshape(height, width, 1),
        )
