"""NetworkMLP: one architecture on either backend, with tiny-cuda-nn's activation names and definitions."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch

from nerfkit.errors import NerfkitError
from nerfkit.kernels.backends import package_status
from nerfkit.kernels.mlp import Activation, NetworkMLP, tcnn_network_config

TCNN_DEFINITIONS: dict[str, Callable[[float], float]] = {
    "None": lambda x: x,
    "ReLU": lambda x: max(0.0, x),
    "LeakyReLU": lambda x: max(0.0, x) + 0.01 * min(0.0, x),
    "Exponential": math.exp,
    "Sine": math.sin,
    "Sigmoid": lambda x: 1 / (1 + math.exp(-x)),
    "Squareplus": lambda x: 0.5 * (10 * x + math.sqrt(100 * x * x + 4)) / 10,
    "Softplus": lambda x: math.log(math.exp(10 * x) + 1) / 10,
    "Tanh": math.tanh,
}
"""tiny-cuda-nn's DOCUMENTATION.md definitions (Squareplus and Softplus are evaluated at 10x and divided by 10)."""

POINTS = [-1.5, -0.3, -0.05, 0.0, 0.02, 0.4, 1.2]


def identity_layers(mlp: NetworkMLP) -> NetworkMLP:
    """Sets every 1x1 layer to y = x, so the network's output is its activations applied to the input."""
    with torch.no_grad():
        for layer in mlp.layers:
            layer.weight.fill_(1.0)
            if layer.bias is not None:
                layer.bias.zero_()
    return mlp


def test_torch_backend_has_tcnns_architecture_with_the_requested_shape() -> None:
    mlp = NetworkMLP(in_dim=5, num_layers=3, layer_width=32, out_dim=4)
    assert isinstance(mlp, NetworkMLP)
    assert [(layer.in_features, layer.out_features) for layer in mlp.layers] == [(5, 32), (32, 32), (32, 4)]
    # Only the first layer has a bias: the ones tiny-cuda-nn pads a 5-wide input with; none for a 16-wide input.
    assert [layer.bias is not None for layer in mlp.layers] == [True, False, False]
    assert [layer.bias is not None for layer in NetworkMLP(16, 2, 32, 4).layers] == [False, False]
    assert mlp(torch.rand(2, 7, 5)).shape == (2, 7, 4)


@pytest.mark.parametrize("name", sorted(TCNN_DEFINITIONS))
def test_activations_follow_tiny_cuda_nns_definitions(name: Activation) -> None:
    x = torch.tensor(POINTS, dtype=torch.float64)[:, None]
    expected = torch.tensor([TCNN_DEFINITIONS[name](p) for p in POINTS], dtype=torch.float64)[:, None]
    as_output = identity_layers(NetworkMLP(1, 1, 1, 1, out_activation=name).double())
    torch.testing.assert_close(as_output(x), expected)
    as_hidden = identity_layers(NetworkMLP(1, 2, 1, 1, activation=name).double())
    torch.testing.assert_close(as_hidden(x), expected)


def test_sigmoid_output_stays_in_the_unit_interval() -> None:
    y = NetworkMLP(3, 2, 16, 3, activation="ReLU", out_activation="Sigmoid")(torch.randn(100, 3) * 10)
    assert ((y > 0) & (y < 1)).all()


def test_unknown_activation_is_a_user_error() -> None:
    with pytest.raises(NerfkitError, match="'GELU'"):
        NetworkMLP(3, 2, 16, 3, activation="GELU")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("num_layers", "layer_width", "otype", "n_hidden_layers"),
    [(3, 64, "FullyFusedMLP", 2), (2, 16, "FullyFusedMLP", 1), (3, 256, "CutlassMLP", 2), (1, 64, "CutlassMLP", 0)],
)
def test_tcnn_config_counts_hidden_layers(num_layers: int, layer_width: int, otype: str, n_hidden_layers: int) -> None:
    config = tcnn_network_config(num_layers, layer_width, "ReLU", "Sigmoid")
    assert config == {
        "otype": otype,
        "activation": "ReLU",
        "output_activation": "Sigmoid",
        "n_neurons": layer_width,
        "n_hidden_layers": n_hidden_layers,
    }


def test_cuda_kernels_without_tiny_cuda_nn_is_a_user_error() -> None:
    if package_status("tinycudann").usable:
        pytest.skip("tiny-cuda-nn is usable here")
    with pytest.raises(NerfkitError, match="tiny-cuda-nn") as raised:
        NetworkMLP(3, 2, 64, 4, backend="cuda-kernels")
    assert raised.value.hint is not None and "pip install" in raised.value.hint


def test_cuda_kernels_backend_builds_tiny_cuda_nns_network() -> None:
    status = package_status("tinycudann")
    if not status.usable:
        pytest.skip(f"tiny-cuda-nn is not usable here: {status.reason}")
    mlp = NetworkMLP(5, 3, 64, 4, out_activation="Sigmoid", backend="cuda-kernels")
    y = mlp(torch.rand(256, 5, device="cuda")).float()
    assert y.shape == (256, 4)
    assert ((y >= 0) & (y <= 1)).all()
    assert sum(p.numel() for p in mlp.parameters()) > 0


@pytest.mark.parametrize(("in_dim", "num_layers", "width", "out_dim"), [(31, 3, 64, 3), (32, 2, 64, 16), (5, 1, 64, 4)])
def test_tiny_cuda_nn_computes_what_the_canonical_layers_compute(
    in_dim: int, num_layers: int, width: int, out_dim: int
) -> None:
    """The real library against the layout nerfkit assumes (the CPU tests use a stand-in with that layout)."""
    status = package_status("tinycudann")
    if not status.usable:
        pytest.skip(f"tiny-cuda-nn is not usable here: {status.reason}")
    fused = NetworkMLP(in_dim, num_layers, width, out_dim, out_activation="Sigmoid", backend="cuda-kernels").cuda()
    reference = NetworkMLP(in_dim, num_layers, width, out_dim, out_activation="Sigmoid").cuda()
    reference.load_state_dict(fused.state_dict())
    x = torch.rand(1000, in_dim, device="cuda")
    torch.testing.assert_close(fused(x).float(), reference(x), atol=2e-3, rtol=1e-2)
    fused(x).float().sum().backward()
    reference(x).sum().backward()
    for mine, theirs in zip(fused.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(mine.grad, theirs.grad, atol=1e-2, rtol=5e-2)
