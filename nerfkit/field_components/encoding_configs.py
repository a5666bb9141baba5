"""Encodings as replaceable parts: a field's position or direction encoding is chosen in its model's config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from jaxtyping import Float
from torch import Tensor

from nerfkit.configs.base_config import InstantiateConfig
from nerfkit.configs.ranges import Count, Finite, ranged
from nerfkit.data.scene_box import SceneBox
from nerfkit.field_components.encodings import MAX_SH_LEVELS, Encoding, NeRFEncoding, SHEncoding
from nerfkit.field_components.hash_grid import HashGridConfig
from nerfkit.kernels.hash_encoding import HashEncoding
from nerfkit.model_components.component_context import ComponentContext
from nerfkit.plugins.components import component_choice, register_component


class InSceneBox(Encoding):
    """Feeds an encoding of the unit cube with positions in the scene box; positions outside get the box's faces."""

    def __init__(self, encoding: Encoding | HashEncoding, scene_box: SceneBox) -> None:
        super().__init__(in_dim=3)
        self.encoding = encoding
        self.register_buffer("aabb", scene_box.aabb.clone(), persistent=False)

    def get_out_dim(self) -> int:
        return self.encoding.get_out_dim()

    def forward(self, in_tensor: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs out_dim"]:
        normalized = (in_tensor - self.aabb[0]) / (self.aabb[1] - self.aabb[0])
        return self.encoding(normalized.clamp(0.0, 1.0))


@dataclass
class EncodingConfig(InstantiateConfig):
    """Maps coordinates to features for a field's MLP; `setup(in_dim, context)` builds the encoding."""

    encodes_positions: ClassVar[bool] = True
    """Whether it suits points in the scene."""
    encodes_directions: ClassVar[bool] = True
    """Whether it suits unit view directions."""

    def setup(self, in_dim: int, context: ComponentContext) -> Encoding:
        raise NotImplementedError(f"{type(self).__name__} must say how its encoding is built")


@register_component("frequency")
@dataclass
class FrequencyEncodingConfig(EncodingConfig):
    """Sines and cosines at octave-spaced frequencies (NeRF's positional encoding)."""

    num_frequencies: Count = 10
    """Octaves (NeRF: 10 for positions, 4 for directions)."""
    min_freq_exp: Finite = 0.0
    """log2 of the lowest frequency."""
    max_freq_exp: ranged(float | None) = None
    """log2 of the highest frequency (None: num-frequencies - 1, one octave apart)."""
    include_input: bool = True
    """Pass the coordinates through alongside their sines and cosines."""

    def setup(self, in_dim: int, context: ComponentContext) -> Encoding:
        max_freq_exp = self.num_frequencies - 1 if self.max_freq_exp is None else self.max_freq_exp
        return NeRFEncoding(in_dim, self.num_frequencies, self.min_freq_exp, max_freq_exp, self.include_input)


@register_component("hash-grid")
@dataclass
class HashGridEncodingConfig(HashGridConfig, EncodingConfig):
    """Instant-NGP's multiresolution hash grid over the scene box: fast to train, for positions only."""

    encodes_directions = False

    def setup(self, in_dim: int, context: ComponentContext) -> Encoding:
        return InSceneBox(self.setup_grid(context.backends), context.scene_box)


@register_component("spherical-harmonics")
@dataclass
class SHEncodingConfig(EncodingConfig):
    """Real spherical harmonics of the view direction (Instant-NGP's direction encoding), for directions only."""

    encodes_positions = False
    levels: ranged(int, min=1, max=MAX_SH_LEVELS) = 4
    """Degrees used (levels^2 features)."""

    def setup(self, in_dim: int, context: ComponentContext) -> Encoding:
        return SHEncoding(self.levels, backend=context.backends.sh_encoding)


PositionEncodingChoice = component_choice(
    EncodingConfig, fits=lambda cls: cls.encodes_positions, why="it does not encode points in the scene"
)
"""A config field that holds any registered encoding of positions."""
DirectionEncodingChoice = component_choice(
    EncodingConfig, fits=lambda cls: cls.encodes_directions, why="it does not encode view directions"
)
"""A config field that holds any registered encoding of view directions."""
