"""Uniform and PDF samplers: coverage of [near, far], stratification, determinism, and an inverse-CDF reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nerfkit.cameras.rays import RayBundle, RaySamples
from nerfkit.model_components.colliders import NearFarCollider
from nerfkit.model_components.ray_samplers import PDFSampler, UniformSampler, inverse_transform_sample


def make_rays(num_rays: int = 6, near: float = 2.0, far: float = 6.0) -> RayBundle:
    directions = torch.nn.functional.normalize(torch.randn(num_rays, 3), dim=-1)
    rays = RayBundle(
        origins=torch.randn(num_rays, 3),
        directions=directions,
        camera_indices=torch.zeros(num_rays, 1, dtype=torch.long),
    )
    return NearFarCollider(near, far)(rays)


def test_collider_returns_a_new_bundle() -> None:
    rays = RayBundle(origins=torch.zeros(3, 3), directions=torch.ones(3, 3), camera_indices=torch.zeros(3, 1))
    collided = NearFarCollider(2.0, 6.0)(rays)
    assert rays.nears is None
    assert torch.equal(collided.nears, torch.full((3, 1), 2.0))
    assert torch.equal(collided.fars, torch.full((3, 1), 6.0))


@pytest.mark.parametrize("training", [True, False])
def test_uniform_bins_cover_near_far_exactly(training: bool) -> None:
    sampler = UniformSampler(num_samples=8).train(training)
    samples = sampler(make_rays())
    assert samples.starts.shape == (6, 8, 1)
    assert torch.equal(samples.starts[:, 0], torch.full((6, 1), 2.0))
    assert torch.equal(samples.ends[:, -1], torch.full((6, 1), 6.0))
    torch.testing.assert_close(samples.ends[:, :-1], samples.starts[:, 1:])
    assert (samples.deltas >= 0).all()


def test_stratified_samples_stay_in_their_bins_and_vary() -> None:
    sampler = UniformSampler(num_samples=8).train()
    rays = make_rays(num_rays=200)
    samples = sampler(rays)
    equal_edges = torch.linspace(2.0, 6.0, 9)
    midpoints = samples.midpoints[..., 0]
    assert (midpoints >= equal_edges[:-1]).all() and (midpoints <= equal_edges[1:]).all()
    assert not torch.allclose(samples.starts, sampler(rays).starts)


def test_eval_samples_are_the_bin_midpoints_and_deterministic() -> None:
    sampler = UniformSampler(num_samples=8).eval()
    rays = make_rays()
    samples = sampler(rays)
    expected = (torch.linspace(2.0, 6.0, 9)[:-1] + 0.25).expand(6, 8)
    torch.testing.assert_close(samples.midpoints[..., 0], expected)
    assert torch.equal(samples.starts, sampler(rays).starts)
    assert torch.equal(UniformSampler(num_samples=8, train_stratified=False).train()(rays).starts, samples.starts)


def test_uniform_sampler_needs_a_collider() -> None:
    rays = RayBundle(origins=torch.zeros(2, 3), directions=torch.ones(2, 3), camera_indices=torch.zeros(2, 1))
    with pytest.raises(ValueError, match="collider"):
        UniformSampler(4)(rays)


def test_inverse_transform_sample_matches_numpy_reference() -> None:
    torch.manual_seed(0)
    bins = torch.sort(torch.rand(4, 9) * 4 + 2, dim=-1).values
    weights = torch.rand(4, 8) + 0.01
    quantiles = torch.sort(torch.rand(4, 20), dim=-1).values
    result = inverse_transform_sample(bins, weights, quantiles)
    for ray in range(4):
        cdf = np.concatenate([[0.0], np.cumsum(weights[ray].numpy()) / weights[ray].sum().item()])
        expected = np.interp(quantiles[ray].numpy(), cdf, bins[ray].numpy())
        np.testing.assert_allclose(result[ray].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_pdf_sampler_matches_reference_in_eval_mode() -> None:
    rays = make_rays(num_rays=3)
    coarse = UniformSampler(num_samples=8).eval()(rays)
    weights = torch.rand(3, 8, 1)
    fine = PDFSampler(num_samples=5, include_original=False, histogram_padding=0.01).eval()(rays, coarse, weights)
    bins = coarse.bins.numpy()
    for ray in range(3):
        padded = weights[ray, :, 0].numpy() + 0.01
        cdf = np.concatenate([[0.0], np.cumsum(padded) / padded.sum()])
        expected = np.interp(np.linspace(0.0, 1.0, 6), cdf, bins[ray])
        np.testing.assert_allclose(fine.bins[ray].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_pdf_sampler_merges_with_original_samples() -> None:
    rays = make_rays()
    coarse = UniformSampler(num_samples=64).eval()(rays)
    fine = PDFSampler(num_samples=128).train()(rays, coarse, torch.rand(6, 64, 1))
    assert fine.num_samples == 192
    assert (fine.bins[:, 1:] >= fine.bins[:, :-1]).all()
    assert torch.isin(coarse.bins, fine.bins).all()
    assert torch.equal(fine.bins[:, [0, -1]], coarse.bins[:, [0, -1]])


def test_pdf_sampler_without_original_keeps_the_ray_ends() -> None:
    rays = make_rays()
    coarse = UniformSampler(num_samples=8).train()(rays)
    fine = PDFSampler(num_samples=12, include_original=False).train()(rays, coarse, torch.rand(6, 8, 1))
    assert fine.num_samples == 12
    assert (fine.bins[:, 1:] >= fine.bins[:, :-1]).all()
    assert torch.equal(fine.bins[:, [0, -1]], coarse.bins[:, [0, -1]])


def test_concentrated_weights_concentrate_samples() -> None:
    rays = make_rays()
    coarse = UniformSampler(num_samples=16).eval()(rays)
    weights = torch.zeros(6, 16, 1)
    weights[:, 10] = 1.0
    fine = PDFSampler(num_samples=64, include_original=False, histogram_padding=1e-3).train()(rays, coarse, weights)
    midpoints = fine.midpoints[..., 0]
    in_peak = (midpoints >= coarse.starts[:, 10]) & (midpoints <= coarse.ends[:, 10])
    assert in_peak.float().mean() > 0.9


def test_pdf_sampler_handles_all_zero_weights_uniformly() -> None:
    rays = make_rays()
    coarse = UniformSampler(num_samples=8).eval()(rays)
    fine = PDFSampler(num_samples=8, include_original=False).eval()(rays, coarse, torch.zeros(6, 8, 1))
    torch.testing.assert_close(fine.bins, coarse.bins)


def test_no_gradient_flows_into_sample_positions() -> None:
    rays = make_rays()
    coarse = UniformSampler(num_samples=8).train()(rays)
    starts = coarse.starts.clone().requires_grad_(True)
    coarse_with_grad = RaySamples(coarse.origins, coarse.directions, starts, coarse.ends)
    weights = torch.rand(6, 8, 1, requires_grad=True)
    fine = PDFSampler(num_samples=16).train()(rays, coarse_with_grad, weights)
    assert not fine.starts.requires_grad and not fine.ends.requires_grad
