"""Hash encoding: tiny-cuda-nn's layout, the eager path against a per-point reference, the fused CPU kernel against
the eager path (values, and first and second derivatives with respect to parameters and positions) and against finite
differences, checkpoints across paths and backends, and the fallback when the kernel cannot be compiled."""

from __future__ import annotations

import ctypes
import io
import logging
import math
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from nerfkit.errors import NerfkitError
from nerfkit.kernels import hash_encoding
from nerfkit.kernels.backends import package_status
from nerfkit.kernels.cpu.build import KernelBuildError, load_c_library
from nerfkit.kernels.hash_encoding import (
    HashEncoding,
    HashGridLayout,
    fused_cpu_status,
    hash_encode,
    hash_encode_torch,
)

TCNN_PRIMES = (1, 2654435761, 805459861)
"""tiny-cuda-nn's coherent prime hash factors, written out here so the reference does not share the module's."""

# Level scales 3, 7, 15, 31 (growth exactly 2): two dense levels, then hashed ones whose grids exceed 512 entries.
MIXED = dict(num_levels=4, features_per_level=2, log2_hashmap_size=9, base_resolution=4, max_resolution=32)
# A non-integer growth factor and 4 features per level.
IRREGULAR = dict(num_levels=3, features_per_level=4, log2_hashmap_size=8, base_resolution=5, max_resolution=23)


@pytest.fixture(scope="module")
def fused() -> None:
    """Skips where the fused kernel cannot be built (no compiler); compiled once, then cached on disk."""
    status = fused_cpu_status()
    if not status.usable:
        pytest.skip(f"the fused CPU kernel cannot be built here: {status.reason}")


def took_fused_path(out: torch.Tensor) -> bool:
    """Whether the fused kernel's autograd node is among the few nodes that produced `out`."""
    nodes, names = [out.grad_fn], set()
    for _ in range(3):
        names |= {type(node).__name__ for node in nodes if node is not None}
        nodes = [parent for node in nodes if node is not None for parent, _ in node.next_functions]
    return any("Fused" in name for name in names)


def reference_encode(point: list[float], params: list[float], layout: HashGridLayout) -> tuple[list, list, list]:
    """One point, level by level and corner by corner, in float64 except where tiny-cuda-nn rounds to float32.

    Returns the features, and for each feature its (param index, d feature / d param) pairs and d feature / d point.
    """
    size = layout.features_per_level
    features, param_grads, point_grads = [], [], []
    for level in range(layout.num_levels):
        scale = layout.scales[level]
        cell, frac = [], []
        for x in point:
            scaled = float(np.float32(float(np.float32(x)) * scale + 0.5))  # fmaf: one rounding to float32
            cell.append(math.floor(scaled))
            frac.append(scaled - math.floor(scaled))
        values, grads, dpoint = [0.0] * size, [[] for _ in range(size)], [[0.0] * 3 for _ in range(size)]
        for corner in range(8):
            upper = [(corner >> d) & 1 for d in range(3)]
            coords = [(cell[d] + upper[d]) % 2**32 for d in range(3)]
            if layout.hashed[level]:
                products = [coords[d] * TCNN_PRIMES[d] for d in range(3)]
                index = (products[0] ^ products[1] ^ products[2]) % 2**32
            else:
                resolution = layout.resolutions[level]
                index = (coords[0] + coords[1] * resolution + coords[2] * resolution**2) % 2**32
            entry = layout.offsets[level] + index % layout.level_entries(level)
            factors = [frac[d] if upper[d] else 1 - frac[d] for d in range(3)]
            weight = factors[0] * factors[1] * factors[2]
            for f in range(size):
                value = params[entry * size + f]
                values[f] += weight * value
                grads[f].append((entry * size + f, weight))
                for d in range(3):
                    others = math.prod(factors[e] for e in range(3) if e != d)
                    dpoint[f][d] += (1 if upper[d] else -1) * scale * others * value
        features += values
        param_grads += grads
        point_grads += dpoint
    return features, param_grads, point_grads


def test_layout_of_small_grids() -> None:
    # growth 2: scales 3, 7, 15 -> resolutions 4, 8, 16 -> 64, 512, 4096 dense entries (each a multiple of 8).
    layout = HashGridLayout.create(3, 2, 12, 4, 16)
    assert layout.per_level_scale == 2.0
    assert layout.scales == (3.0, 7.0, 15.0)
    assert layout.resolutions == (4, 8, 16)
    assert layout.offsets == (0, 64, 576, 4672)
    assert layout.hashed == (False, False, False)  # 16^3 = 4096 fits a table of 2^12 exactly
    assert layout.num_params == 4672 * 2
    assert layout.out_dim == 6

    hashed = HashGridLayout.create(3, 2, 10, 4, 16)  # the finest level's 4096 vertices exceed 2^10 entries
    assert hashed.offsets == (0, 64, 576, 1600)
    assert hashed.hashed == (False, False, True)

    # 3^3 = 27 vertices round up to 32 entries; growth 1 when base and max agree.
    padded = HashGridLayout.create(2, 1, 19, 3, 3)
    assert padded.scales == (2.0, 2.0) and padded.resolutions == (3, 3)
    assert padded.offsets == (0, 32, 64)
    assert padded.num_params == 64

    single = HashGridLayout.create(1, 8, 19, 5, 5)
    assert single.resolutions == (5,) and single.offsets == (0, 128) and single.num_params == 1024


def test_layout_of_the_instant_ngp_config() -> None:
    layout = HashGridLayout.create(16, 2, 19, 16, 2048)
    assert layout.per_level_scale == pytest.approx(2 ** (7 / 15), rel=1e-6)
    assert layout.resolutions[:6] == (16, 23, 31, 43, 59, 81)
    assert layout.resolutions[-1] == 2048
    # Dense: 16^3, 23^3 -> 12168, 31^3 -> 29792, 43^3 -> 79512, 59^3 -> 205384; 81^3 > 2^19 is hashed from level 5.
    assert layout.hashed == (False,) * 5 + (True,) * 11
    assert layout.offsets[:6] == (0, 4096, 16264, 46056, 125568, 330952)
    assert layout.num_params == (330952 + 11 * 2**19) * 2 == 12196240
    assert layout.tcnn_config()["per_level_scale"] == layout.per_level_scale


def test_layout_rejects_unsupported_sizes() -> None:
    with pytest.raises(NerfkitError, match="features_per_level=3"):
        HashGridLayout.create(features_per_level=3)
    with pytest.raises(NerfkitError, match="invalid sizes"):
        HashGridLayout.create(base_resolution=64, max_resolution=32)


def boundary_points(layout: HashGridLayout) -> torch.Tensor:
    """Points with coordinates 0 and 1, and coordinates that land exactly on a cell boundary of some level."""
    on_boundary = []
    for scale in layout.scales:
        for n in (1, 2, int(scale)):
            x = np.float32((n - 0.5) / scale)
            if float(np.float32(float(x) * scale + 0.5)).is_integer():
                on_boundary.append(float(x))
    assert len(on_boundary) >= 3, "the layout should offer exact cell boundaries"
    edges = [0.0, 1.0] + on_boundary
    points = [[a, b, c] for a in edges[:4] for b in edges[1:5] for c in edges[2:6]]
    return torch.tensor(points, dtype=torch.float32)


def sample_points(layout: HashGridLayout, num_random: int, seed: int = 0) -> torch.Tensor:
    random = torch.rand(num_random, 3, generator=torch.Generator().manual_seed(seed))
    return torch.cat([boundary_points(layout), random])


@pytest.mark.parametrize("config", [MIXED, IRREGULAR], ids=["mixed", "irregular"])
def test_eager_matches_the_per_point_reference(config: dict[str, int]) -> None:
    layout = HashGridLayout.create(**config)
    points = sample_points(layout, 40)
    params = torch.randn(layout.num_params, generator=torch.Generator().manual_seed(1))
    grad_out = torch.randn(len(points), layout.out_dim, generator=torch.Generator().manual_seed(2))

    expected = torch.zeros(len(points), layout.out_dim, dtype=torch.float64)
    expected_param_grad = torch.zeros(layout.num_params, dtype=torch.float64)
    expected_point_grad = torch.zeros(len(points), 3, dtype=torch.float64)
    for i, point in enumerate(points.tolist()):
        values, param_grads, point_grads = reference_encode(point, params.tolist(), layout)
        expected[i] = torch.tensor(values, dtype=torch.float64)
        for feature, pairs in enumerate(param_grads):
            for index, weight in pairs:
                expected_param_grad[index] += weight * grad_out[i, feature].item()
        expected_point_grad[i] = grad_out[i].double() @ torch.tensor(point_grads, dtype=torch.float64)

    params.requires_grad_()
    points.requires_grad_()
    out = hash_encode_torch(points, params, layout)
    out.backward(grad_out)
    torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(params.grad.double(), expected_param_grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(points.grad.double(), expected_point_grad, rtol=1e-4, atol=1e-4)


@pytest.mark.usefixtures("fused")
@pytest.mark.parametrize("features_per_level", [1, 2, 4, 8])
def test_fused_matches_eager(features_per_level: int) -> None:
    """Values and gradients (parameters and positions, boundary points included) agree with the eager path, and the
    fused gradients are bit for bit the same for any number of threads: no atomics, a fixed order of sums."""
    layout = HashGridLayout.create(**{**MIXED, "features_per_level": features_per_level})
    points = sample_points(layout, 5000).requires_grad_()  # more than one chunk of the kernel's position pass
    params = torch.randn(layout.num_params, generator=torch.Generator().manual_seed(3)).requires_grad_()
    grad_out = torch.randn(len(points), layout.out_dim, generator=torch.Generator().manual_seed(4))

    eager = hash_encode_torch(points, params, layout)
    eager_grads = torch.autograd.grad(eager, (params, points), grad_out)
    previous, first_grads = torch.get_num_threads(), None
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        try:
            fused = hash_encode(points, params, layout)
            assert took_fused_path(fused)
            fused_grads = torch.autograd.grad(fused, (params, points), grad_out)
        finally:
            torch.set_num_threads(previous)
        torch.testing.assert_close(fused, eager, rtol=1e-5, atol=1e-6)
        # Entries of the coarse levels sum hundreds of terms in float32, in another order on each path.
        for fused_grad, eager_grad in zip(fused_grads, eager_grads, strict=True):
            torch.testing.assert_close(fused_grad, eager_grad, rtol=1e-5, atol=1e-4)
        first_grads = first_grads or fused_grads
        assert all(torch.equal(a, b) for a, b in zip(fused_grads, first_grads, strict=True))


GRADCHECK = dict(num_levels=2, features_per_level=2, log2_hashmap_size=5, base_resolution=2, max_resolution=8)
"""A dense level of 2^3 vertices (the upper corners wrap around) and a hashed one of 8^3 vertices in 32 entries, so
many points share entries: small enough for a finite-difference Jacobian of every parameter."""


@pytest.mark.usefixtures("fused")
def test_fused_float64_build_passes_gradcheck_and_gradgradcheck() -> None:
    """The kernel's hand-written first and second derivatives against finite differences.

    Training runs the float32 build, whose rounding (about 1e-7 relative, times a level's scale) would swamp the
    finite differences of gradcheck. So this checks the float64 build: the same C source compiled with `real` =
    double, differing only in that type and its fma and floor. The float32 build is held to the eager path in
    test_fused_matches_eager and test_fused_double_backward_matches_eager. Random points, fixed seed: none lies
    within gradcheck's step of a cell boundary, where the derivatives jump. One thread keeps the ~400 calls quick.
    """
    layout = HashGridLayout.create(**GRADCHECK)
    generator = torch.Generator().manual_seed(5)
    points = torch.rand(12, 3, generator=generator, dtype=torch.float64).requires_grad_()
    params = torch.randn(layout.num_params, generator=generator, dtype=torch.float64).requires_grad_()

    def encode(points: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        out = hash_encode(points, params, layout)
        assert took_fused_path(out)
        return out

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert torch.autograd.gradcheck(encode, (points, params))
        assert torch.autograd.gradgradcheck(encode, (points, params))
    finally:
        torch.set_num_threads(previous)


def eikonal_style_loss(
    encode: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    points: torch.Tensor,
    params: torch.Tensor,
    grad_out: torch.Tensor,
) -> torch.Tensor:
    """A loss on both first derivatives, as an SDF's eikonal loss (on the position gradient) or a gradient penalty
    (on the parameter gradient) builds it: differentiating it needs the encoding's second derivatives."""
    out = encode(points, params)
    grad_params, grad_points = torch.autograd.grad(out, (params, points), grad_out, create_graph=True)
    weights = torch.linspace(-1, 1, grad_params.numel(), dtype=params.dtype)
    return ((grad_points.norm(dim=-1) - 1) ** 2).sum() + (grad_params * weights).sum() + (out**2).sum()


@pytest.mark.usefixtures("fused")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("features_per_level", [1, 2, 8])
def test_fused_double_backward_matches_eager(features_per_level: int, dtype: torch.dtype) -> None:
    """The gradients of a loss on the first derivatives, with respect to parameters, positions and the output's
    gradient, agree with autograd through the eager path: in float32 (the build training uses) to float32 rounding,
    in float64 (the build gradcheck verifies) to 1e-10."""
    layout = HashGridLayout.create(**{**MIXED, "features_per_level": features_per_level})
    generator = torch.Generator().manual_seed(6)
    points = torch.rand(3000, 3, generator=generator, dtype=dtype).requires_grad_()
    params = torch.randn(layout.num_params, generator=generator, dtype=dtype).requires_grad_()
    grad_out = torch.randn(len(points), layout.out_dim, generator=generator, dtype=dtype).requires_grad_()
    inputs = (params, points, grad_out)

    def fused(points: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        out = hash_encode(points, params, layout)
        assert took_fused_path(out)
        return out

    def eager(points: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        return hash_encode_torch(points, params, layout)

    expected = torch.autograd.grad(eikonal_style_loss(eager, points, params, grad_out), inputs)
    actual = torch.autograd.grad(eikonal_style_loss(fused, points, params, grad_out), inputs)
    tolerance = 1e-4 if dtype == torch.float32 else 1e-10
    for got, want in zip(actual, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=tolerance, atol=tolerance * want.abs().max().item())


@pytest.mark.usefixtures("fused")
def test_fused_third_derivatives_are_refused() -> None:
    layout = HashGridLayout.create(**MIXED)
    points = torch.rand(10, 3, requires_grad=True)
    params = torch.randn(layout.num_params, requires_grad=True)
    (grad_points,) = torch.autograd.grad(hash_encode(points, params, layout).sum(), points, create_graph=True)
    (second,) = torch.autograd.grad(grad_points.sum(), points, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        torch.autograd.grad(second.sum(), points)


@pytest.mark.usefixtures("fused")
def test_fused_handles_batch_shapes_and_strided_inputs() -> None:
    layout = HashGridLayout.create(**MIXED)
    params = torch.randn(layout.num_params)
    points = torch.rand(5, 7, 6)[..., ::2]  # not contiguous
    out = hash_encode(points, params, layout)
    assert out.shape == (5, 7, layout.out_dim)
    torch.testing.assert_close(out, hash_encode_torch(points, params, layout), rtol=1e-5, atol=1e-6)
    assert hash_encode(torch.empty(0, 3), params, layout).shape == (0, layout.out_dim)


def fit(encoding: HashEncoding, points: torch.Tensor, steps: int = 3) -> None:
    """A few SGD steps, so the checkpoint holds trained values rather than the initialisation."""
    optimizer = torch.optim.SGD(encoding.parameters(), lr=10.0)
    target = torch.linspace(-1, 1, encoding.get_out_dim())
    for _ in range(steps):
        optimizer.zero_grad()
        ((encoding(points) - target) ** 2).mean().backward()
        optimizer.step()


def reload(encoding: HashEncoding, **kwargs: object) -> HashEncoding:
    buffer = io.BytesIO()
    torch.save(encoding.state_dict(), buffer)
    buffer.seek(0)
    loaded = HashEncoding(**MIXED, **kwargs)
    loaded.load_state_dict(torch.load(buffer, weights_only=True))
    return loaded


@pytest.mark.usefixtures("fused")
def test_checkpoint_from_the_fused_path_renders_identically_on_the_eager_path() -> None:
    encoding = HashEncoding(**MIXED)
    assert list(encoding.state_dict()) == ["params"]
    assert encoding.state_dict()["params"].shape == (encoding.layout.num_params,)
    points = sample_points(encoding.layout, 500)
    fit(encoding, points)
    with torch.no_grad():
        fused = encoding(points)
        eager = hash_encode_torch(points, reload(encoding).params, encoding.layout)
    torch.testing.assert_close(eager, fused, rtol=1e-5, atol=1e-6)


@pytest.mark.usefixtures("fused")
def test_checkpoint_from_the_eager_path_renders_identically_on_the_fused_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encoding = HashEncoding(**MIXED)
    points = sample_points(encoding.layout, 500)
    with monkeypatch.context() as patch:
        patch.setattr(hash_encoding, "fused_library", lambda dtype: None)
        fit(encoding, points)
        with torch.no_grad():
            eager = encoding(points)
    loaded = reload(encoding, backend="cuda-kernels" if package_status("tinycudann").usable else "torch")
    with torch.no_grad():
        fused = loaded(points)  # on the CPU the cuda-kernels backend also takes the fused path
    assert fused.abs().max() > 1e-3
    torch.testing.assert_close(fused, eager, rtol=1e-5, atol=1e-6)


def test_hash_encoding_module() -> None:
    encoding = HashEncoding()
    assert encoding.get_out_dim() == 32
    assert encoding.params.numel() == 12196240
    assert encoding.params.abs().max() <= hash_encoding.INIT_RANGE
    assert encoding(torch.rand(4, 2, 3)).shape == (4, 2, 32)
    assert "levels=16" in repr(encoding)


@pytest.mark.skipif(
    not (package_status("tinycudann").usable and torch.cuda.is_available()),
    reason=f"tiny-cuda-nn cannot run here ({package_status('tinycudann').reason})",
)
def test_tcnn_and_torch_backends_agree_on_cuda() -> None:
    torch_encoding = HashEncoding(**MIXED).cuda()
    points = sample_points(torch_encoding.layout, 2000).cuda()
    fit(torch_encoding, points)
    tcnn_encoding = HashEncoding(**MIXED, backend="cuda-kernels").cuda()
    tcnn_encoding.load_state_dict(torch_encoding.state_dict())
    grad_out = torch.randn(len(points), torch_encoding.get_out_dim(), device="cuda")
    expected = torch_encoding(points)
    actual = tcnn_encoding(points)
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
    (expected_grad,) = torch.autograd.grad(expected, torch_encoding.params, grad_out)
    (actual_grad,) = torch.autograd.grad(actual, tcnn_encoding.params, grad_out)
    torch.testing.assert_close(actual_grad, expected_grad, rtol=1e-4, atol=1e-4)


@pytest.mark.usefixtures("fresh_fused_kernel")
def test_without_a_compiler_the_eager_path_runs_and_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    layout = HashGridLayout.create(**MIXED)
    params = torch.randn(layout.num_params, requires_grad=True)
    points = torch.rand(100, 3)
    with caplog.at_level(logging.WARNING, logger=hash_encoding.__name__):
        first = hash_encode(points, params, layout)
        second = hash_encode(points, params, layout)
    warnings = [record for record in caplog.records if record.name == hash_encoding.__name__]
    assert len(warnings) == 1
    assert "/nonexistent/cc" in warnings[0].getMessage() and warnings[0].exc_info is None
    assert not took_fused_path(first)
    torch.testing.assert_close(first, second)
    torch.testing.assert_close(first, hash_encode_torch(points, params, layout))
    status = fused_cpu_status()
    assert not status.usable and "/nonexistent/cc" in status.reason
    assert len([record for record in caplog.records if record.name == hash_encoding.__name__]) == 1


def test_build_caches_the_library_and_reports_failures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NERFKIT_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "answer.c"
    source.write_text("int answer(void) { return 42; }\n")
    library = load_c_library(source)
    assert library.answer() == 42
    built = list((tmp_path / "cache" / "kernels").iterdir())
    assert len(built) == 1 and built[0].suffix == ".so"

    def no_compiler(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached library must not be rebuilt")

    monkeypatch.setattr(subprocess, "run", no_compiler)
    assert ctypes.CDLL(str(built[0])).answer() == load_c_library(source).answer() == 42
    monkeypatch.undo()

    monkeypatch.setenv("NERFKIT_CACHE_DIR", str(tmp_path / "cache"))
    broken = tmp_path / "broken.c"
    broken.write_text("int broken(void) { return }\n")
    with pytest.raises(KernelBuildError, match="failed"):
        load_c_library(broken)
    assert not [path for path in (tmp_path / "cache" / "kernels").iterdir() if path.name.startswith(".")]
