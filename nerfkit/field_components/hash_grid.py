"""The one description of a multiresolution hash grid, and the one place a grid is built from it."""

from __future__ import annotations

from dataclasses import dataclass

from nerfkit.configs.base_config import PrintableConfig
from nerfkit.configs.ranges import Count, ranged
from nerfkit.kernels.backends import Backends
from nerfkit.kernels.hash_encoding import HashEncoding

Log2HashmapSize = ranged(int, min=1, max=32)
"""log2 of a hash grid's entries per level; its hash indexes at most 2^32 entries."""


@dataclass
class HashGridConfig(PrintableConfig):
    """Sizes of an Instant-NGP hash grid (defaults: instant-ngp's). Every field and part with a grid builds it with
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
