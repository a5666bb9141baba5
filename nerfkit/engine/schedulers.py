"""Learning-rate schedules, configured per parameter group."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from torch.optim import Optimizer, lr_scheduler

from nerfkit.configs.base_config import PrintableConfig, Target
from nerfkit.configs.config_types import register_config_type


@dataclass
class SchedulerConfig(PrintableConfig):
    """Base scheduler config; `setup(optimizer)` builds the torch scheduler."""

    _target: Target = field(default_factory=lambda: ExponentialDecayScheduler)

    def setup(self, optimizer: Optimizer) -> lr_scheduler.LRScheduler:
        return self._target(self, optimizer)


@register_config_type("exponential-decay")
@dataclass
class ExponentialDecaySchedulerConfig(SchedulerConfig):
    """Optional linear warm-up, then exponential decay from the optimizer's lr to `lr_final` over `max_steps`."""

    _target: Target = field(default_factory=lambda: ExponentialDecayScheduler)
    lr_pre_warmup: float = 1e-8
    """Learning rate at the first warm-up step."""
    lr_final: float | None = None
    """Learning rate reached at `max_steps` (None: the optimizer's lr, i.e. no decay)."""
    warmup_steps: int = 0
    """Steps of warm-up."""
    max_steps: int = 100000
    """Step at which `lr_final` is reached; the rate stays there afterwards."""
    ramp: Literal["linear", "cosine"] = "cosine"
    """Shape of the warm-up."""


class ExponentialDecayScheduler(lr_scheduler.LambdaLR):
    """Keeps its factor a pure function of the step, so a resumed run gets exactly the same rates."""

    def __init__(self, config: ExponentialDecaySchedulerConfig, optimizer: Optimizer) -> None:
        self.config = config
        base_lr = optimizer.param_groups[0]["lr"]
        self.lr_final = base_lr if config.lr_final is None else config.lr_final
        self.base_lr = base_lr
        super().__init__(optimizer, lr_lambda=self.factor)

    def factor(self, step: int) -> float:
        config = self.config
        if step < config.warmup_steps:
            progress = step / config.warmup_steps
            if config.ramp == "cosine":
                progress = 0.5 - 0.5 * np.cos(np.pi * progress)
            return (config.lr_pre_warmup + (self.base_lr - config.lr_pre_warmup) * progress) / self.base_lr
        decay_steps = max(config.max_steps - config.warmup_steps, 1)
        t = np.clip((step - config.warmup_steps) / decay_steps, 0.0, 1.0)
        return float(np.exp(np.log(self.base_lr) * (1 - t) + np.log(self.lr_final) * t)) / self.base_lr
