"""Where along each ray to evaluate the field: evenly at first, then where the previous pass found content.

The samples always tile the ray's [near, far] interval exactly, so the rendered accumulation is the opacity of the
whole interval.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.cameras.rays import RayBundle, RaySamples
from nerfkit.configs.model_components import InitialSpacing
from nerfkit.model_components.spacing import spacing_to_distance


def stratified_offsets(
    num_rays: int, count: int, stratified: bool, device: torch.device | str
) -> Float[Tensor, "num_rays count"]:
    """Where in its stratum each of `count` draws falls: uniformly at random when stratified, else the middle."""
    if stratified:
        return torch.rand(num_rays, count, device=device)
    return torch.full((num_rays, count), 0.5, device=device)


def uniform_bins(
    nears: Float[Tensor, "num_rays 1"], fars: Float[Tensor, "num_rays 1"], num_samples: int, stratified: bool
) -> Float[Tensor, "num_rays num_samples_plus_1"]:
    """Edges of `num_samples` equal intervals over [near, far]; stratified, each inner edge moves up to half an
    interval either way, so every interval's midpoint still lies in its own equal interval and the ends stay put."""
    offsets = stratified_offsets(nears.shape[0], num_samples - 1, stratified, nears.device)
    inner = (torch.arange(1, num_samples, device=nears.device) - 0.5 + offsets) / num_samples
    zeros, ones = torch.zeros_like(nears), torch.ones_like(nears)
    fractions = torch.cat([zeros, inner, ones], dim=-1)
    return torch.lerp(nears, fars, fractions)


def inverse_transform_sample(
    bins: Float[Tensor, "num_rays num_bins_plus_1"],
    weights: Float[Tensor, "num_rays num_bins"],
    quantiles: Float[Tensor, "num_rays num_new"],
) -> Float[Tensor, "num_rays num_new"]:
    """Positions at which the CDF of the piecewise-constant density given by positive `weights` over `bins`
    reaches `quantiles` (in [0, 1]); sorted quantiles give sorted positions."""
    pdf = weights / weights.sum(dim=-1, keepdim=True)
    cdf = torch.cat([torch.zeros_like(pdf[:, :1]), torch.cumsum(pdf[:, :-1], dim=-1), torch.ones_like(pdf[:, :1])], -1)
    num_bins = weights.shape[-1]
    above = torch.searchsorted(cdf, quantiles.contiguous(), right=True).clamp(1, num_bins)
    below = above - 1
    cdf_below, cdf_above = cdf.gather(-1, below), cdf.gather(-1, above)
    bin_below, bin_above = bins.gather(-1, below), bins.gather(-1, above)
    fraction = ((quantiles - cdf_below) / (cdf_above - cdf_below)).clamp(0.0, 1.0)
    return torch.lerp(bin_below, bin_above, fraction)


class UniformSampler(nn.Module):
    """Equal intervals between each ray's near and far, jittered in training so the field sees every depth.

    Equal in distance by default; with the lin-disp spacing, equal in that spacing (see `spacing.py`).
    """

    def __init__(
        self,
        num_samples: int,
        train_stratified: bool = True,
        spacing: InitialSpacing = "uniform",
        switch_distance: float = 1.0,
    ) -> None:
        super().__init__()
        self.num_samples = num_samples
        self.train_stratified = train_stratified
        self.spacing = spacing
        self.switch_distance = switch_distance

    def forward(self, ray_bundle: RayBundle) -> RaySamples:
        if ray_bundle.nears is None or ray_bundle.fars is None:
            raise ValueError("UniformSampler needs ray_bundle.nears and .fars; run a collider first")
        stratified = self.training and self.train_stratified
        if self.spacing == "uniform":
            bins = uniform_bins(ray_bundle.nears, ray_bundle.fars, self.num_samples, stratified)
        else:
            zeros = torch.zeros_like(ray_bundle.nears)
            fractions = uniform_bins(zeros, torch.ones_like(zeros), self.num_samples, stratified)
            bins = spacing_to_distance(fractions, ray_bundle.nears, ray_bundle.fars, self.spacing, self.switch_distance)
        return RaySamples.from_bins(ray_bundle, bins)


class PDFSampler(nn.Module):
    """Importance sampling: new interval edges drawn from the previous pass's weights by inverse transform.

    With `include_original`, the `num_samples` new edges join the previous edges, so the result has the previous
    samples plus `num_samples` (NeRF: 64 + 128 = 192); otherwise the result is `num_samples` new intervals between the
    ray's ends. The positions are detached: the field is trained through its outputs, not by moving where it is
    sampled.
    """

    def __init__(
        self,
        num_samples: int,
        train_stratified: bool = True,
        include_original: bool = True,
        histogram_padding: float = 0.01,
    ) -> None:
        super().__init__()
        if histogram_padding <= 0:
            raise ValueError(
                f"histogram_padding must be positive so every ray has a proper CDF, got {histogram_padding}"
            )
        self.num_samples = num_samples
        self.train_stratified = train_stratified
        self.include_original = include_original
        self.histogram_padding = histogram_padding

    def forward(
        self, ray_bundle: RayBundle, ray_samples: RaySamples, weights: Float[Tensor, "num_rays num_samples 1"]
    ) -> RaySamples:
        bins = ray_samples.bins.detach()
        # Padding keeps a few samples in bins that look empty and makes all-zero rays sample uniformly.
        padded = weights[..., 0].detach() + self.histogram_padding
        stratified = self.training and self.train_stratified
        if self.include_original:
            offsets = stratified_offsets(bins.shape[0], self.num_samples, stratified, bins.device)
            quantiles = (torch.arange(self.num_samples, device=bins.device) + offsets) / self.num_samples
            new_edges = inverse_transform_sample(bins, padded, quantiles)
            edges, _ = torch.sort(torch.cat([bins, new_edges], dim=-1), dim=-1)
        else:
            # The uniform sampler's edges in quantile space: ends exactly at near and far, uniform for flat weights.
            zeros, ones = torch.zeros_like(bins[:, :1]), torch.ones_like(bins[:, :1])
            edges = inverse_transform_sample(bins, padded, uniform_bins(zeros, ones, self.num_samples, stratified))
        return RaySamples.from_bins(ray_bundle, edges)
