"""Multiresolution hash encoding (Instant-NGP) with tiny-cuda-nn's parameter layout on every backend.

Three implementations read the same flat parameter vector, so a checkpoint trained with one renders identically
with another: tiny-cuda-nn's `Encoding` (CUDA), a fused C/OpenMP kernel compiled on first use (CPU), and an eager
PyTorch implementation (any device; the fallback when no compiler is available). All three give gradients with respect
to the parameters and the positions, and gradients of those (the double backward an eikonal loss needs).

Layout facts, checked against NVlabs/tiny-cuda-nn (grid.h at 2ec562e; common_device.h from the same series; line
numbers approximate, so the function names are given too):
- per_level_scale is a float; each level's scale is `exp2f(level * log2(per_level_scale)) * base_resolution - 1`,
  all in float32 (common_device.h `grid_scale`; grid.h passes `std::log2(m_per_level_scale)`, kernel_grid ~L97), and
  its resolution `(uint32_t)ceilf(scale) + 1` (common_device.h `grid_resolution`, grid.h ~L98).
- entries in level l: `next_multiple(resolution^3, 8)`, then `min(that, 1 << log2_hashmap_size)` for the Hash type;
  levels are stored one after another and the parameter count is `total_entries * n_features_per_level` (grid.h,
  `GridEncodingTemplated` constructor).
- a corner's entry (common_device.h `grid_index`): the dense index `x + y*R + z*R^2` in uint32 when R^3 fits the
  level (older grid.h: the `stride <= hashmap_size` loop), else the coherent prime hash `x*1 ^ y*2654435761 ^
  z*805459861` in uint32 (common_device.h `coherent_prime_hash`, the default "CoherentPrime" of grid.h
  `create_grid_encoding`); either way `% entries`. So a level is hashed exactly when R^3 > entries.
- position: `pos = fmaf(scale, x, 0.5f)` (older versions write `x * scale + 0.5f`, which nvcc contracts to the same
  fma), cell `(uint32_t)(int)floorf(pos)`, fraction `pos - floor` (common_device.h `pos_fract`); corner k takes
  the upper cell in dimension d when bit d of k is set, with weight the product of `frac` or `1 - frac` (grid.h
  kernel_grid, "N-linear interpolation", ~L142-169).
- storage: value `grid[(offset_l + index) * F + f]` (grid.h kernel_grid `grid += offset_table.data[level] * F`,
  `grid_val`); output feature `level * F + f` (kernel_grid writes `encoded_positions[i + (level*F + f) * n]`, then
  transposed to one row per point).
- initialisation: uniform in [-1e-4, 1e-4] (grid.h `initialize_params`).
- tiny-cuda-nn's torch module keeps these as one parameter named `params` (bindings/torch/tinycudann/modules.py).
"""

from __future__ import annotations

import ctypes
import logging
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from nerfkit.errors import NerfkitError
from nerfkit.kernels.backends import Backend, PackageStatus
from nerfkit.kernels.cpu.build import KernelBuildError, c_compiler, kernel_cache_dir, load_c_library
from nerfkit.kernels.tcnn import import_tinycudann

logger = logging.getLogger(__name__)

PRIMES = (1, 2654435761, 805459861)
"""tiny-cuda-nn's coherent prime hash: one factor per dimension, xor-combined in uint32."""
FEATURES_PER_LEVEL_CHOICES = (1, 2, 4, 8)
"""The features per level that tiny-cuda-nn supports."""
INIT_RANGE = 1e-4
"""Parameters start uniform in [-INIT_RANGE, INIT_RANGE], as in tiny-cuda-nn."""

_UINT32 = 0xFFFFFFFF
_SOURCE = Path(__file__).parent / "cpu" / "hash_encoding.c"


@dataclass(frozen=True)
class HashGridLayout:
    """Sizes and per-level constants of a hash grid, computed exactly as tiny-cuda-nn's GridEncoding does."""

    num_levels: int
    features_per_level: int
    log2_hashmap_size: int
    base_resolution: int
    per_level_scale: float
    """The float32 value tiny-cuda-nn receives (its config stores a float)."""
    scales: tuple[float, ...]
    """Per level: positions in [0, 1] are multiplied by this (a float32 value)."""
    resolutions: tuple[int, ...]
    """Per level: vertices per axis of the dense grid."""
    offsets: tuple[int, ...]
    """Per level and one past the last: the level's first entry in the flat table (an entry holds F features)."""
    hashed: tuple[bool, ...]
    """Per level: True when the level uses the spatial hash, False when it is indexed densely."""

    @classmethod
    def create(
        cls,
        num_levels: int = 16,
        features_per_level: int = 2,
        log2_hashmap_size: int = 19,
        base_resolution: int = 16,
        max_resolution: int = 2048,
    ) -> HashGridLayout:
        """The layout for Nerfstudio-style arguments: the growth factor is derived from the max resolution."""
        if features_per_level not in FEATURES_PER_LEVEL_CHOICES:
            raise NerfkitError(
                f"hash encoding: features_per_level={features_per_level} is not supported",
                hint=f"use one of {FEATURES_PER_LEVEL_CHOICES} (the values tiny-cuda-nn supports)",
            )
        if num_levels < 1 or base_resolution < 1 or max_resolution < base_resolution or log2_hashmap_size < 1:
            raise NerfkitError(
                f"hash encoding: invalid sizes (num_levels={num_levels}, base_resolution={base_resolution}, "
                f"max_resolution={max_resolution}, log2_hashmap_size={log2_hashmap_size})",
                hint="use num_levels >= 1, 1 <= base_resolution <= max_resolution and log2_hashmap_size >= 1",
            )
        # Nerfstudio's growth factor (1 for a single level), in double; tiny-cuda-nn then holds it as a float.
        log_range = math.log(max_resolution) - math.log(base_resolution)
        per_level_scale = np.float32(math.exp(log_range / (num_levels - 1)) if num_levels > 1 else 1.0)
        log2_scale = np.log2(per_level_scale)
        table_size = 1 << log2_hashmap_size
        scales, resolutions, offsets, hashed = [], [], [0], []
        for level in range(num_levels):
            scale = np.exp2(np.float32(level) * log2_scale) * np.float32(base_resolution) - np.float32(1.0)
            resolution = int(np.ceil(scale)) + 1
            dense_entries = resolution**3
            entries = min(-(-dense_entries // 8) * 8, table_size)
            scales.append(float(scale))
            resolutions.append(resolution)
            offsets.append(offsets[-1] + entries)
            hashed.append(dense_entries > entries)
        return cls(
            num_levels=num_levels,
            features_per_level=features_per_level,
            log2_hashmap_size=log2_hashmap_size,
            base_resolution=base_resolution,
            per_level_scale=float(per_level_scale),
            scales=tuple(scales),
            resolutions=tuple(resolutions),
            offsets=tuple(offsets),
            hashed=tuple(hashed),
        )

    @property
    def num_params(self) -> int:
        return self.offsets[-1] * self.features_per_level

    @property
    def out_dim(self) -> int:
        return self.num_levels * self.features_per_level

    def level_entries(self, level: int) -> int:
        return self.offsets[level + 1] - self.offsets[level]

    def tcnn_config(self) -> dict[str, object]:
        """The tiny-cuda-nn encoding config that builds this layout."""
        return {
            "otype": "HashGrid",
            "n_levels": self.num_levels,
            "n_features_per_level": self.features_per_level,
            "log2_hashmap_size": self.log2_hashmap_size,
            "base_resolution": self.base_resolution,
            "per_level_scale": self.per_level_scale,
            "interpolation": "Linear",
        }


def _corner_bits(device: torch.device) -> Tensor:
    """(8, 3) int64: corner k takes the upper cell in dimension d when bit d of k is set."""
    return (torch.arange(8, device=device)[:, None] >> torch.arange(3, device=device)) & 1


def hash_encode_torch(
    positions: Float[Tensor, "*bs 3"], params: Float[Tensor, " num_params"], layout: HashGridLayout
) -> Float[Tensor, "*bs out_dim"]:
    """Eager PyTorch hash encoding, differentiable with respect to the parameters and the positions.

    Integer arithmetic is int64 masked to 32 bits, reproducing tiny-cuda-nn's uint32 wrap-around; the scaled position
    is formed in float64 and rounded once to float32, as tiny-cuda-nn's fmaf does, unless the parameters are float64
    (then it stays float64, as in the fused kernel's float64 build).
    """
    points = positions.reshape(-1, 3)
    table = params.reshape(-1, layout.features_per_level)
    bits = _corner_bits(points.device)
    upper = bits.bool()
    precision = torch.float64 if params.dtype == torch.float64 else torch.float32
    features = []
    for level in range(layout.num_levels):
        scaled = (points.double() * layout.scales[level] + 0.5).to(precision)
        lower = torch.floor(scaled)
        frac = scaled - lower
        cells = (lower.long()[:, None, :] + bits) & _UINT32
        if layout.hashed[level]:
            index = cells[..., 0] ^ ((cells[..., 1] * PRIMES[1]) & _UINT32) ^ ((cells[..., 2] * PRIMES[2]) & _UINT32)
        else:
            resolution = layout.resolutions[level]
            index = (cells[..., 0] + cells[..., 1] * resolution + cells[..., 2] * resolution**2) & _UINT32
        entries = index % layout.level_entries(level) + layout.offsets[level]
        weights = torch.where(upper, frac[:, None, :], 1 - frac[:, None, :]).prod(dim=-1)
        features.append((weights[..., None] * table[entries]).sum(dim=1))
    return torch.cat(features, dim=-1).reshape(*positions.shape[:-1], layout.out_dim)


class _CLevel(ctypes.Structure):
    """The C kernel's `Level`."""

    _fields_ = [
        ("scale", ctypes.c_float),
        ("resolution", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("offset", ctypes.c_uint32),
        ("hashed", ctypes.c_uint32),
    ]


@cache
def _c_levels(layout: HashGridLayout) -> ctypes.Array[_CLevel]:
    levels = (_CLevel * layout.num_levels)()
    for level in range(layout.num_levels):
        levels[level] = _CLevel(
            layout.scales[level],
            layout.resolutions[level],
            layout.level_entries(level),
            layout.offsets[level],
            int(layout.hashed[level]),
        )
    return levels


FUSED_DEFINES = {torch.float32: (), torch.float64: ("-DNERFKIT_DOUBLE",)}
"""The fused kernel's builds, by parameter dtype: float32 is tiny-cuda-nn's arithmetic, float64 the same maths in
double (what finite-difference gradient checks need)."""


@cache
def build_fused_kernel(dtype: torch.dtype) -> tuple[ctypes.CDLL | None, str]:
    """The fused CPU kernel for `dtype`, compiled on first use, and a line on where from; (None, why) when it cannot
    be built.

    Called once per process and dtype (cached), so the warning about a missing kernel is given once.
    """
    try:
        library = load_c_library(_SOURCE, FUSED_DEFINES[dtype])
    except KernelBuildError as error:
        logger.warning("hash encoding: the fused CPU kernel is unavailable, using eager PyTorch (slower): %s", error)
        return None, str(error)
    pointer, int32, int64, levels = ctypes.c_void_p, ctypes.c_int32, ctypes.c_int64, ctypes.POINTER(_CLevel)
    signatures = (
        (library.nerfkit_hash_encode_forward, [pointer, int64, pointer, levels, int32, int32, pointer, pointer, int32]),
        (
            library.nerfkit_hash_encode_backward_params,
            [pointer, int64, pointer, levels, int32, int32, pointer, pointer, int32],
        ),
        (
            library.nerfkit_hash_encode_backward_positions,
            [pointer, int64, pointer, pointer, levels, int32, int32, pointer, pointer, int32],
        ),
    )
    for function, argtypes in signatures:
        function.argtypes = argtypes
        function.restype = None
    return library, f"compiled with {c_compiler()}, cached in {kernel_cache_dir()}"


def fused_library(dtype: torch.dtype) -> ctypes.CDLL | None:
    return build_fused_kernel(dtype)[0] if dtype in FUSED_DEFINES else None


def fused_cpu_status() -> PackageStatus:
    """Whether the fused CPU kernel (float32, the one training uses) runs here, and why not; kit-doctor reports it."""
    library, reason = build_fused_kernel(torch.float32)
    return PackageStatus("fused CPU hash encoding", library is not None, reason)


def _pointer(tensor: Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


@dataclass(frozen=True)
class _FusedKernel:
    """The compiled passes for one layout, on contiguous CPU tensors of the library's dtype.

    Each pass takes optional `tangents` (one 3-vector per point): then it computes its quantity's derivative along
    each point's tangent, which is what differentiating the gradients once more needs.
    """

    library: ctypes.CDLL
    layout: HashGridLayout
    dtype: torch.dtype

    def _prepare(self, tensor: Tensor | None) -> Tensor | None:
        return None if tensor is None else tensor.to(self.dtype).contiguous()

    def encode(self, points: Tensor, params: Tensor, tangents: Tensor | None = None) -> Tensor:
        """(num_points, out_dim): the encoding, or its derivative along the tangents."""
        params, tangents = self._prepare(params), self._prepare(tangents)
        out = points.new_empty(points.shape[0], self.layout.out_dim)
        self.library.nerfkit_hash_encode_forward(
            points.data_ptr(), points.shape[0], params.data_ptr(), *self._levels(), _pointer(tangents),
            out.data_ptr(), torch.get_num_threads(),
        )  # fmt: skip
        return out

    def grad_params(self, points: Tensor, grad_out: Tensor, tangents: Tensor | None = None) -> Tensor:
        """(num_params,): the gradient with respect to the parameters, or its derivative along the tangents."""
        grad_out, tangents = self._prepare(grad_out), self._prepare(tangents)
        grad = points.new_empty(self.layout.num_params)  # the kernel writes every entry
        self.library.nerfkit_hash_encode_backward_params(
            points.data_ptr(), points.shape[0], grad_out.data_ptr(), *self._levels(), _pointer(tangents),
            grad.data_ptr(), torch.get_num_threads(),
        )  # fmt: skip
        return grad

    def grad_points(self, points: Tensor, params: Tensor, grad_out: Tensor, tangents: Tensor | None = None) -> Tensor:
        """(num_points, 3): the gradient with respect to the positions, or the gradient of the encoding's derivative
        along the tangents, each dotted with grad_out."""
        params, grad_out, tangents = self._prepare(params), self._prepare(grad_out), self._prepare(tangents)
        grad = torch.empty_like(points)  # the kernel writes every entry
        self.library.nerfkit_hash_encode_backward_positions(
            points.data_ptr(), points.shape[0], params.data_ptr(), grad_out.data_ptr(), *self._levels(),
            _pointer(tangents), grad.data_ptr(), torch.get_num_threads(),
        )  # fmt: skip
        return grad

    def _levels(self) -> tuple[ctypes.Array[_CLevel], int, int]:
        return _c_levels(self.layout), self.layout.num_levels, self.layout.features_per_level


def _add(total: Tensor | None, term: Tensor) -> Tensor:
    return term if total is None else total + term


class _FusedHashEncode(torch.autograd.Function):
    """The C kernel as an autograd function: gradients to the positions and the parameters, differentiable once more
    through `_FusedHashEncodeBackward`."""

    @staticmethod
    def forward(ctx, points: Tensor, params: Tensor, kernel: _FusedKernel) -> Tensor:
        ctx.save_for_backward(points, params)
        ctx.kernel = kernel
        return kernel.encode(points, params)

    @staticmethod
    def backward(ctx, grad_out: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        points, params = ctx.saved_tensors
        wanted = tuple(ctx.needs_input_grad[:2])
        grad_points, grad_params = _FusedHashEncodeBackward.apply(points, params, grad_out, ctx.kernel, wanted)
        return grad_points, grad_params, None


class _FusedHashEncodeBackward(torch.autograd.Function):
    """The encoding's gradients as a function of (points, params, grad_out), so that a loss on them is differentiable:
    an eikonal loss on the position gradient reaches the parameters, the positions and grad_out.

    The encoding is linear in the parameters and in grad_out, so each second derivative is one of the kernel's passes
    with tangents (the upstream gradient of the position gradient) or with the upstream gradient of the parameter
    gradient in place of the parameters. Third derivatives are not provided.
    """

    @staticmethod
    def forward(
        ctx, points: Tensor, params: Tensor, grad_out: Tensor, kernel: _FusedKernel, wanted: tuple[bool, bool]
    ) -> tuple[Tensor | None, Tensor | None]:
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(points, params, grad_out)
        ctx.kernel = kernel
        grad_points = kernel.grad_points(points, params, grad_out) if wanted[0] else None
        grad_params = kernel.grad_params(points, grad_out) if wanted[1] else None
        return grad_points, grad_params

    @staticmethod
    @once_differentiable
    def backward(
        ctx, tangents: Tensor | None, params_tangent: Tensor | None
    ) -> tuple[Tensor | None, Tensor | None, Tensor | None, None, None]:
        points, params, grad_out = ctx.saved_tensors
        kernel: _FusedKernel = ctx.kernel
        need_points, need_params, need_grad_out = ctx.needs_input_grad[:3]
        d_points = d_params = d_grad_out = None
        if tangents is not None:
            if need_points:
                d_points = kernel.grad_points(points, params, grad_out, tangents)
            if need_params:
                d_params = kernel.grad_params(points, grad_out, tangents)
            if need_grad_out:
                d_grad_out = kernel.encode(points, params, tangents)
        if params_tangent is not None:
            if need_points:
                d_points = _add(d_points, kernel.grad_points(points, params_tangent, grad_out))
            if need_grad_out:
                d_grad_out = _add(d_grad_out, kernel.encode(points, params_tangent))
        return d_points, d_params, d_grad_out, None, None


def hash_encode(
    positions: Float[Tensor, "*bs 3"], params: Float[Tensor, " num_params"], layout: HashGridLayout
) -> Float[Tensor, "*bs out_dim"]:
    """Hash encoding in PyTorch: the fused CPU kernel where it applies, else `hash_encode_torch`.

    The kernel applies to CPU tensors with float32 or float64 parameters (positions are cast to their dtype) once it
    could be built, and gives gradients with respect to the parameters and the positions, twice differentiable.
    """
    on_cpu = positions.device.type == params.device.type == "cpu"
    library = fused_library(params.dtype) if on_cpu else None
    if library is None:
        return hash_encode_torch(positions, params, layout)
    points = positions.reshape(-1, 3).to(params.dtype).contiguous()
    out = _FusedHashEncode.apply(points, params.contiguous(), _FusedKernel(library, layout, params.dtype))
    return out.reshape(*positions.shape[:-1], layout.out_dim)


class HashEncoding(nn.Module):
    """Instant-NGP's multiresolution hash grid over positions in [0, 1]^3, with one flat parameter, `params`.

    With the cuda-kernels backend, inputs go through tiny-cuda-nn (empty batches excepted); with the torch backend
    through `hash_encode`. The parameter layout is tiny-cuda-nn's in every case. It has the interface of
    `field_components.encodings.Encoding` (`in_dim`, `get_out_dim`) without importing it: kernels sit below fields.
    """

    in_dim = 3

    def __init__(
        self,
        num_levels: int = 16,
        features_per_level: int = 2,
        log2_hashmap_size: int = 19,
        base_resolution: int = 16,
        max_resolution: int = 2048,
        backend: Backend = "torch",
    ) -> None:
        super().__init__()
        self.layout = HashGridLayout.create(
            num_levels, features_per_level, log2_hashmap_size, base_resolution, max_resolution
        )
        self.backend = backend
        self.params = nn.Parameter(torch.empty(self.layout.num_params).uniform_(-INIT_RANGE, INIT_RANGE))
        # Kept out of the module tree, so the state dict holds `params` alone, exactly as on the torch backend.
        self._tcnn_encoding: nn.Module | None = None
        if backend == "cuda-kernels":
            encoding = import_tinycudann().Encoding(3, self.layout.tcnn_config(), dtype=torch.float32)
            if encoding.params.numel() != self.layout.num_params:
                raise NerfkitError(
                    f"tiny-cuda-nn's hash grid has {encoding.params.numel()} parameters, nerfkit's layout "
                    f"{self.layout.num_params}: checkpoints would not transfer between backends",
                    hint="use the torch backend, and report the tiny-cuda-nn version",
                )
            object.__setattr__(self, "_tcnn_encoding", encoding)

    def get_out_dim(self) -> int:
        return self.layout.out_dim

    def forward(self, in_tensor: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs out_dim"]:
        # tiny-cuda-nn refuses empty batches (a launch of zero blocks); `hash_encode` gives the empty result.
        if self._tcnn_encoding is not None and in_tensor.numel() > 0:
            # tiny-cuda-nn reads its own `params`; point it at ours (cheap) so moves and loads are always seen.
            self._tcnn_encoding.params = self.params
            out = self._tcnn_encoding(in_tensor.reshape(-1, 3))
            return out.float().reshape(*in_tensor.shape[:-1], self.layout.out_dim)
        return hash_encode(in_tensor, self.params, self.layout)

    def extra_repr(self) -> str:
        layout = self.layout
        return (
            f"levels={layout.num_levels}, features_per_level={layout.features_per_level}, "
            f"log2_hashmap_size={layout.log2_hashmap_size}, resolutions={layout.resolutions[0]}..."
            f"{layout.resolutions[-1]}, backend={self.backend}"
        )
