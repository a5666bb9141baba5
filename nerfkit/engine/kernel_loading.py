"""Kernel backends for a run about to start: nerfacc's kernels load (or build) before step 1, rank after rank.

The kernels layer only says what can run here (`kernels/backends.py`); ordering the probe across the ranks of a
distributed run, and telling the user what happens, is the engine's business.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.distributed as dist
from rich.console import Console

from nerfkit.kernels.backends import (
    OPERATIONS,
    PACKAGE_LABELS,
    Backends,
    KernelsConfig,
    PackageStatus,
    package_installed,
    package_status,
    resolve_backends,
)
from nerfkit.kernels.nerfacc_build import BUILDING_MESSAGE, build_is_due, load_nerfacc_kernels, loaded_message

OTHER_RANK_FAILED = "another rank of this run could not load its kernels"
BUILD_ORDER_TURNS = 3
"""Rank 0, then the first rank of every other machine, then every other rank."""


def _every_rank_agrees(flag: bool, device: torch.device) -> bool:
    """Whether `flag` holds on every rank; a collective, so it also waits for all of them."""
    value = torch.tensor([int(flag)], device=device if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def _turn(rank: int, device: torch.device) -> int:
    """When a rank probes: rank 0 first; then each other machine's first device (its disk may hold no build); then
    the rest, which find a cached build."""
    return 0 if rank == 0 else 1 if (device.index or 0) == 0 else 2


def in_rank_order(name: str, probe: Callable[[], PackageStatus], device: torch.device) -> PackageStatus:
    """Runs `probe` rank after rank, so that one process builds into a cache folder while the others wait and then
    load that build. Once a rank fails, later ranks do not try (they would fail alike, minutes later), and every rank
    ends with the same verdict, so that all use the same backends."""
    if not (dist.is_available() and dist.is_initialized()):
        return probe()
    mine = _turn(dist.get_rank(), device)
    status = PackageStatus(name, False, OTHER_RANK_FAILED)
    all_usable = True
    for turn in range(BUILD_ORDER_TURNS):
        if turn == mine and all_usable:
            status = probe()
        all_usable = _every_rank_agrees(status.usable or turn < mine, device)
    if status.usable and not all_usable:
        return dataclasses.replace(status, usable=False, reason=OTHER_RANK_FAILED)
    return status


def _load_nerfacc(console: Console) -> PackageStatus:
    """nerfacc's status once its kernels are loaded, saying first when that means a build, then where they came from."""
    if package_installed("nerfacc") and torch.cuda.is_available() and build_is_due():
        console.print(BUILDING_MESSAGE, markup=False)
    status = package_status("nerfacc")
    if status.usable:
        console.print(loaded_message(load_nerfacc_kernels()), markup=False)
    return status


def fallback_lines(config: KernelsConfig, backends: Backends, status_of: Callable[[str], PackageStatus]) -> list[str]:
    """One line per package that `auto` would have used on this CUDA device but could not, with the reason."""
    lines = []
    for package, label in PACKAGE_LABELS.items():
        operations = [
            operation
            for operation, provider in OPERATIONS.items()
            if provider == package and getattr(config, operation) == "auto" and getattr(backends, operation) == "torch"
        ]
        if operations:
            names = " and ".join(operation.replace("_", "-") for operation in operations)
            lines.append(f"{label}: {status_of(package).reason}; {names} use torch")
    return lines


def prepare_backends(config: KernelsConfig, device: torch.device, console: Console) -> Backends:
    """resolve_backends for a run about to start: nerfacc's kernels load (or build, rank 0 first) now, announced,
    rather than inside the first training step; an operation that auto leaves on torch on a CUDA device says why."""
    uses_nerfacc = any(getattr(config, op) != "torch" for op, package in OPERATIONS.items() if package == "nerfacc")
    probed: dict[str, PackageStatus] = {}
    if device.type == "cuda" and uses_nerfacc:
        probed["nerfacc"] = in_rank_order("nerfacc", lambda: _load_nerfacc(console), device)

    def status_of(name: str) -> PackageStatus:
        return probed[name] if name in probed else package_status(name)

    backends = resolve_backends(config, device, status_of)
    if device.type == "cuda":
        for line in fallback_lines(config, backends, status_of):
            console.print(line, markup=False, soft_wrap=True)
    return backends
