"""NeRF's field sampled through an occupancy grid: one network, samples only where the grid finds content."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from nerfkit.configs.models import VanillaOccupancyModelConfig
from nerfkit.fields.vanilla_nerf_field import NeRFField
from nerfkit.models.occupancy_grid_model import OccupancyGridRendering
from nerfkit.models.single_pass import SinglePassOutputs
from nerfkit.models.vanilla_nerf import NeRFModel


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
