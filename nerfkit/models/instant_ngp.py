"""Instant-NGP (Müller et al. 2022): a hash-grid field sampled only where an occupancy grid says there is content."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.cameras.rays import RayBundle
from nerfkit.configs.base_config import Target
from nerfkit.engine.callbacks import TrainingCallback, TrainingCallbackAttributes
from nerfkit.errors import NerfkitError
from nerfkit.fields.ngp_field import NGPField
from nerfkit.model_components.occupancy_sampling import (
    OccupancySampler,
    OccupancySamplerConfig,
    render_packed,
    sample_points,
)
from nerfkit.model_components.renderers import background_for_rays
from nerfkit.models.base_model import Model, ModelConfig
from nerfkit.models.single_pass import SinglePassOutputs


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
    sampler: OccupancySamplerConfig = field(default_factory=OccupancySamplerConfig)
    """Occupancy grid and marching."""
    background_color: Literal["white", "black", "random"] = "random"
    """Colour behind the scene; random (per ray, in training) teaches transparent pixels to stay empty."""


class NGPModel(SinglePassOutputs, Model):
    """Packed samples from the occupancy grid, rendered with the kernels layer's volume rendering."""

    config: InstantNGPModelConfig

    def populate_modules(self) -> None:
        if self.near_plane is None or self.far_plane is None:
            raise NerfkitError(
                "instant-ngp needs a near and a far plane",
                hint="set --pipeline.model.near-plane and --pipeline.model.far-plane",
            )
        self.field = NGPField(
            self.scene_box.aabb,
            self.backends,
            num_levels=self.config.num_levels,
            features_per_level=self.config.features_per_level,
            log2_hashmap_size=self.config.log2_hashmap_size,
            base_resolution=self.config.base_resolution,
            max_resolution=self.config.max_resolution,
            hidden_dim=self.config.hidden_dim,
            hidden_dim_color=self.config.hidden_dim_color,
        )
        self.sampler = OccupancySampler(
            self.config.sampler, self.scene_box, self.near_plane, self.far_plane, self.backends.occupancy_grid
        )

    def query_density(self, positions: Float[Tensor, "num_points 3"]) -> Float[Tensor, "num_points 1"]:
        return self.field.density(positions)[0]

    def query_colour(
        self, positions: Float[Tensor, "num_points 3"], directions: Float[Tensor, "num_points 3"]
    ) -> Float[Tensor, "num_points 3"]:
        return self.field(positions, directions)[1]

    def get_param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"fields": list(self.field.parameters())}

    def get_training_callbacks(self, attributes: TrainingCallbackAttributes) -> list[TrainingCallback]:
        return [self.sampler.training_callback(self.query_density)]

    def get_outputs(self, ray_bundle: RayBundle) -> dict[str, Tensor]:
        ray_indices, t_starts, t_ends = self.sampler(ray_bundle, self.query_density)
        density, rgb = self.field(*sample_points(ray_bundle, ray_indices, t_starts, t_ends))
        background = background_for_rays(
            self.config.background_color, len(ray_bundle), self.training, ray_bundle.origins.device
        )
        return render_packed(
            density, rgb, ray_indices, t_starts, t_ends, background, backend=self.backends.volume_rendering
        )
