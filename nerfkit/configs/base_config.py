"""Config base classes: every component's config is a dataclass that is also its own factory."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass
from typing import Annotated, Any, Literal

import tyro

from nerfkit.configs.ranges import Count, NonNegativeInt, Positive, ranged


def _format_value(value: Any, indent: str) -> str:
    if is_dataclass(value):
        return type(value).__name__ + "\n" + value.__str__(indent + "  ")
    if isinstance(value, dict) and any(is_dataclass(v) or isinstance(v, dict) for v in value.values()):
        lines = [f"{indent}  {key}: {_format_value(item, indent + '  ')}" for key, item in value.items()]
        return "\n" + "\n".join(lines)
    return repr(value)


@dataclass
class PrintableConfig:
    """A config that prints as an indented tree, the form shown at start-up."""

    def __str__(self, indent: str = "") -> str:
        lines = [
            f"{indent}  {f.name}: {_format_value(getattr(self, f.name), indent)}"
            for f in fields(self)
            if not f.name.startswith("_")
        ]
        return "\n".join(lines)


Target = Annotated[type, tyro.conf.Suppress]
"""The type of `_target` fields: hidden from the command line, since it is code, not a setting."""


@dataclass
class InstantiateConfig(PrintableConfig):
    """A config that builds the object it describes: `config.setup(**runtime_values)`."""

    _target: Target = field(default_factory=lambda: object)
    """The class that `setup()` builds; each subclass sets its own."""

    def setup(self, **kwargs: Any) -> Any:
        return self._target(self, **kwargs)


BackendChoice = Literal["auto", "cuda-kernels", "torch"]


@dataclass
class KernelsConfig(PrintableConfig):
    """Backend of each accelerated operation: auto uses the CUDA kernels when installed and training on CUDA."""

    occupancy_grid: BackendChoice = "auto"
    """Occupancy-grid ray marching: nerfacc's OccGridEstimator or PyTorch."""
    volume_rendering: BackendChoice = "auto"
    """Packed volume rendering: nerfacc's volrend or PyTorch segment operations."""
    hash_encoding: BackendChoice = "auto"
    """Multiresolution hash encoding: tiny-cuda-nn's Encoding or PyTorch (with a fused CPU path)."""
    sh_encoding: BackendChoice = "auto"
    """Spherical-harmonics direction encoding: tiny-cuda-nn's Encoding or PyTorch."""
    mlp: BackendChoice = "auto"
    """Small MLPs: tiny-cuda-nn's FullyFusedMLP or torch.nn."""


@dataclass
class MachineConfig(PrintableConfig):
    """Where and how reproducibly the run executes."""

    seed: ranged(int, min=0, max=2**32 - 1) = 42
    """Random seed; each rank adds its rank, so runs are reproducible and ranks differ."""
    device_type: Literal["auto", "cpu", "cuda"] = "auto"
    """auto picks CUDA when present and the CPU otherwise."""
    num_threads: ranged(int | None, min=1) = None
    """CPU threads for torch (None: torch's default)."""
    keep_freed_memory: bool = True
    """On a CPU with glibc, reuse freed memory instead of returning it to the OS: faster steps, higher peak memory."""
    kernels: KernelsConfig = field(default_factory=KernelsConfig)
    """Backend of each accelerated operation (CUDA kernels or PyTorch)."""
    num_devices: Count = 1
    """Processes this machine runs (one per GPU, or CPU processes); above one, training is distributed (DDP)."""
    num_machines: Count = 1
    """Machines taking part in the run, each launched with the same flags and its own --machine.machine-rank."""
    machine_rank: NonNegativeInt = 0
    """This machine's index, 0 to num-machines - 1; machine 0 writes the outputs."""
    dist_url: str = "auto"
    """Rendezvous of the process group, tcp://HOST:PORT of machine 0 (auto: a free local port; one machine only)."""
    dist_backend: Literal["auto", "nccl", "gloo"] = "auto"
    """Collective backend (auto: nccl on CUDA, gloo on the CPU)."""
    dist_timeout: Positive = 1800.0
    """Seconds any collective may wait for the other ranks before the run stops with an error."""


@dataclass
class LoggingConfig(PrintableConfig):
    """What is logged and how often."""

    steps_per_log: Count = 10
    """Log scalars every this many steps."""
    max_buffer_size: Count = 20
    """Steps averaged for the train rays/s and step-time figures."""
    wandb_project: str = "nerfkit"
    """wandb project."""
    wandb_entity: str | None = None
    """wandb entity (user or team); None uses the account default."""
    wandb_name: str | None = None
    """wandb run name; None uses experiment-name/method-name/timestamp."""
    wandb_tags: tuple[str, ...] = ()
    """wandb run tags."""
