"""tiny-cuda-nn, imported here only, and only when a cuda-kernels backend is built: it raises at import without CUDA."""

from __future__ import annotations

from types import ModuleType

from nerfkit.kernels.backends import import_kernels_package, package_status


def import_tinycudann() -> ModuleType:
    """The tinycudann module, or a NerfkitError saying why it cannot run here and how to install it. The status is
    looked up through this module, where tests put a stand-in's."""
    return import_kernels_package("tinycudann", package_status)
