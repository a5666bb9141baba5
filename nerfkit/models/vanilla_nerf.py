"""NeRF (Mildenhall et al. 2020): a coarse field finds where the content is, a fine field renders it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.cameras.rays import RayBundle, RaySamples
from nerfkit.configs.models import VanillaModelConfig
from nerfkit.errors import NerfkitError
from nerfkit.fields.vanilla_nerf_field import NeRFField
from nerfkit.model_components.ray_samplers import PDFSampler
from nerfkit.model_components.renderers import (
    AccumulationRenderer,
    DepthRenderer,
    RGBRenderer,
    composite_ground_truth,
    render_weights_from_density,
)
from nerfkit.models.base_model import Model
from nerfkit.utils.colormaps import apply_depth_colormap
from nerfkit.utils.metrics import psnr


class NeRFModel(Model):
    """Coarse and fine fields are separate networks, as in the paper; the fine pass uses the coarse weights."""

    config: VanillaModelConfig

    def populate_modules(self) -> None:
        if self.near_plane is None or self.far_plane is None:
            raise NerfkitError(
                f"vanilla-nerf needs a near and a far plane, got near_plane={self.near_plane}, "
                f"far_plane={self.far_plane}",
                hint="set the model's near_plane and far_plane, or use a dataset format that gives them",
            )
        context = self.component_context()
        self.collider = self.config.collider.setup(context)
        self.sampler_coarse = self.config.coarse_sampler.setup(context)
        self.sampler_fine = self.config.fine_sampler.setup(context)
        self.field_coarse = self._make_field()
        self.field_fine = self._make_field()
        self.renderer_rgb = RGBRenderer(self.config.background_color.setup())
        self.renderer_depth = DepthRenderer()
        self.renderer_accumulation = AccumulationRenderer()

    def _make_field(self) -> NeRFField:
        context = self.component_context()
        return NeRFField(
            position_encoding=self.config.position_encoding.setup(3, context),
            direction_encoding=self.config.direction_encoding.setup(3, context),
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
        densities, rgb = self.field_query(field)(ray_samples)
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
        samples_coarse = self.sampler_coarse(ray_bundle)
        outputs_coarse, weights_coarse = self._render(self.field_coarse, samples_coarse)
        if isinstance(self.sampler_fine, PDFSampler):
            samples_fine = self.sampler_fine(ray_bundle, samples_coarse, weights_coarse)
        else:
            samples_fine = self.sampler_fine(ray_bundle)
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
