"""tiny-cuda-nn, imported here only, and only when a cuda-kernels backend is built: it raises at import without CUDA."""

from __future__ import annotations

from types import ModuleType

from nerfkit.kernels.backends import import_kernels_package


def import_tinycudann() -> ModuleType:
    """The tinycudann module, or a NerfkitError saying why it cannot run here and how to install it."""
    return import_kernels_package("tinycudann")
