"""Mixed precision keeps geometry in float32: only the field networks run in half precision.

The trainer enables mixed precision on CUDA only; the CPU has autocast (bfloat16) and a grad scaler too, so these
tests switch it on for a CPU trainer and check the dtype at each stage of a nerfacto step: rays, sample positions,
the networks, and the volume-rendering weights.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_nerfacto import TINY_NERFACTO
from torch import Tensor, nn

import nerfkit.models.nerfacto as nerfacto_module
from nerfkit.engine.trainer import Trainer
from nerfkit.engine.training_run import setup_trainer
from nerfkit.plugins.registry import get_registry
from nerfkit.scripts.train import parse_args


def mixed_precision_trainer(lego_dir: Path, lego_cache_dir: Path, run_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NERFKIT_CACHE_DIR", str(lego_cache_dir))
    argv = ["nerfacto", "--data", str(lego_dir), "--run-dir", str(run_dir), "--vis", "none", *TINY_NERFACTO]
    argv += ["--pipeline.datamanager.dataparser.downscale-factor", "8", "--mixed-precision"]
    monkeypatch.setattr(Trainer, "setup", _setup_with_mixed_precision(Trainer.setup))
    return setup_trainer(parse_args(argv, get_registry()))


def _setup_with_mixed_precision(setup):
    def run(trainer: Trainer) -> None:
        trainer.mixed_precision = True  # what the trainer decides on a GPU
        setup(trainer)

    return run


def test_only_the_field_networks_run_in_half_precision(
    lego_dir: Path, lego_cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trainer = mixed_precision_trainer(lego_dir, lego_cache_dir, tmp_path / "run", monkeypatch)
    seen: dict[str, set[torch.dtype]] = {}

    def record(name: str, tensor: Tensor) -> None:
        seen.setdefault(name, set()).add(tensor.dtype)

    next_train = trainer.pipeline.datamanager.next_train

    def spy_rays(*args, **kwargs):
        ray_bundle, batch = next_train(*args, **kwargs)
        record("ray origins", ray_bundle.origins)
        record("ray directions", ray_bundle.directions)
        return ray_bundle, batch

    monkeypatch.setattr(trainer.pipeline.datamanager, "next_train", spy_rays)
    render_weight = nerfacto_module.render_weight_from_density

    def spy_weights(t_starts: Tensor, t_ends: Tensor, densities: Tensor, **kwargs):
        record("sample intervals", t_starts)
        record("densities", densities)
        weights = render_weight(t_starts, t_ends, densities, **kwargs)
        record("weights", weights[0])
        return weights

    monkeypatch.setattr(nerfacto_module, "render_weight_from_density", spy_weights)
    for module in trainer.pipeline.model.modules():
        if isinstance(module, nn.Linear):
            module.register_forward_hook(lambda _m, inputs, output: record("network layers", output))
    field = trainer.pipeline.model.field
    field.register_forward_pre_hook(lambda _m, inputs: record("sample positions", inputs[0]))

    for step in range(1, 4):
        loss, _, _ = trainer.train_iteration(step)
        assert torch.isfinite(torch.tensor(loss))
    assert seen.pop("network layers") == {torch.bfloat16}
    assert seen == {name: {torch.float32} for name in seen}
    assert set(seen) == {
        "ray origins",
        "ray directions",
        "sample intervals",
        "densities",
        "weights",
        "sample positions",
    }
    assert trainer.grad_scaler.is_enabled()


def test_nerfacto_trains_in_mixed_precision_by_default_on_cuda() -> None:
    """As in Nerfstudio; the trainer ignores it on the CPU."""
    assert get_registry().methods["nerfacto"].config.mixed_precision
