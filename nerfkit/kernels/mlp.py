"""One MLP description, two implementations: nerfkit's torch MLP or tiny-cuda-nn's fused network.

Activations use tiny-cuda-nn's names and definitions, so a config means the same network on either backend.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfkit.errors import NerfkitError
from nerfkit.field_components.mlp import MLP
from nerfkit.kernels.backends import Backend
from nerfkit.kernels.tcnn import import_tinycudann

Activation = Literal["None", "ReLU", "LeakyReLU", "Exponential", "Sine", "Sigmoid", "Squareplus", "Softplus", "Tanh"]

FULLY_FUSED_WIDTHS = (16, 32, 64, 128)
"""Hidden widths tiny-cuda-nn's FullyFusedMLP supports; other widths fall back to its CutlassMLP."""

K_ACT = 10.0
"""tiny-cuda-nn evaluates Softplus and Squareplus at 10x and divides by 10, so they hug ReLU; matched here."""


def _identity(x: Tensor) -> Tensor:
    return x


def _squareplus(x: Tensor) -> Tensor:
    scaled = K_ACT * x
    return 0.5 * (scaled + torch.sqrt(scaled * scaled + 4.0)) / K_ACT


def _softplus(x: Tensor) -> Tensor:
    return F.softplus(x, beta=K_ACT)


TORCH_ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "None": _identity,
    "ReLU": F.relu,
    "LeakyReLU": F.leaky_relu,  # slope 0.01, as in tiny-cuda-nn
    "Exponential": torch.exp,
    "Sine": torch.sin,
    "Sigmoid": torch.sigmoid,
    "Squareplus": _squareplus,
    "Softplus": _softplus,
    "Tanh": torch.tanh,
}
"""The torch function for each tiny-cuda-nn activation name."""


def tcnn_network_config(num_layers: int, layer_width: int, activation: str, out_activation: str) -> dict[str, object]:
    """tiny-cuda-nn's network config for `num_layers` linear layers.

    tiny-cuda-nn counts hidden layers, not linear layers: n_hidden_layers = num_layers - 1. Its FullyFusedMLP needs
    a supported width and at least one hidden layer; anything else uses CutlassMLP.
    """
    fused = layer_width in FULLY_FUSED_WIDTHS and num_layers >= 2
    return {
        "otype": "FullyFusedMLP" if fused else "CutlassMLP",
        "activation": activation,
        "output_activation": out_activation,
        "n_neurons": layer_width,
        "n_hidden_layers": num_layers - 1,
    }


def make_mlp(
    in_dim: int,
    num_layers: int,
    layer_width: int,
    out_dim: int,
    activation: Activation = "ReLU",
    out_activation: Activation = "None",
    backend: Backend = "torch",
) -> nn.Module:
    """`num_layers` linear layers, `activation` between them and `out_activation` after the last, on `backend`.

    The cuda-kernels network has no biases and returns tiny-cuda-nn's precision (half on most GPUs); weights are not
    interchangeable between the backends, only the architecture is.
    """
    for name in (activation, out_activation):
        if name not in TORCH_ACTIVATIONS:
            raise NerfkitError(f"unknown MLP activation {name!r}", hint=f"use one of {', '.join(get_args(Activation))}")
    if num_layers < 1:
        raise NerfkitError(f"an MLP needs at least one layer, got num_layers={num_layers}")
    if backend == "cuda-kernels":
        network_config = tcnn_network_config(num_layers, layer_width, activation, out_activation)
        return import_tinycudann().Network(in_dim, out_dim, network_config)
    return MLP(
        in_dim=in_dim,
        num_layers=num_layers,
        layer_width=layer_width,
        out_dim=out_dim,
        activation=TORCH_ACTIVATIONS[activation],
        out_activation=None if out_activation == "None" else TORCH_ACTIVATIONS[out_activation],
    )
