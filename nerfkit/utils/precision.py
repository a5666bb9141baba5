"""Mixed precision for the field networks alone.

Cameras, ray generation, sample positions and volume-rendering weights stay in float32: half precision there moves
rays by millimetres at scene scale and makes transmittance underflow. Only the networks that turn features into
density and colour, where half precision is what makes a GPU fast, run under autocast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

import torch
from torch import Tensor

P = ParamSpec("P")
R = TypeVar("R")


def half_dtype(device: torch.device) -> torch.dtype:
    """The device's native half type: float16 on CUDA, bfloat16 on the CPU."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def to_float32(outputs: R) -> R:
    """A tensor, or a tuple of tensors, as float32."""
    if isinstance(outputs, tuple):
        return tuple(to_float32(output) for output in outputs)  # type: ignore[return-value]
    if isinstance(outputs, Tensor) and outputs.is_floating_point():
        return outputs.float()  # type: ignore[return-value]
    return outputs


def in_field_precision(function: Callable[P, R], device: torch.device, enabled: bool) -> Callable[P, R]:
    """`function` run under autocast when `enabled`, its outputs handed back in float32."""
    if not enabled:
        return function

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with torch.autocast(device.type, dtype=half_dtype(device)):
            return to_float32(function(*args, **kwargs))

    return run
