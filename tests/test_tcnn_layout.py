"""tiny-cuda-nn's paths on a CPU, through a faithful stand-in (tests/fake_tinycudann.py): one checkpoint layout for
both backends, and no empty batch ever reaches a tiny-cuda-nn module."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator

import fake_tinycudann
import pytest
import torch
from torch import nn

from nerfkit.cameras.rays import RayBundle
from nerfkit.configs.fields import HashGridEncodingConfig, SHEncodingConfig
from nerfkit.configs.models import InstantNGPModelConfig, NerfactoModelConfig, VanillaOccupancyModelConfig
from nerfkit.data.scene_box import SceneBox
from nerfkit.field_components.encodings import SHEncoding
from nerfkit.kernels import tcnn
from nerfkit.kernels.backends import Backends, PackageStatus
from nerfkit.kernels.hash_encoding import HashEncoding
from nerfkit.kernels.mlp import NetworkMLP
from nerfkit.models.base_model import Model

TCNN = Backends(hash_encoding="cuda-kernels", mlp="cuda-kernels")
HALF_TOLERANCE = 2e-3
"""tiny-cuda-nn's networks return half precision, so the two backends agree to its rounding, not to the bit."""


@pytest.fixture
def fake_tcnn(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """tiny-cuda-nn importable and usable here, as the stand-in."""
    monkeypatch.setitem(sys.modules, "tinycudann", fake_tinycudann)
    monkeypatch.setattr(tcnn, "package_status", lambda name: PackageStatus(name, True, "usable (stand-in)"))
    yield


def tcnn_reference(mlp: NetworkMLP, x: torch.Tensor, activation: str, out_activation: str) -> torch.Tensor:
    """What tiny-cuda-nn computes from the flat vector the module hands it, in float64."""
    config = {"n_neurons": mlp.layers[0].out_features, "n_hidden_layers": len(mlp.layers) - 1}
    network = fake_tinycudann.Network(
        mlp.in_dim, mlp.out_dim, {**config, "activation": activation, "output_activation": out_activation}
    )
    return network.compute(x.double(), mlp.tcnn_params().double())


SHAPES = [(31, 3, 64, 3), (32, 2, 64, 16), (10, 2, 16, 1), (5, 1, 64, 4), (47, 3, 128, 3)]
"""(in_dim, layers, width, out_dim): padded and unpadded inputs, one layer (CutlassMLP), output padding."""


@pytest.mark.parametrize(("in_dim", "num_layers", "width", "out_dim"), SHAPES)
def test_canonical_layers_compute_what_tcnn_computes_from_the_flat_vector(
    in_dim: int, num_layers: int, width: int, out_dim: int
) -> None:
    torch.manual_seed(0)
    mlp = NetworkMLP(in_dim, num_layers, width, out_dim, activation="ReLU", out_activation="Sigmoid").double()
    x = torch.rand(200, in_dim, dtype=torch.float64)
    torch.testing.assert_close(mlp(x), tcnn_reference(mlp, x, "ReLU", "Sigmoid"), rtol=1e-12, atol=1e-12)
    assert mlp.tcnn_params().numel() == mlp.num_tcnn_params


@pytest.mark.parametrize(("in_dim", "num_layers", "width", "out_dim"), SHAPES)
def test_a_flat_tcnn_vector_loads_into_the_canonical_layers(
    in_dim: int, num_layers: int, width: int, out_dim: int
) -> None:
    mlp = NetworkMLP(in_dim, num_layers, width, out_dim).double()
    flat = torch.randn(mlp.num_tcnn_params, dtype=torch.float64)
    network = fake_tinycudann.Network(
        in_dim,
        out_dim,
        {"n_neurons": width, "n_hidden_layers": num_layers - 1, "activation": "ReLU", "output_activation": "None"},
    )
    mlp.load_tcnn_params(flat)
    x = torch.rand(50, in_dim, dtype=torch.float64)
    torch.testing.assert_close(mlp(x), network.compute(x, flat), rtol=1e-10, atol=1e-10)


def test_seed_sets_the_same_initial_weights_on_both_backends(fake_tcnn: None) -> None:
    torch.manual_seed(7)
    on_torch = NetworkMLP(31, 3, 64, 3).state_dict()
    torch.manual_seed(7)
    on_tcnn = NetworkMLP(31, 3, 64, 3, backend="cuda-kernels").state_dict()
    assert (
        on_torch.keys() == on_tcnn.keys() == {"layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.2.weight"}
    )
    for name in on_torch:
        torch.testing.assert_close(on_torch[name], on_tcnn[name], rtol=0, atol=0)


def test_tcnn_network_trains_the_canonical_layers(fake_tcnn: None) -> None:
    mlp = NetworkMLP(31, 3, 64, 3, out_activation="Sigmoid", backend="cuda-kernels")
    reference = NetworkMLP(31, 3, 64, 3, out_activation="Sigmoid")
    reference.load_state_dict(mlp.state_dict())
    x = torch.rand(64, 31)
    out = mlp(x)
    assert out.dtype == torch.half
    torch.testing.assert_close(out.float(), reference(x), rtol=0, atol=HALF_TOLERANCE)
    out.float().square().sum().backward()
    assert all(parameter.grad is not None and parameter.grad.abs().sum() > 0 for parameter in mlp.parameters())


def test_checkpoints_of_the_old_flat_tcnn_layout_still_load() -> None:
    mlp = NetworkMLP(10, 2, 16, 1)
    flat = torch.randn(mlp.num_tcnn_params)
    fresh = NetworkMLP(10, 2, 16, 1)
    fresh.load_state_dict({"params": flat})
    expected = NetworkMLP(10, 2, 16, 1)
    expected.load_tcnn_params(flat)
    x = torch.rand(8, 10)
    torch.testing.assert_close(fresh(x), expected(x))


def test_sh_encoding_on_tcnn_has_no_extra_state_and_reads_old_checkpoints(fake_tcnn: None) -> None:
    encoding = SHEncoding(4, backend="cuda-kernels")
    assert encoding.state_dict() == {}
    encoding.load_state_dict({"tcnn_encoding.params": torch.zeros(0)})
    directions = nn.functional.normalize(torch.randn(20, 3), dim=-1)
    torch.testing.assert_close(encoding(directions).float(), SHEncoding(4)(directions), rtol=0, atol=HALF_TOLERANCE)


EMPTY_CASES: dict[str, Callable[[], nn.Module]] = {
    "mlp": lambda: NetworkMLP(31, 3, 64, 3, backend="cuda-kernels"),
    "hash-grid": lambda: HashEncoding(num_levels=2, log2_hashmap_size=8, max_resolution=32, backend="cuda-kernels"),
    "spherical-harmonics": lambda: SHEncoding(4, backend="cuda-kernels"),
}


@pytest.mark.parametrize("name", sorted(EMPTY_CASES))
def test_an_empty_batch_never_reaches_tcnn(fake_tcnn: None, name: str) -> None:
    module = EMPTY_CASES[name]()
    in_dim = 31 if name == "mlp" else 3
    with pytest.raises(RuntimeError, match="invalid configuration"):  # the stand-in refuses, as tiny-cuda-nn does
        fake_tinycudann.Network(
            31, 3, {"n_neurons": 64, "n_hidden_layers": 2, "activation": "ReLU", "output_activation": "None"}
        )(torch.zeros(0, 31))
    x = torch.zeros(0, in_dim, requires_grad=True)
    out = module(x)
    assert out.shape[0] == 0
    out.sum().backward()


BOX = SceneBox.cube(1.5)
TINY_GRID = {"num_levels": 2, "log2_hashmap_size": 8, "max_resolution": 32}

MODELS: dict[str, Callable[[Backends], Model]] = {
    "instant-ngp": lambda backends: InstantNGPModelConfig(
        **TINY_GRID, hidden_dim=16, hidden_dim_color=16, eval_num_rays_per_chunk=64
    ).setup(scene_box=BOX, num_train_data=2, near_plane=2.0, far_plane=6.0, backends=backends),
    "nerfacto": lambda backends: NerfactoModelConfig(
        **TINY_GRID,
        hidden_dim=16,
        hidden_dim_color=16,
        appearance_embed_dim=4,
        proposal_max_resolutions=(16, 16),
        proposal_log2_hashmap_size=8,
        eval_num_rays_per_chunk=64,
    ).setup(scene_box=BOX, num_train_data=2, backends=backends),
    "vanilla-nerf-occupancy": lambda backends: VanillaOccupancyModelConfig(
        base_mlp_num_layers=2,
        base_mlp_layer_width=16,
        head_mlp_layer_width=8,
        skip_connections=(),
        position_encoding=HashGridEncodingConfig(**TINY_GRID),
        direction_encoding=SHEncodingConfig(),
        eval_num_rays_per_chunk=64,
    ).setup(scene_box=BOX, num_train_data=2, near_plane=2.0, far_plane=6.0, backends=backends),
}


def rays(num_rays: int, hit: bool = True) -> RayBundle:
    """Rays from a sphere of radius 4 towards the centre (hit) or straight away from the box (miss)."""
    generator = torch.Generator().manual_seed(3)
    origins = nn.functional.normalize(torch.randn(num_rays, 3, generator=generator), dim=-1) * 4.0
    directions = -origins / 4.0 if hit else origins / 4.0
    return RayBundle(origins, directions, torch.zeros(num_rays, 1, dtype=torch.long))


def render(model: Model, bundle: RayBundle) -> dict[str, torch.Tensor]:
    model.eval()
    with torch.no_grad():
        torch.manual_seed(0)
        return model(bundle)


def occupied(model: Model) -> Model:
    """Marks every occupancy-grid cell occupied, so rays through the box march samples as a trained grid would."""
    grid = getattr(getattr(model, "sampler", None), "grid", None)
    if grid is not None:
        grid.occs.fill_(1.0)
        grid.binaries.fill_(True)
    return model


@pytest.mark.parametrize("method", sorted(MODELS))
def test_a_checkpoint_moves_between_tcnn_and_torch_and_renders_the_same(fake_tcnn: None, method: str) -> None:
    torch.manual_seed(0)
    on_tcnn = occupied(MODELS[method](TCNN))
    with torch.no_grad():  # weights away from their initial values, so a layout mix-up would show
        for parameter in on_tcnn.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.05)
    saved = on_tcnn.state_dict()
    on_torch = MODELS[method](Backends())
    on_torch.load_state_dict(saved)  # strict: same keys and shapes
    bundle = rays(96)
    from_tcnn, from_torch = render(on_tcnn, bundle), render(on_torch, bundle)
    for name in ("rgb", "accumulation", "depth"):
        torch.testing.assert_close(from_torch[name], from_tcnn[name].float(), rtol=0, atol=5 * HALF_TOLERANCE)
    assert from_tcnn["accumulation"].max() > 0.05, "the rays must cross content for the comparison to mean anything"

    back = MODELS[method](TCNN)
    back.load_state_dict(on_torch.state_dict())
    for name, value in back.state_dict().items():
        torch.testing.assert_close(value, saved[name], rtol=0, atol=0)
    torch.testing.assert_close(render(back, bundle)["rgb"], from_tcnn["rgb"], rtol=0, atol=0)


@pytest.mark.parametrize("method", sorted(MODELS))
def test_a_chunk_of_pure_background_renders_and_trains_on_tcnn(fake_tcnn: None, method: str) -> None:
    model = MODELS[method](TCNN).train()
    outputs = model(rays(32, hit=False))
    assert outputs["rgb"].shape == (32, 3)
    loss = outputs["rgb"].sum() + sum(parameter.sum() * 0 for parameter in model.parameters())
    loss.backward()
    image = render(model, rays(32, hit=False))
    assert torch.isfinite(image["rgb"]).all()
