"""Point clouds from rendered rays: each training pixel whose ray the model finds opaque enough adds one point, at
the ray's expected surface depth, coloured by what the ray rendered."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from nerfkit.cameras.cameras import Cameras
from nerfkit.cameras.rays import RayBundle
from nerfkit.data.scene_box import SceneBox
from nerfkit.exporters import Advance
from nerfkit.model_components.cropping import inside_box
from nerfkit.models.base_model import Model
from nerfkit.pipelines.base_pipeline import evaluating


@dataclass
class PointCloud:
    """Points in world coordinates with colours in [0, 1]."""

    positions: Float[np.ndarray, "num_points 3"]
    colours: Float[np.ndarray, "num_points 3"]

    def __len__(self) -> int:
        return len(self.positions)


def pixel_rays(cameras: Cameras, pixel_indices: Int[Tensor, " num_rays"]) -> RayBundle:
    """Rays through pixel centres numbered camera by camera, row by row; a split's images all share one size."""
    width, height = int(cameras.width[0]), int(cameras.height[0])
    within_image = pixel_indices % (width * height)
    pixels = torch.stack([within_image % width, within_image // width], dim=-1)
    return cameras.generate_rays(pixel_indices // (width * height), pixels.float() + 0.5)


def surface_colour(
    rgb: Float[Tensor, "num_rays 3"], accumulation: Float[Tensor, "num_rays 1"], background: Float[Tensor, "num_rays 3"]
) -> Float[Tensor, "num_rays 3"]:
    """The colour of the matter alone: a partly transparent ray's rendered colour, without the background showing
    through it (which would tint the points of a white-background scene white)."""
    premultiplied = rgb - (1.0 - accumulation) * background
    return (premultiplied / accumulation.clamp_min(1e-6)).clamp(0.0, 1.0)


def render_points(
    model: Model, rays: RayBundle, accumulation_threshold: float, aabb: Float[Tensor, "2 3"]
) -> tuple[Float[Tensor, "num_kept 3"], Float[Tensor, "num_kept 3"]]:
    """Positions and colours of the rays at least `accumulation_threshold` opaque whose depth lies in the box."""
    outputs = model(rays)
    positions = rays.origins + outputs["depth"] * rays.directions
    accumulation = outputs["accumulation"]
    background = outputs.get("background", torch.zeros_like(outputs["rgb"]))
    keep = (accumulation[:, 0] >= accumulation_threshold) & inside_box(positions, aabb)[:, 0]
    colours = surface_colour(outputs["rgb"][keep], accumulation[keep], background[keep])
    return positions[keep], colours


def point_cloud_from_cameras(
    model: Model,
    cameras: Cameras,
    scene_box: SceneBox,
    *,
    num_points: int,
    accumulation_threshold: float,
    num_rays_per_batch: int,
    seed: int = 0,
    advance: Advance = lambda _: None,
) -> PointCloud:
    """Up to `num_points` points, a uniform random sample of those the cameras' pixels yield.

    Pixels are rendered in a random order and rendering stops once enough points passed: the result is the random
    subsample without rendering every pixel (the order costs 8 bytes per pixel). Fewer points come back when all
    pixels together yield fewer. Points outside `scene_box` are dropped (the model has no content outside the scene box;
    a smaller box crops).
    `advance` is told of points found.
    """
    num_pixels = len(cameras) * int(cameras.width[0]) * int(cameras.height[0])
    order = torch.randperm(num_pixels, generator=torch.Generator().manual_seed(seed))
    aabb = scene_box.aabb.to(model.device)
    positions: list[Tensor] = []
    colours: list[Tensor] = []
    found = 0
    with evaluating(model):
        for start in range(0, num_pixels, num_rays_per_batch):
            if found >= num_points:
                break
            rays = pixel_rays(cameras, order[start : start + num_rays_per_batch].to(cameras.device))
            batch_positions, batch_colours = render_points(model, rays.to(model.device), accumulation_threshold, aabb)
            advance(min(len(batch_positions), num_points - found))
            found += len(batch_positions)
            positions.append(batch_positions.cpu())
            colours.append(batch_colours.cpu())
    return PointCloud(
        torch.cat(positions)[:num_points].numpy(),
        torch.cat(colours)[:num_points].numpy(),
    )
