"""NeRF's field: an MLP from encoded position to density and features, and a small head adding view direction."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.cameras.rays import RaySamples
from nerfkit.field_components.encodings import Encoding
from nerfkit.field_components.mlp import MLP


class NeRFField(nn.Module):
    """Density depends on position only; colour on position features and view direction, so highlights can move."""

    def __init__(
        self,
        position_encoding: Encoding,
        direction_encoding: Encoding,
        base_mlp_num_layers: int = 8,
        base_mlp_layer_width: int = 256,
        head_mlp_num_layers: int = 1,
        head_mlp_layer_width: int = 128,
        skip_connections: Sequence[int] = (4,),
    ) -> None:
        super().__init__()
        self.position_encoding = position_encoding
        self.direction_encoding = direction_encoding
        self.base_mlp = MLP(
            in_dim=position_encoding.get_out_dim(),
            num_layers=base_mlp_num_layers,
            layer_width=base_mlp_layer_width,
            skip_connections=skip_connections,
            out_activation=F.relu,
        )
        self.density_head = nn.Linear(base_mlp_layer_width, 1)
        # The head's hidden layers, then one more layer to RGB.
        self.color_mlp = MLP(
            in_dim=base_mlp_layer_width + direction_encoding.get_out_dim(),
            num_layers=head_mlp_num_layers + 1,
            layer_width=head_mlp_layer_width,
            out_dim=3,
            out_activation=torch.sigmoid,
        )

    def density(
        self, positions: Float[Tensor, "*bs 3"]
    ) -> tuple[Float[Tensor, "*bs 1"], Float[Tensor, "*bs features"]]:
        """Density at world positions, and the features the colour head reads."""
        features = self.base_mlp(self.position_encoding(positions))
        # Softplus rather than ReLU: it keeps a gradient where density is zero, so space emptied early can refill.
        return F.softplus(self.density_head(features)), features

    def _colour(
        self, features: Float[Tensor, "*bs features"], encoded_directions: Float[Tensor, "*bs directions"]
    ) -> Float[Tensor, "*bs 3"]:
        return self.color_mlp(torch.cat([features, encoded_directions.expand(*features.shape[:-1], -1)], dim=-1))

    def forward(
        self, ray_samples: RaySamples
    ) -> tuple[Float[Tensor, "num_rays num_samples 1"], Float[Tensor, "num_rays num_samples 3"]]:
        """Densities and colours at the samples' points, which are world coordinates."""
        densities, features = self.density(ray_samples.positions)
        # All samples of a ray share its direction: encode once per ray, then broadcast.
        return densities, self._colour(features, self.direction_encoding(ray_samples.directions)[:, None, :])

    def query(
        self, positions: Float[Tensor, "num_samples 3"], directions: Float[Tensor, "num_samples 3"]
    ) -> tuple[Float[Tensor, "num_samples 1"], Float[Tensor, "num_samples 3"]]:
        """Densities and colours at packed samples, each with its own direction."""
        densities, features = self.density(positions)
        return densities, self._colour(features, self.direction_encoding(directions))
