"""Model-component configs: the replaceable ray samplers, colliders and backgrounds a model is assembled from.

Each `setup` imports what it builds, so this module loads without torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Literal

from nerfkit.configs.base_config import InstantiateConfig
from nerfkit.configs.ranges import Count, Fraction, NonNegative, NonNegativeInt, ranged
from nerfkit.plugins.components import component_choice, register_component

if TYPE_CHECKING:
    from torch import nn

    from nerfkit.model_components.backgrounds import Background
    from nerfkit.model_components.component_context import ComponentContext
    from nerfkit.model_components.occupancy_sampling import OccupancySampler
    from nerfkit.model_components.proposal_sampler import ProposalNetworkSampler
    from nerfkit.model_components.ray_samplers import PDFSampler, UniformSampler


InitialSpacing = Literal["lin-disp", "uniform"]
"""How the first level spreads samples: linear then in disparity (unbounded scenes), or evenly in distance."""


@dataclass
class RaySamplerConfig(InstantiateConfig):
    """Where along each ray a model evaluates its field; `setup(context)` builds the sampler."""

    def setup(self, context: ComponentContext) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must say how its sampler is built")


@dataclass
class InitialSamplerConfig(RaySamplerConfig):
    """A sampler that needs nothing but the rays, so it can make a model's first pass."""

    num_samples: Count = 64
    """Samples per ray."""
    train_stratified: bool = True
    """Jitter the samples in training, so the field sees every depth."""


@register_component("uniform")
@dataclass
class UniformSamplerConfig(InitialSamplerConfig):
    """Evenly spaced in distance between the near and far planes (NeRF's coarse samples)."""

    def setup(self, context: ComponentContext) -> UniformSampler:
        from nerfkit.model_components.ray_samplers import UniformSampler

        return UniformSampler(self.num_samples, self.train_stratified)


@register_component("lin-disp")
@dataclass
class LinDispSamplerConfig(InitialSamplerConfig):
    """Evenly spaced in distance up to a switch distance, then in disparity: dense near, sparse far."""

    switch_distance: ranged(float | None, above=0) = None
    """Distance where the spacing turns from linear to disparity (None: half the scene box's largest side)."""

    def setup(self, context: ComponentContext) -> UniformSampler:
        from nerfkit.model_components.ray_samplers import UniformSampler

        switch_distance = self.switch_distance or float(context.scene_box.size.max()) / 2
        return UniformSampler(self.num_samples, self.train_stratified, "lin-disp", switch_distance)


@register_component("pdf")
@dataclass
class PDFSamplerConfig(RaySamplerConfig):
    """Importance samples drawn from a previous pass's weights (NeRF's fine samples)."""

    num_samples: Count = 128
    """New samples per ray."""
    train_stratified: bool = True
    """Jitter the draws in training."""
    include_original: bool = True
    """Keep the previous pass's samples too (NeRF: 64 + 128 = 192 for the fine field)."""
    histogram_padding: NonNegative = 0.01
    """Weight added to every previous bin, so bins that look empty still get a few samples."""

    def setup(self, context: ComponentContext) -> PDFSampler:
        from nerfkit.model_components.ray_samplers import PDFSampler

        return PDFSampler(self.num_samples, self.train_stratified, self.include_original, self.histogram_padding)


@register_component("occupancy-grid")
@dataclass
class OccupancySamplerConfig(RaySamplerConfig):
    """Where rays are sampled: only in cells an occupancy grid marks as holding content."""

    grid_resolution: Count = 128
    """Cells per side of the occupancy grid."""
    grid_levels: Count = 1
    """Cascades of the occupancy grid (1 for scenes inside the box)."""
    update_every: Count = 16
    """Re-estimate the grid every this many steps."""
    warmup_steps: NonNegativeInt = 256
    """Steps during which every cell is re-estimated, before switching to sampled cells."""
    occupancy_threshold: NonNegative = 0.01
    """Opacity over one render step above which a cell counts as occupied."""
    render_step_size: ranged(float | None, above=0) = None
    """Distance between samples along a ray (None: the scene box's diagonal / 1024)."""
    alpha_thre: Fraction = 0.0
    """Skip samples less opaque than this (0 in a box: early on every sample is faint and all would be culled)."""
    early_stop_eps: Fraction = 1e-4
    """Marching along a ray stops once its transmittance falls below this."""
    cone_angle: NonNegative = 0.0
    """Step growth with distance (0: uniform steps, right for scenes inside the box)."""

    def setup(self, context: ComponentContext) -> OccupancySampler:
        from nerfkit.model_components.occupancy_sampling import OccupancySampler

        return OccupancySampler(
            self, context.scene_box, context.near_plane, context.far_plane, context.backends.occupancy_grid
        )


@register_component("proposal")
@dataclass
class ProposalSamplerConfig(RaySamplerConfig):
    """Proposal-network sampling (Mip-NeRF 360, nerfacto): levels of samples from small density networks' weights."""

    initial_sampler: InitialSpacing = "lin-disp"
    """First level's spacing: linear up to the scene box's half-size, then in disparity; or uniform in distance."""
    num_proposal_samples_per_ray: ranged(tuple[int, ...], min=1) = (256, 96)
    """Samples per ray evaluated by each proposal network, in order."""
    num_nerf_samples_per_ray: Count = 48
    """Samples per ray evaluated by the field."""
    weights_anneal_slope: NonNegative = 10.0
    """How fast resampling goes from even (exponent 0 on the proposal weights) to following them (exponent 1)."""
    weights_anneal_max_num_iters: Count = 1000
    """Step at which the proposal weights are followed fully."""
    update_every: Count = 5
    """After the warm-up, proposal networks get gradients once more than this many steps passed since they last did."""
    warmup: NonNegativeInt = 5000
    """Steps over which that gap grows from 1 to update-every (Nerfstudio's schedule)."""

    def setup(self, context: ComponentContext) -> ProposalNetworkSampler:
        from nerfkit.model_components.proposal_sampler import ProposalNetworkSampler

        return ProposalNetworkSampler(
            self.num_proposal_samples_per_ray,
            self.num_nerf_samples_per_ray,
            initial_spacing=self.initial_sampler,
            switch_distance=float(context.scene_box.size.max()) / 2,
            weights_anneal_slope=self.weights_anneal_slope,
            weights_anneal_max_num_iters=self.weights_anneal_max_num_iters,
            update_every=self.update_every,
            update_warmup=self.warmup,
            backend=context.backends.volume_rendering,
        )


@dataclass
class ColliderConfig(InstantiateConfig):
    """Decides each ray's interval worth sampling; `setup(context)` builds the collider."""

    def setup(self, context: ComponentContext) -> nn.Module:
        raise NotImplementedError(f"{type(self).__name__} must say how its collider is built")


@register_component("near-far")
@dataclass
class NearFarColliderConfig(ColliderConfig):
    """The model's near and far planes for every ray (NeRF's Blender setting)."""

    def setup(self, context: ComponentContext) -> nn.Module:
        from nerfkit.model_components.colliders import NearFarCollider

        return NearFarCollider(context.near_plane, context.far_plane)


@register_component("aabb")
@dataclass
class AABBColliderConfig(ColliderConfig):
    """Where each ray crosses the scene box, within the near and far planes: samples only inside the box."""

    def setup(self, context: ComponentContext) -> nn.Module:
        from nerfkit.model_components.colliders import AABBCollider

        return AABBCollider(context.scene_box, context.near_plane, context.far_plane)


ColliderChoice = component_choice(ColliderConfig)
"""A config field that holds any registered collider."""


@dataclass
class BackgroundConfig(InstantiateConfig):
    """What each ray sees behind the scene; `setup()` builds the background."""

    needs_last_sample: ClassVar[bool] = False
    """Whether the colour comes from each ray's last sample, which models rendering packed samples do not have."""

    def setup(self) -> Background:
        raise NotImplementedError(f"{type(self).__name__} must say how its background is built")


@register_component("white")
@dataclass
class WhiteBackgroundConfig(BackgroundConfig):
    """White behind the scene (the NeRF-synthetic convention)."""

    def setup(self) -> Background:
        from nerfkit.model_components.backgrounds import ConstantBackground

        return ConstantBackground((1.0, 1.0, 1.0))


@register_component("black")
@dataclass
class BlackBackgroundConfig(BackgroundConfig):
    """Black behind the scene."""

    def setup(self) -> Background:
        from nerfkit.model_components.backgrounds import ConstantBackground

        return ConstantBackground((0.0, 0.0, 0.0))


@register_component("random")
@dataclass
class RandomBackgroundConfig(BackgroundConfig):
    """A random colour per ray in training (white in eval): teaches transparent pixels to stay empty."""

    def setup(self) -> Background:
        from nerfkit.model_components.backgrounds import RandomBackground

        return RandomBackground()


@register_component("last-sample")
@dataclass
class LastSampleBackgroundConfig(BackgroundConfig):
    """The colour of each ray's last sample: the model learns the background itself."""

    needs_last_sample = True

    def setup(self) -> Background:
        from nerfkit.model_components.backgrounds import LastSampleBackground

        return LastSampleBackground()


BackgroundChoice = component_choice(BackgroundConfig)
"""A config field that holds any registered background."""


PackedBackgroundChoice = component_choice(
    BackgroundConfig,
    fits=lambda cls: not cls.needs_last_sample,
    why="this model renders packed samples, so a ray has no last sample to take the colour from",
)
"""The background of a model that renders packed samples: any but those taken from each ray's last sample."""
