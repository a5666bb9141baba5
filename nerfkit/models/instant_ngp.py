"""Instant-NGP (Müller et al. 2022): a hash-grid field sampled only where an occupancy grid says there is content."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfkit.cameras.rays import RayBundle
from nerfkit.configs.base_config import Target
from nerfkit.engine.callbacks import TrainingCallback, TrainingCallbackAttributes
from nerfkit.errors import NerfkitError
from nerfkit.fields.ngp_field import NGPField
from nerfkit.kernels.occupancy_grid import OccupancyGrid
from nerfkit.kernels.volrend import accumulate_along_rays, render_weight_from_density
from nerfkit.model_components.renderers import background_for_rays, composite_ground_truth, composite_on_background
from nerfkit.models.base_model import Model, ModelConfig
from nerfkit.utils.colormaps import apply_depth_colormap
from nerfkit.utils.metrics import psnr


@dataclass
class InstantNGPModelConfig(ModelConfig):
    """Settings of the Instant-NGP model for bounded scenes."""

    _target: Target = field(default_factory=lambda: NGPModel)
    num_levels: int = 16
    """Levels of the hash grid."""
    features_per_level: int = 2
    """Features stored per hash-grid entry."""
    log2_hashmap_size: int = 19
    """log2 of the number of entries per hash-grid level."""
    base_resolution: int = 16
    """Resolution of the coarsest hash-grid level."""
    max_resolution: int = 2048
    """Resolution of the finest hash-grid level."""
    hidden_dim: int = 64
    """Width of the density MLP."""
    hidden_dim_color: int = 64
    """Width of the colour MLP."""
    grid_resolution: int = 128
    """Cells per side of the occupancy grid."""
    grid_levels: int = 1
    """Cascades of the occupancy grid (1 for scenes inside the box)."""
    grid_update_every: int = 16
    """Re-estimate the occupancy grid every this many steps."""
    grid_warmup_steps: int = 256
    """Steps during which every cell is re-estimated, before switching to sampled cells."""
    grid_occupancy_threshold: float = 0.01
    """Opacity over one render step above which a cell counts as occupied."""
    render_step_size: float | None = None
    """Distance between samples along a ray (None: the scene box's diagonal / 1024)."""
    alpha_thre: float = 0.0
    """Skip samples less opaque than this (0 in a box: early on every sample is faint and all would be culled)."""
    early_stop_eps: float = 1e-4
    """Marching along a ray stops once its transmittance falls below this."""
    cone_angle: float = 0.0
    """Step growth with distance (0: uniform steps, right for scenes inside the box)."""
    background_color: Literal["white", "black", "random"] = "random"
    """Colour behind the scene; random (per ray, in training) teaches transparent pixels to stay empty."""


class NGPModel(Model):
    """Packed samples from the occupancy grid, rendered with the kernels layer's volume rendering."""

    config: InstantNGPModelConfig

    def populate_modules(self) -> None:
        if self.near_plane is None or self.far_plane is None:
            raise NerfkitError(
                "instant-ngp needs a near and a far plane",
                hint="set --pipeline.model.near-plane and --pipeline.model.far-plane",
            )
        aabb = self.scene_box.aabb
        self.render_step_size = self.config.render_step_size or float(torch.linalg.norm(aabb[1] - aabb[0])) / 1024
        self.field = NGPField(
            aabb,
            self.backends,
            num_levels=self.config.num_levels,
            features_per_level=self.config.features_per_level,
            log2_hashmap_size=self.config.log2_hashmap_size,
            base_resolution=self.config.base_resolution,
            max_resolution=self.config.max_resolution,
            hidden_dim=self.config.hidden_dim,
            hidden_dim_color=self.config.hidden_dim_color,
        )
        self.occupancy_grid = OccupancyGrid(
            roi_aabb=aabb.flatten(),
            resolution=self.config.grid_resolution,
            levels=self.config.grid_levels,
            backend=self.backends.occupancy_grid,
        )

    def get_param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"fields": list(self.field.parameters())}

    def get_training_callbacks(self, attributes: TrainingCallbackAttributes) -> list[TrainingCallback]:
        def opacity_over_one_step(positions: Tensor) -> Tensor:
            # The alpha of one render step: the same quantity that marching compares with alpha_thre, so a cell the
            # grid keeps is never culled wholesale because the two measures differ.
            return -torch.expm1(-self.field.density(positions)[0] * self.render_step_size)

        callback = self.occupancy_grid.training_callback(
            opacity_over_one_step,
            occ_thre=self.config.grid_occupancy_threshold,
            warmup_steps=self.config.grid_warmup_steps,
            n=self.config.grid_update_every,
        )
        return [callback]

    def get_outputs(self, ray_bundle: RayBundle) -> dict[str, Tensor]:
        origins, directions = ray_bundle.origins, ray_bundle.directions
        num_rays = len(ray_bundle)

        def sigma_fn(t_starts: Tensor, t_ends: Tensor, ray_indices: Tensor) -> Tensor:
            midpoints = (t_starts + t_ends)[:, None] / 2
            return self.field.density(origins[ray_indices] + directions[ray_indices] * midpoints)[0].squeeze(-1)

        with torch.no_grad():
            ray_indices, t_starts, t_ends = self.occupancy_grid.sampling(
                origins,
                directions,
                sigma_fn=sigma_fn,
                near_plane=self.near_plane,
                far_plane=self.far_plane,
                render_step_size=self.render_step_size,
                alpha_thre=self.config.alpha_thre,
                early_stop_eps=self.config.early_stop_eps,
                cone_angle=self.config.cone_angle,
                stratified=self.training,
            )
        midpoints = ((t_starts + t_ends) / 2)[:, None]
        density, rgb = self.field(origins[ray_indices] + directions[ray_indices] * midpoints, directions[ray_indices])
        backend = self.backends.volume_rendering
        weights, _, _ = render_weight_from_density(
            t_starts, t_ends, density.squeeze(-1), ray_indices=ray_indices, n_rays=num_rays, backend=backend
        )
        accumulation = accumulate_along_rays(weights, None, ray_indices, num_rays, backend=backend)
        depth = accumulate_along_rays(weights, midpoints, ray_indices, num_rays, backend=backend)
        background = background_for_rays(self.config.background_color, num_rays, self.training, origins.device)
        return {
            "rgb": composite_on_background(
                accumulate_along_rays(weights, rgb, ray_indices, num_rays, backend=backend), accumulation, background
            ),
            "accumulation": accumulation,
            "depth": depth / accumulation.clamp_min(1e-10),
            "background": background,
            "num_samples_per_batch": torch.tensor(len(ray_indices)),
        }

    def get_metrics_dict(self, outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        target = composite_ground_truth(batch["image"], outputs["background"])
        return {
            "psnr": psnr(outputs["rgb"].detach(), target),
            "num_samples_per_batch": outputs["num_samples_per_batch"].float(),
        }

    def get_loss_dict(
        self, outputs: dict[str, Tensor], batch: dict[str, Tensor], metrics_dict: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        return {"rgb_loss": F.mse_loss(outputs["rgb"], composite_ground_truth(batch["image"], outputs["background"]))}

    def get_image_metrics_and_images(
        self, outputs: dict[str, Tensor], batch: dict[str, Tensor]
    ) -> tuple[dict[str, float], dict[str, Tensor]]:
        image = batch["image"].to(outputs["rgb"].device)
        target = composite_ground_truth(image, outputs["background"])
        depth = apply_depth_colormap(outputs["depth"], accumulation=outputs["accumulation"])
        images = {
            "img": torch.cat([target, outputs["rgb"]], dim=1),
            "depth": depth,
            "accumulation": outputs["accumulation"].expand(-1, -1, 3),
        }
        return {"psnr": float(psnr(outputs["rgb"], target))}, images
