"""What each ray sees behind the scene: a replaceable component, chosen per model in its config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.configs.base_config import InstantiateConfig
from nerfkit.plugins.components import component_choice, register_component


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
        return ConstantBackground((1.0, 1.0, 1.0))


@register_component("black")
@dataclass
class BlackBackgroundConfig(BackgroundConfig):
    """Black behind the scene."""

    def setup(self) -> Background:
        return ConstantBackground((0.0, 0.0, 0.0))


@register_component("random")
@dataclass
class RandomBackgroundConfig(BackgroundConfig):
    """A random colour per ray in training (white in eval): teaches transparent pixels to stay empty."""

    def setup(self) -> Background:
        return RandomBackground()


@register_component("last-sample")
@dataclass
class LastSampleBackgroundConfig(BackgroundConfig):
    """The colour of each ray's last sample: the model learns the background itself."""

    needs_last_sample = True

    def setup(self) -> Background:
        return LastSampleBackground()


BackgroundChoice = component_choice(BackgroundConfig)
"""A config field that holds any registered background."""
PackedBackgroundChoice = component_choice(
    BackgroundConfig,
    fits=lambda cls: not cls.needs_last_sample,
    why="this model renders packed samples, so a ray has no last sample to take the colour from",
)
"""The background of a model that renders packed samples: any but those taken from each ray's last sample."""
