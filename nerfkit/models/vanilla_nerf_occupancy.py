"""NeRF's field sampled through an occupancy grid: one network, samples only where the grid finds content."""

from __future__ import annotations

from dataclasses import dataclass, field

from jaxtyping import Float
from torch import Tensor

from nerfkit.configs.base_config import Target
from nerfkit.fields.vanilla_nerf_field import NeRFField
from nerfkit.model_components.backgrounds import PackedBackgroundChoice, WhiteBackgroundConfig
from nerfkit.model_components.occupancy_sampling import OccupancySamplerConfig
from nerfkit.models.occupancy_grid_model import OccupancyGridRendering, OccupancySamplerChoice
from nerfkit.models.single_pass import SinglePassOutputs
from nerfkit.models.vanilla_nerf import NeRFFieldModelConfig, NeRFModel


@dataclass
class VanillaOccupancyModelConfig(NeRFFieldModelConfig):
    """vanilla-nerf's field with occupancy-grid sampling instead of coarse + importance sampling."""

    _target: Target = field(default_factory=lambda: NeRFOccupancyModel)
    background_color: PackedBackgroundChoice = field(default_factory=WhiteBackgroundConfig)
    """What each ray sees behind the scene (not last-sample: packed samples have no last sample per ray)."""
    sampler: OccupancySamplerChoice = field(default_factory=OccupancySamplerConfig)
    """Where rays are sampled: this model needs the occupancy grid."""


class NeRFOccupancyModel(OccupancyGridRendering, SinglePassOutputs, NeRFModel):
    """The fine field alone renders packed samples; the grid replaces the coarse network's job of finding content."""

    config: VanillaOccupancyModelConfig

    def populate_modules(self) -> None:
        self.field = self._make_field()
        self.build_occupancy_components("vanilla-nerf-occupancy")

    @property
    def queried_field(self) -> NeRFField:
        return self.field

    def field_outputs(
        self, positions: Float[Tensor, "num_samples 3"], directions: Float[Tensor, "num_samples 3"]
    ) -> tuple[Float[Tensor, "num_samples 1"], Float[Tensor, "num_samples 3"]]:
        return self.field.query(positions, directions)
