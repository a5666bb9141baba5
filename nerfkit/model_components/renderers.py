"""Volume rendering: per-sample weights from densities, and what those weights composite into per ray."""

from __future__ import annotations

from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.cameras.rays import RaySamples

BackgroundColor = Literal["white", "black", "random", "last_sample"]
"""What shows through where a ray is not fully absorbed."""


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


def background_for_rays(
    background_color: Literal["white", "black", "random"], num_rays: int, training: bool, device: torch.device
) -> Float[Tensor, "num_rays 3"]:
    """One background colour per ray: random ones only in training, white when rendering for evaluation."""
    if background_color == "random" and training:
        return torch.rand(num_rays, 3, device=device)
    value = 0.0 if background_color == "black" else 1.0
    return torch.full((num_rays, 3), value, device=device)


class RGBRenderer(nn.Module):
    """Composites sample colours onto a background and reports the background it used for each ray.

    "random" draws a colour per ray in training, so the only way to match a transparent ground-truth pixel is to be
    transparent; it is white in eval. "last_sample" uses the colour at the far end of each ray.
    """

    def __init__(self, background_color: BackgroundColor = "white") -> None:
        super().__init__()
        self.background_color = background_color

    def get_background(self, rgb: Float[Tensor, "num_rays num_samples 3"]) -> Float[Tensor, "num_rays 3"]:
        if self.background_color == "last_sample":
            return rgb[:, -1, :]
        return background_for_rays(self.background_color, rgb.shape[0], self.training, rgb.device)

    def forward(
        self, rgb: Float[Tensor, "num_rays num_samples 3"], weights: Float[Tensor, "num_rays num_samples 1"]
    ) -> tuple[Float[Tensor, "num_rays 3"], Float[Tensor, "num_rays 3"]]:
        """The composited colour per ray and the background behind it."""
        background = self.get_background(rgb)
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
