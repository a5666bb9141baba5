"""Losses on the weights along each ray (Mip-NeRF 360): the proposal (interlevel) loss and the distortion loss.

Both take batched intervals: `bins` are each ray's sorted interval edges, `weights` one rendering weight per interval.
They run in linear time per ray (searches and cumulative sums); the tests compare them with the quadratic definitions.
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from nerfkit.kernels.volrend import exclusive_sum_along_rays

INTERLEVEL_EPS = torch.finfo(torch.float32).eps
"""Keeps the proposal loss finite where the fine weights are zero."""


def envelope_weights(
    bins: Float[Tensor, "num_rays num_samples_plus_1"],
    envelope_bins: Float[Tensor, "num_rays num_envelope_plus_1"],
    envelope_weights: Float[Tensor, "num_rays num_envelope"],
) -> Float[Tensor, "num_rays num_samples"]:
    """For each interval of `bins`, the summed weight of the envelope intervals it overlaps (by a positive length).

    Both sets of intervals tile the same stretch of the ray, so the overlapping envelope intervals are a contiguous
    run: from the first that ends after the interval starts to the last that starts before it ends.
    """
    cumulative = torch.cat([torch.zeros_like(envelope_weights[:, :1]), envelope_weights.cumsum(dim=-1)], dim=-1)
    first = torch.searchsorted(envelope_bins[:, 1:].contiguous(), bins[:, :-1].contiguous(), right=True)
    end = torch.searchsorted(envelope_bins[:, :-1].contiguous(), bins[:, 1:].contiguous(), right=False)
    return cumulative.gather(-1, end) - cumulative.gather(-1, first)


def interlevel_loss(
    bins: Float[Tensor, "num_rays num_samples_plus_1"],
    weights: Float[Tensor, "num_rays num_samples"],
    proposal_bins: Float[Tensor, "num_rays num_proposal_plus_1"],
    proposal_weights: Float[Tensor, "num_rays num_proposal"],
) -> Float[Tensor, "num_rays num_samples"]:
    """Per fine interval, how far its weight w exceeds the proposal weight over it, b: max(0, w - b)^2 / w.

    A proposal network passes where its weights bound the fine weights from above everywhere, which is all the
    sampler needs from it. The fine side is detached: the proposal learns to bound the field, never the reverse.
    """
    weights = weights.detach()
    bound = envelope_weights(bins.detach(), proposal_bins.detach(), proposal_weights)
    return (weights - bound).clamp_min(0) ** 2 / (weights + INTERLEVEL_EPS)


def distortion_loss(
    bins: Float[Tensor, "num_rays num_samples_plus_1"], weights: Float[Tensor, "num_rays num_samples"]
) -> Float[Tensor, " num_rays"]:
    """sum_ij w_i w_j |m_i - m_j| + sum_i w_i^2 d_i / 3 per ray (m: interval midpoints, d: lengths).

    Small when each ray's weight sits in one short stretch: it removes floaters and haze. The double sum is
    2 sum_i w_i (m_i W_i - M_i), with W_i and M_i the sums of w_j and w_j m_j over the intervals before i (midpoints
    are sorted), so it costs two cumulative sums.
    """
    midpoints = (bins[:, 1:] + bins[:, :-1]) / 2
    lengths = bins[:, 1:] - bins[:, :-1]
    weight_before = exclusive_sum_along_rays(weights)
    moment_before = exclusive_sum_along_rays(weights * midpoints)
    between = 2 * (weights * (midpoints * weight_before - moment_before)).sum(dim=-1)
    within = (weights**2 * lengths).sum(dim=-1) / 3
    return between + within
