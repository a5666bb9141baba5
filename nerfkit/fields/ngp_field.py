"""Instant-NGP's field: a hash grid feeds a tiny density MLP; its features and the view direction feed a colour MLP."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.field_components.activations import trunc_exp
from nerfkit.field_components.encodings import SHEncoding
from nerfkit.kernels.backends import Backends
from nerfkit.kernels.hash_encoding import HashEncoding
from nerfkit.kernels.mlp import NetworkMLP


class NGPField(nn.Module):
    """Density from position only; colour from the density MLP's features and spherical harmonics of the direction."""

    def __init__(
        self,
        aabb: Float[Tensor, "2 3"],
        backends: Backends,
        num_levels: int = 16,
        features_per_level: int = 2,
        log2_hashmap_size: int = 19,
        base_resolution: int = 16,
        max_resolution: int = 2048,
        geo_feat_dim: int = 15,
        hidden_dim: int = 64,
        hidden_dim_color: int = 64,
        num_layers_color: int = 3,
    ) -> None:
        super().__init__()
        self.register_buffer("aabb", aabb.clone())
        self.geo_feat_dim = geo_feat_dim
        self.position_encoding = HashEncoding(
            num_levels=num_levels,
            features_per_level=features_per_level,
            log2_hashmap_size=log2_hashmap_size,
            base_resolution=base_resolution,
            max_resolution=max_resolution,
            backend=backends.hash_encoding,
        )
        self.density_mlp = NetworkMLP(
            in_dim=self.position_encoding.get_out_dim(),
            num_layers=2,
            layer_width=hidden_dim,
            out_dim=1 + geo_feat_dim,
            backend=backends.mlp,
        )
        self.direction_encoding = SHEncoding(levels=4, backend=backends.hash_encoding)
        self.color_mlp = NetworkMLP(
            in_dim=self.direction_encoding.get_out_dim() + geo_feat_dim,
            num_layers=num_layers_color,
            layer_width=hidden_dim_color,
            out_dim=3,
            out_activation="Sigmoid",
            backend=backends.mlp,
        )

    def density(
        self, positions: Float[Tensor, "num_samples 3"]
    ) -> tuple[Float[Tensor, "num_samples 1"], Float[Tensor, "num_samples geo_feat_dim"]]:
        """Density (zero outside the box) and the features the colour MLP reads."""
        normalized = (positions - self.aabb[0]) / (self.aabb[1] - self.aabb[0])
        inside = ((normalized >= 0) & (normalized <= 1)).all(dim=-1, keepdim=True)
        hidden = self.density_mlp(self.position_encoding(normalized.clamp(0, 1)))
        density = trunc_exp(hidden[..., :1].float()) * inside
        return density, hidden[..., 1:]

    def forward(
        self, positions: Float[Tensor, "num_samples 3"], directions: Float[Tensor, "num_samples 3"]
    ) -> tuple[Float[Tensor, "num_samples 1"], Float[Tensor, "num_samples 3"]]:
        density, features = self.density(positions)
        rgb = self.color_mlp(torch.cat([self.direction_encoding(directions), features], dim=-1))
        return density, rgb.float()
