"""nerfacc's kernels load once, before training: a build is announced, a failure is a reason (torch under auto, an error
when forced), a prebuilt wheel needs no nvcc, and in a distributed run rank 0 builds while the others wait.

The stand-in nerfacc below keeps what nerfkit relies on from nerfacc 0.5.3 (nerfacc/cuda/_backend.py and
nerfacc/cuda/__init__.py): its kernels are found when `nerfacc.cuda._backend` is first imported, from a prebuilt
`nerfacc.csrc` module, else from torch's JIT build in `_get_build_directory("nerfacc_cuda")`, which runs only when nvcc
is on PATH, raises like torch's `load` without ninja, and otherwise leaves `_C = None`. Each kernel call imports that
module again, so a failed build is retried at every call. The stand-in logs every load and build to a file.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from rich.console import Console

from nerfkit.engine.kernel_loading import prepare_backends
from nerfkit.errors import NerfkitError
from nerfkit.kernels.backends import INSTALL_HINTS, Backends, KernelsConfig, package_status, resolve_backends
from nerfkit.kernels.nerfacc_build import BUILDING_MESSAGE, kernel_source, load_nerfacc_kernels
from nerfkit.kernels.volrend import import_nerfacc
from nerfkit.scripts import doctor

REPO = Path(__file__).resolve().parents[1]
CUDA = torch.device("cuda", 0)
NERFACC_OPERATIONS = Backends(occupancy_grid="cuda-kernels", volume_rendering="cuda-kernels")
NINJA_MISSING = "Ninja is required to load C++ extensions (pip install ninja to get it)"

FAKE_CUDA_INIT = """
def _make_lazy_cuda_func(name):
    def call_cuda(*args, **kwargs):
        from ._backend import _C

        return getattr(_C, name)(*args, **kwargs)

    return call_cuda


traverse_grids = _make_lazy_cuda_func("traverse_grids")
"""
FAKE_BACKEND = f"""
import os
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

from torch.utils.cpp_extension import _get_build_directory

build_dir = Path(_get_build_directory("nerfacc_cuda", verbose=False))


def _log(event):
    with open(os.environ["FAKE_NERFACC_EVENTS"], "a") as events:
        events.write(f"{{os.environ.get('FAKE_NERFACC_RANK', '0')}} {{event}}\\n")


_C = None
try:
    from nerfacc import csrc as _C
except ImportError:
    if shutil.which("nvcc"):
        library = build_dir / "nerfacc_cuda.so"
        if library.exists():
            _log("loaded")
        else:
            _log("build started")
            if shutil.which("ninja") is None:
                raise RuntimeError({NINJA_MISSING!r})
            time.sleep(float(os.environ.get("FAKE_NERFACC_BUILD_SECONDS", "0")))
            library.write_text("")
            _log("built")
        _C = SimpleNamespace(traverse_grids=lambda *args: "traversed")
    else:
        print("NerfAcc: No CUDA toolkit found. NerfAcc will be disabled.")
"""


def write_fake_nerfacc(site: Path, prebuilt: bool = False) -> None:
    """nerfacc 0.5.3 as pip leaves it: JIT-built kernels, or with `prebuilt` a wheel's compiled `csrc` module."""
    package = site / "nerfacc"
    (package / "cuda").mkdir(parents=True)
    (package / "__init__.py").write_text('from . import cuda\n__version__ = "0.5.3"\n')
    (package / "cuda/__init__.py").write_text(FAKE_CUDA_INIT)
    (package / "cuda/_backend.py").write_text(FAKE_BACKEND)
    if prebuilt:
        (package / "csrc.py").write_text("def traverse_grids(*args):\n    return 'traversed'\n")


def write_tool(bin_dir: Path, name: str) -> None:
    tool = bin_dir / name
    tool.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 12.4, V12.4.131'\n")
    tool.chmod(0o755)


def forget_nerfacc() -> None:
    """What a new process starts with: no nerfacc modules, no probe results."""
    for name in [name for name in sys.modules if name == "nerfacc" or name.startswith("nerfacc.")]:
        del sys.modules[name]
    package_status.cache_clear()
    load_nerfacc_kernels.cache_clear()


@pytest.fixture
def machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_fused_kernel: None) -> Iterator[Path]:
    """An empty PATH folder, torch's extension cache and the build log under tmp_path, and no nerfacc yet; tests add
    the fake package and tools they need. Returns tmp_path. (kit-doctor also builds the fused CPU hash kernel, which
    fails on this PATH: `fresh_fused_kernel` keeps that failure from staying cached for later tests.)"""
    for folder in ("site", "bin", "torch_extensions"):
        (tmp_path / folder).mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "torch_extensions"))
    monkeypatch.setenv("FAKE_NERFACC_EVENTS", str(tmp_path / "events.txt"))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    forget_nerfacc()
    yield tmp_path
    forget_nerfacc()


@pytest.fixture
def cuda_claimed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def events(machine: Path) -> list[str]:
    log = machine / "events.txt"
    return log.read_text().splitlines() if log.exists() else []


def jit_nerfacc(machine: Path, *tools: str) -> Path:
    """The PyPI nerfacc, which builds its kernels on first use, on a machine with `tools` on PATH."""
    write_fake_nerfacc(machine / "site")
    for tool in tools:
        write_tool(machine / "bin", tool)
    return machine


def console_output() -> tuple[Console, io.StringIO]:
    text = io.StringIO()
    return Console(file=text, width=200), text


@pytest.mark.usefixtures("cuda_claimed")
def test_a_prebuilt_wheel_needs_no_nvcc(machine: Path) -> None:
    write_fake_nerfacc(machine / "site", prebuilt=True)
    assert package_status("nerfacc").usable
    assert load_nerfacc_kernels().source == "prebuilt"
    assert resolve_backends(KernelsConfig(), CUDA) == NERFACC_OPERATIONS
    assert events(machine) == []


@pytest.mark.usefixtures("cuda_claimed")
def test_nvcc_on_path_is_no_proof_a_failed_build_makes_nerfacc_unusable_with_the_reason(machine: Path) -> None:
    jit_nerfacc(machine, "nvcc")
    status = package_status("nerfacc")
    assert not status.usable and status.installed
    assert "building its kernels failed" in status.reason and "Ninja is required" in status.reason
    assert events(machine) == ["0 build started"]


@pytest.mark.usefixtures("cuda_claimed")
def test_without_nvcc_nerfacc_disables_itself_and_that_is_the_reason(machine: Path) -> None:
    jit_nerfacc(machine, "ninja")
    status = package_status("nerfacc")
    assert not status.usable and "no nvcc" in status.reason


@pytest.mark.usefixtures("cuda_claimed")
def test_auto_falls_back_to_torch_when_the_build_fails(machine: Path) -> None:
    jit_nerfacc(machine, "nvcc")
    assert resolve_backends(KernelsConfig(), CUDA) == Backends()


@pytest.mark.usefixtures("cuda_claimed")
def test_forcing_cuda_kernels_when_the_build_fails_gives_the_reason_and_what_to_install(machine: Path) -> None:
    jit_nerfacc(machine, "nvcc")
    with pytest.raises(NerfkitError, match="Ninja is required") as raised:
        resolve_backends(KernelsConfig(volume_rendering="cuda-kernels"), CUDA)
    assert "--machine.kernels.volume-rendering cuda-kernels" in raised.value.message
    hint = raised.value.hint or ""
    assert "ninja" in hint and "nvcc" in hint and "torch" in hint


@pytest.mark.usefixtures("cuda_claimed")
def test_a_failed_build_is_tried_once_per_process_not_at_every_kernel_call(machine: Path) -> None:
    jit_nerfacc(machine, "nvcc")
    assert not package_status("nerfacc").usable
    package_status.cache_clear()  # even a fresh probe reuses the one load
    for _ in range(3):
        with pytest.raises(NerfkitError, match="Ninja is required"):
            import_nerfacc()
    assert events(machine) == ["0 build started"]


def test_without_cuda_nothing_is_built_or_loaded(machine: Path) -> None:
    jit_nerfacc(machine, "nvcc", "ninja")
    status = package_status("nerfacc")
    assert not status.usable and "no CUDA device" in status.reason
    assert kernel_source() == "build"
    assert events(machine) == [] and "nerfacc.cuda._backend" not in sys.modules


@pytest.mark.usefixtures("cuda_claimed")
def test_the_build_happens_before_training_announced_and_later_runs_load_the_cached_build(machine: Path) -> None:
    jit_nerfacc(machine, "nvcc", "ninja")
    console, text = console_output()
    assert prepare_backends(KernelsConfig(), CUDA, console) == NERFACC_OPERATIONS
    assert events(machine) == ["0 build started", "0 built"]  # before any kernel call
    lines = text.getvalue().splitlines()
    assert lines[0] == BUILDING_MESSAGE
    assert lines[1].startswith("nerfacc: kernels built in ")

    forget_nerfacc()  # the next run's process
    console, text = console_output()
    assert prepare_backends(KernelsConfig(), CUDA, console) == NERFACC_OPERATIONS
    assert events(machine)[2:] == ["0 loaded"]
    assert "nerfacc: kernels loaded (cached build)" in text.getvalue()
    assert BUILDING_MESSAGE not in text.getvalue()


@pytest.mark.usefixtures("cuda_claimed")
def test_under_auto_a_failed_build_is_one_line_and_torch(machine: Path) -> None:
    jit_nerfacc(machine, "nvcc")
    console, text = console_output()
    assert prepare_backends(KernelsConfig(), CUDA, console) == Backends()
    fallback = [line for line in text.getvalue().splitlines() if line.startswith("nerfacc: building its kernels")]
    assert len(fallback) == 1
    assert "Ninja is required" in fallback[0] and fallback[0].endswith("occupancy-grid and volume-rendering use torch")
    assert BUILDING_MESSAGE in text.getvalue()
    console, text = console_output()  # the same process again (kit-eval after training, say): no second attempt
    assert prepare_backends(KernelsConfig(), CUDA, console) == Backends()
    assert BUILDING_MESSAGE not in text.getvalue() and events(machine) == ["0 build started"]


@pytest.mark.usefixtures("cuda_claimed")
def test_nerfacc_is_not_loaded_when_its_operations_are_set_to_torch(machine: Path) -> None:
    jit_nerfacc(machine, "nvcc", "ninja")
    config = KernelsConfig(occupancy_grid="torch", volume_rendering="torch")
    assert prepare_backends(config, CUDA, console_output()[0]) == Backends()
    assert events(machine) == []


RANK_SCRIPT = """
import sys

import torch
import torch.distributed as dist
from rich.console import Console

from nerfkit.engine.kernel_loading import prepare_backends
from nerfkit.kernels.backends import KernelsConfig

rank, world_size, device_index, init_method = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.cuda.is_available = lambda: True
dist.init_process_group("gloo", init_method=init_method, rank=rank, world_size=world_size)
backends = prepare_backends(KernelsConfig(), torch.device("cuda", device_index), Console(width=300))
print("backends:", backends.describe())
dist.destroy_process_group()
"""
DEVICE_OF_RANK = (0, 1, 0)
"""Rank 1 is the second GPU of the first machine, rank 2 the first GPU of a second machine (sharing the cache)."""


def run_ranks(machine: Path) -> list[str]:
    """Runs RANK_SCRIPT as a 3-rank gloo process group with a slow fake build; returns each rank's output."""
    script = machine / "rank.py"
    script.write_text(RANK_SCRIPT)
    init_method = f"file://{machine / 'rendezvous'}"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(machine / "site"), str(REPO)])}
    environment["FAKE_NERFACC_BUILD_SECONDS"] = "1"
    world_size = len(DEVICE_OF_RANK)
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(rank), str(world_size), str(device), init_method],
            env={**environment, "FAKE_NERFACC_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank, device in enumerate(DEVICE_OF_RANK)
    ]
    outputs = [process.communicate(timeout=180)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    return outputs


@pytest.mark.parametrize("ninja", [True, False], ids=["build-succeeds", "build-fails"])
def test_in_a_distributed_run_rank_0_builds_while_the_others_wait(machine: Path, ninja: bool) -> None:
    jit_nerfacc(machine, *(("nvcc", "ninja") if ninja else ("nvcc",)))
    outputs = run_ranks(machine)
    if ninja:
        # One build; the second machine's first rank loads next, then the rest; none loads before the build is done.
        assert events(machine) == ["0 build started", "0 built", "2 loaded", "1 loaded"]
        assert BUILDING_MESSAGE in outputs[0]
        assert all("occupancy-grid: cuda-kernels, volume-rendering: cuda-kernels" in output for output in outputs)
    else:
        # Rank 0's failure stops the others from trying, and every rank falls back alike.
        assert events(machine) == ["0 build started"]
        assert all("occupancy-grid: torch, volume-rendering: torch" in output for output in outputs)
        assert "Ninja is required" in outputs[0] and "another rank" in outputs[1]


def test_install_hints_that_work() -> None:
    assert "pip install --no-build-isolation git+https://github.com/NVlabs/tiny-cuda-nn/" in INSTALL_HINTS["tinycudann"]
    assert 'pip install "nerfkit[cuda]"' in INSTALL_HINTS["nerfacc"] and "ninja" in INSTALL_HINTS["nerfacc"]
    extra = re.search(r"^cuda = \[(.*)\]$", (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert extra is not None and '"ninja"' in extra.group(1) and '"nerfacc' in extra.group(1)


def run_doctor(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setenv("COLUMNS", "250")  # no wrapping inside the table's cells
    assert doctor.main([]) == 0
    return capsys.readouterr().out.splitlines()


def row(lines: list[str], check: str) -> str:
    return next(line for line in lines if line.startswith(f"│ {check} "))


@pytest.mark.usefixtures("machine")
def test_doctor_says_not_installed_for_an_absent_package(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = run_doctor(capsys, monkeypatch)
    for label in ("nerfacc", "tiny-cuda-nn"):
        assert "not installed" in row(lines, label) and "unusable" not in row(lines, label)
    for operation, label in [("occupancy-grid", "nerfacc"), ("hash-encoding", "tiny-cuda-nn")]:
        assert f"{label} is not installed" in row(lines, operation)
    assert not any(line.startswith("│ nerfacc kernels") for line in lines)


@pytest.mark.parametrize(
    ("prebuilt", "cuda", "source", "details"),
    [
        (True, True, "prebuilt", "kernels loaded (prebuilt wheel)"),
        (False, False, "needs a build", "needs ninja (missing) and nvcc (found)"),
    ],
)
def test_doctor_shows_where_nerfacc_kernels_come_from(
    machine: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    prebuilt: bool,
    cuda: bool,
    source: str,
    details: str,
) -> None:
    write_fake_nerfacc(machine / "site", prebuilt=prebuilt)
    write_tool(machine / "bin", "nvcc")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    kernels = row(run_doctor(capsys, monkeypatch), "nerfacc kernels")
    assert source in kernels and details in kernels
    assert events(machine) == []


@pytest.mark.usefixtures("cuda_claimed")
def test_doctor_loads_nerfacc_kernels_as_training_does(
    machine: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    jit_nerfacc(machine, "nvcc", "ninja")
    lines = run_doctor(capsys, monkeypatch)
    assert BUILDING_MESSAGE in lines
    assert "usable" in row(lines, "nerfacc") and "built in" in row(lines, "nerfacc kernels")
    forget_nerfacc()
    assert "cached" in row(run_doctor(capsys, monkeypatch), "nerfacc kernels")


@pytest.mark.usefixtures("cuda_claimed")
def test_doctor_says_unusable_with_the_reason_and_how_to_repair(
    machine: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    jit_nerfacc(machine, "nvcc")
    lines = run_doctor(capsys, monkeypatch)
    assert "unusable" in row(lines, "nerfacc") and "Ninja is required" in row(lines, "nerfacc")
    assert any(line.startswith("nerfacc: install ninja") for line in lines)
