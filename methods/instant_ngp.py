"""instant-ngp: hash-grid field, occupancy-grid sampling and a dynamic ray batch, on CPU or GPU from one config."""

from __future__ import annotations

from nerfkit.data.datamanagers.vanilla_datamanager import VanillaDataManagerConfig
from nerfkit.data.dataparsers.scene_dataparser import SceneDataParserConfig
from nerfkit.engine.optimizers import AdamOptimizerConfig, ParamGroupConfig
from nerfkit.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfkit.engine.trainer import TrainerConfig
from nerfkit.models.instant_ngp import InstantNGPModelConfig
from nerfkit.pipelines.dynamic_batch import DynamicBatchPipelineConfig
from nerfkit.plugins.registry import MethodSpecification

MAX_STEPS = 30_000

instant_ngp = MethodSpecification(
    config=TrainerConfig(
        method_name="instant-ngp",
        max_num_iterations=MAX_STEPS,
        steps_per_save=2000,
        steps_per_eval_batch=500,
        steps_per_eval_image=500,
        steps_per_eval_all_images=0,
        pipeline=DynamicBatchPipelineConfig(
            # The first batch starts small: before the occupancy grid has warmed up every ray holds hundreds of
            # samples, and the dynamic batch grows it towards target_num_samples within a few steps.
            datamanager=VanillaDataManagerConfig(
                dataparser=SceneDataParserConfig(),
                train_num_rays_per_batch=512,
                eval_num_rays_per_batch=4096,
            ),
            model=InstantNGPModelConfig(eval_num_rays_per_chunk=1 << 15),
        ),
        optimizers={
            "fields": ParamGroupConfig(
                optimizer=AdamOptimizerConfig(lr=1e-2, eps=1e-15),
                scheduler=ExponentialDecaySchedulerConfig(lr_final=1e-4, max_steps=MAX_STEPS),
            )
        },
    ),
    description="Instant-NGP: hash grid, occupancy-grid sampling, dynamic ray batch; trains on CPU and GPU.",
)
