"""Optimizer configs and the per-parameter-group optimizers a trainer steps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import torch
import tyro
from torch import nn

from nerfkit.configs.base_config import PrintableConfig, Target
from nerfkit.configs.config_types import register_config_type
from nerfkit.configs.ranges import NonNegative, Positive, ranged
from nerfkit.engine.schedulers import SchedulerConfig
from nerfkit.errors import NerfkitError


@dataclass
class OptimizerConfig(PrintableConfig):
    """Base optimizer config; `setup(params)` builds the torch optimizer."""

    _target: Target = field(default_factory=lambda: torch.optim.Adam)
    lr: Positive = 5e-4
    """Learning rate."""
    eps: NonNegative = 1e-8
    """Term added to the denominator for numerical stability."""
    max_norm: ranged(float | None, above=0) = None
    """Clip the group's gradient norm to this value (None: no clipping)."""

    def setup(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        kwargs = {name: value for name, value in vars(self).items() if not name.startswith("_") and name != "max_norm"}
        return self._target(params, **kwargs)


@register_config_type("adam")
@dataclass
class AdamOptimizerConfig(OptimizerConfig):
    """Adam."""

    _target: Target = field(default_factory=lambda: torch.optim.Adam)
    weight_decay: NonNegative = 0.0
    """L2 penalty."""
    fused: bool = True
    """One fused pass over all parameters (on a CPU ~10x faster on hash grids); off: torch's per-tensor loop."""


@register_config_type("radam")
@dataclass
class RAdamOptimizerConfig(OptimizerConfig):
    """Rectified Adam, which needs no learning-rate warm-up."""

    _target: Target = field(default_factory=lambda: torch.optim.RAdam)
    weight_decay: NonNegative = 0.0
    """L2 penalty."""


@dataclass
class ParamGroupConfig(PrintableConfig):
    """How one parameter group is optimised."""

    optimizer: OptimizerConfig = field(default_factory=AdamOptimizerConfig)
    """Optimizer for the group."""
    scheduler: Annotated[SchedulerConfig | None, tyro.conf.AvoidSubcommands] = None
    """Learning-rate schedule for the group (None: constant)."""


class Optimizers:
    """One optimizer and optional scheduler per parameter group, stepped together."""

    def __init__(self, config: dict[str, ParamGroupConfig], param_groups: dict[str, list[nn.Parameter]]) -> None:
        missing = sorted(set(param_groups) - set(config))
        if missing:
            raise NerfkitError(
                f"the model has parameter groups {missing} that the method's `optimizers` config does not cover",
                hint=f"add an entry for each to the method's optimizers (configured: {sorted(config)})",
            )
        self.config = config
        self.parameters = {name: params for name, params in param_groups.items() if params}
        self.optimizers = {name: config[name].optimizer.setup(params) for name, params in self.parameters.items()}
        self.schedulers = {
            name: config[name].scheduler.setup(optimizer)
            for name, optimizer in self.optimizers.items()
            if config[name].scheduler is not None
        }

    def zero_grad_all(self) -> None:
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)

    def optimizer_step_all(self, grad_scaler: torch.amp.GradScaler) -> None:
        """Unscales, clips where configured, then steps through the grad scaler every optimizer whose parameters
        received gradients this step.

        A group can get none on some steps (nerfacto's proposal networks, a chunk with no samples); the grad scaler
        refuses to step an optimizer it recorded no gradients for, and Adam would leave it unchanged anyway.
        """
        for name, optimizer in self.optimizers.items():
            if all(parameter.grad is None for parameter in self.parameters[name]):
                continue
            max_norm = self.config[name].optimizer.max_norm
            if max_norm is not None:
                grad_scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(self.parameters[name], max_norm)
            grad_scaler.step(optimizer)

    def scheduler_step_all(self) -> None:
        for scheduler in self.schedulers.values():
            scheduler.step()

    def learning_rates(self) -> dict[str, float]:
        return {name: optimizer.param_groups[0]["lr"] for name, optimizer in self.optimizers.items()}

    def state_dict(self) -> dict[str, Any]:
        return {
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "schedulers": {name: sched.state_dict() for name, sched in self.schedulers.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
        for name, scheduler in self.schedulers.items():
            scheduler.load_state_dict(state["schedulers"][name])
