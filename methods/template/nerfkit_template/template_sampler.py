"""The template's own ray sampler, offered as the choice `log` to every model with a sampler.

Its config, `LogSamplerConfig` in `template_config.py`, is registered with `@register_component("log")`; the
`nerfkit.components` entry point in this package's pyproject makes nerfkit import that module when it gathers the
choices, so `kit-train vanilla-nerf pipeline.model.coarse-sampler:log` works once the package is installed, with no
change to nerfkit.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.cameras.rays import RayBundle, RaySamples
from nerfkit.model_components.ray_samplers import uniform_bins


def log_spaced_bins(
    nears: Float[Tensor, "num_rays 1"], fars: Float[Tensor, "num_rays 1"], num_samples: int, stratified: bool
) -> Float[Tensor, "num_rays num_samples_plus_1"]:
    """Edges of `num_samples` intervals of equal length in log distance: each is the same fraction longer than the
    one before, so a pixel's footprint (which grows with distance) gets about as many samples at any depth."""
    return torch.exp(uniform_bins(torch.log(nears), torch.log(fars), num_samples, stratified))


class LogSampler(nn.Module):
    """Samples evenly spaced in log distance between each ray's near and far."""

    def __init__(self, num_samples: int, train_stratified: bool) -> None:
        super().__init__()
        self.num_samples = num_samples
        self.train_stratified = train_stratified

    def forward(self, ray_bundle: RayBundle) -> RaySamples:
        if ray_bundle.nears is None or ray_bundle.fars is None:
            raise ValueError("LogSampler needs ray_bundle.nears and .fars; run a collider first")
        stratified = self.training and self.train_stratified
        return RaySamples.from_bins(
            ray_bundle, log_spaced_bins(ray_bundle.nears, ray_bundle.fars, self.num_samples, stratified)
        )
