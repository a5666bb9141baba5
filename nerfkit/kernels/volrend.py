"""Volume rendering of packed samples: transmittance, weights and visibility per sample, sums per ray.

The signatures are nerfacc 0.5's (nerfacc/volrend.py), so model code written against nerfacc runs unchanged. Samples
are packed: one flat array for all rays, with `ray_indices` sorted so each ray's samples are contiguous and in order
along the ray; rays may have no samples at all. Without `ray_indices` the inputs are batched, (num_rays, num_samples),
as in nerfacc. Each function takes `backend`: "cuda-kernels" calls nerfacc's function of the same name, "torch" uses
the segment operations below (any device, no Python loop over rays or samples).

Transmittance is the exponential of an exclusive sum of optical depths per ray (nerfacc's formula for densities, and
the batched renderer's), never a product of (1 - alpha) terms: a sum has no division in its gradient and keeps small
alphas exact. The packed exclusive sum is one cumulative sum over the whole array minus its value at the ray's first
sample, done in float64 because in float32 the running total of every earlier ray would swamp a ray's own sum.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from types import ModuleType
from typing import TypeVar

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from nerfkit.kernels.backends import Backend, import_kernels_package

Function = TypeVar("Function", bound=Callable)


def import_nerfacc() -> ModuleType:
    """The nerfacc module, or a NerfkitError saying why its kernels cannot run here and how to install them."""
    return import_kernels_package("nerfacc")


def nerfacc_or_torch(torch_function: Function) -> Function:
    """Makes a torch implementation take `backend`: "cuda-kernels" calls nerfacc's function of the same name with the
    same arguments (by keyword, as the signatures match nerfacc's), "torch" runs the implementation itself."""
    signature = inspect.signature(torch_function)

    @functools.wraps(torch_function)
    def dispatch(*args: object, backend: Backend = "torch", **kwargs: object) -> object:
        if backend == "cuda-kernels":
            arguments = signature.bind(*args, **kwargs).arguments
            return getattr(import_nerfacc(), torch_function.__name__)(**arguments)
        return torch_function(*args, **kwargs)

    return dispatch  # type: ignore[return-value]


def first_sample_of_ray(ray_indices: Int[Tensor, " num_samples"]) -> Int[Tensor, " num_samples"]:
    """For each packed sample, the position of its ray's first sample (samples of a ray are contiguous)."""
    num_samples = ray_indices.shape[0]
    starts_ray = torch.ones(num_samples, dtype=torch.bool, device=ray_indices.device)
    starts_ray[1:] = ray_indices[1:] != ray_indices[:-1]
    positions = torch.arange(num_samples, device=ray_indices.device)
    return torch.cummax(torch.where(starts_ray, positions, 0), dim=0).values


def exclusive_sum_along_rays(
    values: Float[Tensor, "*batch num_samples"], ray_indices: Int[Tensor, " num_samples"] | None = None
) -> Float[Tensor, "*batch num_samples"]:
    """Sum of the values before each sample on its ray (0 for a ray's first sample)."""
    if ray_indices is None:
        running = torch.cumsum(values, dim=-1)
        return torch.cat([torch.zeros_like(values[..., :1]), running[..., :-1]], dim=-1)
    running = torch.cumsum(values.double(), dim=0)
    before = torch.cat([running.new_zeros(1), running[:-1]])
    return (before - before[first_sample_of_ray(ray_indices)]).to(values.dtype)


@nerfacc_or_torch
def render_transmittance_from_density(
    t_starts: Float[Tensor, "*batch num_samples"],
    t_ends: Float[Tensor, "*batch num_samples"],
    sigmas: Float[Tensor, "*batch num_samples"],
    ray_indices: Int[Tensor, " num_samples"] | None = None,
    n_rays: int | None = None,
) -> tuple[Float[Tensor, "*batch num_samples"], Float[Tensor, "*batch num_samples"]]:
    """Transmittance T_i = exp(-sum_{j<i} sigma_j delta_j) and alpha_i = 1 - exp(-sigma_i delta_i) of each sample."""
    optical_depths = sigmas * (t_ends - t_starts)
    alphas = -torch.expm1(-optical_depths)
    return torch.exp(-exclusive_sum_along_rays(optical_depths, ray_indices)), alphas


@nerfacc_or_torch
def render_transmittance_from_alpha(
    alphas: Float[Tensor, "*batch num_samples"],
    ray_indices: Int[Tensor, " num_samples"] | None = None,
    n_rays: int | None = None,
) -> Float[Tensor, "*batch num_samples"]:
    """Transmittance T_i = prod_{j<i} (1 - alpha_j), as the exponential of a sum of log(1 - alpha_j).

    An alpha of exactly 1 counts as the largest float below 1, so what lies behind it gets a transmittance of about
    6e-8 (float32) instead of the logarithm of 0, and no gradient flows through that alpha (its exact gradient needs
    the product of the other factors, which nerfacc's product kernels do not give either).
    """
    almost_one = 1.0 - torch.finfo(alphas.dtype).eps / 2
    log_survivals = torch.log1p(-alphas.clamp(max=almost_one))
    return torch.exp(exclusive_sum_along_rays(log_survivals, ray_indices))


@nerfacc_or_torch
def render_weight_from_density(
    t_starts: Float[Tensor, "*batch num_samples"],
    t_ends: Float[Tensor, "*batch num_samples"],
    sigmas: Float[Tensor, "*batch num_samples"],
    ray_indices: Int[Tensor, " num_samples"] | None = None,
    n_rays: int | None = None,
) -> tuple[
    Float[Tensor, "*batch num_samples"], Float[Tensor, "*batch num_samples"], Float[Tensor, "*batch num_samples"]
]:
    """Weights w_i = T_i alpha_i, with the transmittance and alphas they came from."""
    transmittance, alphas = render_transmittance_from_density(t_starts, t_ends, sigmas, ray_indices)
    return transmittance * alphas, transmittance, alphas


@nerfacc_or_torch
def render_weight_from_alpha(
    alphas: Float[Tensor, "*batch num_samples"],
    ray_indices: Int[Tensor, " num_samples"] | None = None,
    n_rays: int | None = None,
) -> tuple[Float[Tensor, "*batch num_samples"], Float[Tensor, "*batch num_samples"]]:
    """Weights w_i = T_i alpha_i, with the transmittance they came from."""
    transmittance = render_transmittance_from_alpha(alphas, ray_indices)
    return transmittance * alphas, transmittance


@torch.no_grad()
@nerfacc_or_torch
def render_visibility_from_alpha(
    alphas: Float[Tensor, "*batch num_samples"],
    ray_indices: Int[Tensor, " num_samples"] | None = None,
    n_rays: int | None = None,
    early_stop_eps: float = 1e-4,
    alpha_thre: float = 0.0,
) -> Bool[Tensor, "*batch num_samples"]:
    """Samples worth shading: light still reaches them (T_i >= early_stop_eps) and, if alpha_thre > 0, they are
    opaque enough (alpha_i >= alpha_thre)."""
    return _visible(render_transmittance_from_alpha(alphas, ray_indices), alphas, early_stop_eps, alpha_thre)


@torch.no_grad()
@nerfacc_or_torch
def render_visibility_from_density(
    t_starts: Float[Tensor, "*batch num_samples"],
    t_ends: Float[Tensor, "*batch num_samples"],
    sigmas: Float[Tensor, "*batch num_samples"],
    ray_indices: Int[Tensor, " num_samples"] | None = None,
    n_rays: int | None = None,
    early_stop_eps: float = 1e-4,
    alpha_thre: float = 0.0,
) -> Bool[Tensor, "*batch num_samples"]:
    """As `render_visibility_from_alpha`, with alphas from densities."""
    transmittance, alphas = render_transmittance_from_density(t_starts, t_ends, sigmas, ray_indices)
    return _visible(transmittance, alphas, early_stop_eps, alpha_thre)


def _visible(
    transmittance: Float[Tensor, "*batch"], alphas: Float[Tensor, "*batch"], early_stop_eps: float, alpha_thre: float
) -> Bool[Tensor, "*batch"]:
    visible = transmittance >= early_stop_eps
    return visible & (alphas >= alpha_thre) if alpha_thre > 0 else visible


@nerfacc_or_torch
def accumulate_along_rays(
    weights: Float[Tensor, "*batch num_samples"],
    values: Float[Tensor, "*batch num_samples channels"] | None = None,
    ray_indices: Int[Tensor, " num_samples"] | None = None,
    n_rays: int | None = None,
) -> Float[Tensor, "*batch channels"]:
    """Weighted sum of `values` over each ray's samples, (n_rays, channels); with no values, the ray's opacity
    (n_rays, 1). Packed input needs `n_rays`, since rays with no samples still get a row (of zeros)."""
    weighted = weights[..., None] if values is None else weights[..., None] * values
    if ray_indices is None:
        return weighted.sum(dim=-2)
    if n_rays is None:
        raise ValueError("accumulate_along_rays needs n_rays with packed samples (ray_indices)")
    return weighted.new_zeros(n_rays, weighted.shape[-1]).index_add(0, ray_indices, weighted)
