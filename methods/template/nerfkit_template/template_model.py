"""The template's model: vanilla NeRF with an extra loss that makes every ray either empty or opaque."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from nerfkit.models.vanilla_nerf import NeRFModel
from nerfkit_template.template_config import TemplateModelConfig


def accumulation_entropy(accumulation: Float[Tensor, "*bs 1"], eps: float = 1e-6) -> Float[Tensor, ""]:
    """Mean binary entropy of the rays' opacities: zero for empty or opaque rays, largest for half-transparent ones.

    The clamp keeps the gradient finite where a ray is already fully empty or opaque.
    """
    opacity = accumulation.clamp(eps, 1.0 - eps)
    return (torch.special.entr(opacity) + torch.special.entr(1.0 - opacity)).mean()


class TemplateModel(NeRFModel):
    """Vanilla NeRF whose loss also penalises rays that are neither empty nor opaque.

    An object scene has no half-transparent matter, yet the colour loss alone tolerates haze whose colour blends into
    the background; the entropy of each ray's opacity gives that haze a cost. Only the loss changes, so this model
    overrides `get_loss_dict` and nothing else.
    """

    config: TemplateModelConfig

    def get_loss_dict(
        self, outputs: dict[str, Tensor], batch: dict[str, Tensor], metrics_dict: dict[str, Tensor]
    ) -> dict[str, Tensor]:
        loss_dict = super().get_loss_dict(outputs, batch, metrics_dict)
        if self.config.accumulation_entropy_mult > 0:
            entropy = accumulation_entropy(outputs["accumulation"])
            loss_dict["accumulation_entropy_loss"] = self.config.accumulation_entropy_mult * entropy
        return loss_dict
