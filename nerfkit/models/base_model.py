"""The model contract: rays in, rendered outputs, losses and metrics out."""

from __future__ import annotations

from abc import abstractmethod
from collections import defaultdict
from collections.abc import Callable

import torch
from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.cameras.cameras import Cameras
from nerfkit.cameras.rays import RayBundle
from nerfkit.configs.models import ModelConfig
from nerfkit.data.scene_box import SceneBox
from nerfkit.engine.callbacks import TrainingCallback, TrainingCallbackAttributes
from nerfkit.errors import NerfkitError
from nerfkit.kernels.backends import Backends
from nerfkit.model_components.component_context import ComponentContext
from nerfkit.model_components.cropping import cropped
from nerfkit.utils.precision import P, R, in_field_precision


class Model(nn.Module):
    """Base of all models. Subclasses build their components in `populate_modules` and render in `get_outputs`."""

    config: ModelConfig

    def __init__(
        self,
        config: ModelConfig,
        scene_box: SceneBox,
        num_train_data: int,
        near_plane: float | None = None,
        far_plane: float | None = None,
        backends: Backends | None = None,
        mixed_precision: bool = False,
    ) -> None:
        """`near_plane` and `far_plane` are the dataset's, taken where the config leaves its own None."""
        super().__init__()
        self.config = config
        self.mixed_precision = mixed_precision
        self.scene_box = scene_box
        self.num_train_data = num_train_data
        self.backends = backends or Backends()
        self.near_plane = config.near_plane if config.near_plane is not None else near_plane
        self.far_plane = config.far_plane if config.far_plane is not None else far_plane
        self.crop_box: SceneBox | None = None
        """Renders (not training) see no matter outside this box; the viewer sets it."""
        config.check_components()
        self.populate_modules()
        # A parameter-free buffer tells where the model lives even before the subclass adds parameters.
        self.register_buffer("_device_marker", torch.empty(0), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._device_marker.device

    def field_query(self, function: Callable[P, R]) -> Callable[P, R]:
        """`function` (a field, or a density network) as models call it: in half precision under mixed precision (see
        utils/precision), and with no density outside `crop_box` when rendering with one (see cropping)."""
        function = in_field_precision(function, self.device, self.mixed_precision)
        if self.crop_box is None or self.training:
            return function
        return cropped(function, self.crop_box.aabb)

    def component_context(self) -> ComponentContext:
        """What the model's replaceable components are built with; models check first that they have both planes."""
        return ComponentContext(self.scene_box, self.near_plane, self.far_plane, self.backends)

    @abstractmethod
    def populate_modules(self) -> None:
        """Builds fields, samplers and renderers from `self.config`."""

    @abstractmethod
    def get_param_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters per optimizer group; the names match the method's `optimizers` keys."""

    def get_training_callbacks(
        self, training_callback_attributes: TrainingCallbackAttributes
    ) -> list[TrainingCallback]:
        return []

    @abstractmethod
    def get_outputs(self, ray_bundle: RayBundle) -> dict[str, Tensor]:
        """Renders a flat bundle of rays: at least `rgb`, `depth` and `accumulation`."""

    def forward(self, ray_bundle: RayBundle) -> dict[str, Tensor]:
        return self.get_outputs(ray_bundle)

    def query_density(self, positions: Float[Tensor, "num_points 3"]) -> Float[Tensor, "num_points 1"]:
        """Density at world positions, off any ray: what exports that sample space on a grid (meshes) read.

        Optional, so a model that only renders rays still trains; such a model cannot be exported as a mesh.
        """
        raise self._not_queryable()

    def query_colour(
        self, positions: Float[Tensor, "num_points 3"], directions: Float[Tensor, "num_points 3"]
    ) -> Float[Tensor, "num_points 3"]:
        """Colour in [0, 1] that rays travelling along unit `directions` see at world positions."""
        raise self._not_queryable()

    def _not_queryable(self) -> NerfkitError:
        return NerfkitError(
            f"the {type(self).__name__} model cannot be queried at arbitrary points",
            hint="implement Model.query_density and Model.query_colour in the model to export it as a mesh",
        )

    def get_metrics_dict(self, outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return {}

    @abstractmethod
    def get_loss_dict(
        self, outputs: dict[str, Tensor], batch: dict[str, Tensor], metrics_dict: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        """Losses to be summed for the backward pass."""

    @torch.no_grad()
    def get_outputs_for_camera(self, cameras: Cameras, camera_index: int) -> dict[str, Tensor]:
        """Renders one whole image in chunks of `eval_num_rays_per_chunk` rays; outputs are (height, width, C)."""
        image_rays = cameras.generate_image_rays(camera_index)
        height, width = image_rays.shape
        rays = image_rays.flatten().to(self.device)
        chunks: dict[str, list[Tensor]] = defaultdict(list)
        chunk_size = self.config.eval_num_rays_per_chunk
        for start in range(0, len(rays), chunk_size):
            for name, value in self.per_ray_outputs(rays[start : start + chunk_size]).items():
                chunks[name].append(value)
        return {name: torch.cat(parts).reshape(height, width, -1) for name, parts in chunks.items()}

    def per_ray_outputs(self, rays: RayBundle) -> dict[str, Tensor]:
        """The outputs of `forward` that hold a value per ray (not per-batch figures such as sample counts)."""
        return {
            name: value for name, value in self.forward(rays).items() if value.dim() > 0 and len(value) == len(rays)
        }

    @abstractmethod
    def get_image_metrics_and_images(
        self, outputs: dict[str, Tensor], batch: dict[str, Tensor]
    ) -> tuple[dict[str, float], dict[str, Tensor]]:
        """Metrics of one rendered image against its ground truth, and images to log (H, W, 3 in [0, 1])."""
