"""Field configs: the one description of a hash grid, and the replaceable encodings a field's position or direction
goes through. Each `setup` imports what it builds, so this module loads without torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from nerfkit.configs.base_config import InstantiateConfig, PrintableConfig
from nerfkit.configs.ranges import Count, Finite, ranged
from nerfkit.plugins.components import component_choice, register_component

if TYPE_CHECKING:
    from nerfkit.field_components.encodings import Encoding
    from nerfkit.kernels.backends import Backends
    from nerfkit.kernels.hash_encoding import HashEncoding
    from nerfkit.model_components.component_context import ComponentContext

MAX_SH_LEVELS = 5
"""Highest `levels` SHEncoding supports (degree 4, 25 features); instant-ngp uses 4."""


Log2HashmapSize = ranged(int, min=1, max=32)
"""log2 of a hash grid's entries per level; its hash indexes at most 2^32 entries."""


@dataclass
class HashGridConfig(PrintableConfig):
    """Sizes of an Instant-NGP hash grid (defaults: instant-ngp's). Every field and component with a grid builds it with
    `setup_grid`; model configs inherit these fields, so their flags and config-file keys keep Nerfstudio's flat
    spelling (`--pipeline.model.num-levels`)."""

    num_levels: Count = 16
    """Levels of the hash grid."""
    features_per_level: Count = 2
    """Features stored per hash-grid entry."""
    log2_hashmap_size: Log2HashmapSize = 19
    """log2 of the number of entries per hash-grid level."""
    base_resolution: Count = 16
    """Resolution of the coarsest hash-grid level."""
    max_resolution: Count = 2048
    """Resolution of the finest hash-grid level."""

    def setup_grid(self, backends: Backends) -> HashEncoding:
        """The grid over [0, 1]^3, on the hash-encoding backend the run resolved."""
        from nerfkit.kernels.hash_encoding import HashEncoding

        return HashEncoding(
            self.num_levels,
            self.features_per_level,
            self.log2_hashmap_size,
            self.base_resolution,
            self.max_resolution,
            backend=backends.hash_encoding,
        )


@dataclass
class HashFieldConfig(HashGridConfig):
    """Instant-NGP's field, which nerfacto keeps: a hash grid feeds a density MLP, whose features and the view direction
    feed a colour MLP. The grid's sizes and the two MLPs' widths."""

    hidden_dim: Count = 64
    """Width of the density MLP."""
    hidden_dim_color: Count = 64
    """Width of the colour MLP."""


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
        from nerfkit.field_components.encodings import NeRFEncoding

        max_freq_exp = self.num_frequencies - 1 if self.max_freq_exp is None else self.max_freq_exp
        return NeRFEncoding(in_dim, self.num_frequencies, self.min_freq_exp, max_freq_exp, self.include_input)


@register_component("hash-grid")
@dataclass
class HashGridEncodingConfig(HashGridConfig, EncodingConfig):
    """Instant-NGP's multiresolution hash grid over the scene box: fast to train, for positions only."""

    encodes_directions = False

    def setup(self, in_dim: int, context: ComponentContext) -> Encoding:
        from nerfkit.field_components.encodings import InSceneBox

        return InSceneBox(self.setup_grid(context.backends), context.scene_box)


@register_component("spherical-harmonics")
@dataclass
class SHEncodingConfig(EncodingConfig):
    """Real spherical harmonics of the view direction (Instant-NGP's direction encoding), for directions only."""

    encodes_positions = False
    levels: ranged(int, min=1, max=MAX_SH_LEVELS) = 4
    """Degrees used (levels^2 features)."""

    def setup(self, in_dim: int, context: ComponentContext) -> Encoding:
        from nerfkit.field_components.encodings import SHEncoding

        return SHEncoding(self.levels, backend=context.backends.sh_encoding)


PositionEncodingChoice = component_choice(
    EncodingConfig, fits=lambda cls: cls.encodes_positions, why="it does not encode points in the scene"
)
"""A config field that holds any registered encoding of positions."""


DirectionEncodingChoice = component_choice(
    EncodingConfig, fits=lambda cls: cls.encodes_directions, why="it does not encode view directions"
)
"""A config field that holds any registered encoding of view directions."""
