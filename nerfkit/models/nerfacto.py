"""nerfacto (Nerfstudio's default method): a hash-grid field over contracted space, sampled where two small proposal
networks find content, with per-image appearance embeddings and optional camera pose refinement."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.cameras.rays import RayBundle
from nerfkit.configs.models import NerfactoModelConfig
from nerfkit.engine.callbacks import TrainingCallback, TrainingCallbackAttributes
from nerfkit.errors import NerfkitError
from nerfkit.field_components.spatial_distortions import SceneContraction
from nerfkit.fields.density_fields import HashDensityField
from nerfkit.fields.nerfacto_field import NerfactoField
from nerfkit.kernels.volrend import render_weight_from_density
from nerfkit.model_components.losses import distortion_loss, interlevel_loss
from nerfkit.model_components.renderers import AccumulationRenderer, DepthRenderer, RGBRenderer
from nerfkit.models.base_model import Model
from nerfkit.models.single_pass import SinglePassOutputs


class NerfactoModel(SinglePassOutputs, Model):
    """Proposal sampling feeds a batched field evaluation; rendered as single-pass outputs plus nerfacto's losses."""

    config: NerfactoModelConfig

    def populate_modules(self) -> None:
        config = self.config
        if self.near_plane is None or self.far_plane is None:
            raise NerfkitError(
                "nerfacto needs a near and a far plane",
                hint="set --pipeline.model.near-plane and --pipeline.model.far-plane",
            )
        norm = None if config.scene_contraction == "off" else config.scene_contraction
        contraction = SceneContraction(self.scene_box.aabb, norm)
        self.field = NerfactoField(
            contraction,
            self.num_train_data,
            self.backends,
            config,
            hidden_dim=config.hidden_dim,
            hidden_dim_color=config.hidden_dim_color,
            num_layers_color=config.num_layers_color,
            appearance_embed_dim=config.appearance_embed_dim,
            use_average_appearance_embedding=config.use_average_appearance_embedding,
            average_init_density=config.average_init_density,
        )
        self.proposal_networks = nn.ModuleList(
            HashDensityField(
                contraction,
                self.backends,
                config.proposal_grid(max_resolution),
                hidden_dim=config.proposal_hidden_dim,
                average_init_density=config.average_init_density,
            )
            for max_resolution in config.proposal_max_resolutions
        )
        context = self.component_context()
        self.proposal_sampler = config.sampler.setup(context)
        self.collider = config.collider.setup(context)
        self.camera_optimizer = config.camera_optimizer.setup(num_cameras=self.num_train_data)
        self.renderer_rgb = RGBRenderer(config.background_color.setup())
        self.renderer_depth = DepthRenderer()
        self.renderer_accumulation = AccumulationRenderer()

    def get_param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {
            "proposal_networks": list(self.proposal_networks.parameters()),
            "fields": list(self.field.parameters()),
        } | self.camera_optimizer.get_param_groups()

    def get_training_callbacks(self, attributes: TrainingCallbackAttributes) -> list[TrainingCallback]:
        return [self.proposal_sampler.training_callback()]

    def query_density(self, positions: Float[Tensor, "num_points 3"]) -> Float[Tensor, "num_points 1"]:
        return self.field.density(positions)[0]

    def query_colour(
        self, positions: Float[Tensor, "num_points 3"], directions: Float[Tensor, "num_points 3"]
    ) -> Float[Tensor, "num_points 3"]:
        return self.field(positions, directions)[1]

    def get_outputs(self, ray_bundle: RayBundle) -> dict[str, Tensor]:
        # Poses are refined for training cameras only; eval cameras are other cameras and keep their poses.
        if self.training:
            ray_bundle = self.camera_optimizer.apply_to_rays(ray_bundle)
        ray_bundle = self.collider(ray_bundle)
        density_fns = [self.field_query(network.density) for network in self.proposal_networks]
        samples = self.proposal_sampler(ray_bundle, density_fns)
        ray_samples = samples.ray_samples
        num_rays, num_samples = ray_samples.starts.shape[:2]
        # A ray's samples share its direction and, in training, its image's appearance (eval images were never
        # trained on): the field takes them per ray.
        image_indices = ray_bundle.camera_indices if self.training else None
        density, rgb = self.field_query(self.field)(
            ray_samples.positions, ray_samples.directions[:, None, :], image_indices
        )
        weights, _, _ = render_weight_from_density(
            ray_samples.starts[..., 0],
            ray_samples.ends[..., 0],
            density[..., 0],
            backend=self.backends.volume_rendering,
        )
        composited, background = self.renderer_rgb(rgb, weights[..., None])
        outputs = {
            "rgb": composited,
            "depth": self.renderer_depth(weights[..., None], ray_samples),
            "accumulation": self.renderer_accumulation(weights[..., None]),
            "background": background,
            "num_samples_per_batch": torch.tensor(num_rays * num_samples),
        }
        if self.training:
            # Per ray, for get_loss_dict: the proposal loss summed over levels, and the distortion of the weights.
            outputs["interlevel"] = sum(
                interlevel_loss(samples.spacing_bins, weights, bins, proposal_weights).mean(dim=-1)
                for bins, proposal_weights in zip(samples.proposal_spacing_bins, samples.proposal_weights, strict=True)
            )
            outputs["distortion"] = distortion_loss(samples.spacing_bins, weights)
        return outputs

    def get_metrics_dict(self, outputs: dict[str, Tensor], batch: dict[str, Tensor]) -> dict[str, Tensor]:
        return super().get_metrics_dict(outputs, batch) | self.camera_optimizer.get_metrics_dict()

    def get_loss_dict(
        self, outputs: dict[str, Tensor], batch: dict[str, Tensor], metrics_dict: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        loss_dict = super().get_loss_dict(outputs, batch, metrics_dict)
        if "interlevel" in outputs:
            loss_dict["interlevel_loss"] = self.config.interlevel_loss_mult * outputs["interlevel"].mean()
            loss_dict["distortion_loss"] = self.config.distortion_loss_mult * outputs["distortion"].mean()
        if self.training:
            loss_dict |= self.camera_optimizer.get_loss_dict()
        return loss_dict
