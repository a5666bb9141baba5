"""Packed volume rendering against a plain per-ray loop, values and gradients; and against the batched renderer.

The loop below walks each ray's samples one by one with the textbook recurrences (T_0 = 1, T_(i+1) = T_i (1 - alpha_i))
in float64, so it shares nothing with the segment operations under test. The nerfacc tests run where its CUDA kernels
can, and skip with the reason elsewhere.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from nerfkit.errors import NerfkitError
from nerfkit.kernels import volrend
from nerfkit.kernels.backends import package_status
from nerfkit.model_components import renderers

COUNTS = [0, 1, 5, 0, 0, 3, 1, 12, 0, 2, 30, 1]
"""Samples per ray: empty rays (first, inner, consecutive), single samples, longer rays."""


def packed_rays(counts: list[int], seed: int = 0, dtype: torch.dtype = torch.float64) -> dict[str, Tensor]:
    """Random packed samples: sorted ray indices, contiguous increasing intervals, densities with zeros and spikes."""
    generator = torch.Generator().manual_seed(seed)
    ray_indices = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts, dtype=torch.long))
    num_samples = len(ray_indices)
    deltas = torch.rand(num_samples, generator=generator, dtype=dtype) * 0.2 + 0.01
    starts = []
    for ray_deltas in deltas.split(counts):  # each ray's intervals follow one another from a random start
        origin = torch.rand(1, generator=generator, dtype=dtype)
        starts.append(origin + torch.cumsum(ray_deltas, 0) - ray_deltas)
    starts = torch.cat(starts) if starts else deltas
    sigmas = torch.rand(num_samples, generator=generator, dtype=dtype) * 8
    sigmas[torch.rand(num_samples, generator=generator) < 0.2] = 0.0
    sigmas[torch.rand(num_samples, generator=generator) < 0.1] *= 20
    return {
        "ray_indices": ray_indices,
        "t_starts": starts,
        "t_ends": starts + deltas,
        "sigmas": sigmas,
        "alphas": torch.rand(num_samples, generator=generator, dtype=dtype) * 0.99,
        "values": torch.rand(num_samples, 3, generator=generator, dtype=dtype),
    }


def loop_render(
    ray_indices: Tensor, alphas: Tensor, values: Tensor, n_rays: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-ray loop: transmittance and weight of each sample, and the weighted sum and opacity of each ray."""
    transmittances, weights = [], []
    colours, opacities = [], []
    for ray in range(n_rays):
        light = torch.ones((), dtype=alphas.dtype)
        colour, opacity = torch.zeros(values.shape[-1], dtype=alphas.dtype), torch.zeros((), dtype=alphas.dtype)
        for i in torch.nonzero(ray_indices == ray).flatten().tolist():
            transmittances.append(light)
            weights.append(light * alphas[i])
            colour = colour + weights[-1] * values[i]
            opacity = opacity + weights[-1]
            light = light * (1 - alphas[i])
        colours.append(colour)
        opacities.append(opacity)
    return (
        stack(transmittances, alphas.new_zeros(0)),
        stack(weights, alphas.new_zeros(0)),
        stack(colours, values.new_zeros(0, values.shape[-1])),
        stack(opacities, alphas.new_zeros(0))[:, None],
    )


def stack(items: list[Tensor], empty: Tensor) -> Tensor:
    return torch.stack(items) if items else empty


def loop_alphas(t_starts: Tensor, t_ends: Tensor, sigmas: Tensor) -> Tensor:
    alphas = [1 - torch.exp(-sigma * (end - start)) for start, end, sigma in zip(t_starts, t_ends, sigmas, strict=True)]
    return stack(alphas, sigmas.new_zeros(0))


def gradients(outputs: list[Tensor], inputs: list[Tensor], seed: int = 1) -> list[Tensor]:
    """Gradients of a random linear function of the outputs (so every output element matters)."""
    generator = torch.Generator().manual_seed(seed)
    loss = sum((output * torch.rand(output.shape, generator=generator, dtype=output.dtype)).sum() for output in outputs)
    return list(torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True))


@pytest.mark.parametrize("counts", [COUNTS, [4], [0, 0], []], ids=["mixed", "one-ray", "all-empty", "no-rays"])
def test_weights_from_density_match_the_loop(counts: list[int]) -> None:
    rays = packed_rays(counts)
    sigmas = rays["sigmas"].requires_grad_()
    values = rays["values"].requires_grad_()
    n_rays = len(counts)
    weights, transmittance, alphas = volrend.render_weight_from_density(
        rays["t_starts"], rays["t_ends"], sigmas, ray_indices=rays["ray_indices"], n_rays=n_rays
    )
    colours = volrend.accumulate_along_rays(weights, values, rays["ray_indices"], n_rays)
    opacities = volrend.accumulate_along_rays(weights, None, rays["ray_indices"], n_rays)

    loop_a = loop_alphas(rays["t_starts"], rays["t_ends"], sigmas)
    loop_t, loop_w, loop_c, loop_o = loop_render(rays["ray_indices"], loop_a, values, n_rays)
    for ours, theirs in [(alphas, loop_a), (transmittance, loop_t), (weights, loop_w)]:
        torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(colours, loop_c)
    torch.testing.assert_close(opacities, loop_o)
    assert colours.shape == (n_rays, 3) and opacities.shape == (n_rays, 1)
    if len(sigmas):
        ours_grads = gradients([weights, transmittance, alphas, colours, opacities], [sigmas, values])
        loop_grads = gradients([loop_w, loop_t, loop_a, loop_c, loop_o], [sigmas, values])
        for ours, theirs in zip(ours_grads, loop_grads, strict=True):
            torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("counts", [COUNTS, [1], [0]], ids=["mixed", "single", "empty"])
def test_weights_from_alpha_match_the_loop(counts: list[int]) -> None:
    rays = packed_rays(counts, seed=3)
    alphas = rays["alphas"].requires_grad_()
    values = rays["values"].requires_grad_()
    n_rays = len(counts)
    weights, transmittance = volrend.render_weight_from_alpha(alphas, ray_indices=rays["ray_indices"], n_rays=n_rays)
    colours = volrend.accumulate_along_rays(weights, values, rays["ray_indices"], n_rays)
    loop_t, loop_w, loop_c, _ = loop_render(rays["ray_indices"], alphas, values, n_rays)
    torch.testing.assert_close(transmittance, loop_t)
    torch.testing.assert_close(weights, loop_w)
    torch.testing.assert_close(colours, loop_c)
    if len(alphas):
        ours_grads = gradients([weights, transmittance, colours], [alphas, values])
        loop_grads = gradients([loop_w, loop_t, loop_c], [alphas, values])
        for ours, theirs in zip(ours_grads, loop_grads, strict=True):
            torch.testing.assert_close(ours, theirs)


def test_float32_inputs_match_the_float64_loop() -> None:
    rays = packed_rays(COUNTS, seed=5, dtype=torch.float32)
    weights, transmittance, _ = volrend.render_weight_from_density(
        rays["t_starts"], rays["t_ends"], rays["sigmas"], ray_indices=rays["ray_indices"]
    )
    assert weights.dtype == torch.float32
    loop_a = loop_alphas(rays["t_starts"].double(), rays["t_ends"].double(), rays["sigmas"].double())
    loop_t, loop_w, _, _ = loop_render(rays["ray_indices"], loop_a, rays["values"].double(), len(COUNTS))
    torch.testing.assert_close(transmittance.double(), loop_t, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(weights.double(), loop_w, atol=1e-6, rtol=1e-5)


def test_a_ray_after_many_others_keeps_its_precision() -> None:
    """The packed exclusive sum runs over all rays; a late ray's transmittance must not suffer from the total."""
    counts = [64] * 4000 + [3]
    ray_indices = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    sigmas = torch.full((len(ray_indices),), 50.0)
    sigmas[-3:] = torch.tensor([0.001, 0.002, 0.003])
    t_starts = torch.zeros(len(ray_indices))
    t_ends = torch.ones(len(ray_indices))
    transmittance, _ = volrend.render_transmittance_from_density(t_starts, t_ends, sigmas, ray_indices=ray_indices)
    expected = torch.exp(-torch.tensor([0.0, 0.001, 0.003]))
    torch.testing.assert_close(transmittance[-3:], expected, rtol=1e-7, atol=0)


def test_an_opaque_sample_hides_what_follows_without_nans() -> None:
    alphas = torch.tensor([0.5, 1.0, 0.3, 0.2, 0.4], requires_grad=True)
    ray_indices = torch.tensor([0, 0, 0, 0, 1])
    weights, transmittance = volrend.render_weight_from_alpha(alphas, ray_indices=ray_indices, n_rays=2)
    torch.testing.assert_close(transmittance, torch.tensor([1.0, 0.5, 0.0, 0.0, 1.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(weights[:2], torch.tensor([0.5, 0.5]))
    weights.sum().backward()
    assert alphas.grad is not None and torch.isfinite(alphas.grad).all()


def test_packed_matches_the_batched_renderer_and_batched_input() -> None:
    """With every ray holding the same number of samples, packed, batched and the model renderer all agree."""
    generator = torch.Generator().manual_seed(7)
    n_rays, n_samples = 6, 9
    edges = torch.sort(torch.rand(n_rays, n_samples + 1, generator=generator) * 4, dim=-1).values
    densities = (torch.rand(n_rays, n_samples, generator=generator) * 3).requires_grad_()
    rgb = torch.rand(n_rays, n_samples, 3, generator=generator)
    starts, ends = edges[:, :-1], edges[:, 1:]

    expected = renderers.render_weights_from_density(densities[..., None], (ends - starts)[..., None])[..., 0]
    expected_rgb = renderers.accumulate_along_rays(expected[..., None], rgb)
    ray_indices = torch.arange(n_rays).repeat_interleave(n_samples)
    packed, _, _ = volrend.render_weight_from_density(
        starts.flatten(), ends.flatten(), densities.flatten(), ray_indices=ray_indices, n_rays=n_rays
    )
    batched, _, _ = volrend.render_weight_from_density(starts, ends, densities)
    torch.testing.assert_close(packed.view(n_rays, n_samples), expected)
    torch.testing.assert_close(batched, expected)
    torch.testing.assert_close(
        volrend.accumulate_along_rays(packed, rgb.view(-1, 3), ray_indices, n_rays), expected_rgb
    )
    torch.testing.assert_close(volrend.accumulate_along_rays(batched, rgb), expected_rgb)
    (packed_grad,) = torch.autograd.grad(packed.sum(), densities)
    (expected_grad,) = torch.autograd.grad(expected.sum(), densities)
    torch.testing.assert_close(packed_grad, expected_grad)


@pytest.mark.parametrize("alpha_thre", [0.0, 0.3])
def test_visibility_matches_the_loop(alpha_thre: float) -> None:
    rays = packed_rays(COUNTS, seed=11)
    early_stop_eps = 0.2
    visible = volrend.render_visibility_from_alpha(
        rays["alphas"], ray_indices=rays["ray_indices"], early_stop_eps=early_stop_eps, alpha_thre=alpha_thre
    )
    loop_t, _, _, _ = loop_render(rays["ray_indices"], rays["alphas"], rays["values"], len(COUNTS))
    expected = loop_t >= early_stop_eps
    if alpha_thre > 0:
        expected &= rays["alphas"] >= alpha_thre
    assert torch.equal(visible, expected)
    assert 0 < visible.sum() < len(visible)
    from_density = volrend.render_visibility_from_density(
        rays["t_starts"], rays["t_ends"], rays["sigmas"], ray_indices=rays["ray_indices"], early_stop_eps=0.2
    )
    loop_t, _, _, _ = loop_render(
        rays["ray_indices"], loop_alphas(rays["t_starts"], rays["t_ends"], rays["sigmas"]), rays["values"], len(COUNTS)
    )
    assert torch.equal(from_density, loop_t >= 0.2)


def test_packed_accumulation_needs_n_rays() -> None:
    with pytest.raises(ValueError, match="n_rays"):
        volrend.accumulate_along_rays(torch.ones(2), ray_indices=torch.tensor([0, 1]))


@pytest.mark.skipif(package_status("nerfacc").usable, reason="nerfacc can run here")
def test_cuda_kernels_backend_says_why_it_cannot_run() -> None:
    with pytest.raises(NerfkitError, match="nerfacc") as raised:
        volrend.render_weight_from_alpha(
            torch.rand(3), ray_indices=torch.zeros(3, dtype=torch.long), n_rays=1, backend="cuda-kernels"
        )
    assert raised.value.hint is not None and "torch backend" in raised.value.hint


NERFACC_PARAMETERS = {
    "render_transmittance_from_density": {"t_starts", "t_ends", "sigmas", "packed_info", "ray_indices", "n_rays",
                                          "prefix_trans"},
    "render_transmittance_from_alpha": {"alphas", "packed_info", "ray_indices", "n_rays", "prefix_trans"},
    "render_weight_from_density": {"t_starts", "t_ends", "sigmas", "packed_info", "ray_indices", "n_rays",
                                   "prefix_trans"},
    "render_weight_from_alpha": {"alphas", "packed_info", "ray_indices", "n_rays", "prefix_trans"},
    "render_visibility_from_alpha": {"alphas", "packed_info", "ray_indices", "n_rays", "early_stop_eps", "alpha_thre",
                                     "prefix_trans"},
    "render_visibility_from_density": {"t_starts", "t_ends", "sigmas", "packed_info", "ray_indices", "n_rays",
                                       "early_stop_eps", "alpha_thre", "prefix_trans"},
    "accumulate_along_rays": {"weights", "values", "ray_indices", "n_rays"},
}  # fmt: skip
"""The parameters of nerfacc 0.5's functions (nerfacc/volrend.py), which the cuda-kernels backend passes by keyword."""


@pytest.mark.parametrize("name", list(NERFACC_PARAMETERS))
def test_cuda_kernels_backend_passes_every_argument_to_nerfaccs_function(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {}

    class FakeNerfacc:
        def __getattr__(self, function: str) -> object:
            return lambda **kwargs: calls.setdefault(function, kwargs)

    monkeypatch.setattr(volrend, "import_nerfacc", FakeNerfacc)
    rays = packed_rays(COUNTS)
    arguments = {**rays, "weights": rays["alphas"], "n_rays": len(COUNTS), "early_stop_eps": 1e-3, "alpha_thre": 0.1}
    function = getattr(volrend, name)
    passed = {key: value for key, value in arguments.items() if key in NERFACC_PARAMETERS[name]}
    function(**passed, backend="cuda-kernels")
    assert calls[name].keys() == passed.keys()
    assert all(calls[name][key] is value for key, value in passed.items())
    assert name not in calls or function(**passed) is not calls[name]  # torch is the default backend


NERFACC = package_status("nerfacc")


@pytest.mark.skipif(not NERFACC.usable, reason=f"nerfacc's CUDA kernels cannot run here: {NERFACC.reason}")
def test_torch_backend_matches_nerfacc_values_and_gradients() -> None:
    rays = {k: v.float().cuda() if v.is_floating_point() else v.cuda() for k, v in packed_rays(COUNTS * 20).items()}
    n_rays = len(COUNTS) * 20
    results = {}
    for backend in ("torch", "cuda-kernels"):
        sigmas = rays["sigmas"].clone().requires_grad_()
        alphas = rays["alphas"].clone().requires_grad_()
        values = rays["values"].clone().requires_grad_()
        kwargs = {"ray_indices": rays["ray_indices"], "n_rays": n_rays, "backend": backend}
        weights, transmittance, from_density = volrend.render_weight_from_density(
            rays["t_starts"], rays["t_ends"], sigmas, **kwargs
        )
        alpha_weights, alpha_transmittance = volrend.render_weight_from_alpha(alphas, **kwargs)
        colours = volrend.accumulate_along_rays(weights, values, **kwargs)
        outputs = [weights, transmittance, from_density, alpha_weights, alpha_transmittance, colours]
        results[backend] = outputs + gradients(outputs, [sigmas, alphas, values])
    for ours, theirs in zip(results["torch"], results["cuda-kernels"], strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)
