"""Distributed training: one process per device, started by kit-train itself or by torchrun, in one process group.

kit-train spawns `num_devices` processes on each machine (global rank = machine_rank * num_devices + local_rank);
under torchrun (RANK, LOCAL_RANK and WORLD_SIZE set) each process already is a rank. A world of one process makes no
process group at all, so single-process training is exactly what it was.
"""

from __future__ import annotations

import inspect
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from rich.console import Console
from torch import nn
from torch.multiprocessing.spawn import ProcessException, ProcessExitedException
from torch.nn.parallel import DistributedDataParallel as DDP

from nerfkit.configs.base_config import MachineConfig
from nerfkit.engine.checkpoints import list_checkpoints
from nerfkit.errors import NerfkitError

TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 128 + signal.SIGINT
SHUTDOWN_GRACE_SECONDS = 5.0
"""After one rank fails, how long the others get to stop by themselves before they are terminated, then killed."""


@dataclass(frozen=True)
class Rank:
    """Where this process sits in the run."""

    rank: int = 0
    """Global rank: 0 writes every output."""
    local_rank: int = 0
    """Index on this machine, which picks the GPU."""
    world_size: int = 1
    """Processes in the whole run."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


class RankError(NerfkitError):
    """A rank's error and when it happened: when several ranks fail, the first caused the others (lost peers)."""

    def __init__(self, message: str, hint: str | None, failed_at: float) -> None:
        super().__init__(message, hint)
        self.failed_at = failed_at


SINGLE_PROCESS = Rank()
"""The rank of a run that is not distributed."""

Worker = Callable[..., int]
"""worker(rank, *args) -> exit code: what every process of the run executes, once its process group is up."""


def torchrun_rank() -> Rank | None:
    """This process's rank when torchrun (or any launcher setting its variables) started it; None otherwise."""
    if not all(name in os.environ for name in TORCHRUN_VARIABLES):
        return None
    return Rank(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]))


def check_machine(machine: MachineConfig, device: torch.device) -> None:
    """Settings that cannot work together, caught before any process starts (each one's range is checked at
    parse time)."""
    if not 0 <= machine.machine_rank < machine.num_machines:
        raise NerfkitError(
            f"--machine.machine-rank {machine.machine_rank} is outside 0..{machine.num_machines - 1}",
            hint="number the machines 0 to --machine.num-machines - 1; machine 0 writes the outputs",
        )
    if machine.num_machines > 1 and machine.dist_url == "auto":
        raise NerfkitError(
            f"--machine.num-machines {machine.num_machines} needs the address of machine 0",
            hint="pass --machine.dist-url tcp://HOST:PORT (machine 0's address and a free port) on every machine",
        )
    if device.type == "cuda" and machine.num_devices > torch.cuda.device_count():
        raise NerfkitError(
            f"--machine.num-devices {machine.num_devices}, but torch sees {torch.cuda.device_count()} CUDA devices",
            hint="use at most one process per GPU (CUDA_VISIBLE_DEVICES limits which GPUs torch sees)",
        )
    if backend_for(machine, device) == "nccl" and device.type != "cuda":
        raise NerfkitError(
            "--machine.dist-backend nccl needs CUDA devices", hint="use --machine.dist-backend gloo on the CPU"
        )


def backend_for(machine: MachineConfig, device: torch.device) -> str:
    if machine.dist_backend != "auto":
        return machine.dist_backend
    return "nccl" if device.type == "cuda" else "gloo"


def free_local_url() -> str:
    """A rendezvous address on this machine: port 0 lets the OS choose a free port, which the ranks then bind."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def start_process_group(rank: Rank, machine: MachineConfig, device: torch.device, init_method: str) -> None:
    """Joins the run's process group; every collective after this waits at most --machine.dist-timeout."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(
        backend_for(machine, device),
        init_method=init_method,
        rank=rank.rank,
        world_size=rank.world_size,
        timeout=timedelta(seconds=machine.dist_timeout),
    )


def end_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether `flag` is set on any rank, so that all ranks take the same branch (e.g. stopping on a signal)."""
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def broadcast_from_rank_zero(tensor: torch.Tensor) -> None:
    """Overwrites `tensor` with rank 0's values on every rank; nothing to do outside a distributed run."""
    if dist.is_available() and dist.is_initialized():
        dist.broadcast(tensor, src=0)


def mean_over_ranks(values: list[float], device: torch.device) -> list[float]:
    """Each value averaged over ranks (gloo has no average: a sum, divided)."""
    total = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return (total / dist.get_world_size()).tolist()


def gather_objects(value: Any) -> list[Any]:
    """Every rank's `value`, in rank order, on every rank."""
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


def data_parallel(module: nn.Module, device: torch.device, trained: dict[str, list[nn.Parameter]]) -> DDP:
    """`module` behind DistributedDataParallel, which averages gradients over ranks during backward.

    Every optimised parameter must belong to `module`, or its gradient would never be averaged and ranks would drift
    apart. Buffers are not broadcast on each forward: state a model updates itself (an occupancy grid) synchronises
    where it changes, which costs nothing on the many steps where it does not. Unused parameters are allowed, since
    some steps leave some unused (an empty occupancy grid, a disabled pose refinement).
    """
    owned = {id(parameter) for parameter in module.parameters()}
    outside = sorted(name for name, parameters in trained.items() if any(id(p) not in owned for p in parameters))
    if outside:
        raise NerfkitError(
            f"parameter groups {outside} hold parameters outside the pipeline's modules, "
            "so distributed training could not average their gradients",
            hint="register them as submodules of the model or the pipeline",
        )
    device_ids = [device.index] if device.type == "cuda" else None
    # torch 2.13 renamed the switch (and warns about the old name); its new form also syncs buffers once at the start,
    # which only confirms that every rank begins from rank 0's state.
    no_buffer_sync = (
        {"forward_sync_buffers": False}
        if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters
        else {"broadcast_buffers": False}
    )
    return DDP(module, device_ids=device_ids, find_unused_parameters=True, **no_buffer_sync)


def launch(
    worker: Worker, machine: MachineConfig, device: torch.device, *args: Any, checkpoint_dir: Path, debug: bool
) -> int:
    """Runs worker(rank, *args) in each process of this machine (this one alone for a world of one); returns the exit
    code. A failed rank ends the whole run with a NerfkitError that names it (with `debug`, its traceback too). Under
    torchrun this process is a rank, and it ends here with the worker's exit code."""
    torchrun = torchrun_rank()
    if torchrun is not None:
        _end_rank_process(_run_rank(worker, torchrun, machine, _rank_device(device, torchrun), "env://", debug, args))
    if machine.num_devices * machine.num_machines == 1:
        return worker(SINGLE_PROCESS, *args)
    check_machine(machine, device)
    url = free_local_url() if machine.dist_url == "auto" else machine.dist_url
    spawn = mp.get_context("spawn")
    # torch's spawn wrapper turns a KeyboardInterrupt (a second Ctrl-C) into exit status 0: a rank that never stores
    # its code was interrupted.
    exit_codes = spawn.Array("i", [EXIT_INTERRUPTED] * machine.num_devices)
    user_errors = spawn.SimpleQueue()
    context = mp.start_processes(
        _spawned_rank,
        args=(worker, machine, device, url, exit_codes, user_errors, debug, args),
        nprocs=machine.num_devices,
        join=False,
        start_method="spawn",
    )
    try:
        with _signals_passed_to_ranks(context.processes):
            while not context.join(grace_period=SHUTDOWN_GRACE_SECONDS):
                pass
    except ProcessException as failure:
        raise _rank_failure(failure, context.processes, machine, user_errors, checkpoint_dir) from None
    return max(exit_codes[:])


@contextmanager
def _signals_passed_to_ranks(processes: list[BaseProcess]) -> Iterator[None]:
    """While kit-train waits for its ranks: Ctrl-C reaches every rank from the terminal, and a SIGTERM sent to
    kit-train alone is passed on, so the ranks stop together at the end of a step and save, and kit-train waits."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def pass_on(signal_number: int, frame: FrameType | None) -> None:
        if signal_number == signal.SIGTERM:
            for process in processes:
                if process.is_alive() and process.pid is not None:
                    os.kill(process.pid, signal.SIGTERM)

    previous = {number: signal.signal(number, pass_on) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _rank_device(device: torch.device, rank: Rank) -> torch.device:
    """Each rank's own GPU (its local rank), or the CPU."""
    return torch.device("cuda", rank.local_rank) if device.type == "cuda" else device


def _run_rank(
    worker: Worker, rank: Rank, machine: MachineConfig, device: torch.device, init_method: str, debug: bool, args: tuple
) -> int:
    """One rank's whole life: joins the group, works, leaves. Any error becomes one line naming the rank (unless
    debugging), since with several ranks a wall of tracebacks hides which rank failed first."""
    try:
        start_process_group(rank, machine, device, init_method)
        return worker(rank, *args)
    except NerfkitError as error:
        raise RankError(f"rank {rank.rank}: {error.message}", error.hint, time.time()) from None
    except Exception as error:
        if debug:
            raise
        raise RankError(
            f"rank {rank.rank} failed: {type(error).__name__}: {error}",
            "rerun with --debug for the traceback",
            time.time(),
        ) from None
    finally:
        end_process_group()


def _spawned_rank(
    local_rank: int,
    worker: Worker,
    machine: MachineConfig,
    device: torch.device,
    url: str,
    exit_codes: Any,
    user_errors: Any,
    debug: bool,
    args: tuple,
) -> None:
    """Entry point of a process kit-train spawned: its error goes back to the parent, which prints it once."""
    world_size = machine.num_devices * machine.num_machines
    rank = Rank(machine.machine_rank * machine.num_devices + local_rank, local_rank, world_size)
    if device.type == "cpu":
        # The CPU's cores are shared among this machine's ranks (as torchrun does with OMP_NUM_THREADS=1), instead of
        # each rank running torch's default of one thread per core; --machine.num-threads still overrides.
        torch.set_num_threads(max(1, torch.get_num_threads() // machine.num_devices))
    try:
        exit_codes[local_rank] = _run_rank(worker, rank, machine, _rank_device(device, rank), url, debug, args)
    except RankError as error:
        user_errors.put((local_rank, error.failed_at, error.message, error.hint))
        _end_rank_process(EXIT_USER_ERROR)
    _end_rank_process(0)


def _end_rank_process(exit_code: int) -> NoReturn:
    """Ends a rank's process once its work is done and written, skipping the interpreter's teardown.

    gloo's worker threads outlive destroy_process_group while DistributedDataParallel still holds the group, and one
    may still be releasing the last collective's tensors, which takes the interpreter's lock: during teardown that
    aborts the process (SIGABRT, "terminate called without an active exception"), so a run that succeeded would be
    reported as a killed rank (measured: 3 runs in 40 of two ranks). Whatever the rank wrote is closed by now; only
    the standard streams need flushing."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)


def _rank_failure(
    failure: ProcessException,
    processes: list[BaseProcess],
    machine: MachineConfig,
    user_errors: Any,
    checkpoint_dir: Path,
) -> NerfkitError:
    """What the user reads when a rank fails: which rank, how, and where the run's last checkpoint is.

    The cause is a rank killed by a signal (other than the SIGTERM that stops the survivors), else the rank that
    reported an error first: the others' errors (a lost peer) follow from it, and may reach kit-train sooner."""
    reported: dict[int, RankError] = {}
    while not user_errors.empty():
        local_rank, failed_at, message, hint = user_errors.get()
        reported[local_rank] = RankError(message, hint, failed_at)
    killed = [
        index
        for index, process in enumerate(processes)
        if index not in reported and (process.exitcode or 0) < 0 and -(process.exitcode or 0) != signal.SIGTERM
    ]
    if not killed and reported:
        return min(reported.values(), key=lambda error: error.failed_at)
    index = failure.error_index if failure.error_index in killed or not killed else killed[0]
    rank = machine.machine_rank * machine.num_devices + index
    process = processes[index]
    if killed:
        what = f"rank {rank} (pid {process.pid}) was killed by signal {signal.Signals(-process.exitcode).name}"
    elif isinstance(failure, ProcessExitedException):
        what = f"rank {rank} (pid {failure.error_pid}) exited with code {failure.exit_code}"
    else:
        Console(stderr=True, highlight=False).print(str(failure), markup=False)
        last_line = str(failure).strip().splitlines()[-1]
        what = f"rank {rank} (pid {failure.error_pid}) raised {last_line} (its traceback is above)"
    checkpoints = list_checkpoints(checkpoint_dir)
    saved = f"the last checkpoint is {checkpoints[max(checkpoints)]}" if checkpoints else "no checkpoint was saved"
    return NerfkitError(
        f"{what}; the other ranks were stopped and {saved}",
        hint=f"continue with --load-dir {checkpoint_dir}" if checkpoints else None,
    )
