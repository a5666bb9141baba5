"""Method recipes: the frame every method's default config repeats, so that a method file holds only what differs.

`method_spec` builds a method's `MethodSpecification` from its model, step count, ray batches and optimizer groups;
`adam_group` writes the learning-rate schedule every built-in method uses. What a recipe does not name keeps its config
class's default, exactly as in a `TrainerConfig` written out in full. This module sits in the engine, next to
`TrainerConfig`: nerfkit/configs/ must not import the engine, and nerfkit/plugins/ names the engine only for types.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from nerfkit.configs.data import SceneDataParserConfig, VanillaDataManagerConfig
from nerfkit.configs.models import ModelConfig
from nerfkit.configs.optimizers import AdamOptimizerConfig, ExponentialDecaySchedulerConfig, ParamGroupConfig
from nerfkit.configs.pipelines import VanillaPipelineConfig
from nerfkit.configs.trainer import TrainerConfig
from nerfkit.plugins.registry import MethodSpecification


def adam_group(lr: float, lr_final: float, max_steps: int, eps: float = 1e-15) -> ParamGroupConfig:
    """Adam at `lr`, decaying exponentially to `lr_final` at step `max_steps`, without warm-up.

    `eps` defaults to instant-ngp's 1e-15, which its hash-grid descendants keep; vanilla NeRF uses Adam's usual 1e-8.
    """
    return ParamGroupConfig(
        optimizer=AdamOptimizerConfig(lr=lr, eps=eps),
        scheduler=ExponentialDecaySchedulerConfig(lr_final=lr_final, max_steps=max_steps),
    )


def method_spec(
    name: str,
    description: str,
    model: ModelConfig,
    *,
    max_steps: int,
    train_rays: int,
    eval_rays: int,
    groups: dict[str, ParamGroupConfig],
    pipeline: VanillaPipelineConfig | None = None,
    dataparser: SceneDataParserConfig | None = None,
    **trainer_fields: Any,
) -> MethodSpecification:
    """The method `name`: `model` trained for `max_steps` steps of `train_rays` rays, evaluated `eval_rays` at a time.

    Args:
        name: the `kit-train` subcommand, which must match the name the method is registered under.
        description: the one line `kit-train --help` shows.
        model: the model's config.
        max_steps: the default `--max-num-iterations`.
        train_rays: rays per training batch.
        eval_rays: rays per evaluation batch.
        groups: optimizer and schedule per parameter group, one for each group the model's parameters fall into.
        pipeline: the pipeline's class and its own settings, e.g. `DynamicBatchPipelineConfig(target_num_samples=...)`;
            its datamanager and model are replaced (None: `VanillaPipelineConfig`).
        dataparser: reads the dataset (None: `SceneDataParserConfig()`, any supported format).
        trainer_fields: any other `TrainerConfig` field, e.g. `steps_per_save`.
    """
    datamanager = VanillaDataManagerConfig(
        dataparser=SceneDataParserConfig() if dataparser is None else dataparser,
        train_num_rays_per_batch=train_rays,
        eval_num_rays_per_batch=eval_rays,
    )
    pipeline = VanillaPipelineConfig() if pipeline is None else pipeline
    config = TrainerConfig(
        method_name=name,
        max_num_iterations=max_steps,
        pipeline=dataclasses.replace(pipeline, datamanager=datamanager, model=model),
        optimizers=groups,
        **trainer_fields,
    )
    return MethodSpecification(config=config, description=description)
