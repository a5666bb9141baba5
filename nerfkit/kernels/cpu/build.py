"""Compile a C source file once and load it with ctypes.

Kernels ship as C source and are built on first use, so installing nerfkit needs no compiler and a machine without
one still runs (callers fall back to PyTorch). Each build is cached under `$NERFKIT_CACHE_DIR/kernels` (default
`~/.cache/nerfkit/kernels`), named by a hash of everything that changes the binary (source, compiler, flags, and for
`-march=native` the CPU), and moved into place atomically, so concurrent processes never load a half-written file.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BASE_FLAGS = ("-O3", "-shared", "-fPIC", "-fopenmp")
"""Flags of every build; OpenMP's runtime is the one torch already loaded (same soname, libgomp.so.1)."""
NATIVE_FLAGS = ("-march=native",)
"""Tried first; if the compiler rejects them (or the result will not load) the portable build is used."""
COMPILE_TIMEOUT_S = 120


class KernelBuildError(RuntimeError):
    """A kernel could not be compiled or loaded; the message says why in one line."""


def kernel_cache_dir() -> Path:
    root = os.environ.get("NERFKIT_CACHE_DIR")
    return (Path(root) if root else Path.home() / ".cache" / "nerfkit") / "kernels"


def c_compiler() -> str:
    """The C compiler: `$CC`, else gcc."""
    return os.environ.get("CC") or "gcc"


def _cpu_signature() -> str:
    """What a `-march=native` binary depends on, so a cache shared between machines never loads a foreign build."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    model = next((line for line in lines if line.startswith("model name")), "")
    flags = next((line for line in lines if line.startswith("flags")), "")
    return f"{platform.machine()} {model} {flags}"


def _library_path(source: Path, source_bytes: bytes, compiler: str, flags: tuple[str, ...]) -> Path:
    key = hashlib.sha256()
    for part in (source_bytes, compiler.encode(), " ".join(flags).encode(), sys.platform.encode()):
        key.update(part)
        key.update(b"\0")
    if NATIVE_FLAGS[0] in flags:
        key.update(_cpu_signature().encode())
    return kernel_cache_dir() / f"{source.stem}-{key.hexdigest()[:16]}.so"


def _compile(compiler: str, flags: tuple[str, ...], source: Path, target: Path) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}-", suffix=".so")
        os.close(handle)
    except OSError as error:
        raise KernelBuildError(f"cannot write to the kernel cache {target.parent}: {error}") from None
    command = [compiler, *flags, str(source), "-o", temporary, "-lm"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=COMPILE_TIMEOUT_S)
        if result.returncode != 0:
            first_error = next((line for line in result.stderr.splitlines() if "error" in line), result.stderr.strip())
            raise KernelBuildError(f"`{' '.join(command)}` failed: {first_error[:300]}")
        os.replace(temporary, target)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise KernelBuildError(f"`{' '.join(command)}` could not run: {error}") from None
    finally:
        Path(temporary).unlink(missing_ok=True)


def load_c_library(source: Path, defines: tuple[str, ...] = ()) -> ctypes.CDLL:
    """The compiled `source`, built now unless a matching build is cached; raises KernelBuildError saying why not.

    `defines` (`-DNAME` flags) select a variant of the source; each variant is cached under its own name.
    """
    compiler = c_compiler()
    resolved = shutil.which(compiler)
    if resolved is None:
        raise KernelBuildError(f"no C compiler: {compiler!r} is not on PATH (set CC to choose one)")
    source_bytes = source.read_bytes()
    failures = []
    for flags in (BASE_FLAGS + defines + NATIVE_FLAGS, BASE_FLAGS + defines):
        target = _library_path(source, source_bytes, resolved, flags)
        try:
            if not target.exists():
                _compile(resolved, flags, source, target)
            return ctypes.CDLL(str(target))
        except KernelBuildError as error:
            failures.append(str(error))
        except OSError as error:
            failures.append(f"loading {target} failed: {error}")
    raise KernelBuildError("; ".join(failures))
