"""NeRF's field sampled through an occupancy grid: one network, samples only where the grid finds content."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torch import Tensor, nn

from nerfkit.cameras.rays import RayBundle
from nerfkit.configs.base_config import Target
from nerfkit.engine.callbacks import TrainingCallback, TrainingCallbackAttributes
from nerfkit.errors import NerfkitError
from nerfkit.fields.vanilla_nerf_field import NeRFField
from nerfkit.model_components.occupancy_sampling import (
    OccupancySampler,
    OccupancySamplerConfig,
    render_packed,
    sample_points,
)
from nerfkit.model_components.renderers import background_for_rays
from nerfkit.models.single_pass import SinglePassOutputs
from nerfkit.models.vanilla_nerf import NeRFModel, VanillaModelConfig


@dataclass
class VanillaOccupancyModelConfig(VanillaModelConfig):
    """vanilla-nerf's field with occupancy-grid sampling instead of coarse + importance sampling."""

    _target: Target = field(default_factory=lambda: NeRFOccupancyModel)
    background_color: Literal["white", "black", "random"] = "white"
    """Colour behind the scene; random is per ray in training (white in eval)."""
    sampler: OccupancySamplerConfig = field(default_factory=OccupancySamplerConfig)
    """Occupancy grid and marching."""


class NeRFOccupancyModel(SinglePassOutputs, NeRFModel):
    """The fine field alone renders packed samples; the grid replaces the coarse network's job of finding content."""

    config: VanillaOccupancyModelConfig

    def populate_modules(self) -> None:
        if self.near_plane is None or self.far_plane is None:
            raise NerfkitError(
                "vanilla-nerf-occupancy needs a near and a far plane",
                hint="set --pipeline.model.near-plane and --pipeline.model.far-plane",
            )
        self.field = self._make_field()
        self.sampler = OccupancySampler(
            self.config.sampler, self.scene_box, self.near_plane, self.far_plane, self.backends.occupancy_grid
        )

    @property
    def queried_field(self) -> NeRFField:
        return self.field

    def get_param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"fields": list(self.field.parameters())}

    def get_training_callbacks(self, attributes: TrainingCallbackAttributes) -> list[TrainingCallback]:
        return [self.sampler.training_callback(self.query_density)]

    def get_outputs(self, ray_bundle: RayBundle) -> dict[str, Tensor]:
        ray_indices, t_starts, t_ends = self.sampler(ray_bundle, self.query_density)
        density, rgb = self.field.query(*sample_points(ray_bundle, ray_indices, t_starts, t_ends))
        background = background_for_rays(
            self.config.background_color, len(ray_bundle), self.training, ray_bundle.origins.device
        )
        return render_packed(
            density, rgb, ray_indices, t_starts, t_ends, background, backend=self.backends.volume_rendering
        )
