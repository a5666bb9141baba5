"""Mixed precision: the grad scaler steps only the optimizers whose parameters got gradients (nerfacto's proposal
networks get none on some steps). torch's GradScaler runs on the CPU too, so this needs no GPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from nerfkit.configs.optimizers import AdamOptimizerConfig, ParamGroupConfig
from nerfkit.engine.optimizers import Optimizers


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


@pytest.mark.parametrize("scale", [None, 1024.0], ids=["plain", "grad-scaler"])
def test_fused_adam_follows_torchs_reference_adam(scale: float | None) -> None:
    """The fused kernel (the default) against torch's per-tensor loop, over several steps, with and without a
    gradient scaler (then one step's gradients overflow, and both must skip it)."""
    torch.manual_seed(0)
    reference = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 2))
    fused = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, 2))
    fused.load_state_dict(reference.state_dict())
    runs = []
    for model, use_fused in ((reference, False), (fused, True)):
        config = AdamOptimizerConfig(lr=1e-2, eps=1e-15, fused=use_fused)
        optimizers = Optimizers({"fields": ParamGroupConfig(optimizer=config)}, {"fields": list(model.parameters())})
        scaler = torch.amp.GradScaler("cpu", init_scale=scale or 1.0, enabled=scale is not None)
        runs.append((model, optimizers, scaler))
    inputs = torch.randn(6, 32, 3)
    for step, batch in enumerate(inputs):
        for model, optimizers, scaler in runs:
            optimizers.zero_grad_all()
            loss = model(batch).square().mean() * (float("inf") if step == 3 and scale else 1.0)
            scaler.scale(loss).backward()
            optimizers.optimizer_step_all(scaler)
            scaler.update()
    assert runs[1][1].optimizers["fields"].param_groups[0]["fused"]
    for ours, theirs in zip(fused.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
