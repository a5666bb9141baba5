"""vanilla-nerf: the original NeRF (Mildenhall et al., 2020) with the paper's settings."""

from __future__ import annotations

from nerfkit.data.datamanagers.vanilla_datamanager import VanillaDataManagerConfig
from nerfkit.data.dataparsers.scene_dataparser import SceneDataParserConfig
from nerfkit.engine.optimizers import AdamOptimizerConfig, ParamGroupConfig
from nerfkit.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfkit.engine.trainer import TrainerConfig
from nerfkit.models.vanilla_nerf import VanillaModelConfig
from nerfkit.models.vanilla_nerf_occupancy import VanillaOccupancyModelConfig
from nerfkit.pipelines.base_pipeline import VanillaPipelineConfig
from nerfkit.pipelines.dynamic_batch import DynamicBatchPipelineConfig
from nerfkit.plugins.registry import MethodSpecification

MAX_STEPS = 200_000

vanilla_nerf = MethodSpecification(
    config=TrainerConfig(
        method_name="vanilla-nerf",
        max_num_iterations=MAX_STEPS,
        steps_per_save=5000,
        pipeline=VanillaPipelineConfig(
            datamanager=VanillaDataManagerConfig(
                dataparser=SceneDataParserConfig(),
                train_num_rays_per_batch=1024,
                eval_num_rays_per_batch=1024,
            ),
            model=VanillaModelConfig(),
        ),
        optimizers={
            "fields": ParamGroupConfig(
                optimizer=AdamOptimizerConfig(lr=5e-4, eps=1e-8),
                scheduler=ExponentialDecaySchedulerConfig(lr_final=5e-5, max_steps=MAX_STEPS),
            )
        },
    ),
    description="The original NeRF: positional encoding, 8x256 MLP, 64 coarse + 128 importance samples.",
)

vanilla_nerf_occupancy = MethodSpecification(
    config=TrainerConfig(
        method_name="vanilla-nerf-occupancy",
        max_num_iterations=MAX_STEPS,
        steps_per_save=5000,
        pipeline=DynamicBatchPipelineConfig(
            # A fixed sample budget per step (as 1024 rays x 64 samples), since rays hold hundreds of samples before
            # the grid warms up and a handful after.
            target_num_samples=1 << 16,
            datamanager=VanillaDataManagerConfig(
                dataparser=SceneDataParserConfig(),
                train_num_rays_per_batch=256,
                eval_num_rays_per_batch=1024,
            ),
            model=VanillaOccupancyModelConfig(),
        ),
        optimizers={
            "fields": ParamGroupConfig(
                optimizer=AdamOptimizerConfig(lr=5e-4, eps=1e-8),
                scheduler=ExponentialDecaySchedulerConfig(lr_final=5e-5, max_steps=MAX_STEPS),
            )
        },
    ),
    description="vanilla-nerf's field with occupancy-grid sampling instead of coarse + importance sampling.",
)
