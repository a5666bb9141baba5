"""Positional encoding and MLP: output sizes, the encoding formula, skip connections."""

from __future__ import annotations

import math

import pytest
import torch

from nerfkit.errors import NerfkitError
from nerfkit.field_components.encodings import NeRFEncoding
from nerfkit.field_components.mlp import MLP


@pytest.mark.parametrize(("num_frequencies", "expected"), [(10, 63), (4, 27)])
def test_nerf_encoding_sizes_match_the_paper(num_frequencies: int, expected: int) -> None:
    encoding = NeRFEncoding(3, num_frequencies, 0, num_frequencies - 1)
    assert encoding.get_out_dim() == expected
    assert encoding(torch.rand(5, 7, 3)).shape == (5, 7, expected)


def test_nerf_encoding_values() -> None:
    encoding = NeRFEncoding(2, 3, 0, 2, include_input=False)
    x = torch.tensor([[0.3, -1.2]])
    scaled = [x[0, d].item() * 2**k for d in range(2) for k in range(3)]
    expected = [math.sin(v) for v in scaled] + [math.cos(v) for v in scaled]
    assert encoding.get_out_dim() == 12
    torch.testing.assert_close(encoding(x)[0], torch.tensor(expected))


def test_nerf_encoding_keeps_input_first_and_stays_out_of_state_dict() -> None:
    encoding = NeRFEncoding(3, 2, 0, 1)
    x = torch.rand(4, 3)
    torch.testing.assert_close(encoding(x)[:, :3], x)
    assert len(encoding.state_dict()) == 0


def test_mlp_shapes_and_skip_widths() -> None:
    mlp = MLP(in_dim=5, num_layers=4, layer_width=16, out_dim=2, skip_connections=(2,))
    assert [layer.in_features for layer in mlp.layers] == [5, 16, 21, 16]
    assert [layer.out_features for layer in mlp.layers] == [16, 16, 16, 2]
    assert mlp.get_out_dim() == 2
    assert mlp(torch.rand(3, 8, 5)).shape == (3, 8, 2)
    assert MLP(in_dim=5, num_layers=2, layer_width=16).get_out_dim() == 16


def test_mlp_skip_connection_feeds_the_input_to_that_layer() -> None:
    mlp = MLP(in_dim=3, num_layers=3, layer_width=8, out_dim=1, skip_connections=(2,))
    x = torch.rand(10, 3, requires_grad=True)
    with torch.no_grad():
        mlp.layers[1].weight.zero_()
        mlp.layers[1].bias.zero_()
    # With layer 1 zeroed, only the skip connection carries the input to the output.
    mlp(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_mlp_activations() -> None:
    mlp = MLP(in_dim=3, num_layers=2, layer_width=8, out_dim=4, out_activation=torch.sigmoid)
    y = mlp(torch.randn(100, 3) * 10)
    assert ((y > 0) & (y < 1)).all()
    relu_out = MLP(in_dim=3, num_layers=1, layer_width=8, out_activation=torch.relu)(torch.randn(100, 3))
    assert (relu_out >= 0).all()


@pytest.mark.parametrize("skips", [(0,), (3,)])
def test_mlp_rejects_skip_connections_that_do_not_fit(skips: tuple[int, ...]) -> None:
    with pytest.raises(NerfkitError):
        MLP(in_dim=3, num_layers=3, layer_width=8, skip_connections=skips)
