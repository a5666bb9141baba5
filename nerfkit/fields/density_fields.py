"""A hash grid and a small MLP to density: nerfacto's proposal networks, and the density half of the instant-ngp and
nerfacto fields."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.configs.fields import HashGridConfig
from nerfkit.field_components.activations import trunc_exp
from nerfkit.field_components.spatial_distortions import SceneContraction
from nerfkit.kernels.backends import Backends
from nerfkit.kernels.mlp import NetworkMLP


class HashDensityField(nn.Module):
    """Density at world positions (zero where the contraction leaves a point outside the grid), and `feature_dim`
    features from the same MLP for a colour head to read (none for a proposal network)."""

    def __init__(
        self,
        contraction: SceneContraction,
        backends: Backends,
        grid: HashGridConfig,
        hidden_dim: int = 16,
        num_layers: int = 2,
        feature_dim: int = 0,
        average_init_density: float = 1.0,
    ) -> None:
        super().__init__()
        self.contraction = contraction
        self.average_init_density = average_init_density
        self.encoding = grid.setup_grid(backends)
        self.mlp = NetworkMLP(
            in_dim=self.encoding.get_out_dim(),
            num_layers=num_layers,
            layer_width=hidden_dim,
            out_dim=1 + feature_dim,
            backend=backends.mlp,
        )

    def forward(
        self, positions: Float[Tensor, "num_points 3"]
    ) -> tuple[Float[Tensor, "num_points 1"], Float[Tensor, "num_points feature_dim"]]:
        coordinates = self.contraction(positions)
        bounded = self.contraction.norm is None
        if bounded:
            inside = ((coordinates >= 0) & (coordinates <= 1)).all(dim=-1, keepdim=True)
            coordinates = coordinates.clamp(0, 1)
        hidden = self.mlp(self.encoding(coordinates))
        # The scale sets the density a fresh (near-zero) network starts from: low keeps early rays see-through.
        density = self.average_init_density * trunc_exp(hidden[..., :1].float())
        return (density * inside if bounded else density), hidden[..., 1:]

    def density(self, positions: Float[Tensor, "num_points 3"]) -> Float[Tensor, "num_points 1"]:
        return self.forward(positions)[0]
