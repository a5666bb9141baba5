"""Cameras with camera-to-world poses in the OpenGL convention, optional lens distortion, and rays through pixels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import torch
from jaxtyping import Float, Int
from torch import Tensor

from nerfkit.cameras.distortion import CAMERA_MODELS, CameraModel, camera_ray_directions
from nerfkit.cameras.rays import RayBundle
from nerfkit.errors import NerfkitError


@dataclass
class Cameras:
    """Cameras sharing one lens model. OpenGL convention: the camera looks down its -z axis with +y up and +x right."""

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
    distortion_params: Float[Tensor, "num_cameras 6"] | None = None
    """Per camera `[k1, k2, k3, k4, p1, p2]` of normalised image coordinates (see `distortion.py`); None: none."""
    camera_model: CameraModel = "PINHOLE"
    """Lens model of every camera: PINHOLE (ignores distortion_params), OPENCV or OPENCV_FISHEYE."""

    def __post_init__(self) -> None:
        if self.camera_model not in CAMERA_MODELS:
            raise NerfkitError(
                f"Unknown camera model {self.camera_model!r} (field camera_model).",
                f"Use one of {', '.join(CAMERA_MODELS)}.",
            )
        if self.distortion_params is not None and self.distortion_params.shape != (len(self), 6):
            raise ValueError(
                f"distortion_params has shape {tuple(self.distortion_params.shape)}, expected ({len(self)}, 6)."
            )

    def __len__(self) -> int:
        return self.camera_to_worlds.shape[0]

    @property
    def device(self) -> torch.device:
        return self.camera_to_worlds.device

    def _map_tensors(self, fn: Callable[[Tensor], Tensor]) -> Cameras:
        """A copy with `fn` applied to every per-camera tensor; the shared camera model is kept as is."""
        return replace(
            self,
            **{f.name: fn(value) for f in fields(self) if isinstance(value := getattr(self, f.name), Tensor)},
        )

    def to(self, device: torch.device | str) -> Cameras:
        return self._map_tensors(lambda tensor: tensor.to(device))

    def __getitem__(self, index: int | slice | Tensor) -> Cameras:
        if isinstance(index, int):
            index = slice(index, index + 1)
        return self._map_tensors(lambda tensor: tensor[index])

    def rescale_output_resolution(self, scale: float) -> Cameras:
        """The same cameras with images scaled by `scale` (used for downscaled datasets). Distortion acts on
        normalised coordinates, which scaling pixels and intrinsics together leaves unchanged, so it is kept."""
        return replace(
            self,
            fx=self.fx * scale,
            fy=self.fy * scale,
            cx=self.cx * scale,
            cy=self.cy * scale,
            width=(self.width * scale).round().long(),
            height=(self.height * scale).round().long(),
        )

    def generate_rays(self, camera_indices: Int[Tensor, " num_rays"], pixels: Float[Tensor, "num_rays 2"]) -> RayBundle:
        """Rays through image points given as (x, y) in pixels; a pixel's centre is at integer + 0.5."""
        distortion = None if self.distortion_params is None else self.distortion_params[camera_indices]
        directions_camera = camera_ray_directions(
            pixels,
            self.fx[camera_indices],
            self.fy[camera_indices],
            self.cx[camera_indices],
            self.cy[camera_indices],
            distortion,
            self.camera_model,
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
