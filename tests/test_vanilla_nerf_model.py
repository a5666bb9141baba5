"""The vanilla NeRF model on a tiny config: shapes, gradients, determinism, chunked rendering, and that it learns."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from nerfkit.cameras.cameras import Cameras
from nerfkit.cameras.rays import RayBundle, RaySamples
from nerfkit.configs.fields import FrequencyEncodingConfig, HashGridEncodingConfig, SHEncodingConfig
from nerfkit.configs.model_components import (
    AABBColliderConfig,
    LinDispSamplerConfig,
    PDFSamplerConfig,
    RandomBackgroundConfig,
    UniformSamplerConfig,
    WhiteBackgroundConfig,
)
from nerfkit.configs.models import VanillaModelConfig
from nerfkit.data.scene_box import SceneBox
from nerfkit.errors import NerfkitError
from nerfkit.field_components.encodings import NeRFEncoding
from nerfkit.fields.vanilla_nerf_field import NeRFField
from nerfkit.models.vanilla_nerf import NeRFModel


def tiny_config(**overrides: object) -> VanillaModelConfig:
    settings: dict[str, object] = {
        "coarse_sampler": UniformSamplerConfig(num_samples=8),
        "fine_sampler": PDFSamplerConfig(num_samples=8),
        "position_encoding": FrequencyEncodingConfig(num_frequencies=4),
        "direction_encoding": FrequencyEncodingConfig(num_frequencies=2),
        "base_mlp_num_layers": 3,
        "base_mlp_layer_width": 32,
        "head_mlp_layer_width": 16,
        "skip_connections": (2,),
        "near_plane": 2.0,
        "far_plane": 6.0,
    }
    return VanillaModelConfig(**(settings | overrides))


def make_model(**overrides: object) -> NeRFModel:
    return tiny_config(**overrides).setup(scene_box=SceneBox.cube(1.5), num_train_data=1)


def test_field_outputs() -> None:
    field = NeRFField(NeRFEncoding(3, 4, 0, 3), NeRFEncoding(3, 2, 0, 1), base_mlp_num_layers=3, skip_connections=())
    bins = torch.linspace(2.0, 6.0, 6).expand(4, -1)
    samples = RaySamples(torch.randn(4, 3), torch.randn(4, 3), bins[:, :-1, None], bins[:, 1:, None])
    densities, rgb = field(samples)
    assert densities.shape == (4, 5, 1) and rgb.shape == (4, 5, 3)
    assert (densities >= 0).all() and ((rgb >= 0) & (rgb <= 1)).all()


def test_forward_backward_and_output_shapes(random_rays: Callable[..., RayBundle]) -> None:
    torch.manual_seed(0)
    model = make_model().train()
    outputs = model(random_rays(10))
    for name in ["rgb", "rgb_coarse", "background", "background_coarse"]:
        assert outputs[name].shape == (10, 3), name
    for name in ["depth", "depth_coarse", "accumulation", "accumulation_coarse"]:
        assert outputs[name].shape == (10, 1), name
    assert ((outputs["depth"] >= 2.0) & (outputs["depth"] <= 6.0)).all()
    batch = {"image": torch.rand(10, 4)}
    metrics = model.get_metrics_dict(outputs, batch)
    losses = model.get_loss_dict(outputs, batch, metrics)
    assert set(losses) == {"rgb_loss_coarse", "rgb_loss_fine"} and set(metrics) == {"psnr"}
    sum(losses.values()).backward()
    params = model.get_param_groups()["fields"]
    assert len(params) == len(list(model.parameters()))
    assert all(p.grad is not None for p in params)
    assert all(p.grad.abs().sum() > 0 for p in model.field_coarse.parameters())


def test_fine_pass_sees_coarse_and_importance_samples(random_rays: Callable[..., RayBundle]) -> None:
    model = make_model().eval()
    rays = model.collider(random_rays(3))
    coarse = model.sampler_coarse(rays)
    fine = model.sampler_fine(rays, coarse, torch.rand(3, 8, 1))
    assert fine.num_samples == 16


def test_eval_mode_is_deterministic(random_rays: Callable[..., RayBundle]) -> None:
    model = make_model(background_color=RandomBackgroundConfig()).eval()
    rays = random_rays(10)
    with torch.no_grad():
        first, second = model(rays), model(rays)
    for name, value in first.items():
        assert torch.equal(value, second[name]), name
    assert torch.equal(first["background"], torch.ones(10, 3))


def test_chunked_camera_rendering_matches_one_chunk() -> None:
    camera = Cameras(
        camera_to_worlds=torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 4.0]]]),
        fx=torch.tensor([6.0]),
        fy=torch.tensor([6.0]),
        cx=torch.tensor([3.5]),
        cy=torch.tensor([2.5]),
        width=torch.tensor([7]),
        height=torch.tensor([5]),
    )
    chunked = make_model(eval_num_rays_per_chunk=6).eval()
    whole = make_model(eval_num_rays_per_chunk=1000).eval()
    whole.load_state_dict(chunked.state_dict())
    chunked_outputs = chunked.get_outputs_for_camera(camera, 0)
    whole_outputs = whole.get_outputs_for_camera(camera, 0)
    assert chunked_outputs["rgb"].shape == (5, 7, 3)
    for name, value in whole_outputs.items():
        torch.testing.assert_close(chunked_outputs[name], value, msg=name)

    metrics, images = chunked.get_image_metrics_and_images(chunked_outputs, {"image": torch.rand(5, 7, 4)})
    assert set(metrics) == {"psnr", "psnr_coarse"} and all(isinstance(v, float) for v in metrics.values())
    assert set(images) == {"img", "depth", "accumulation"}
    for image in images.values():
        assert image.shape == (5, 14, 3)
        assert ((image >= 0) & (image <= 1)).all()


def test_missing_near_far_is_a_user_error() -> None:
    config = tiny_config(near_plane=None, far_plane=None)
    with pytest.raises(NerfkitError, match="near"):
        config.setup(scene_box=SceneBox.cube(1.5), num_train_data=1)
    model = config.setup(scene_box=SceneBox.cube(1.5), num_train_data=1, near_plane=2, far_plane=6)
    assert model.collider.near_plane == 2 and model.collider.far_plane == 6


PART_CHOICES = {
    "white": {"background_color": WhiteBackgroundConfig()},
    "random": {"background_color": RandomBackgroundConfig()},
    "other-parts": {
        "position_encoding": HashGridEncodingConfig(num_levels=4, log2_hashmap_size=10, max_resolution=64),
        "direction_encoding": SHEncodingConfig(levels=3),
        "coarse_sampler": LinDispSamplerConfig(num_samples=8),
        "collider": AABBColliderConfig(),
    },
}
"""The default parts with each background, and every other replaceable part swapped at once."""


@pytest.mark.parametrize("parts", PART_CHOICES.values(), ids=PART_CHOICES.keys())
def test_overfits_fixed_rays(parts: dict[str, object], random_rays: Callable[..., RayBundle]) -> None:
    torch.manual_seed(0)
    model = make_model(**parts).train()
    rays = random_rays(16, seed=1)
    batch = {"image": torch.rand(16, 3, generator=torch.Generator().manual_seed(2))}
    optimizer = torch.optim.Adam(model.get_param_groups()["fields"], lr=1e-2)
    losses = []
    for _ in range(60):
        outputs = model(rays)
        loss_dict = model.get_loss_dict(outputs, batch, model.get_metrics_dict(outputs, batch))
        loss = sum(loss_dict.values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], losses[::10]
