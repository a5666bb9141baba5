"""Loads a finished (or running) training run for evaluation, rendering and export: one path for every command.

A run is its `config.yml` plus a checkpoint from its `nerfkit_models` folder. The config is rebuilt from the
registered method's defaults (so loading never executes anything from the file), the pipeline is built on the
requested device, and the checkpoint's weights are loaded with the same checks and messages as `kit-train`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from nerfkit.configs.trainer import TrainerConfig
from nerfkit.engine.checkpoints import find_checkpoint, list_checkpoints, load_checkpoint, load_pipeline_state
from nerfkit.engine.kernel_loading import prepare_backends
from nerfkit.engine.run_config import load_run_config
from nerfkit.engine.trainer import resolve_device
from nerfkit.errors import NerfkitError
from nerfkit.pipelines.base_pipeline import VanillaPipeline


@dataclass
class LoadedRun:
    """A trained pipeline in eval mode, with what it was loaded from."""

    config: TrainerConfig
    pipeline: VanillaPipeline
    run_dir: Path
    checkpoint: Path
    step: int
    device: torch.device


def run_config_path(load_config: Path) -> Path:
    """Accepts the run's config.yml or the run folder itself."""
    path = load_config / "config.yml" if load_config.is_dir() else load_config
    if not path.is_file():
        raise NerfkitError(
            f"run config {path} not found",
            hint="pass --load-config <run folder>/config.yml, as kit-train printed at the end of training",
        )
    return path


def load_run(
    load_config: Path,
    *,
    load_step: int | None = None,
    device_type: str = "auto",
    data: Path | None = None,
    eval_num_rays_per_chunk: int | None = None,
    console: Console | None = None,
) -> LoadedRun:
    """The run's pipeline with a checkpoint's weights (the latest, or `load_step`'s), ready to render.

    `data` is another folder of the same format to evaluate on (views the run never saw): the model is built from
    the run's own dataset, whose training split defines it, and from `data` only when the run's is no longer there;
    `eval_num_rays_per_chunk` bounds the memory of rendering whole images.
    """
    path = run_config_path(load_config)
    config = load_run_config(path, console=console)
    run_dir = path.parent
    if data is not None and not (config.data and config.data.is_dir()):
        (console or Console(stderr=True)).print(
            f"the run's dataset {config.data} is gone: building the model from {data}"
        )
        datamanager = dataclasses.replace(config.pipeline.datamanager, data=data.absolute())
        pipeline_config = dataclasses.replace(config.pipeline, datamanager=datamanager)
        config = dataclasses.replace(config, data=data.absolute(), pipeline=pipeline_config)
    if eval_num_rays_per_chunk is not None:
        model = dataclasses.replace(config.pipeline.model, eval_num_rays_per_chunk=eval_num_rays_per_chunk)
        config = dataclasses.replace(config, pipeline=dataclasses.replace(config.pipeline, model=model))
    model_dir = run_dir / config.relative_model_dir
    if not list_checkpoints(model_dir):
        raise NerfkitError(
            f"the run's checkpoint folder {model_dir} holds no checkpoints: the run stopped before its first save",
            hint=f"train it further with kit-train --resume {run_dir}",
        )
    checkpoint = find_checkpoint(model_dir, load_step, named_by="the run's checkpoint folder")
    state = load_checkpoint(checkpoint)
    device = resolve_device(device_type, 0)
    backends = prepare_backends(config.machine.kernels, device, console or Console())
    pipeline = config.pipeline.setup(device=device, backends=backends)
    load_pipeline_state(pipeline, state, checkpoint)
    pipeline.eval()
    return LoadedRun(config, pipeline, run_dir, checkpoint, int(state["step"]), device)
