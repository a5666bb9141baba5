"""Proposal sampling (Mip-NeRF 360, as in Nerfstudio's nerfacto): small density networks find where each ray's
content is, and the field is evaluated only there.

Samples live in a normalised "spacing" s in [0, 1] along each ray, not in distance: the first level spreads them
evenly in s, and each later level redraws them from the previous level's weights by inverse transform sampling in s.
The spacings themselves (lin-disp for unbounded scenes) are in `spacing.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.cameras.rays import RayBundle, RaySamples
from nerfkit.configs.model_components import InitialSpacing
from nerfkit.engine.callbacks import TrainingCallback, TrainingCallbackLocation
from nerfkit.kernels.backends import Backend
from nerfkit.kernels.volrend import render_weight_from_density
from nerfkit.model_components.occupancy_sampling import DensityFn
from nerfkit.model_components.ray_samplers import inverse_transform_sample, uniform_bins
from nerfkit.model_components.spacing import spacing_to_distance


def resample_bins(
    bins: Float[Tensor, "num_rays num_bins_plus_1"],
    weights: Float[Tensor, "num_rays num_bins"],
    num_samples: int,
    stratified: bool,
    histogram_padding: float,
) -> Float[Tensor, "num_rays num_samples_plus_1"]:
    """`num_samples` intervals tiling the same stretch, drawn in proportion to the (padded) weights; the padding keeps
    a few samples in bins that look empty and makes an all-zero ray sample evenly."""
    zeros, ones = torch.zeros_like(bins[:, :1]), torch.ones_like(bins[:, :1])
    quantiles = uniform_bins(zeros, ones, num_samples, stratified)
    return inverse_transform_sample(bins.detach(), weights.detach() + histogram_padding, quantiles)


def anneal_exponent(step: int, slope: float, max_num_iters: int) -> float:
    """Exponent applied to proposal weights before resampling: 0 at step 0 (sample evenly while the proposals know
    nothing), rising quickly for a large `slope` and reaching 1 at `max_num_iters`."""
    if max_num_iters <= 0:
        return 1.0
    progress = min(step / max_num_iters, 1.0)
    return slope * progress / ((slope - 1) * progress + 1)


def proposals_update(step: int, update_every: int, warmup: int) -> bool:
    """Whether the proposal networks get gradients at `step` (their forward pass is cheap, their backward pass not).

    Nerfstudio's schedule: always in the first 10 steps, then once more than s steps have passed since the last update,
    with s rising linearly from 1 to `update_every` over `warmup` steps. As a function of the step alone (so a resumed
    run updates on the same steps), that is every (floor(s) + 1)-th step.
    """
    threshold = min(max(update_every * step / warmup if warmup > 0 else update_every, 1), update_every)
    return step < 10 or step % (int(threshold) + 1) == 0


@dataclass
class ProposalSamples:
    """The samples for the field, and each proposal level's intervals and weights for the losses."""

    ray_samples: RaySamples
    """Final intervals, in distance along each ray."""
    spacing_bins: Float[Tensor, "num_rays num_samples_plus_1"]
    """The same intervals' edges in normalised spacing."""
    proposal_spacing_bins: list[Float[Tensor, "num_rays num_proposal_plus_1"]]
    """Edges, in normalised spacing, of each proposal level's intervals."""
    proposal_weights: list[Float[Tensor, "num_rays num_proposal"]]
    """Rendering weights of each proposal level's intervals (with gradients on update steps)."""


class ProposalNetworkSampler(nn.Module):
    """One level of samples per proposal network, then the field's samples drawn from the last level's weights.

    The training step (set by its callback before each iteration) drives the weight annealing and which steps the
    proposal networks are evaluated with gradients; both are pure functions of the step, so resumed runs match. The
    annealing exponent is a buffer, so a loaded checkpoint renders as the run did at its last step (a sampler never
    trained follows the weights fully). Positions reaching the proposal networks are detached: their only teacher is
    the interlevel loss.
    """

    def __init__(
        self,
        num_proposal_samples_per_ray: Sequence[int],
        num_nerf_samples_per_ray: int,
        initial_spacing: InitialSpacing,
        switch_distance: float,
        weights_anneal_slope: float,
        weights_anneal_max_num_iters: int,
        update_every: int,
        update_warmup: int,
        backend: Backend = "torch",
        histogram_padding: float = 0.01,
    ) -> None:
        super().__init__()
        self.num_proposal_samples_per_ray = tuple(num_proposal_samples_per_ray)
        self.num_nerf_samples_per_ray = num_nerf_samples_per_ray
        self.initial_spacing = initial_spacing
        self.switch_distance = switch_distance
        self.weights_anneal_slope = weights_anneal_slope
        self.weights_anneal_max_num_iters = weights_anneal_max_num_iters
        self.update_every = update_every
        self.update_warmup = update_warmup
        self.backend = backend
        self.histogram_padding = histogram_padding
        self.register_buffer("weights_exponent", torch.tensor(1.0))
        self.update_proposals = True

    def set_step(self, step: int) -> None:
        self.weights_exponent.fill_(anneal_exponent(step, self.weights_anneal_slope, self.weights_anneal_max_num_iters))
        self.update_proposals = proposals_update(step, self.update_every, self.update_warmup)

    def training_callback(self) -> TrainingCallback:
        return TrainingCallback([TrainingCallbackLocation.BEFORE_TRAIN_ITERATION], self.set_step)

    def _ray_samples(self, ray_bundle: RayBundle, spacing_bins: Tensor) -> RaySamples:
        distances = spacing_to_distance(
            spacing_bins, ray_bundle.nears, ray_bundle.fars, self.initial_spacing, self.switch_distance
        )
        return RaySamples.from_bins(ray_bundle, distances)

    def _resample(self, spacing_bins: Tensor, weights: Tensor, exponent: float, num_samples: int) -> Tensor:
        annealed = weights.detach() if exponent == 1.0 else weights.detach() ** exponent
        return resample_bins(spacing_bins, annealed, num_samples, self.training, self.histogram_padding)

    def forward(self, ray_bundle: RayBundle, density_fns: Sequence[DensityFn]) -> ProposalSamples:
        if ray_bundle.nears is None or ray_bundle.fars is None:
            raise ValueError("ProposalNetworkSampler needs ray_bundle.nears and .fars; run a collider first")
        exponent = float(self.weights_exponent)
        with_gradients = torch.is_grad_enabled() and self.update_proposals
        detached = replace(ray_bundle, origins=ray_bundle.origins.detach(), directions=ray_bundle.directions.detach())
        num_rays = len(ray_bundle)
        zeros = torch.zeros_like(ray_bundle.nears)
        spacing_bins = uniform_bins(zeros, torch.ones_like(zeros), self.num_proposal_samples_per_ray[0], self.training)
        all_bins: list[Tensor] = []
        all_weights: list[Tensor] = []
        levels = zip(density_fns, self.num_proposal_samples_per_ray, strict=True)
        for level, (density_fn, num_samples) in enumerate(levels):
            if level > 0:
                spacing_bins = self._resample(spacing_bins, all_weights[-1], exponent, num_samples)
            ray_samples = self._ray_samples(detached, spacing_bins)
            with torch.set_grad_enabled(with_gradients):
                density = density_fn(ray_samples.positions.reshape(-1, 3)).reshape(num_rays, num_samples)
                weights, _, _ = render_weight_from_density(
                    ray_samples.starts[..., 0], ray_samples.ends[..., 0], density, backend=self.backend
                )
            all_bins.append(spacing_bins)
            all_weights.append(weights)
        spacing_bins = self._resample(spacing_bins, all_weights[-1], exponent, self.num_nerf_samples_per_ray)
        return ProposalSamples(self._ray_samples(ray_bundle, spacing_bins), spacing_bins, all_bins, all_weights)
