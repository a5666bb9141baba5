"""A fully connected network with optional skip connections from its input."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.errors import NerfkitError


class MLP(nn.Module):
    """`num_layers` linear layers with `activation` between them and `out_activation` (if any) after the last.

    A skip connection at layer i concatenates the MLP's input to layer i's input, re-exposing the raw encoding to
    deep layers (NeRF: layer 4 of 8).
    """

    def __init__(
        self,
        in_dim: int,
        num_layers: int,
        layer_width: int,
        out_dim: int | None = None,
        skip_connections: Sequence[int] = (),
        activation: Callable[[Tensor], Tensor] = F.relu,
        out_activation: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise NerfkitError(f"an MLP needs at least one layer, got num_layers={num_layers}")
        if any(not 0 < index < num_layers for index in skip_connections):
            raise NerfkitError(
                f"skip connections {tuple(skip_connections)} do not fit an MLP of {num_layers} layers",
                hint=f"use layer indices between 1 and {num_layers - 1}; layer 0 already sees the input",
            )
        self.in_dim = in_dim
        self.out_dim = layer_width if out_dim is None else out_dim
        self.skip_connections = frozenset(skip_connections)
        self.activation = activation
        self.out_activation = out_activation
        widths_out = [layer_width] * (num_layers - 1) + [self.out_dim]
        widths_in = [in_dim] + [
            layer_width + (in_dim if i in self.skip_connections else 0) for i in range(1, num_layers)
        ]
        self.layers = nn.ModuleList(nn.Linear(w_in, w_out) for w_in, w_out in zip(widths_in, widths_out, strict=True))

    def get_out_dim(self) -> int:
        return self.out_dim

    def forward(self, in_tensor: Float[Tensor, "*bs in_dim"]) -> Float[Tensor, "*bs out_dim"]:
        x = in_tensor
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            if i in self.skip_connections:
                x = torch.cat([in_tensor, x], dim=-1)
            x = layer(x)
            if i < last:
                x = self.activation(x)
        return x if self.out_activation is None else self.out_activation(x)
