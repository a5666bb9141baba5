"""Which implementation each accelerated operation uses: chosen once, from the config and the device, and logged.

The optional CUDA packages fail in different ways on machines without CUDA (tiny-cuda-nn raises at import when torch
has no CUDA; nerfacc imports, then builds its kernels at their first call), so availability is probed defensively
here, once, by loading what will run, and reported as a reason rather than a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING, Literal

from nerfkit.errors import NerfkitError
from nerfkit.kernels.nerfacc_build import error_line, load_nerfacc_kernels

if TYPE_CHECKING:
    import torch

Backend = Literal["cuda-kernels", "torch"]
"""The implementation an operation runs on."""
BackendChoice = Literal["auto", "cuda-kernels", "torch"]
"""A backend as configured: auto takes the CUDA kernels where they can run on the run's device."""

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


def cuda_available() -> bool:
    """Whether torch sees a CUDA device; torch is imported here, not with the module, as the config tree (which
    holds `KernelsConfig`) must load without it."""
    import torch

    return torch.cuda.is_available()


@cache
def package_status(name: str) -> PackageStatus:
    """Probes an optional CUDA package once per process; never raises. For nerfacc that loads its kernels, which the
    first time may mean building them (minutes): only on a machine where torch has CUDA."""
    if not package_installed(name):
        return PackageStatus(name, False, NOT_INSTALLED, installed=False)
    if not cuda_available():
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
    if not cuda_available():
        return "its kernels need a GPU and a CUDA build of torch"
    return REPAIR_HINTS[status.name]


def import_kernels_package(name: str, status_of: Callable[[str], PackageStatus] = package_status) -> ModuleType:
    """The package whose CUDA kernels a backend calls, or a NerfkitError saying why they cannot run here and what to
    do about it."""
    status = status_of(name)
    if not status.usable:
        raise NerfkitError(
            f"the cuda-kernels backend needs {PACKAGE_LABELS[name]}, which cannot run here ({status.reason})",
            hint=f"{fix_hint(status)}; or use the torch backend",
        )
    return importlib.import_module(name)


@dataclass
class KernelsConfig:
    """Backend of each accelerated operation: auto uses the CUDA kernels when installed and training on CUDA."""

    occupancy_grid: BackendChoice = "auto"
    """Occupancy-grid ray marching: nerfacc's OccGridEstimator or PyTorch."""
    volume_rendering: BackendChoice = "auto"
    """Packed volume rendering: nerfacc's volrend or PyTorch segment operations."""
    hash_encoding: BackendChoice = "auto"
    """Multiresolution hash encoding: tiny-cuda-nn's Encoding or PyTorch (with a fused CPU path)."""
    sh_encoding: BackendChoice = "auto"
    """Spherical-harmonics direction encoding: tiny-cuda-nn's Encoding or PyTorch."""
    mlp: BackendChoice = "auto"
    """Small MLPs: tiny-cuda-nn's FullyFusedMLP or torch.nn."""


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
