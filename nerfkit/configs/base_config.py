"""Config base classes: every component's config is a dataclass that is also its own factory."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Annotated, Any, Literal

import tyro

from nerfkit.configs.ranges import Count, NonNegativeInt, Positive, ranged
from nerfkit.kernels.backends import KernelsConfig


def _format_fields(config: Any, indent: str) -> str:
    lines = [
        f"{indent}  {f.name}: {_format_value(getattr(config, f.name), indent)}"
        for f in fields(config)
        if not f.name.startswith("_")
    ]
    return "\n".join(lines)


def _format_value(value: Any, indent: str) -> str:
    if is_dataclass(value):
        return type(value).__name__ + "\n" + _format_fields(value, indent + "  ")
    if isinstance(value, dict) and any(is_dataclass(v) or isinstance(v, dict) for v in value.values()):
        lines = [f"{indent}  {key}: {_format_value(item, indent + '  ')}" for key, item in value.items()]
        return "\n" + "\n".join(lines)
    return repr(value)


@dataclass
class PrintableConfig:
    """A config that prints as an indented tree, the form shown at start-up."""

    def __str__(self) -> str:
        return _format_fields(self, "")


Target = Annotated[type | str, tyro.conf.Suppress]
"""The type of `_target` fields: a class, or "module:Class" for one imported only when it is built, which keeps the
config tree free of torch (help screens and argument errors come without importing it). Hidden from the command
line, since it is code, not a setting."""


def target_class(target: type | str) -> type:
    """The class a `_target` names."""
    if isinstance(target, type):
        return target
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass
class InstantiateConfig(PrintableConfig):
    """A config that builds the object it describes: `config.setup(**runtime_values)`."""

    _target: Target = object
    """The class that `setup()` builds; each subclass sets its own."""

    def setup(self, **kwargs: Any) -> Any:
        return target_class(self._target)(self, **kwargs)


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
