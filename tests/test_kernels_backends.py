"""Backend selection and kit-doctor: auto falls back to torch, forced CUDA kernels fail clearly, probes never raise.

tiny-cuda-nn raises at import on machines without CUDA, and nerfacc imports and then loads its kernels; fake packages
on sys.path reproduce both (nerfacc as a prebuilt wheel; tests/test_nerfacc_build.py covers its JIT build), with
torch.cuda.is_available patched so the probes go as far as importing them.
"""

from __future__ import annotations

import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from nerfkit.errors import NerfkitError
from nerfkit.kernels.backends import (
    INSTALL_HINTS,
    OPERATIONS,
    Backends,
    KernelsConfig,
    PackageStatus,
    package_status,
    resolve_backends,
)
from nerfkit.kernels.nerfacc_build import load_nerfacc_kernels
from nerfkit.scripts import doctor

KIT_DOCTOR = Path(sys.executable).parent / "kit-doctor"
FAKE_PACKAGES = ("nerfacc", "tinycudann")
TCNN_IMPORT_ERROR = "Unknown compute capability. Ensure PyTorch with CUDA support is installed."


@pytest.fixture(autouse=True)
def fresh_probes(fresh_fused_kernel: None) -> Iterator[None]:
    """The probes cache per process; each test probes afresh and leaves no fake result behind. kit-doctor also builds
    the fused hash kernel, which fails under the fake PATH: cached, that failure would leave every later test in the
    session on the eager hash encoding (instant-ngp's and nerfacto's training tests took 3 to 7 times longer)."""
    package_status.cache_clear()
    load_nerfacc_kernels.cache_clear()
    yield
    package_status.cache_clear()
    load_nerfacc_kernels.cache_clear()


@pytest.fixture
def fake_cuda_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A prebuilt nerfacc, a tinycudann that raises like tcnn without CUDA, and an nvcc; returns nvcc's folder."""
    site = tmp_path / "site"
    (site / "nerfacc/cuda").mkdir(parents=True)
    (site / "nerfacc/__init__.py").write_text('__version__ = "0.5.3"\n')
    (site / "nerfacc/csrc.py").write_text("")  # a wheel's compiled kernels
    (site / "nerfacc/cuda/__init__.py").write_text("")
    (site / "nerfacc/cuda/_backend.py").write_text("from nerfacc import csrc as _C\n")
    (site / "tinycudann").mkdir()
    (site / "tinycudann/__init__.py").write_text(f"raise EnvironmentError({TCNN_IMPORT_ERROR!r})\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    nvcc = bin_dir / "nvcc"
    nvcc.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 12.4, V12.4.131'\n")
    nvcc.chmod(0o755)
    forget_fake_packages()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PATH", str(bin_dir))
    yield bin_dir
    forget_fake_packages()


def forget_fake_packages() -> None:
    for name in [name for name in sys.modules if name.split(".")[0] in FAKE_PACKAGES]:
        del sys.modules[name]


@pytest.fixture
def cuda_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch claims a CUDA device, so the probes import the packages instead of stopping early."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_auto_on_cpu_picks_torch_for_every_operation() -> None:
    assert resolve_backends(KernelsConfig(), torch.device("cpu")) == Backends()


@pytest.mark.usefixtures("fake_cuda_packages", "cuda_claimed")
def test_auto_on_cpu_picks_torch_even_when_the_packages_are_usable() -> None:
    assert package_status("nerfacc").usable
    assert resolve_backends(KernelsConfig(), torch.device("cpu")) == Backends()


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_forcing_cuda_kernels_on_cpu_names_the_flag_the_package_and_the_install_hint(operation: str) -> None:
    config = KernelsConfig(**{operation: "cuda-kernels"})
    with pytest.raises(NerfkitError) as raised:
        resolve_backends(config, torch.device("cpu"))
    package = OPERATIONS[operation]
    assert f"--machine.kernels.{operation.replace('_', '-')} cuda-kernels" in raised.value.message
    assert package in raised.value.message
    assert raised.value.hint is not None and INSTALL_HINTS[package] in raised.value.hint


@pytest.mark.usefixtures("fake_cuda_packages", "cuda_claimed")
def test_forcing_usable_cuda_kernels_on_a_cpu_device_says_so() -> None:
    with pytest.raises(NerfkitError, match="the run's device is cpu"):
        resolve_backends(KernelsConfig(occupancy_grid="cuda-kernels"), torch.device("cpu"))


def test_package_status_of_a_missing_package() -> None:
    status = package_status("nerfkit_no_such_package")
    assert status == PackageStatus("nerfkit_no_such_package", False, "not installed", installed=False)


@pytest.mark.usefixtures("fake_cuda_packages")
def test_package_status_without_cuda_does_not_import_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    status = package_status("tinycudann")
    assert not status.usable and "no CUDA device" in status.reason
    assert "tinycudann" not in sys.modules


@pytest.mark.usefixtures("fake_cuda_packages", "cuda_claimed")
def test_package_status_reports_an_import_error_as_the_reason() -> None:
    status = package_status("tinycudann")
    assert not status.usable
    assert "import failed" in status.reason and "Unknown compute capability" in status.reason


@pytest.mark.usefixtures("cuda_claimed")
def test_package_status_of_a_prebuilt_nerfacc_needs_no_nvcc(
    fake_cuda_packages: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(fake_cuda_packages.parent / "empty"))
    assert package_status("nerfacc") == PackageStatus("nerfacc", True, "usable", "0.5.3")


@pytest.mark.usefixtures("fake_cuda_packages", "cuda_claimed")
def test_auto_on_cuda_uses_the_usable_package_only() -> None:
    backends = resolve_backends(KernelsConfig(), torch.device("cuda", 0))
    assert backends == Backends(occupancy_grid="cuda-kernels", volume_rendering="cuda-kernels")


@pytest.mark.usefixtures("fake_cuda_packages", "cuda_claimed")
def test_doctor_reports_a_package_that_raises_at_import(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # no wrapping inside the table's cells
    assert doctor.main([]) == 0
    out = capsys.readouterr().out
    assert "Unknown compute capability" in out
    assert "12.4" in out  # the fake nvcc's release
    assert "cuda-kernels" in out and "Traceback" not in out


@pytest.mark.parametrize(
    ("module_body", "expected"),
    [
        ({}, ("unknown", "has no fused_cpu_status() yet")),
        ({"fused_cpu_status": lambda: PackageStatus("fused", True, "AVX2 path built")}, ("usable", "AVX2 path built")),
        ({"fused_cpu_status": lambda: 1 / 0}, ("unknown", "ZeroDivisionError")),
    ],
)
def test_doctor_hash_encoding_hook(
    module_body: dict[str, object], expected: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType(doctor.HASH_ENCODING_MODULE)
    vars(module).update(module_body)
    monkeypatch.setitem(sys.modules, doctor.HASH_ENCODING_MODULE, module)
    label, details = doctor.hash_encoding_status()
    assert label == expected[0] and expected[1] in details


def test_kit_doctor_prints_one_screen_without_a_traceback() -> None:
    result = subprocess.run([str(KIT_DOCTOR)], capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Traceback" not in output
    assert torch.__version__ in result.stdout
    for operation in OPERATIONS:
        row = next(line for line in result.stdout.splitlines() if operation.replace("_", "-") in line)
        assert "torch" in row or "cuda-kernels" in row
    assert len(result.stdout.splitlines()) <= 30, result.stdout
