"""The per-parameter-group optimizers a trainer steps."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nerfkit.configs.optimizers import ParamGroupConfig
from nerfkit.errors import NerfkitError


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
