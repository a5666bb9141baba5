"""my-method's configs: its model's, its `log` sampler's, and the whole default config of `kit-train my-method`.

This module imports no torch (the model and the sampler are named by string, or imported inside `setup`), so
`kit-train --help` and every argument error stay fast with the plug-in installed, as with nerfkit's own methods.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nerfkit.configs.base_config import Target
from nerfkit.configs.data import SceneDataParserConfig
from nerfkit.configs.model_components import InitialSamplerConfig, PDFSamplerConfig
from nerfkit.configs.models import VanillaModelConfig
from nerfkit.configs.ranges import NonNegative
from nerfkit.engine.recipes import adam_group, method_spec
from nerfkit.errors import NerfkitError
from nerfkit.plugins.components import register_component

if TYPE_CHECKING:
    from nerfkit.model_components.component_context import ComponentContext
    from nerfkit_template.template_sampler import LogSampler


@dataclass
class TemplateModelConfig(VanillaModelConfig):
    """Vanilla NeRF's settings plus the weight of the template's extra loss."""

    _target: Target = "nerfkit_template.template_model:TemplateModel"
    """The class that `setup()` builds, imported only then."""
    accumulation_entropy_mult: NonNegative = 1e-3
    """Weight of a loss pushing each ray's opacity to 0 or 1, which clears semi-transparent haze (0: off)."""


@register_component("log")
@dataclass
class LogSamplerConfig(InitialSamplerConfig):
    """Evenly spaced in log distance: denser near the camera, where a pixel covers the least (template plug-in)."""

    def setup(self, context: ComponentContext) -> LogSampler:
        from nerfkit_template.template_sampler import LogSampler

        if context.near_plane <= 0:
            raise NerfkitError(
                f"the log sampler needs a near plane above 0, got {context.near_plane}",
                hint="set --pipeline.model.near-plane to a positive distance",
            )
        return LogSampler(self.num_samples, self.train_stratified)


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
