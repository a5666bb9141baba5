"""Pipeline configs: a datamanager and a model, and how the ray batch is sized."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nerfkit.configs.base_config import InstantiateConfig, Target
from nerfkit.configs.data import VanillaDataManagerConfig
from nerfkit.configs.models import ModelConfig
from nerfkit.configs.ranges import ranged

if TYPE_CHECKING:
    import torch


@dataclass
class VanillaPipelineConfig(InstantiateConfig):
    """A datamanager and a model."""

    _target: Target = "nerfkit.pipelines.base_pipeline:VanillaPipeline"
    datamanager: VanillaDataManagerConfig = field(default_factory=VanillaDataManagerConfig)
    """Where rays and ground truth come from."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """What renders the rays."""


@dataclass
class DynamicBatchPipelineConfig(VanillaPipelineConfig):
    """Occupancy-grid methods sample a few points per ray once the grid knows where the scene is, and many before."""

    _target: Target = "nerfkit.pipelines.dynamic_batch:DynamicBatchPipeline"
    target_num_samples: ranged(int | None, min=1) = None
    """Samples per step the ray batch is resized towards (None: 2^18 on CUDA, as nerfacc's instant-ngp; 2^16 on CPU)."""
    max_num_rays_per_batch: ranged(int | None, min=1) = None
    """Upper bound on the ray batch, for steps where rays hold very few samples (None: 2^18 on CUDA, 2^14 on CPU)."""

    def batch_limits(self, device: torch.device) -> tuple[int, int]:
        """The target samples per step and the ray cap on `device`: a GPU takes a batch 4 times larger and more."""
        on_cuda = device.type == "cuda"
        target = self.target_num_samples or (1 << 18 if on_cuda else 1 << 16)
        return target, self.max_num_rays_per_batch or (1 << 18 if on_cuda else 1 << 14)
