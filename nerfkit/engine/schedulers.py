"""Learning-rate schedules, configured per parameter group."""

from __future__ import annotations

import numpy as np
from torch.optim import Optimizer, lr_scheduler

from nerfkit.configs.optimizers import ExponentialDecaySchedulerConfig


def exponential_decay_factor(step: int, config: ExponentialDecaySchedulerConfig, base_lr: float) -> float:
    """Multiplier of the base rate at `step`; a pure function of the step, so a resumed run gets the same rates."""
    lr_final = base_lr if config.lr_final is None else config.lr_final
    if step < config.warmup_steps:
        progress = step / config.warmup_steps
        if config.ramp == "cosine":
            progress = 0.5 - 0.5 * np.cos(np.pi * progress)
        return (config.lr_pre_warmup + (base_lr - config.lr_pre_warmup) * progress) / base_lr
    decay_steps = max(config.max_steps - config.warmup_steps, 1)
    t = np.clip((step - config.warmup_steps) / decay_steps, 0.0, 1.0)
    return float(np.exp(np.log(base_lr) * (1 - t) + np.log(lr_final) * t)) / base_lr


class ExponentialDecayScheduler(lr_scheduler.LambdaLR):
    """LambdaLR over `exponential_decay_factor`.

    The factor is a closure, not an attribute, so the scheduler's state dict stays plain values (checkpoints load
    with weights_only=True).
    """

    def __init__(self, config: ExponentialDecaySchedulerConfig, optimizer: Optimizer) -> None:
        base_lr = optimizer.param_groups[0]["lr"]

        def factor(step: int) -> float:
            return exponential_decay_factor(step, config, base_lr)

        super().__init__(optimizer, lr_lambda=factor)
