"""What every model that samples through an occupancy grid shares: the sampler, its update callback, one field
evaluation per packed sample and packed volume rendering. A model supplies `field`, `query_density` and
`field_outputs`; its config supplies `sampler` (an `OccupancySamplerChoice`) and `background_color` (a
`PackedBackgroundChoice`)."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.cameras.rays import RayBundle
from nerfkit.engine.callbacks import TrainingCallback, TrainingCallbackAttributes
from nerfkit.errors import NerfkitError
from nerfkit.model_components.occupancy_sampling import OccupancySampler
from nerfkit.model_components.renderers import render_packed, sample_points


class OccupancyGridRendering:
    """Mixin for `Model` subclasses; put it before the model base so its methods win."""

    def build_occupancy_components(self, method: str) -> None:
        """The sampler and the background, checked to be ones that work with packed samples."""
        if self.near_plane is None or self.far_plane is None:
            raise NerfkitError(
                f"{method} needs a near and a far plane",
                hint="set --pipeline.model.near-plane and --pipeline.model.far-plane",
            )
        self.sampler: OccupancySampler = self.config.sampler.setup(self.component_context())
        self.background = self.config.background_color.setup()

    def field_outputs(
        self, positions: Float[Tensor, "num_samples 3"], directions: Float[Tensor, "num_samples 3"]
    ) -> tuple[Float[Tensor, "num_samples 1"], Float[Tensor, "num_samples 3"]]:
        """Density and colour of the packed samples."""
        raise NotImplementedError

    def get_param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"fields": list(self.field.parameters())}

    def get_training_callbacks(self, attributes: TrainingCallbackAttributes) -> list[TrainingCallback]:
        return [self.sampler.training_callback(self.query_density)]

    def get_outputs(self, ray_bundle: RayBundle) -> dict[str, Tensor]:
        ray_indices, t_starts, t_ends = self.sampler(ray_bundle, self.query_density)
        positions, directions = sample_points(ray_bundle, ray_indices, t_starts, t_ends)
        density, rgb = self.field_query(self.field_outputs)(positions, directions)
        background = self.background(len(ray_bundle), ray_bundle.origins.device)
        return render_packed(
            density, rgb, ray_indices, t_starts, t_ends, background, backend=self.backends.volume_rendering
        )
