"""Which implementation each accelerated operation uses: chosen once, from the config and the device, and logged.

The optional CUDA packages fail in different ways on machines without CUDA (tiny-cuda-nn raises at import when torch
has no CUDA; nerfacc imports but fails when its kernels are first compiled without nvcc), so availability is probed
defensively here, once, and reported as a reason rather than a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
from dataclasses import dataclass, fields
from functools import cache
from typing import Literal

import torch

from nerfkit.configs.base_config import KernelsConfig
from nerfkit.errors import NerfkitError

Backend = Literal["cuda-kernels", "torch"]

OPERATIONS = {
    "occupancy_grid": "nerfacc",
    "volume_rendering": "nerfacc",
    "hash_encoding": "tinycudann",
    "mlp": "tinycudann",
}
"""Each operation and the package that provides its CUDA kernels."""

INSTALL_HINTS = {
    "nerfacc": "pip install nerfacc (needs a CUDA build of torch and nvcc to compile its kernels)",
    "tinycudann": (
        "pip install git+https://github.com/NVlabs/tiny-cuda-nn/#subdirectory=bindings/torch "
        "(needs a CUDA build of torch and nvcc)"
    ),
}


@dataclass(frozen=True)
class PackageStatus:
    """Whether an optional package can run its CUDA kernels here, and why not."""

    name: str
    usable: bool
    reason: str
    version: str | None = None


def _probe_import(name: str) -> tuple[object | None, str]:
    try:
        return importlib.import_module(name), ""
    except Exception as error:  # noqa: BLE001 - any failure of an optional package means it is unusable
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        return None, f"import failed: {type(error).__name__}: {first_line}"


@cache
def package_status(name: str) -> PackageStatus:
    """Probes an optional CUDA package once per process; never raises."""
    try:
        installed = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a half-installed package or a stub module without a spec
        installed = False
    if not installed:
        return PackageStatus(name, False, "not installed")
    if not torch.cuda.is_available():
        return PackageStatus(name, False, "installed, but torch sees no CUDA device")
    if name == "nerfacc" and shutil.which("nvcc") is None:
        return PackageStatus(name, False, "installed, but nvcc is not on PATH to compile its kernels")
    module, reason = _probe_import(name)
    if module is None:
        return PackageStatus(name, False, reason)
    return PackageStatus(name, True, "usable", getattr(module, "__version__", None))


@dataclass(frozen=True)
class Backends:
    """The backend resolved for each operation."""

    occupancy_grid: Backend = "torch"
    volume_rendering: Backend = "torch"
    hash_encoding: Backend = "torch"
    mlp: Backend = "torch"

    def describe(self) -> str:
        return ", ".join(f"{f.name.replace('_', '-')}: {getattr(self, f.name)}" for f in fields(self))


def resolve_backends(config: KernelsConfig, device: torch.device) -> Backends:
    """Backends for a run on `device`; forcing CUDA kernels that cannot run here is a clear error."""
    chosen: dict[str, Backend] = {}
    for operation, package in OPERATIONS.items():
        choice = getattr(config, operation)
        status = package_status(package)
        usable = status.usable and device.type == "cuda"
        if choice == "cuda-kernels" and not usable:
            why = f"the run's device is {device.type}" if status.usable else status.reason
            flag = f"--machine.kernels.{operation.replace('_', '-')}"
            raise NerfkitError(
                f"{flag} cuda-kernels: {package} cannot run here ({why})",
                hint=f"install it ({INSTALL_HINTS[package]}), or use {flag} auto or torch",
            )
        chosen[operation] = "cuda-kernels" if choice != "torch" and usable else "torch"
    return Backends(**chosen)
