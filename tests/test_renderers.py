"""Volume rendering against a plain loop, analytic transmittance, backgrounds, depth; colormap and PSNR."""

from __future__ import annotations

import math

import pytest
import torch

from nerfkit.cameras.rays import RaySamples
from nerfkit.configs.model_components import BackgroundConfig
from nerfkit.model_components.renderers import (
    AccumulationRenderer,
    DepthRenderer,
    RGBRenderer,
    accumulate_along_rays,
    composite_ground_truth,
    render_transmittance_from_density,
    render_weights_from_density,
)
from nerfkit.plugins.components import implementations
from nerfkit.utils.colormaps import apply_depth_colormap
from nerfkit.utils.metrics import psnr


def renderer(background: str) -> RGBRenderer:
    """An RGB renderer with the background registered under that name."""
    return RGBRenderer(implementations(BackgroundConfig)[background]().setup())


def loop_weights(densities: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """The textbook recurrence, one ray and one sample at a time."""
    rays = []
    for ray in range(densities.shape[0]):
        transmittance = torch.ones((), dtype=densities.dtype)
        weights = []
        for i in range(densities.shape[1]):
            alpha = 1 - torch.exp(-densities[ray, i, 0] * deltas[ray, i, 0])
            weights.append(transmittance * alpha)
            transmittance = transmittance * (1 - alpha)
        rays.append(torch.stack(weights))
    return torch.stack(rays)[..., None]


def test_weights_and_gradients_match_the_loop_reference() -> None:
    torch.manual_seed(0)
    densities = (torch.rand(4, 12, 1, dtype=torch.float64) * 3).requires_grad_(True)
    deltas = (torch.rand(4, 12, 1, dtype=torch.float64) * 0.5).requires_grad_(True)
    weights = render_weights_from_density(densities, deltas)
    reference = loop_weights(densities, deltas)
    torch.testing.assert_close(weights, reference)
    probe = torch.rand_like(weights)
    grads = torch.autograd.grad((weights * probe).sum(), [densities, deltas])
    reference_grads = torch.autograd.grad((reference * probe).sum(), [densities, deltas])
    for grad, reference_grad in zip(grads, reference_grads, strict=True):
        torch.testing.assert_close(grad, reference_grad)


def test_constant_density_gives_analytic_transmittance() -> None:
    sigma, num_samples, length = 0.7, 20, 4.0
    delta = length / num_samples
    densities = torch.full((2, num_samples, 1), sigma, dtype=torch.float64)
    deltas = torch.full((2, num_samples, 1), delta, dtype=torch.float64)
    starts = torch.arange(num_samples, dtype=torch.float64) * delta
    transmittance = render_transmittance_from_density(densities, deltas)
    torch.testing.assert_close(transmittance[..., 0], torch.exp(-sigma * starts).expand(2, -1))
    accumulation = accumulate_along_rays(render_weights_from_density(densities, deltas))
    torch.testing.assert_close(accumulation, torch.full((2, 1), 1 - math.exp(-sigma * length), dtype=torch.float64))


def test_background_shows_through_empty_rays() -> None:
    rgb = torch.rand(5, 4, 3)
    empty = torch.zeros(5, 4, 1)
    white, background = renderer("white")(rgb, empty)
    assert torch.equal(white, torch.ones(5, 3)) and torch.equal(background, torch.ones(5, 3))
    black, _ = renderer("black")(rgb, empty)
    assert torch.equal(black, torch.zeros(5, 3))
    last, background = renderer("last-sample")(rgb, empty)
    assert torch.equal(last, rgb[:, -1]) and torch.equal(background, rgb[:, -1])


def test_random_background_is_per_ray_in_training_and_white_in_eval() -> None:
    random = renderer("random")
    rgb, weights = torch.rand(64, 4, 3), torch.rand(64, 4, 1) * 0.2
    composited, background = random.train()(rgb, weights)
    assert background.std(dim=0).min() > 0.1
    opacity = weights.sum(dim=-2)
    torch.testing.assert_close(composited, (weights * rgb).sum(dim=-2) + (1 - opacity) * background)
    _, eval_background = random.eval()(rgb, weights)
    assert torch.equal(eval_background, torch.ones(64, 3))


def test_opaque_ray_ignores_background() -> None:
    rgb = torch.tensor([[[0.2, 0.4, 0.6]]]).expand(3, 2, 3)
    weights = torch.tensor([[[1.0], [0.0]]]).expand(3, 2, 1)
    composited, _ = renderer("random").train()(rgb, weights)
    torch.testing.assert_close(composited, rgb[:, 0])


def test_ground_truth_is_composited_like_the_prediction() -> None:
    rgba = torch.tensor([[1.0, 0.0, 0.0, 0.25], [0.0, 1.0, 0.0, 1.0], [0.3, 0.3, 0.3, 0.0]])
    background = torch.tensor([[0.0, 0.0, 1.0], [1.0, 1.0, 1.0], [0.5, 0.6, 0.7]], requires_grad=True)
    expected = torch.tensor([[0.25, 0.0, 0.75], [0.0, 1.0, 0.0], [0.5, 0.6, 0.7]])
    composited = composite_ground_truth(rgba, background)
    torch.testing.assert_close(composited, expected)
    assert not composited.requires_grad
    assert torch.equal(composite_ground_truth(rgba[:, :3], background), rgba[:, :3])


def slab_samples(num_rays: int, near: float, far: float, num_samples: int) -> RaySamples:
    bins = torch.linspace(near, far, num_samples + 1).expand(num_rays, -1)
    return RaySamples(torch.zeros(num_rays, 3), torch.ones(num_rays, 3), bins[:, :-1, None], bins[:, 1:, None])


def test_depth_of_an_opaque_slab() -> None:
    samples = slab_samples(2, 2.0, 6.0, 40)
    in_slab = (samples.midpoints >= 3.5) & (samples.midpoints <= 4.0)
    densities = torch.where(in_slab, 1e4, 0.0)
    weights = render_weights_from_density(densities, samples.deltas)
    depth = DepthRenderer()(weights, samples)
    first_slab_midpoint = samples.midpoints[0][in_slab[0]][0]
    torch.testing.assert_close(depth, torch.full((2, 1), first_slab_midpoint.item()))
    torch.testing.assert_close(AccumulationRenderer()(weights), torch.ones(2, 1))


def test_depth_of_empty_ray_is_clamped_to_near() -> None:
    samples = slab_samples(1, 2.0, 6.0, 8)
    depth = DepthRenderer()(torch.zeros(1, 8, 1), samples)
    assert torch.equal(depth, torch.full((1, 1), 2.0))


def test_psnr() -> None:
    target = torch.zeros(4, 4, 3)
    torch.testing.assert_close(psnr(target + 0.1, target), torch.tensor(20.0))


def test_depth_colormap_range_and_background() -> None:
    depth = torch.linspace(2.0, 6.0, 12).reshape(3, 4, 1)
    accumulation = torch.ones(3, 4, 1)
    accumulation[0, 0] = 0.0
    image = apply_depth_colormap(depth, accumulation)
    assert image.shape == (3, 4, 3)
    assert ((image >= 0) & (image <= 1)).all()
    assert torch.equal(image[0, 0], torch.ones(3))
    # The range comes from opaque pixels only, so the second pixel gets the darkest colour.
    torch.testing.assert_close(image[0, 1], torch.tensor([0.267, 0.005, 0.329]))
    fixed = apply_depth_colormap(depth, near=0.0, far=12.0)
    torch.testing.assert_close(fixed[-1, -1], apply_depth_colormap(torch.tensor([[0.5]]), near=0.0, far=1.0)[0])


@pytest.mark.parametrize("fraction", [0.0, 0.37, 1.0])
def test_colormap_lightness_increases_with_depth(fraction: float) -> None:
    depth = torch.tensor([[fraction], [min(fraction + 0.1, 1.0)]])
    image = apply_depth_colormap(depth, near=0.0, far=1.0)
    luminance = image @ torch.tensor([0.2126, 0.7152, 0.0722])
    assert luminance[1] >= luminance[0]
