"""Instant-NGP (Müller et al. 2022): a hash-grid field sampled only where an occupancy grid says there is content."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor

from nerfkit.configs.models import InstantNGPModelConfig
from nerfkit.fields.ngp_field import NGPField
from nerfkit.models.base_model import Model
from nerfkit.models.occupancy_grid_model import OccupancyGridRendering
from nerfkit.models.single_pass import SinglePassOutputs


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
