"""tiny-cuda-nn, imported here only, and only when a cuda-kernels backend is built: it raises at import without CUDA."""

from __future__ import annotations

import importlib
from types import ModuleType

from nerfkit.errors import NerfkitError
from nerfkit.kernels.backends import INSTALL_HINTS, package_status


def import_tinycudann() -> ModuleType:
    """The tinycudann module, or a NerfkitError saying why it cannot run here and how to install it."""
    status = package_status("tinycudann")
    if not status.usable:
        raise NerfkitError(
            f"the cuda-kernels backend needs tiny-cuda-nn, which cannot run here ({status.reason})",
            hint=f"install it ({INSTALL_HINTS['tinycudann']}), or use the torch backend",
        )
    return importlib.import_module("tinycudann")
