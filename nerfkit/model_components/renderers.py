"""Volume rendering: per-sample weights from densities, and what those weights composite into per ray; batched
samples (RaySamples) or packed ones (ray_indices, as occupancy-grid marching gives them)."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from nerfkit.cameras.rays import RayBundle, RaySamples
from nerfkit.kernels import volrend
from nerfkit.kernels.backends import Backend
from nerfkit.model_components.backgrounds import Background


def render_transmittance_from_density(
    densities: Float[Tensor, "num_rays num_samples 1"], deltas: Float[Tensor, "num_rays num_samples 1"]
) -> Float[Tensor, "num_rays num_samples 1"]:
    """Fraction of light reaching the start of each interval: exp of minus the optical depth before it.

    Summing optical depths, rather than multiplying (1 - alpha) terms, avoids rounding 1 - alpha for small alphas
    and the division in the gradient of a cumulative product.
    """
    optical_depths = densities * deltas
    nothing_before = torch.zeros_like(optical_depths[:, :1])
    optical_depth_before = torch.cat([nothing_before, torch.cumsum(optical_depths[:, :-1], dim=-2)], dim=-2)
    return torch.exp(-optical_depth_before)


def render_weights_from_density(
    densities: Float[Tensor, "num_rays num_samples 1"], deltas: Float[Tensor, "num_rays num_samples 1"]
) -> Float[Tensor, "num_rays num_samples 1"]:
    """Each interval's share of the ray's colour: transmittance times alpha = 1 - exp(-density * delta)."""
    alphas = -torch.expm1(-densities * deltas)
    return render_transmittance_from_density(densities, deltas) * alphas


def accumulate_along_rays(
    weights: Float[Tensor, "num_rays num_samples 1"],
    values: Float[Tensor, "num_rays num_samples channels"] | None = None,
) -> Float[Tensor, "num_rays channels"]:
    """Weighted sum of `values` over each ray's samples; with no values, the ray's opacity (sum of weights)."""
    return weights.sum(dim=-2) if values is None else (weights * values).sum(dim=-2)


def composite_on_background(
    premultiplied_rgb: Float[Tensor, "*bs 3"], opacity: Float[Tensor, "*bs 1"], background: Float[Tensor, "*bs 3"]
) -> Float[Tensor, "*bs 3"]:
    """Colour seen in front of `background` through a layer whose colour is already scaled by its opacity."""
    return premultiplied_rgb + (1.0 - opacity) * background


def composite_ground_truth(
    image: Float[Tensor, "*bs channels"], background: Float[Tensor, "*bs 3"]
) -> Float[Tensor, "*bs 3"]:
    """An RGB or straight-alpha RGBA ground truth as it looks on `background`, to compare like with like.

    The background is detached: the target is a constant even when the background comes from the model.
    """
    if image.shape[-1] == 3:
        return image
    rgb, alpha = image[..., :3], image[..., 3:]
    return composite_on_background(rgb * alpha, alpha, background.detach())


class RGBRenderer(nn.Module):
    """Composites sample colours onto a background and reports the background it used for each ray."""

    def __init__(self, background: Background) -> None:
        super().__init__()
        self.background = background

    def forward(
        self, rgb: Float[Tensor, "num_rays num_samples 3"], weights: Float[Tensor, "num_rays num_samples 1"]
    ) -> tuple[Float[Tensor, "num_rays 3"], Float[Tensor, "num_rays 3"]]:
        """The composited colour per ray and the background behind it."""
        background = self.background(rgb.shape[0], rgb.device, rgb)
        composited = composite_on_background(
            accumulate_along_rays(weights, rgb), accumulate_along_rays(weights), background
        )
        return composited, background


class DepthRenderer(nn.Module):
    """Expected distance to the surface, normalised by opacity so partly empty rays still get a surface depth.

    Clamped to the sampled interval, which also gives empty rays (0 / eps) the near distance rather than 0.
    """

    def __init__(self, eps: float = 1e-10) -> None:
        super().__init__()
        self.eps = eps

    def forward(
        self, weights: Float[Tensor, "num_rays num_samples 1"], ray_samples: RaySamples
    ) -> Float[Tensor, "num_rays 1"]:
        depth = accumulate_along_rays(weights, ray_samples.midpoints)
        depth = depth / accumulate_along_rays(weights).clamp_min(self.eps)
        return torch.clamp(depth, ray_samples.starts[:, 0], ray_samples.ends[:, -1])


class AccumulationRenderer(nn.Module):
    """Opacity of each ray: how much of it the field absorbs before the far plane."""

    def forward(self, weights: Float[Tensor, "num_rays num_samples 1"]) -> Float[Tensor, "num_rays 1"]:
        return accumulate_along_rays(weights)


def sample_points(
    ray_bundle: RayBundle, ray_indices: Int[Tensor, " num_samples"], t_starts: Tensor, t_ends: Tensor
) -> tuple[Float[Tensor, "num_samples 3"], Float[Tensor, "num_samples 3"]]:
    """World positions of packed samples (interval midpoints) and their rays' directions."""
    directions = ray_bundle.directions[ray_indices]
    return ray_bundle.origins[ray_indices] + directions * ((t_starts + t_ends) / 2)[:, None], directions


def render_packed(
    density: Float[Tensor, "num_samples 1"],
    rgb: Float[Tensor, "num_samples 3"],
    ray_indices: Int[Tensor, " num_samples"],
    t_starts: Float[Tensor, " num_samples"],
    t_ends: Float[Tensor, " num_samples"],
    background: Float[Tensor, "num_rays 3"],
    backend: Backend,
) -> dict[str, Tensor]:
    """Colour on the background, opacity and depth of each ray, and the number of samples rendered."""
    num_rays = background.shape[0]
    weights, _, _ = volrend.render_weight_from_density(
        t_starts, t_ends, density.squeeze(-1), ray_indices=ray_indices, n_rays=num_rays, backend=backend
    )
    accumulation = volrend.accumulate_along_rays(weights, None, ray_indices, num_rays, backend=backend)
    midpoints = ((t_starts + t_ends) / 2)[:, None]
    depth = volrend.accumulate_along_rays(weights, midpoints, ray_indices, num_rays, backend=backend)
    premultiplied = volrend.accumulate_along_rays(weights, rgb, ray_indices, num_rays, backend=backend)
    return {
        "rgb": composite_on_background(premultiplied, accumulation, background),
        "accumulation": accumulation,
        "depth": depth / accumulation.clamp_min(1e-10),
        "background": background,
        "num_samples_per_batch": torch.tensor(len(ray_indices)),
    }
