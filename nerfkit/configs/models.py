"""Model configs: the settings every model shares, and those of nerfkit's models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from nerfkit.configs.base_config import InstantiateConfig, Target
from nerfkit.configs.cameras import CameraOptimizerConfig
from nerfkit.configs.fields import (
    DirectionEncodingChoice,
    FrequencyEncodingConfig,
    HashFieldConfig,
    HashGridConfig,
    Log2HashmapSize,
    PositionEncodingChoice,
)
from nerfkit.configs.model_components import (
    BackgroundChoice,
    ColliderChoice,
    InitialSamplerConfig,
    NearFarColliderConfig,
    OccupancySamplerConfig,
    PackedBackgroundChoice,
    PDFSamplerConfig,
    ProposalSamplerConfig,
    RandomBackgroundConfig,
    RaySamplerConfig,
    UniformSamplerConfig,
    WhiteBackgroundConfig,
)
from nerfkit.configs.ranges import Count, NonNegative, NonNegativeInt, Positive, ranged
from nerfkit.errors import NerfkitError
from nerfkit.plugins.components import check_components, component_choice

Plane = ranged(float | None, min=0)
"""A near or far plane: a distance along the ray, or None for the dataset's."""


@dataclass
class ModelConfig(InstantiateConfig):
    """Settings every model shares."""

    _target: Target = "nerfkit.models.base_model:Model"
    eval_num_rays_per_chunk: Count = 4096
    """Rays rendered at once when rendering a whole image; bounds memory whatever the image size."""
    near_plane: Plane = None
    """Where sampling starts along each ray; None takes the dataset's."""
    far_plane: Plane = None
    """Where sampling ends along each ray; None takes the dataset's."""

    def check_components(self, where: str = "model") -> None:
        """Raises a NerfkitError naming the field (`where` is the model's place in the config tree) if a chosen
        component cannot work in this model. kit-train runs it once, before any process starts or data is loaded;
        building a model runs it again for code that builds one directly. Each component field declares what fits
        it; a model adds checks that involve several fields."""
        check_components(self, where)


OccupancySamplerChoice = component_choice(
    RaySamplerConfig,
    fits=lambda cls: issubclass(cls, OccupancySamplerConfig),
    why="this model renders packed samples marched through its occupancy grid",
)
"""The sampler of a model that renders packed samples: an occupancy grid."""


CoarseSamplerChoice = component_choice(
    RaySamplerConfig,
    fits=lambda cls: issubclass(cls, InitialSamplerConfig),
    why="the coarse pass needs a sampler that works from the rays alone",
)
"""NeRF's coarse sampler: one that needs nothing but the rays (no previous pass, no grid)."""


FineSamplerChoice = component_choice(
    RaySamplerConfig,
    fits=lambda cls: issubclass(cls, (InitialSamplerConfig, PDFSamplerConfig)),
    why="the fine pass resamples the coarse pass's rays (or samples them afresh)",
)
"""NeRF's fine sampler: importance samples from the coarse pass's weights, or fresh samples of the rays."""


@dataclass
class NeRFFieldModelConfig(ModelConfig):
    """Settings of the models built on NeRF's field."""

    position_encoding: PositionEncodingChoice = field(
        default_factory=lambda: FrequencyEncodingConfig(num_frequencies=10)
    )
    """Encoding of sample positions (NeRF: 10 octaves of sines and cosines)."""
    direction_encoding: DirectionEncodingChoice = field(
        default_factory=lambda: FrequencyEncodingConfig(num_frequencies=4)
    )
    """Encoding of view directions (NeRF: 4 octaves)."""
    base_mlp_num_layers: Count = 8
    """Layers of each field's MLP from position to density and features."""
    base_mlp_layer_width: Count = 256
    """Width of the base MLP's layers."""
    head_mlp_layer_width: Count = 128
    """Width of the hidden layer from features and view direction to colour."""
    skip_connections: ranged(tuple[int, ...], min=0) = (4,)
    """Base MLP layers whose input gets the encoded position again."""
    background_color: BackgroundChoice = field(default_factory=WhiteBackgroundConfig)
    """What each ray sees behind the scene."""


@dataclass
class VanillaModelConfig(NeRFFieldModelConfig):
    """Settings of the original NeRF model: two fields, each with its own sampler."""

    _target: Target = "nerfkit.models.vanilla_nerf:NeRFModel"
    collider: ColliderChoice = field(default_factory=NearFarColliderConfig)
    """Which stretch of each ray is sampled."""
    coarse_sampler: CoarseSamplerChoice = field(default_factory=lambda: UniformSamplerConfig(num_samples=64))
    """Samples for the coarse field: a sampler that needs only the rays."""
    fine_sampler: FineSamplerChoice = field(default_factory=lambda: PDFSamplerConfig(num_samples=128))
    """Samples for the fine field, drawn from the coarse field's weights."""


@dataclass
class VanillaOccupancyModelConfig(NeRFFieldModelConfig):
    """vanilla-nerf's field with occupancy-grid sampling instead of coarse + importance sampling."""

    _target: Target = "nerfkit.models.vanilla_nerf_occupancy:NeRFOccupancyModel"
    background_color: PackedBackgroundChoice = field(default_factory=WhiteBackgroundConfig)
    """What each ray sees behind the scene (not last-sample: packed samples have no last sample per ray)."""
    sampler: OccupancySamplerChoice = field(default_factory=OccupancySamplerConfig)
    """Where rays are sampled: this model needs the occupancy grid."""


@dataclass
class InstantNGPModelConfig(HashFieldConfig, ModelConfig):
    """Settings of the Instant-NGP model for bounded scenes; its field's sizes are HashFieldConfig's fields."""

    _target: Target = "nerfkit.models.instant_ngp:NGPModel"
    sampler: OccupancySamplerChoice = field(default_factory=OccupancySamplerConfig)
    """Where rays are sampled: this model needs the occupancy grid."""
    background_color: PackedBackgroundChoice = field(default_factory=RandomBackgroundConfig)
    """What each ray sees behind the scene (not last-sample: packed samples have no last sample per ray)."""


ProposalSamplerChoice = component_choice(
    RaySamplerConfig,
    fits=lambda cls: issubclass(cls, ProposalSamplerConfig),
    why="nerfacto's proposal networks are trained through the proposal sampler's weights",
)
"""nerfacto's sampler: proposal sampling, whose weights train the proposal networks."""


@dataclass
class NerfactoModelConfig(HashFieldConfig, ModelConfig):
    """Settings of nerfacto; the defaults are Nerfstudio's. The field's sizes are HashFieldConfig's fields."""

    _target: Target = "nerfkit.models.nerfacto:NerfactoModel"
    near_plane: Plane = 0.05
    """Where sampling starts along each ray (None takes the dataset's); close, as cameras may sit inside the scene."""
    far_plane: Plane = 1000.0
    """Where sampling ends along each ray (None takes the dataset's); far, as contraction makes space finite."""
    background_color: BackgroundChoice = field(default_factory=RandomBackgroundConfig)
    """What each ray sees behind the scene; random (per ray, in training) teaches transparent pixels to stay empty."""
    collider: ColliderChoice = field(default_factory=NearFarColliderConfig)
    """Which stretch of each ray is sampled."""
    sampler: ProposalSamplerChoice = field(default_factory=ProposalSamplerConfig)
    """Where the field is evaluated: nerfacto needs the proposal sampler, whose weights train its proposal networks."""
    scene_contraction: Literal["l-inf", "l2", "off"] = "l-inf"
    """Contraction of space outside the scene box (off: nothing exists outside the box)."""
    num_layers_color: Count = 3
    """Linear layers of the colour MLP."""
    appearance_embed_dim: NonNegativeInt = 32
    """Width of the per-image appearance embedding (0: none)."""
    use_average_appearance_embedding: bool = True
    """Render unseen (eval) images with the mean appearance embedding; else with zeros."""
    average_init_density: Positive = 0.01
    """Scale of every density: small keeps a fresh model see-through, so early gradients reach the whole ray."""
    proposal_max_resolutions: ranged(tuple[int, ...], min=1) = (128, 256)
    """Finest hash-grid resolution of each proposal network (one per proposal level)."""
    proposal_num_levels: Count = 5
    """Hash-grid levels of each proposal network."""
    proposal_log2_hashmap_size: Log2HashmapSize = 17
    """log2 of the entries per level of each proposal network's hash grid."""
    proposal_hidden_dim: Count = 16
    """Width of each proposal network's hidden layer."""
    interlevel_loss_mult: NonNegative = 1.0
    """Weight of the proposal (interlevel) loss."""
    distortion_loss_mult: NonNegative = 0.002
    """Weight of the distortion loss."""
    camera_optimizer: CameraOptimizerConfig = field(default_factory=CameraOptimizerConfig)
    """Pose refinement of the training cameras."""

    def proposal_grid(self, max_resolution: int) -> HashGridConfig:
        """The grid of the proposal network whose finest resolution is `max_resolution`."""
        return HashGridConfig(
            num_levels=self.proposal_num_levels,
            log2_hashmap_size=self.proposal_log2_hashmap_size,
            max_resolution=max_resolution,
        )

    def check_components(self, where: str = "model") -> None:
        super().check_components(where)
        num_levels = len(self.sampler.num_proposal_samples_per_ray)
        if len(self.proposal_max_resolutions) != num_levels:
            raise NerfkitError(
                f"{where}: {num_levels} proposal levels (sampler.num-proposal-samples-per-ray) but "
                f"{len(self.proposal_max_resolutions)} proposal-max-resolutions",
                hint="give one proposal max resolution per proposal level",
            )
