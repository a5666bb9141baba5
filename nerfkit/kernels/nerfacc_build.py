"""nerfacc's CUDA kernels, loaded once per process and up front, instead of inside the first kernel call.

nerfacc 0.5 looks for its kernels when a kernel is first called (nerfacc/cuda/__init__.py imports
nerfacc/cuda/_backend.py lazily): the compiled `nerfacc.csrc` module of a prebuilt wheel, else torch's JIT build
(ninja and nvcc, minutes the first time) cached in torch's extensions folder. A failed build raises at that call and is
tried again at the next one. Importing `nerfacc.cuda._backend` here runs that same lookup once, at a moment of our
choosing, so that its cost can be announced and its failure becomes a reason rather than a crash in training step 1.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import shutil
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

KernelSource = Literal["prebuilt", "cached", "build"]
"""Where nerfacc's kernels come from: a prebuilt wheel, torch's cache of an earlier JIT build, or a JIT build to run."""

BUILD_NAME = "nerfacc_cuda"
"""The extension name nerfacc gives torch's JIT build, which names its cache folder and library."""
BACKEND_MODULE = "nerfacc.cuda._backend"
"""The module whose import finds, loads or builds nerfacc's kernels and binds them to `_C` (None without nvcc)."""
BUILDING_MESSAGE = "nerfacc: building its CUDA kernels (first use; a few minutes) ..."
MAX_REASON_CHARS = 300
"""A build error quotes the compiler's output; the reason keeps its start."""


@dataclass(frozen=True)
class KernelLoad:
    """The outcome of loading nerfacc's kernels, kept for the process."""

    usable: bool
    """Whether the kernels loaded."""
    reason: str
    """Why not, in one line ("loaded" when they did)."""
    source: KernelSource
    """Where they came from, or were looked for, as seen just before loading."""
    seconds: float
    """How long loading (or building) took."""


def error_line(error: BaseException) -> str:
    """An exception as one bounded line: type and first line of its message, never a traceback."""
    first = (str(error).strip().splitlines() or [""])[0]
    line = f"{type(error).__name__}: {first}" if first else type(error).__name__
    return line if len(line) <= MAX_REASON_CHARS else f"{line[: MAX_REASON_CHARS - 3]}..."


def jit_build_dir() -> Path:
    """torch's cache folder for nerfacc's JIT build, from the very function nerfacc calls (it creates the folder)."""
    from torch.utils.cpp_extension import _get_build_directory

    return Path(_get_build_directory(BUILD_NAME, verbose=False))


def has_prebuilt_kernels() -> bool:
    """Whether the installed nerfacc ships compiled kernels (`nerfacc.csrc`), found without importing nerfacc."""
    try:
        spec = importlib.util.find_spec("nerfacc")
    except (ImportError, ValueError):
        return False
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return bool(locations) and importlib.machinery.PathFinder.find_spec("csrc", locations) is not None


def has_cached_build() -> bool:
    """Whether torch's extensions folder holds a finished JIT build of nerfacc's kernels."""
    try:
        folder = jit_build_dir()
    except OSError:
        return False
    return any((folder / f"{BUILD_NAME}{suffix}").is_file() for suffix in (".so", ".pyd"))


def kernel_source() -> KernelSource:
    """Where nerfacc would take its kernels from now, without loading or building anything."""
    if has_prebuilt_kernels():
        return "prebuilt"
    return "cached" if has_cached_build() else "build"


@cache
def load_nerfacc_kernels() -> KernelLoad:
    """Runs nerfacc's own kernel lookup once per process and keeps the outcome, failures included; never raises."""
    source = kernel_source()
    start = time.perf_counter()
    try:
        compiled = getattr(importlib.import_module(BACKEND_MODULE), "_C", None)
    except Exception as error:  # noqa: BLE001 - a failed build or load makes the kernels unusable, with this reason
        verb = "building" if source == "build" else "loading"
        return KernelLoad(False, f"{verb} its kernels failed: {error_line(error)}", source, time.perf_counter() - start)
    if compiled is None:
        reason = "it has no prebuilt kernels, and no nvcc on PATH to build them"
        return KernelLoad(False, reason, source, time.perf_counter() - start)
    return KernelLoad(True, "loaded", source, time.perf_counter() - start)


def build_is_due() -> bool:
    """Whether loading the kernels now means a JIT build of minutes: not tried yet in this process, nothing prebuilt or
    cached, and nvcc there (without it nerfacc does not try)."""
    tried = load_nerfacc_kernels.cache_info().currsize > 0
    return not tried and kernel_source() == "build" and shutil.which("nvcc") is not None


def loaded_message(load: KernelLoad) -> str:
    """The line that says where loaded kernels came from, and what a build cost."""
    if load.source == "build":
        return f"nerfacc: kernels built in {load.seconds:.0f} s (cached for later runs)"
    return f"nerfacc: kernels loaded ({'prebuilt wheel' if load.source == 'prebuilt' else 'cached build'})"


def describe_source(source: KernelSource) -> str:
    """What each kind of kernel source means here, for kit-doctor."""
    if source == "prebuilt":
        return "compiled into the installed wheel (nerfacc.csrc): no build, no nvcc needed"
    if source == "cached":
        return f"built earlier, cached in {jit_build_dir()}"
    ninja = "found" if shutil.which("ninja") else "missing"
    nvcc = "found" if shutil.which("nvcc") else "missing"
    return f"built on first use (a few minutes) into {jit_build_dir()}; needs ninja ({ninja}) and nvcc ({nvcc})"
