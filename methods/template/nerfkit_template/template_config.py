"""my-method: the whole default config of `kit-train my-method`, small enough to train on a CPU."""

from __future__ import annotations

from nerfkit.data.datamanagers.vanilla_datamanager import VanillaDataManagerConfig
from nerfkit.data.dataparsers.scene_dataparser import SceneDataParserConfig
from nerfkit.engine.optimizers import AdamOptimizerConfig, ParamGroupConfig
from nerfkit.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfkit.engine.trainer import TrainerConfig
from nerfkit.model_components.ray_samplers import PDFSamplerConfig
from nerfkit.pipelines.base_pipeline import VanillaPipelineConfig
from nerfkit.plugins.registry import MethodSpecification
from nerfkit_template.template_model import TemplateModelConfig
from nerfkit_template.template_sampler import LogSamplerConfig

MAX_STEPS = 3000

my_method = MethodSpecification(
    config=TrainerConfig(
        method_name="my-method",
        max_num_iterations=MAX_STEPS,
        steps_per_save=1000,
        # Rendering every eval image would take longer than training on a CPU; one image every 500 steps suffices.
        steps_per_eval_all_images=0,
        pipeline=VanillaPipelineConfig(
            datamanager=VanillaDataManagerConfig(
                dataparser=SceneDataParserConfig(downscale_factor=4),
                train_num_rays_per_batch=512,
                eval_num_rays_per_batch=512,
            ),
            model=TemplateModelConfig(
                coarse_sampler=LogSamplerConfig(num_samples=32),
                fine_sampler=PDFSamplerConfig(num_samples=32),
                base_mlp_num_layers=4,
                base_mlp_layer_width=64,
                head_mlp_layer_width=32,
                skip_connections=(2,),
            ),
        ),
        optimizers={
            "fields": ParamGroupConfig(
                optimizer=AdamOptimizerConfig(lr=2e-3, eps=1e-8),
                scheduler=ExponentialDecaySchedulerConfig(lr_final=2e-4, max_steps=MAX_STEPS),
            )
        },
    ),
    description=(
        "Template plug-in: a small vanilla NeRF for the CPU with its own log-spaced sampler and a loss that makes rays "
        "empty or opaque."
    ),
)
