"""vanilla-nerf: the original NeRF (Mildenhall et al., 2020) with the paper's settings."""

from __future__ import annotations

from nerfkit.configs.models import VanillaModelConfig, VanillaOccupancyModelConfig
from nerfkit.configs.pipelines import DynamicBatchPipelineConfig
from nerfkit.engine.recipes import adam_group, method_spec

MAX_STEPS = 200_000

vanilla_nerf = method_spec(
    "vanilla-nerf",
    "The original NeRF: positional encoding, 8x256 MLP, 64 coarse + 128 importance samples.",
    VanillaModelConfig(),
    max_steps=MAX_STEPS,
    train_rays=1024,
    eval_rays=1024,
    groups={"fields": adam_group(5e-4, 5e-5, MAX_STEPS, eps=1e-8)},
    steps_per_save=5000,
)

vanilla_nerf_occupancy = method_spec(
    "vanilla-nerf-occupancy",
    "vanilla-nerf's field with occupancy-grid sampling instead of coarse + importance sampling.",
    VanillaOccupancyModelConfig(),
    max_steps=MAX_STEPS,
    # A fixed sample budget per step (as 1024 rays x 64 samples), since rays hold hundreds of samples before the grid
    # warms up and a handful after.
    pipeline=DynamicBatchPipelineConfig(target_num_samples=1 << 16),
    train_rays=256,
    eval_rays=1024,
    groups={"fields": adam_group(5e-4, 5e-5, MAX_STEPS, eps=1e-8)},
    steps_per_save=5000,
)
