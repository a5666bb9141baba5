"""One hash grid (issue 17): every grid is built from a HashGridConfig, instant-ngp's density half is nerfacto's
HashDensityField (its old checkpoint keys still load), and the spherical harmonics have their own backend. The kernels'
imports are tests/test_layering.py's."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import fake_tinycudann
import pytest
import torch

from nerfkit.configs.fields import HashGridConfig
from nerfkit.configs.models import InstantNGPModelConfig, NerfactoModelConfig
from nerfkit.data.scene_box import SceneBox
from nerfkit.fields.ngp_field import NGPField
from nerfkit.kernels import tcnn
from nerfkit.kernels.backends import Backends, KernelsConfig, PackageStatus, resolve_backends
from nerfkit.kernels.hash_encoding import HashGridLayout

TINY = HashGridConfig(num_levels=2, log2_hashmap_size=8, max_resolution=32)
BOX = SceneBox.cube(1.5)


def layout(grid: HashGridConfig) -> HashGridLayout:
    return HashGridLayout.create(
        grid.num_levels, grid.features_per_level, grid.log2_hashmap_size, grid.base_resolution, grid.max_resolution
    )


def test_the_defaults_are_those_of_instant_ngp_and_nerfacto() -> None:
    assert HashGridConfig() == HashGridConfig(16, 2, 19, 16, 2048)
    for config in (InstantNGPModelConfig(), NerfactoModelConfig()):
        assert (config.num_levels, config.features_per_level, config.log2_hashmap_size) == (16, 2, 19)
        assert (config.base_resolution, config.max_resolution) == (16, 2048)
    nerfacto = NerfactoModelConfig()
    assert [nerfacto.proposal_grid(r) for r in nerfacto.proposal_max_resolutions] == [
        HashGridConfig(5, 2, 17, 16, 128),
        HashGridConfig(5, 2, 17, 16, 256),
    ]


def test_every_grid_is_the_one_its_config_describes() -> None:
    sizes = {"num_levels": 2, "log2_hashmap_size": 8, "max_resolution": 32, "features_per_level": 4}
    ngp = InstantNGPModelConfig(**sizes, hidden_dim=16, hidden_dim_color=16)
    model = ngp.setup(scene_box=BOX, num_train_data=1, near_plane=2.0, far_plane=6.0)
    assert model.field.density_field.encoding.layout == layout(HashGridConfig(**sizes))
    nerfacto = NerfactoModelConfig(**sizes, proposal_max_resolutions=(16, 24), proposal_log2_hashmap_size=8)
    model = nerfacto.setup(scene_box=BOX, num_train_data=1)
    assert model.field.density_field.encoding.layout == layout(HashGridConfig(**sizes))
    proposals = [network.encoding.layout for network in model.proposal_networks]
    assert proposals == [layout(HashGridConfig(5, 2, 8, 16, 16)), layout(HashGridConfig(5, 2, 8, 16, 24))]


def test_an_instant_ngp_field_reads_checkpoints_of_its_separate_density_grid_and_mlp() -> None:
    """Before the density half was a HashDensityField, the field held `position_encoding`, `density_mlp` and `aabb`."""
    torch.manual_seed(0)
    written = NGPField(BOX.aabb, Backends(), TINY, hidden_dim=16, hidden_dim_color=16)
    renames = {"density_field.encoding.": "position_encoding.", "density_field.mlp.": "density_mlp."}
    old_state = {"aabb": BOX.aabb.clone()}
    for key, value in written.state_dict().items():
        old = next((old + key[len(new) :] for new, old in renames.items() if key.startswith(new)), key)
        old_state[old] = value
    assert "position_encoding.params" in old_state and "density_mlp.layers.0.weight" in old_state
    torch.manual_seed(1)
    loaded = NGPField(BOX.aabb, Backends(), TINY, hidden_dim=16, hidden_dim_color=16)
    loaded.load_state_dict(old_state)  # strict: every old key has a place
    positions = torch.rand(50, 3) * 4 - 2  # some outside the box, where the density is zero
    directions = torch.nn.functional.normalize(torch.randn(50, 3), dim=-1)
    for expected, actual in zip(written(positions, directions), loaded(positions, directions), strict=True):
        assert torch.equal(expected, actual)


def usable(name: str) -> PackageStatus:
    return PackageStatus(name, True, "usable")


def test_the_spherical_harmonics_backend_is_its_own_choice() -> None:
    cuda = torch.device("cuda", 0)
    assert resolve_backends(KernelsConfig(), cuda, usable).sh_encoding == "cuda-kernels"  # as hash-encoding auto
    backends = resolve_backends(KernelsConfig(sh_encoding="torch"), cuda, usable)
    assert (backends.hash_encoding, backends.sh_encoding) == ("cuda-kernels", "torch")
    backends = resolve_backends(KernelsConfig(hash_encoding="torch"), cuda, usable)
    assert (backends.hash_encoding, backends.sh_encoding) == ("torch", "cuda-kernels")


@pytest.fixture
def fake_tcnn(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(sys.modules, "tinycudann", fake_tinycudann)
    monkeypatch.setattr(tcnn, "package_status", usable)
    yield


@pytest.mark.usefixtures("fake_tcnn")
def test_the_fields_take_each_encodings_backend_from_its_own_setting() -> None:
    field = NGPField(BOX.aabb, Backends(sh_encoding="cuda-kernels"), TINY, hidden_dim=16, hidden_dim_color=16)
    assert field.direction_encoding._tcnn_encoding is not None
    assert field.density_field.encoding._tcnn_encoding is None
    field = NGPField(BOX.aabb, Backends(hash_encoding="cuda-kernels"), TINY, hidden_dim=16, hidden_dim_color=16)
    assert field.direction_encoding._tcnn_encoding is None
    assert field.density_field.encoding._tcnn_encoding is not None
