"""Seeding and the random-number-generator states that exact resume saves and restores."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state(device: torch.device | None = None) -> dict[str, Any]:
    """Every generator training may draw from, as tensors and plain values (safe to load).

    Of the CUDA generators only the run's own device's is saved: another machine, or another CUDA_VISIBLE_DEVICES,
    may have fewer GPUs than this one sees, and the run draws from no other.
    """
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict[str, Any], device: torch.device | None = None) -> str | None:
    """Restores what `get_rng_state` saved; returns why the CUDA stream could not continue, if it could not.

    The CUDA state goes to the run's device, whatever its index was when saved. Checkpoints written before held every
    visible GPU's state as a list: the entry of the run's device index is used when there is one.
    """
    random.setstate(_as_tuples(state["python"]))
    saved = state["numpy"]
    np.random.set_state(
        (
            saved["kind"],
            saved["keys"].numpy().astype(np.uint32),
            saved["position"],
            saved["has_gauss"],
            saved["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    saved = state.get("cuda")
    on_cuda = device is not None and device.type == "cuda"
    if saved is None:
        return "the checkpoint holds no CUDA random state: the CUDA stream starts from the seed" if on_cuda else None
    if not on_cuda:
        return "the checkpoint's CUDA random state is not restored: this run is not on a GPU"
    if isinstance(saved, (list, tuple)):
        index = device.index or 0
        if index >= len(saved):
            return (
                f"the checkpoint holds CUDA random states of {len(saved)} GPUs and none for cuda:{index}: "
                "the CUDA stream starts from the seed"
            )
        saved = saved[index]
    torch.cuda.set_rng_state(saved, device)
    return None


def _as_tuples(value: Any) -> Any:
    """random.setstate needs tuples; a state that went through a checkpoint may come back with lists."""
    return tuple(_as_tuples(item) for item in value) if isinstance(value, (list, tuple)) else value
