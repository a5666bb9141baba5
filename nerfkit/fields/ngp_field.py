"""Instant-NGP's field: a hash grid feeds a tiny density MLP; its features and the view direction feed a colour MLP."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.configs.fields import HashGridConfig
from nerfkit.field_components.encodings import SHEncoding
from nerfkit.field_components.spatial_distortions import SceneContraction
from nerfkit.fields.density_fields import HashDensityField
from nerfkit.kernels.backends import Backends
from nerfkit.kernels.mlp import NetworkMLP

RENAMED_KEYS = {"position_encoding.": "density_field.encoding.", "density_mlp.": "density_field.mlp."}
"""State-dict keys of checkpoints written before the density half became a HashDensityField, and their new names."""


class NGPField(nn.Module):
    """Density from position only (zero outside the box); colour from the density MLP's features and spherical
    harmonics of the direction."""

    def __init__(
        self,
        aabb: Float[Tensor, "2 3"],
        backends: Backends,
        grid: HashGridConfig,
        geo_feat_dim: int = 15,
        hidden_dim: int = 64,
        hidden_dim_color: int = 64,
        num_layers_color: int = 3,
    ) -> None:
        super().__init__()
        self.geo_feat_dim = geo_feat_dim
        self.density_field = HashDensityField(
            SceneContraction(aabb, norm=None), backends, grid, hidden_dim=hidden_dim, feature_dim=geo_feat_dim
        )
        self.direction_encoding = SHEncoding(levels=4, backend=backends.sh_encoding)
        self.color_mlp = NetworkMLP(
            in_dim=self.direction_encoding.get_out_dim() + geo_feat_dim,
            num_layers=num_layers_color,
            layer_width=hidden_dim_color,
            out_dim=3,
            out_activation="Sigmoid",
            backend=backends.mlp,
        )
        self.register_load_state_dict_pre_hook(self._from_separate_density_state)

    @staticmethod
    def _from_separate_density_state(
        module: nn.Module, state_dict: dict[str, Tensor], prefix: str, *args: object
    ) -> None:
        """Reads checkpoints written before the density half was a HashDensityField: they held its grid and MLP
        under other names, and the scene box as an `aabb` buffer (now taken from the scene box at construction)."""
        state_dict.pop(f"{prefix}aabb", None)
        for key in [key for key in state_dict if key.startswith(prefix)]:
            for old, new in RENAMED_KEYS.items():
                if key.startswith(prefix + old):
                    state_dict[prefix + new + key[len(prefix + old) :]] = state_dict.pop(key)

    def density(
        self, positions: Float[Tensor, "num_samples 3"]
    ) -> tuple[Float[Tensor, "num_samples 1"], Float[Tensor, "num_samples geo_feat_dim"]]:
        """Density (zero outside the box) and the features the colour MLP reads."""
        return self.density_field(positions)

    def forward(
        self, positions: Float[Tensor, "num_samples 3"], directions: Float[Tensor, "num_samples 3"]
    ) -> tuple[Float[Tensor, "num_samples 1"], Float[Tensor, "num_samples 3"]]:
        density, features = self.density(positions)
        rgb = self.color_mlp(torch.cat([self.direction_encoding(directions), features], dim=-1))
        return density, rgb.float()
