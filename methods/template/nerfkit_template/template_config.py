"""my-method: the whole default config of `kit-train my-method`, small enough to train on a CPU."""

from __future__ import annotations

from nerfkit.configs.data import SceneDataParserConfig
from nerfkit.configs.model_components import PDFSamplerConfig
from nerfkit.engine.recipes import adam_group, method_spec
from nerfkit_template.template_model import TemplateModelConfig
from nerfkit_template.template_sampler import LogSamplerConfig

MAX_STEPS = 3000

# Every setting not named here is nerfkit's default (`kit-train my-method --help` lists them all).
my_method = method_spec(
    "my-method",
    "Template plug-in: a small vanilla NeRF for the CPU with its own log-spaced sampler and a loss that makes rays "
    "empty or opaque.",
    TemplateModelConfig(
        coarse_sampler=LogSamplerConfig(num_samples=32),
        fine_sampler=PDFSamplerConfig(num_samples=32),
        base_mlp_num_layers=4,
        base_mlp_layer_width=64,
        head_mlp_layer_width=32,
        skip_connections=(2,),
    ),
    max_steps=MAX_STEPS,
    dataparser=SceneDataParserConfig(downscale_factor=4),
    train_rays=512,
    eval_rays=512,
    groups={"fields": adam_group(2e-3, 2e-4, MAX_STEPS, eps=1e-8)},
    steps_per_save=1000,
    # Rendering every eval image would take longer than training on a CPU; one image every 500 steps suffices.
    steps_per_eval_all_images=0,
)
