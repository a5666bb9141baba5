"""Mixed precision: the grad scaler steps only the optimizers whose parameters got gradients (nerfacto's proposal
networks get none on some steps). torch's GradScaler runs on the CPU too, so this needs no GPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nerfkit.engine.optimizers import AdamOptimizerConfig, Optimizers, ParamGroupConfig


@pytest.mark.parametrize("max_norm", [None, 1.0])
def test_an_optimizer_without_gradients_is_skipped_under_a_grad_scaler(max_norm: float | None) -> None:
    used, unused = nn.Linear(3, 1), nn.Linear(3, 1)
    config = ParamGroupConfig(optimizer=AdamOptimizerConfig(lr=0.1, max_norm=max_norm))
    optimizers = Optimizers(
        {"fields": config, "proposal_networks": config},
        {"fields": list(used.parameters()), "proposal_networks": list(unused.parameters())},
    )
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    before_used = [p.detach().clone() for p in used.parameters()]
    before_unused = [p.detach().clone() for p in unused.parameters()]
    for _ in range(3):
        optimizers.zero_grad_all()
        scaler.scale(used(torch.ones(4, 3)).square().mean()).backward()
        optimizers.optimizer_step_all(scaler)  # raised "No inf checks were recorded for this optimizer" before
        scaler.update()
    assert all(not torch.equal(a, b) for a, b in zip(before_used, used.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(before_unused, unused.parameters(), strict=True))
    assert optimizers.optimizers["proposal_networks"].state == {}
