"""What each ray sees behind the scene: a replaceable component, chosen per model in its config."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn


class Background(nn.Module):
    """One background colour per ray; follows the model's train/eval mode like any submodule."""

    def forward(
        self, num_rays: int, device: torch.device, sample_rgb: Float[Tensor, "num_rays num_samples 3"] | None = None
    ) -> Float[Tensor, "num_rays 3"]:
        raise NotImplementedError


class ConstantBackground(Background):
    def __init__(self, color: tuple[float, float, float]) -> None:
        super().__init__()
        self.color = color

    def forward(
        self, num_rays: int, device: torch.device, sample_rgb: Float[Tensor, "num_rays num_samples 3"] | None = None
    ) -> Float[Tensor, "num_rays 3"]:
        return torch.tensor(self.color, device=device).expand(num_rays, 3)


class RandomBackground(Background):
    """A random colour per ray in training, so the only way to match a transparent pixel is to be transparent;
    white in eval, so renders and metrics are deterministic."""

    def forward(
        self, num_rays: int, device: torch.device, sample_rgb: Float[Tensor, "num_rays num_samples 3"] | None = None
    ) -> Float[Tensor, "num_rays 3"]:
        if self.training:
            return torch.rand(num_rays, 3, device=device)
        return torch.ones(num_rays, 3, device=device)


class LastSampleBackground(Background):
    """The colour at each ray's far end: the model learns its own background (unbounded captures)."""

    def forward(
        self, num_rays: int, device: torch.device, sample_rgb: Float[Tensor, "num_rays num_samples 3"] | None = None
    ) -> Float[Tensor, "num_rays 3"]:
        if sample_rgb is None:
            raise ValueError("the last-sample background needs the colours of each ray's samples")
        return sample_rgb[:, -1, :]
