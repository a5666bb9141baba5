"""NeRF (Mildenhall et al. 2020): a coarse field finds where the content is, a fine field renders it."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.cameras.rays import RayBundle, RaySamples
from nerfkit.configs.base_config import Target
from nerfkit.errors import NerfkitError
from nerfkit.field_components.encodings import NeRFEncoding
from nerfkit.fields.vanilla_nerf_field import NeRFField
from nerfkit.model_components.colliders import NearFarCollider
from nerfkit.model_components.ray_samplers import PDFSampler, UniformSampler
from nerfkit.model_components.renderers import (
    AccumulationRenderer,
    BackgroundColor,
    DepthRenderer,
    RGBRenderer,
    composite_ground_truth,
    render_weights_from_density,
)
from nerfkit.models.base_model import Model, ModelConfig
from nerfkit.utils.colormaps import apply_depth_colormap
from nerfkit.utils.metrics import psnr


@dataclass
class VanillaModelConfig(ModelConfig):
    """Settings of the original NeRF model."""

    _target: Target = field(default_factory=lambda: NeRFModel)
    num_coarse_samples: int = 64
    """Evenly spaced samples per ray for the coarse field."""
    num_importance_samples: int = 128
    """Extra samples per ray drawn where the coarse field found content; the fine field sees both sets."""
    position_num_frequencies: int = 10
    """Octaves of the positional encoding of points (2^0 .. 2^(n-1))."""
    direction_num_frequencies: int = 4
    """Octaves of the positional encoding of view directions."""
    base_mlp_num_layers: int = 8
    """Layers of each field's MLP from position to density and features."""
    base_mlp_layer_width: int = 256
    """Width of the base MLP's layers."""
    head_mlp_layer_width: int = 128
    """Width of the hidden layer from features and view direction to colour."""
    skip_connections: tuple[int, ...] = (4,)
    """Base MLP layers whose input gets the encoded position again."""
    background_color: BackgroundColor = "white"
    """Colour behind the scene; random is per ray in training (white in eval), last_sample is each ray's far end."""


class NeRFModel(Model):
    """Coarse and fine fields are separate networks, as in the paper; the fine pass uses the coarse weights."""

    config: VanillaModelConfig

    def populate_modules(self) -> None:
        if self.near_plane is None or self.far_plane is None:
            raise NerfkitError(
                f"vanilla-nerf needs a near and a far plane, got near_plane={self.near_plane}, "
                f"far_plane={self.far_plane}",
                hint="set the model's near_plane and far_plane, or use a dataparser that puts them in its metadata",
            )
        self.collider = NearFarCollider(self.near_plane, self.far_plane)
        self.sampler_uniform = UniformSampler(self.config.num_coarse_samples)
        self.sampler_pdf = PDFSampler(self.config.num_importance_samples)
        self.field_coarse = self._make_field()
        self.field_fine = self._make_field()
        self.renderer_rgb = RGBRenderer(self.config.background_color)
        self.renderer_depth = DepthRenderer()
        self.renderer_accumulation = AccumulationRenderer()

    def _make_field(self) -> NeRFField:
        position_frequencies = self.config.position_num_frequencies
        direction_frequencies = self.config.direction_num_frequencies
        return NeRFField(
            position_encoding=NeRFEncoding(3, position_frequencies, 0, position_frequencies - 1),
            direction_encoding=NeRFEncoding(3, direction_frequencies, 0, direction_frequencies - 1),
            base_mlp_num_layers=self.config.base_mlp_num_layers,
            base_mlp_layer_width=self.config.base_mlp_layer_width,
            head_mlp_layer_width=self.config.head_mlp_layer_width,
            skip_connections=self.config.skip_connections,
        )

    def get_param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"fields": list(self.parameters())}

    @property
    def queried_field(self) -> NeRFField:
        """The field that renders the final image (the fine one), so exports see what renders show."""
        return self.field_fine

    def query_density(self, positions: Float[Tensor, "num_points 3"]) -> Float[Tensor, "num_points 1"]:
        return self.queried_field.density(positions)[0]

    def query_colour(
        self, positions: Float[Tensor, "num_points 3"], directions: Float[Tensor, "num_points 3"]
    ) -> Float[Tensor, "num_points 3"]:
        return self.queried_field.query(positions, directions)[1]

    def _render(self, field: NeRFField, ray_samples: RaySamples) -> tuple[dict[str, Tensor], Tensor]:
        """One pass's outputs, and its sample weights for the next pass."""
        densities, rgb = field(ray_samples)
        weights = render_weights_from_density(densities, ray_samples.deltas)
        composited, background = self.renderer_rgb(rgb, weights)
        outputs = {
            "rgb": composited,
            "depth": self.renderer_depth(weights, ray_samples),
            "accumulation": self.renderer_accumulation(weights),
            "background": background,
        }
        return outputs, weights

    def get_outputs(self, ray_bundle: RayBundle) -> dict[str, Tensor]:
        ray_bundle = self.collider(ray_bundle)
        samples_coarse = self.sampler_uniform(ray_bundle)
        outputs_coarse, weights_coarse = self._render(self.field_coarse, samples_coarse)
        samples_fine = self.sampler_pdf(ray_bundle, samples_coarse, weights_coarse)
        outputs_fine, _ = self._render(self.field_fine, samples_fine)
        return outputs_fine | {f"{name}_coarse": value for name, value in outputs_coarse.items()}

    def get_metrics_dict(self, outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        target = composite_ground_truth(batch["image"], outputs["background"])
        return {"psnr": psnr(outputs["rgb"].detach(), target)}

    def get_loss_dict(
        self, outputs: dict[str, Tensor], batch: dict[str, Tensor], metrics_dict: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        image = batch["image"]
        return {
            "rgb_loss_coarse": F.mse_loss(
                outputs["rgb_coarse"], composite_ground_truth(image, outputs["background_coarse"])
            ),
            "rgb_loss_fine": F.mse_loss(outputs["rgb"], composite_ground_truth(image, outputs["background"])),
        }

    def get_image_metrics_and_images(
        self, outputs: dict[str, Tensor], batch: dict[str, Tensor]
    ) -> tuple[dict[str, float], dict[str, Tensor]]:
        image = batch["image"].to(outputs["rgb"].device)
        target = composite_ground_truth(image, outputs["background"])
        target_coarse = composite_ground_truth(image, outputs["background_coarse"])
        metrics = {
            "psnr": float(psnr(outputs["rgb"], target)),
            "psnr_coarse": float(psnr(outputs["rgb_coarse"], target_coarse)),
        }
        # Fine and coarse share one depth colour range, so their colours compare directly.
        accumulation = torch.cat([outputs["accumulation"], outputs["accumulation_coarse"]], dim=1)
        depth = torch.cat([outputs["depth"], outputs["depth_coarse"]], dim=1)
        images = {
            "img": torch.cat([target, outputs["rgb"]], dim=1).clamp(0.0, 1.0),
            "depth": apply_depth_colormap(depth, accumulation),
            "accumulation": accumulation.expand(-1, -1, 3),
        }
        return metrics, images
