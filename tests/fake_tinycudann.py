"""A stand-in for tiny-cuda-nn's torch bindings that runs on the CPU, for tests of nerfkit's cuda-kernels paths.

It keeps what nerfkit depends on, from bindings/torch/tinycudann/modules.py and the networks' sources: every module
holds one flat `params` parameter (fp32) initialised from its seed; a Network pads its input with ones to a multiple
of 16 columns, stores its weight matrices row-major one after another (first layer, hidden layers, output layer padded
to a multiple of 16 rows) without biases, and returns half precision; an Encoding returns its requested precision
(half by default); and, like a CUDA launch of zero blocks, any module refuses an empty batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nerfkit.field_components.encodings import spherical_harmonics
from nerfkit.kernels.hash_encoding import HashGridLayout, hash_encode_torch
from nerfkit.kernels.mlp import TORCH_ACTIVATIONS

ALIGNMENT = 16
EMPTY_BATCH_ERROR = "CUDA error: invalid configuration argument"


def _next_multiple(value: int, multiple: int = ALIGNMENT) -> int:
    return -(-value // multiple) * multiple


class Module(nn.Module):
    """Flat parameters from a seed; subclasses say how many and what they compute."""

    output_dtype = torch.half

    def __init__(self, seed: int = 1337) -> None:
        super().__init__()
        self.seed = seed
        generator = torch.Generator().manual_seed(seed)
        self.params = nn.Parameter(self.initial_params(generator))

    def initial_params(self, generator: torch.Generator) -> Tensor:
        raise NotImplementedError

    def compute(self, x: Tensor, params: Tensor) -> Tensor:
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] == 0:
            raise RuntimeError(EMPTY_BATCH_ERROR)
        return self.compute(x.float(), self.params.float()).to(self.output_dtype)


class Network(Module):
    """FullyFusedMLP / CutlassMLP: no biases, input padded with ones, output rows padded to 16."""

    def __init__(self, n_input_dims: int, n_output_dims: int, network_config: dict, seed: int = 1337) -> None:
        self.n_input_dims = n_input_dims
        self.n_output_dims = n_output_dims
        self.network_config = network_config
        super().__init__(seed)

    def matrix_shapes(self) -> list[tuple[int, int]]:
        width = self.network_config["n_neurons"]
        hidden = self.network_config["n_hidden_layers"]
        inputs = [_next_multiple(self.n_input_dims)] + [width] * hidden
        outputs = [width] * hidden + [_next_multiple(self.n_output_dims)]
        return list(zip(outputs, inputs, strict=True))

    def initial_params(self, generator: torch.Generator) -> Tensor:
        matrices = []
        for rows, columns in self.matrix_shapes():
            scale = math.sqrt(6.0 / (rows + columns))
            matrices.append((torch.rand(rows * columns, generator=generator) * 2 - 1) * scale)
        return torch.cat(matrices)

    def compute(self, x: Tensor, params: Tensor) -> Tensor:
        shapes = self.matrix_shapes()
        matrices = torch.split(params.to(x.dtype), [rows * columns for rows, columns in shapes])
        h = F.pad(x, (0, _next_multiple(self.n_input_dims) - self.n_input_dims), value=1.0)
        for index, (matrix, shape) in enumerate(zip(matrices, shapes, strict=True)):
            h = h @ matrix.reshape(shape).T
            last = index == len(shapes) - 1
            name = self.network_config["output_activation" if last else "activation"]
            h = TORCH_ACTIVATIONS[name](h)
        return h[:, : self.n_output_dims]


class Encoding(Module):
    """HashGrid (tiny-cuda-nn's layout, from its config's per-level scale) and SphericalHarmonics (no parameters)."""

    def __init__(self, n_input_dims: int, encoding_config: dict, seed: int = 1337, dtype: torch.dtype | None = None):
        self.n_input_dims = n_input_dims
        self.encoding_config = encoding_config
        self.output_dtype = torch.half if dtype is None else dtype
        self.layout = self._hash_layout() if encoding_config["otype"] == "HashGrid" else None
        super().__init__(seed)
        self.n_output_dims = self.layout.out_dim if self.layout else encoding_config["degree"] ** 2

    def _hash_layout(self) -> HashGridLayout:
        """The grid as tiny-cuda-nn builds it from n_levels, base_resolution and per_level_scale."""
        config = self.encoding_config
        levels, base = config["n_levels"], config["base_resolution"]
        log2_scale = np.log2(np.float32(config["per_level_scale"]))
        table = 1 << config["log2_hashmap_size"]
        scales, resolutions, offsets, hashed = [], [], [0], []
        for level in range(levels):
            scale = float(np.exp2(np.float32(level) * log2_scale) * np.float32(base) - np.float32(1.0))
            resolution = math.ceil(scale) + 1
            entries = min(_next_multiple(resolution**3, 8), table)
            scales.append(scale)
            resolutions.append(resolution)
            offsets.append(offsets[-1] + entries)
            hashed.append(resolution**3 > entries)
        return HashGridLayout(
            levels,
            config["n_features_per_level"],
            config["log2_hashmap_size"],
            base,
            config["per_level_scale"],
            tuple(scales),
            tuple(resolutions),
            tuple(offsets),
            tuple(hashed),
        )

    def initial_params(self, generator: torch.Generator) -> Tensor:
        if self.layout is None:
            return torch.zeros(0)
        return (torch.rand(self.layout.num_params, generator=generator) * 2 - 1) * 1e-4

    def compute(self, x: Tensor, params: Tensor) -> Tensor:
        if self.layout is not None:
            return hash_encode_torch(x, params, self.layout)
        return spherical_harmonics(x * 2.0 - 1.0, self.encoding_config["degree"])
