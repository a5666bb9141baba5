"""Encodings: maps from coordinates to features that let a small MLP represent high-frequency detail."""

from __future__ import annotations

from abc import abstractmethod

import torch
from jaxtyping import Float
from torch import Tensor, nn


class Encoding(nn.Module):
    """A coordinate-to-feature map; fields size the MLP that follows from `get_out_dim`."""

    def __init__(self, in_dim: int) -> None:
        super().__init__()
        self.in_dim = in_dim

    @abstractmethod
    def get_out_dim(self) -> int:
        """Number of features per input point."""

    @abstractmethod
    def forward(self, in_tensor: Float[Tensor, "*bs in_dim"]) -> Float[Tensor, "*bs out_dim"]:
        """Encodes each point independently."""


class NeRFEncoding(Encoding):
    """Sines and cosines of the input at octave-spaced frequencies, NeRF's positional encoding.

    Frequencies are 2^k for `num_frequencies` values of k evenly spaced in [min_freq_exp, max_freq_exp]; NeRF uses
    k = 0..9 for positions and 0..3 for directions, with the input kept, giving 63 and 27 features. There is no factor
    of pi: the Blender scenes span [-1.5, 1.5], so 2^0 already varies slowly across them.
    """

    def __init__(
        self,
        in_dim: int,
        num_frequencies: int,
        min_freq_exp: float,
        max_freq_exp: float,
        include_input: bool = True,
    ) -> None:
        super().__init__(in_dim)
        self.num_frequencies = num_frequencies
        self.include_input = include_input
        frequencies = 2.0 ** torch.linspace(min_freq_exp, max_freq_exp, num_frequencies)
        # Derived from the arguments, so it stays out of checkpoints.
        self.register_buffer("frequencies", frequencies, persistent=False)

    def get_out_dim(self) -> int:
        return self.in_dim * (2 * self.num_frequencies + int(self.include_input))

    def forward(self, in_tensor: Float[Tensor, "*bs in_dim"]) -> Float[Tensor, "*bs out_dim"]:
        scaled = (in_tensor[..., None] * self.frequencies).flatten(start_dim=-2)
        features = [torch.sin(scaled), torch.cos(scaled)]
        if self.include_input:
            features.insert(0, in_tensor)
        return torch.cat(features, dim=-1)
