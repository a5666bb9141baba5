"""Activations for densities."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor
from torch.autograd.function import FunctionCtx


class _TruncExp(torch.autograd.Function):
    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor) -> Tensor:
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx: FunctionCtx, grad_output: Tensor) -> Tensor:
        (x,) = ctx.saved_tensors
        return grad_output * torch.exp(x.clamp(max=15))


def trunc_exp(x: Float[Tensor, "*bs"]) -> Float[Tensor, "*bs"]:
    """exp(x) with its gradient computed at min(x, 15): a density can grow large without exploding the gradients
    (Instant-NGP's density activation)."""
    return _TruncExp.apply(x)
