"""instant-ngp: hash-grid field, occupancy-grid sampling and a dynamic ray batch, on CPU or GPU from one config."""

from __future__ import annotations

from nerfkit.configs.models import InstantNGPModelConfig
from nerfkit.configs.pipelines import DynamicBatchPipelineConfig
from nerfkit.engine.recipes import adam_group, method_spec

MAX_STEPS = 30_000

instant_ngp = method_spec(
    "instant-ngp",
    "Instant-NGP: hash grid, occupancy-grid sampling, dynamic ray batch; trains on CPU and GPU.",
    InstantNGPModelConfig(eval_num_rays_per_chunk=1 << 15),
    max_steps=MAX_STEPS,
    pipeline=DynamicBatchPipelineConfig(),
    # The first batch starts small: before the occupancy grid has warmed up every ray holds hundreds of samples, and
    # the dynamic batch grows it towards target_num_samples within a few steps.
    train_rays=512,
    eval_rays=4096,
    groups={"fields": adam_group(1e-2, 1e-4, MAX_STEPS)},
    steps_per_save=2000,
    steps_per_eval_all_images=0,
)
