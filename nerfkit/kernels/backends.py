"""Which implementation each accelerated operation uses: chosen once, from the config and the device, and logged.

The optional CUDA packages fail in different ways on machines without CUDA (tiny-cuda-nn raises at import when torch
has no CUDA; nerfacc imports, then builds its kernels at their first call), so availability is probed defensively
here, once, by loading what will run, and reported as a reason rather than a traceback.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import cache
from typing import TYPE_CHECKING, Literal

import torch
import torch.distributed as dist
from rich.console import Console

from nerfkit.errors import NerfkitError
from nerfkit.kernels.nerfacc_build import (
    BUILDING_MESSAGE,
    build_is_due,
    error_line,
    load_nerfacc_kernels,
    loaded_message,
)

if TYPE_CHECKING:  # kernels import nothing from the config layer above them at run time
    from nerfkit.configs.base_config import KernelsConfig

Backend = Literal["cuda-kernels", "torch"]

OPERATIONS = {
    "occupancy_grid": "nerfacc",
    "volume_rendering": "nerfacc",
    "hash_encoding": "tinycudann",
    "sh_encoding": "tinycudann",
    "mlp": "tinycudann",
}
"""Each operation and the package that provides its CUDA kernels."""

PACKAGE_LABELS = {"nerfacc": "nerfacc", "tinycudann": "tiny-cuda-nn"}
"""The names users know the packages by."""

INSTALL_HINTS = {
    "nerfacc": (
        'pip install "nerfkit[cuda]" (nerfacc and ninja; with a CUDA build of torch and nvcc, its kernels build on '
        "first use; a prebuilt nerfacc wheel matching torch and CUDA needs no nvcc)"
    ),
    "tinycudann": (
        "pip install --no-build-isolation git+https://github.com/NVlabs/tiny-cuda-nn/#subdirectory=bindings/torch "
        "(not on PyPI; needs a CUDA build of torch and nvcc)"
    ),
}
"""How to install each package."""

REPAIR_HINTS = {
    "nerfacc": (
        "install ninja (pip install ninja) and the CUDA toolkit's nvcc so its kernels can build, or a prebuilt nerfacc "
        "wheel for this torch and CUDA; python -c 'import nerfacc.cuda._backend' shows the full error"
    ),
    "tinycudann": f"reinstall it against this torch: {INSTALL_HINTS['tinycudann']}",
}
"""What to do about a package that is installed but cannot run its kernels on a CUDA machine."""

NOT_INSTALLED = "not installed"
OTHER_RANK_FAILED = "another rank of this run could not load its kernels"
BUILD_ORDER_TURNS = 3
"""Rank 0, then the first rank of every other machine, then every other rank."""


@dataclass(frozen=True)
class PackageStatus:
    """Whether an optional package can run its CUDA kernels here, and why not."""

    name: str
    usable: bool
    reason: str
    version: str | None = None
    installed: bool = True
    """False when the package is absent, as opposed to present but unusable."""


def _probe_import(name: str) -> tuple[object | None, str]:
    try:
        return importlib.import_module(name), ""
    except Exception as error:  # noqa: BLE001 - any failure of an optional package means it is unusable
        return None, f"import failed: {error_line(error)}"


def package_installed(name: str) -> bool:
    """Whether the package is there at all, found without importing it."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a half-installed package or a stub module without a spec
        return False


@cache
def package_status(name: str) -> PackageStatus:
    """Probes an optional CUDA package once per process; never raises. For nerfacc that loads its kernels, which the
    first time may mean building them (minutes): only on a machine where torch has CUDA."""
    if not package_installed(name):
        return PackageStatus(name, False, NOT_INSTALLED, installed=False)
    if not torch.cuda.is_available():
        return PackageStatus(name, False, "installed, but torch sees no CUDA device")
    module, reason = _probe_import(name)
    if module is None:
        return PackageStatus(name, False, reason)
    version = getattr(module, "__version__", None)
    if name == "nerfacc":
        kernels = load_nerfacc_kernels()
        if not kernels.usable:
            return PackageStatus(name, False, kernels.reason, version)
    return PackageStatus(name, True, "usable", version)


def fix_hint(status: PackageStatus) -> str:
    """What to do about an unusable package: install it, get CUDA, or repair it."""
    if not status.installed:
        return f"install it: {INSTALL_HINTS[status.name]}"
    if not torch.cuda.is_available():
        return "its kernels need a GPU and a CUDA build of torch"
    return REPAIR_HINTS[status.name]


@dataclass(frozen=True)
class Backends:
    """The backend resolved for each operation."""

    occupancy_grid: Backend = "torch"
    volume_rendering: Backend = "torch"
    hash_encoding: Backend = "torch"
    sh_encoding: Backend = "torch"
    mlp: Backend = "torch"

    def describe(self) -> str:
        return ", ".join(f"{f.name.replace('_', '-')}: {getattr(self, f.name)}" for f in fields(self))


def resolve_backends(
    config: KernelsConfig, device: torch.device, status_of: Callable[[str], PackageStatus] = package_status
) -> Backends:
    """Backends for a run on `device`; forcing CUDA kernels that cannot run here is a clear error. Packages are probed
    only where an operation may use them."""
    chosen: dict[str, Backend] = {}
    for operation, package in OPERATIONS.items():
        choice = getattr(config, operation)
        if choice == "torch" or (choice == "auto" and device.type != "cuda"):
            chosen[operation] = "torch"
            continue
        status = status_of(package)
        usable = status.usable and device.type == "cuda"
        if choice == "cuda-kernels" and not usable:
            flag = f"--machine.kernels.{operation.replace('_', '-')}"
            why = f"the run's device is {device.type}" if status.usable else status.reason
            fix = "run on the GPU (--machine.device-type cuda)" if status.usable else fix_hint(status)
            raise NerfkitError(
                f"{flag} cuda-kernels: {package} cannot run here ({why})", hint=f"{fix}; or use {flag} auto or torch"
            )
        chosen[operation] = "cuda-kernels" if usable else "torch"
    return Backends(**chosen)


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
