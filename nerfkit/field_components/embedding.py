"""Per-image appearance embeddings (NeRF in the Wild's "GLO" vectors)."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn


class AppearanceEmbedding(nn.Module):
    """One learned vector per training image, so exposure and white-balance changes between photos go into the
    vector instead of into the scene. Images never trained on (eval views) get the mean of the learned vectors, or
    zeros; a width of 0 turns the embedding off without changing the code that reads it."""

    def __init__(self, num_images: int, dim: int, use_average_for_unseen: bool = True) -> None:
        super().__init__()
        self.dim = dim
        self.use_average_for_unseen = use_average_for_unseen
        self.embedding = nn.Embedding(num_images, dim)

    def get_out_dim(self) -> int:
        return self.dim

    def forward(self, image_indices: Int[Tensor, "*bs"]) -> Float[Tensor, "*bs dim"]:
        """The vectors of training images."""
        return self.embedding(image_indices)

    def unseen(self, count: int) -> Float[Tensor, "count dim"]:
        """The vector for `count` samples from images that were never trained on."""
        weight = self.embedding.weight
        vector = weight.mean(dim=0) if self.use_average_for_unseen else torch.zeros_like(weight[0])
        return vector.expand(count, -1)
