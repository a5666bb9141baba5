"""nerfacto's field: a hash grid over contracted space for density, and a colour MLP that also reads the view direction
and the image's appearance embedding."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from nerfkit.configs.fields import HashGridConfig
from nerfkit.field_components.embedding import AppearanceEmbedding
from nerfkit.field_components.encodings import SHEncoding
from nerfkit.field_components.spatial_distortions import SceneContraction
from nerfkit.fields.density_fields import HashDensityField
from nerfkit.kernels.backends import Backends
from nerfkit.kernels.mlp import NetworkMLP


class NerfactoField(nn.Module):
    """Density from position alone; colour from the density MLP's features, spherical harmonics of the direction and
    the appearance embedding of the image the ray came from (the unseen-image vector when there is none)."""

    def __init__(
        self,
        contraction: SceneContraction,
        num_images: int,
        backends: Backends,
        grid: HashGridConfig,
        hidden_dim: int = 64,
        geo_feat_dim: int = 15,
        hidden_dim_color: int = 64,
        num_layers_color: int = 3,
        appearance_embed_dim: int = 32,
        use_average_appearance_embedding: bool = True,
        average_init_density: float = 1.0,
    ) -> None:
        super().__init__()
        self.density_field = HashDensityField(
            contraction,
            backends,
            grid,
            hidden_dim=hidden_dim,
            num_layers=2,
            feature_dim=geo_feat_dim,
            average_init_density=average_init_density,
        )
        self.direction_encoding = SHEncoding(levels=4, backend=backends.sh_encoding)
        self.appearance_embedding = AppearanceEmbedding(
            num_images, appearance_embed_dim, use_average_appearance_embedding
        )
        self.color_mlp = NetworkMLP(
            in_dim=self.direction_encoding.get_out_dim() + geo_feat_dim + appearance_embed_dim,
            num_layers=num_layers_color,
            layer_width=hidden_dim_color,
            out_dim=3,
            out_activation="Sigmoid",
            backend=backends.mlp,
        )

    def density(
        self, positions: Float[Tensor, "num_samples 3"]
    ) -> tuple[Float[Tensor, "num_samples 1"], Float[Tensor, "num_samples geo_feat_dim"]]:
        """Density and the features the colour MLP reads."""
        return self.density_field(positions)

    def forward(
        self,
        positions: Float[Tensor, "*bs 3"],
        directions: Float[Tensor, "*shared 3"],
        image_indices: Int[Tensor, "*shared"] | None = None,
    ) -> tuple[Float[Tensor, "*bs 1"], Float[Tensor, "*bs 3"]]:
        """Density and colour; `image_indices` are the training images the samples' rays came from (None: unseen).

        Directions and image indices broadcast against the positions' batch shape, so the samples of a ray can share
        one: encoded once per ray, and with pose refinement (directions that need gradients) differentiated once.
        """
        density, features = self.density(positions)
        batch = features.shape[:-1]
        if image_indices is None:
            appearance = self.appearance_embedding.unseen(1)
        else:
            appearance = self.appearance_embedding(image_indices)
        encoded_directions = self.direction_encoding(directions)
        color_input = torch.cat(
            [encoded_directions.expand(*batch, -1), features, appearance.expand(*batch, -1)], dim=-1
        )
        return density, self.color_mlp(color_input).float()
