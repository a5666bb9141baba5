"""How each parameter group is optimised: the optimizer and learning-rate schedule configs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Literal

import tyro

from nerfkit.configs.base_config import PrintableConfig, Target, target_class
from nerfkit.configs.config_types import register_config_type
from nerfkit.configs.ranges import Count, NonNegative, NonNegativeInt, Positive, ranged

if TYPE_CHECKING:
    from torch import nn
    from torch.optim import Optimizer, lr_scheduler


@dataclass
class SchedulerConfig(PrintableConfig):
    """Base scheduler config; `setup(optimizer)` builds the torch scheduler."""

    _target: Target = "nerfkit.engine.schedulers:ExponentialDecayScheduler"

    def setup(self, optimizer: Optimizer) -> lr_scheduler.LRScheduler:
        return target_class(self._target)(self, optimizer)


@register_config_type("exponential-decay")
@dataclass
class ExponentialDecaySchedulerConfig(SchedulerConfig):
    """Optional linear warm-up, then exponential decay from the optimizer's lr to `lr_final` over `max_steps`."""

    _target: Target = "nerfkit.engine.schedulers:ExponentialDecayScheduler"
    lr_pre_warmup: NonNegative = 1e-8
    """Learning rate at the first warm-up step."""
    lr_final: ranged(float | None, above=0) = None
    """Learning rate reached at `max_steps` (None: the optimizer's lr, i.e. no decay)."""
    warmup_steps: NonNegativeInt = 0
    """Steps of warm-up."""
    max_steps: Count = 100000
    """Step at which `lr_final` is reached; the rate stays there afterwards."""
    ramp: Literal["linear", "cosine"] = "cosine"
    """Shape of the warm-up."""


@dataclass
class OptimizerConfig(PrintableConfig):
    """Base optimizer config; `setup(params)` builds the torch optimizer."""

    _target: Target = "torch.optim:Adam"
    lr: Positive = 5e-4
    """Learning rate."""
    eps: NonNegative = 1e-8
    """Term added to the denominator for numerical stability."""
    max_norm: ranged(float | None, above=0) = None
    """Clip the group's gradient norm to this value (None: no clipping)."""

    def setup(self, params: list[nn.Parameter]) -> Optimizer:
        kwargs = {name: value for name, value in vars(self).items() if not name.startswith("_") and name != "max_norm"}
        return target_class(self._target)(params, **kwargs)


@register_config_type("adam")
@dataclass
class AdamOptimizerConfig(OptimizerConfig):
    """Adam."""

    _target: Target = "torch.optim:Adam"
    weight_decay: NonNegative = 0.0
    """L2 penalty."""
    fused: bool = True
    """One fused pass over all parameters (on a CPU ~10x faster on hash grids); off: torch's per-tensor loop."""


@register_config_type("radam")
@dataclass
class RAdamOptimizerConfig(OptimizerConfig):
    """Rectified Adam, which needs no learning-rate warm-up."""

    _target: Target = "torch.optim:RAdam"
    weight_decay: NonNegative = 0.0
    """L2 penalty."""


@dataclass
class ParamGroupConfig(PrintableConfig):
    """How one parameter group is optimised."""

    optimizer: OptimizerConfig = field(default_factory=AdamOptimizerConfig)
    """Optimizer for the group."""
    scheduler: Annotated[SchedulerConfig | None, tyro.conf.AvoidSubcommands] = None
    """Learning-rate schedule for the group (None: constant)."""
