"""kit-doctor: what this machine can run, on one screen.

Prints the torch and CUDA versions, the GPU, nvcc, whether nerfacc and tiny-cuda-nn are installed and usable (and why
not, and how to install them), where nerfacc's kernels come from (a prebuilt wheel, a cached build, or a build still to
run), the fused CPU hash-encoding path, CPU threads, and the backend each accelerated operation would use with
`--machine.kernels.*` left on auto. On a GPU it loads nerfacc's kernels as training would, building them on first use.
Always exits 0: a broken optional package is a finding, not a crash.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import platform
import re
import shutil
import subprocess

import torch
import tyro
from rich.console import Console
from rich.table import Table
from rich.text import Text

import nerfkit
from nerfkit.engine.kernel_loading import prepare_backends
from nerfkit.engine.trainer import resolve_device
from nerfkit.kernels.backends import (
    OPERATIONS,
    PACKAGE_LABELS,
    KernelsConfig,
    PackageStatus,
    fix_hint,
    package_status,
)
from nerfkit.kernels.nerfacc_build import describe_source, kernel_source, load_nerfacc_kernels, loaded_message
from nerfkit.utils.cli import run_cli

KERNEL_SOURCE_LABELS = {"prebuilt": "prebuilt", "cached": "cached", "build": "needs a build"}
HASH_ENCODING_MODULE = "nerfkit.kernels.hash_encoding"
HASH_ENCODING_STATUS = "fused_cpu_status"
"""Hook: `nerfkit.kernels.hash_encoding.fused_cpu_status()` returns an object with `usable` and `reason` (a
PackageStatus fits); anything missing shows as unknown."""


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _gpu() -> str:
    if not torch.cuda.is_available():
        return "none (torch sees no CUDA device)"
    try:
        name = torch.cuda.get_device_name(0)
        major, minor = torch.cuda.get_device_capability(0)
    except Exception as error:  # noqa: BLE001 - a broken driver is reported, not raised
        return f"unreadable: {type(error).__name__}: {_first_line(error)}"
    return f"{name} (compute capability {major}.{minor}, {torch.cuda.device_count()} visible)"


def _nvcc() -> tuple[bool, str]:
    path = shutil.which("nvcc")
    if path is None:
        return False, "not on PATH (nerfacc builds its kernels with it, unless its wheel is prebuilt)"
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError) as error:
        return False, f"{path} does not run: {_first_line(error)}"
    release = re.search(r"release ([\d.]+)", result.stdout)
    return True, f"{release.group(1) if release else 'unknown version'} at {path}"


def hash_encoding_status() -> tuple[str, str]:
    """The fused CPU hash-encoding path's status, read lazily so a missing or broken module cannot stop the report."""
    hook = f"{HASH_ENCODING_MODULE}.{HASH_ENCODING_STATUS}()"
    try:
        module = importlib.import_module(HASH_ENCODING_MODULE)
    except Exception as error:  # noqa: BLE001 - a module that fails at import is reported, not raised
        if isinstance(error, ModuleNotFoundError) and error.name == HASH_ENCODING_MODULE:
            return "unknown", f"{HASH_ENCODING_MODULE} does not exist yet"
        return "unknown", f"{HASH_ENCODING_MODULE} failed at import: {type(error).__name__}: {_first_line(error)}"
    status_function = getattr(module, HASH_ENCODING_STATUS, None)
    if status_function is None:
        return "unknown", f"{HASH_ENCODING_MODULE} has no {HASH_ENCODING_STATUS}() yet"
    try:
        status = status_function()
    except Exception as error:  # noqa: BLE001
        return "unknown", f"{hook} raised {type(error).__name__}: {_first_line(error)}"
    usable = getattr(status, "usable", None)
    label = "unknown" if usable is None else "usable" if usable else "unusable"
    return label, str(getattr(status, "reason", status))


def _yes_no(usable: bool) -> Text:
    return Text("yes", style="green") if usable else Text("no", style="red")


def package_cell(status: PackageStatus) -> Text:
    """An absent package is "not installed", a present one that cannot run its kernels "unusable"."""
    if status.usable:
        return Text("usable", style="green")
    return Text("unusable", style="red") if status.installed else Text("not installed", style="yellow")


def package_details(status: PackageStatus) -> str:
    if status.usable:
        return f"version {status.version or 'unknown'}"
    return status.reason if status.installed else "optional: the torch backends run instead"


def nerfacc_kernels_row(status: PackageStatus) -> tuple[str, str]:
    """Where nerfacc's kernels came from once loaded; otherwise where they would come from, without building them."""
    if status.usable:
        load = load_nerfacc_kernels()  # already loaded, so this costs nothing
        return KERNEL_SOURCE_LABELS[load.source], loaded_message(load).removeprefix("nerfacc: ")
    source = kernel_source()
    return KERNEL_SOURCE_LABELS[source], describe_source(source)


def _hash_encoding_cell(label: str) -> Text:
    return Text(label, style={"usable": "green", "unusable": "red"}.get(label, "yellow"))


def _backend_reason(backend: str, package: PackageStatus, device: torch.device) -> str:
    label = PACKAGE_LABELS[package.name]
    if backend == "cuda-kernels":
        return f"{label} on {device}"
    if package.usable:
        return f"{label} is usable, but the device is {device.type}"
    return f"{label} is {'unusable' if package.installed else 'not installed'}"


def report(console: Console) -> None:
    """Prints the environment table and, for each unusable CUDA package, how to install it."""
    device = resolve_device("auto", local_rank=0)
    backends = prepare_backends(KernelsConfig(), device, console)
    statuses = {name: package_status(name) for name in sorted(set(OPERATIONS.values()))}
    cuda = torch.version.cuda
    nvcc_ok, nvcc_details = _nvcc()
    hash_label, hash_details = hash_encoding_status()

    table = Table(title=f"nerfkit {nerfkit.__version__} environment", title_justify="left")
    table.add_column("check", style="bold", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("details", overflow="fold")
    # Details are Text, not markup: reasons quote error messages, which may contain brackets.
    table.add_row("python", "", Text(platform.python_version()))
    table.add_row("torch", "", Text(f"{torch.__version__} ({f'CUDA {cuda} build' if cuda else 'CPU-only build'})"))
    table.add_row("GPU", _yes_no(torch.cuda.is_available()), Text(_gpu()))
    table.add_row("CPU threads", "", Text(f"torch uses {torch.get_num_threads()} of {os.cpu_count()} logical CPUs"))
    table.add_row("nvcc", _yes_no(nvcc_ok), Text(nvcc_details))
    for status in statuses.values():
        table.add_row(PACKAGE_LABELS[status.name], package_cell(status), Text(package_details(status)))
        if status.name == "nerfacc" and status.installed:
            source_label, source_details = nerfacc_kernels_row(status)
            table.add_row("nerfacc kernels", Text(source_label), Text(source_details))
    table.add_row("fused CPU hash enc.", _hash_encoding_cell(hash_label), Text(hash_details))
    table.add_section()
    for field in dataclasses.fields(backends):
        backend = getattr(backends, field.name)
        why = _backend_reason(backend, statuses[OPERATIONS[field.name]], device)
        table.add_row(field.name.replace("_", "-"), Text(backend, style="cyan"), Text(why))
    console.print(table)
    console.print(f"below the line: what --machine.kernels.* auto picks on {device}", markup=False)
    for status in statuses.values():
        if not status.usable:
            console.print(f"{PACKAGE_LABELS[status.name]}: {fix_hint(status)}", markup=False, soft_wrap=True)


def main(argv: list[str]) -> int:
    tyro.cli(lambda: None, args=argv, prog="kit-doctor", description=__doc__)
    report(Console(highlight=False, soft_wrap=False))
    return 0


def entrypoint() -> None:
    run_cli(main)


if __name__ == "__main__":
    entrypoint()
