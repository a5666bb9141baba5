"""Instant-NGP (Müller et al. 2022): a hash-grid field sampled only where an occupancy grid says there is content."""

from __future__ import annotations

from dataclasses import dataclass, field

from jaxtyping import Float
from torch import Tensor

from nerfkit.configs.base_config import Target
from nerfkit.field_components.hash_grid import HashFieldConfig
from nerfkit.fields.ngp_field import NGPField
from nerfkit.model_components.backgrounds import PackedBackgroundChoice, RandomBackgroundConfig
from nerfkit.model_components.occupancy_sampling import OccupancySamplerConfig
from nerfkit.models.base_model import Model, ModelConfig
from nerfkit.models.occupancy_grid_model import OccupancyGridRendering, OccupancySamplerChoice
from nerfkit.models.single_pass import SinglePassOutputs


@dataclass
class InstantNGPModelConfig(HashFieldConfig, ModelConfig):
    """Settings of the Instant-NGP model for bounded scenes; its field's sizes are HashFieldConfig's fields."""

    _target: Target = field(default_factory=lambda: NGPModel)
    sampler: OccupancySamplerChoice = field(default_factory=OccupancySamplerConfig)
    """Where rays are sampled: this model needs the occupancy grid."""
    background_color: PackedBackgroundChoice = field(default_factory=RandomBackgroundConfig)
    """What each ray sees behind the scene (not last-sample: packed samples have no last sample per ray)."""


class NGPModel(OccupancyGridRendering, SinglePassOutputs, Model):
    """Packed samples from the occupancy grid, rendered with the kernels layer's volume rendering."""

    config: InstantNGPModelConfig

    def populate_modules(self) -> None:
        self.field = NGPField(
            self.scene_box.aabb,
            self.backends,
            self.config,
            hidden_dim=self.config.hidden_dim,
            hidden_dim_color=self.config.hidden_dim_color,
        )
        self.build_occupancy_components("instant-ngp")

    def query_density(self, positions: Float[Tensor, "num_points 3"]) -> Float[Tensor, "num_points 1"]:
        return self.field.density(positions)[0]

    def query_colour(
        self, positions: Float[Tensor, "num_points 3"], directions: Float[Tensor, "num_points 3"]
    ) -> Float[Tensor, "num_points 3"]:
        return self.field(positions, directions)[1]

    def field_outputs(
        self, positions: Float[Tensor, "num_samples 3"], directions: Float[Tensor, "num_samples 3"]
    ) -> tuple[Float[Tensor, "num_samples 1"], Float[Tensor, "num_samples 3"]]:
        return self.field(positions, directions)
