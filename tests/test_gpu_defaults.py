"""GPU-sized defaults and honest timing: the dynamic batch targets nerfacc's 2^18 samples on CUDA, and rays/s
figures wait for queued CUDA work before reading the clock."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from kit_flags import TINY_NGP_MODEL

import nerfkit.engine.trainer as trainer_module
import nerfkit.utils.timing as timing
from nerfkit.configs.pipelines import DynamicBatchPipelineConfig
from nerfkit.engine.training_run import setup_trainer
from nerfkit.plugins.registry import get_registry
from nerfkit.scripts.train import parse_args


def test_dynamic_batch_defaults_follow_the_device() -> None:
    config = get_registry().methods["instant-ngp"].config.pipeline
    assert isinstance(config, DynamicBatchPipelineConfig)
    assert config.batch_limits(torch.device("cuda", 0)) == (1 << 18, 1 << 18)
    assert config.batch_limits(torch.device("cpu")) == (1 << 16, 1 << 14)
    chosen = DynamicBatchPipelineConfig(target_num_samples=4096, max_num_rays_per_batch=512)
    assert chosen.batch_limits(torch.device("cuda", 0)) == (4096, 512)


def test_synchronize_waits_for_cuda_only(monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "synchronize", waited.append)
    timing.synchronize(torch.device("cpu"))
    timing.synchronize(torch.device("cuda", 1))
    assert waited == [torch.device("cuda", 1)]


def test_every_timed_step_waits_before_the_clock_is_read(
    lego_dir: Path, lego_cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NERFKIT_CACHE_DIR", str(lego_cache_dir))
    events: list[str] = []
    monkeypatch.setattr(trainer_module, "synchronize", lambda device: events.append("synchronize"))
    argv = ["instant-ngp", "--data", str(lego_dir), "--run-dir", str(tmp_path), "--vis", "none", *TINY_NGP_MODEL]
    trainer = setup_trainer(
        parse_args([*argv, "--max-num-iterations", "3", "--steps-per-eval-batch", "0"], get_registry())
    )
    train_iteration = trainer.train_iteration
    monkeypatch.setattr(trainer, "train_iteration", lambda step: (events.append("step"), train_iteration(step))[1])
    trainer.train()
    assert events == ["step", "synchronize"] * 3
