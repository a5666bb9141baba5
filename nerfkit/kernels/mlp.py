"""One MLP, two implementations: torch layers or tiny-cuda-nn's fused network, over the same weights.

Activations use tiny-cuda-nn's names and definitions, so a config means the same network on either backend.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.errors import NerfkitError
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


ALIGNMENT = 16
"""tiny-cuda-nn pads a network's input and output widths to multiples of this (its tensor-core tile)."""


def _padded(width: int) -> int:
    return -(-width // ALIGNMENT) * ALIGNMENT


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


class NetworkMLP(nn.Module):
    """`num_layers` linear layers, `activation` between them and `out_activation` after the last: tiny-cuda-nn's
    network architecture, held in one canonical layout whichever backend runs it. The cuda-kernels backend returns
    tiny-cuda-nn's precision (half on most GPUs).

    tiny-cuda-nn's networks have no biases, pad the input with ones up to a multiple of 16 columns (so the weights
    of those columns act as one bias of the first layer) and pad the output layer with rows up to a multiple of 16.
    The module keeps what that computes as torch layers, `layers.N.weight` plus `layers.0.bias` when the input is
    padded, on both backends; the cuda-kernels backend assembles tiny-cuda-nn's flat parameter vector from them on
    each call. So state dicts and optimizer states are the same on both backends, a checkpoint moves between them in
    both directions, and `--machine.seed` sets the initial weights of both (tiny-cuda-nn's Xavier-uniform scheme,
    drawn from torch's generator).
    """

    def __init__(
        self,
        in_dim: int,
        num_layers: int,
        layer_width: int,
        out_dim: int,
        activation: Activation = "ReLU",
        out_activation: Activation = "None",
        backend: Backend = "torch",
    ) -> None:
        super().__init__()
        for name in (activation, out_activation):
            if name not in TORCH_ACTIVATIONS:
                raise NerfkitError(
                    f"unknown MLP activation {name!r}", hint=f"use one of {', '.join(get_args(Activation))}"
                )
        if num_layers < 1:
            raise NerfkitError(f"an MLP needs at least one layer, got num_layers={num_layers}")
        self.in_dim, self.out_dim = in_dim, out_dim
        self.activation = TORCH_ACTIVATIONS[activation]
        self.out_activation = TORCH_ACTIVATIONS[out_activation]
        widths = [in_dim] + [layer_width] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(
            nn.Linear(w_in, w_out, bias=index == 0 and _padded(in_dim) > in_dim)
            for index, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:], strict=True))
        )
        self.load_tcnn_params(torch.cat([self._xavier_uniform(shape).flatten() for shape in self.tcnn_shapes()]))
        # Kept out of the module tree, so the state dict holds the canonical layers alone, exactly as on torch.
        self._network: nn.Module | None = None
        if backend == "cuda-kernels":
            config = tcnn_network_config(num_layers, layer_width, activation, out_activation)
            network = import_tinycudann().Network(in_dim, out_dim, config)
            if network.params.numel() != self.num_tcnn_params:
                raise NerfkitError(
                    f"tiny-cuda-nn's network has {network.params.numel()} parameters, nerfkit's layout "
                    f"{self.num_tcnn_params}: checkpoints would not transfer between backends",
                    hint="use --machine.kernels.mlp torch, and report the tiny-cuda-nn version",
                )
            # It reads the flat vector nerfkit assembles on each call instead of a parameter of its own.
            del network._parameters["params"]
            object.__setattr__(self, "_network", network)
        self.register_load_state_dict_pre_hook(self._from_tcnn_state)

    def _from_tcnn_state(self, module: nn.Module, state_dict: dict[str, Tensor], prefix: str, *args: object) -> None:
        """Reads checkpoints written before the canonical layout, which held tiny-cuda-nn's flat `params`."""
        flat = state_dict.pop(f"{prefix}params", None)
        if flat is None:
            return
        self.load_tcnn_params(flat)
        for name, value in self.state_dict().items():
            state_dict[f"{prefix}{name}"] = value

    def tcnn_shapes(self) -> list[tuple[int, int]]:
        """tiny-cuda-nn's weight matrices in storage order, (rows, columns), each stored row-major."""
        shapes = [(layer.out_features, layer.in_features) for layer in self.layers]
        shapes[0] = (shapes[0][0], _padded(self.in_dim))
        shapes[-1] = (_padded(self.out_dim), shapes[-1][1])
        return shapes

    @property
    def num_tcnn_params(self) -> int:
        return sum(rows * columns for rows, columns in self.tcnn_shapes())

    @staticmethod
    def _xavier_uniform(shape: tuple[int, int]) -> Tensor:
        bound = math.sqrt(6.0 / sum(shape))
        return torch.empty(shape).uniform_(-bound, bound)

    def tcnn_params(self) -> Float[Tensor, " num_params"]:
        """tiny-cuda-nn's flat parameter vector for these weights: differentiable, so its gradients reach the layers."""
        matrices = [layer.weight for layer in self.layers]
        first = self.layers[0]
        padding = _padded(self.in_dim) - self.in_dim
        if padding:
            zeros = first.weight.new_zeros(first.out_features, padding - 1)
            matrices[0] = torch.cat([matrices[0], first.bias[:, None], zeros], dim=1)
        matrices[-1] = F.pad(matrices[-1], (0, 0, 0, _padded(self.out_dim) - self.out_dim))
        return torch.cat([matrix.flatten() for matrix in matrices])

    @torch.no_grad()
    def load_tcnn_params(self, params: Float[Tensor, " num_params"]) -> None:
        """Sets the layers from a tiny-cuda-nn flat vector: the padded input columns sum into the bias (their inputs
        are ones), the padded output rows are dropped (tiny-cuda-nn slices them off)."""
        if params.numel() != self.num_tcnn_params:
            raise NerfkitError(
                f"a tiny-cuda-nn parameter vector of {params.numel()} values does not fit this network "
                f"({self.num_tcnn_params} values in matrices {self.tcnn_shapes()})"
            )
        weights = params.to(self.layers[0].weight.dtype)
        matrices = torch.split(weights, [rows * columns for rows, columns in self.tcnn_shapes()])
        for layer, matrix, shape in zip(self.layers, matrices, self.tcnn_shapes(), strict=True):
            matrix = matrix.reshape(shape)[: layer.out_features]
            layer.weight.copy_(matrix[:, : layer.in_features])
            if layer.bias is not None:
                layer.bias.copy_(matrix[:, layer.in_features :].sum(dim=1))

    def forward(self, in_tensor: Float[Tensor, "*bs in_dim"]) -> Float[Tensor, "*bs out_dim"]:
        flat = in_tensor.reshape(-1, self.in_dim)
        # tiny-cuda-nn refuses empty batches (a launch of zero blocks); the torch layers give the empty result.
        if self._network is None or flat.shape[0] == 0:
            out = self._torch_forward(flat)
        else:
            self._network.params = self.tcnn_params()
            out = self._network(flat)
        return out.reshape(*in_tensor.shape[:-1], self.out_dim)

    def _torch_forward(self, x: Float[Tensor, "num_points in_dim"]) -> Float[Tensor, "num_points out_dim"]:
        last = len(self.layers) - 1
        for index, layer in enumerate(self.layers):
            x = layer(x)
            x = self.activation(x) if index < last else self.out_activation(x)
        return x
