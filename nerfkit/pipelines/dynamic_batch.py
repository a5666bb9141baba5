"""A pipeline whose ray batch follows the samples per ray, so every step costs about the same."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from jaxtyping import Float, Int
from torch import Tensor

from nerfkit.configs.pipelines import DynamicBatchPipelineConfig
from nerfkit.kernels.backends import Backends
from nerfkit.pipelines.base_pipeline import VanillaPipeline

BATCH_KEY = "num_rays_per_batch"
"""State-dict key of the current batch size."""


class DynamicBatchPipeline(VanillaPipeline):
    """Resizes the datamanager's next batch by target / measured samples; the model reports `num_samples_per_batch`.

    The batch size is part of the checkpoint, so a resumed run continues exactly; it is saved under the key
    `num_rays_per_batch`, which checkpoints have always held.
    """

    config: DynamicBatchPipelineConfig

    def __init__(
        self,
        config: DynamicBatchPipelineConfig,
        device: torch.device | str,
        backends: Backends | None = None,
        mixed_precision: bool = False,
    ) -> None:
        super().__init__(config, device, backends=backends, mixed_precision=mixed_precision)
        self.target_num_samples, self.max_num_rays_per_batch = config.batch_limits(torch.device(device))

    def get_train_loss_dict(self, step: int) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        num_rays = self.train_num_rays()
        outputs, loss_dict, metrics_dict = super().get_train_loss_dict(step)
        num_samples = max(int(self._mean_over_ranks(outputs["num_samples_per_batch"].to(self.model.device))), 1)
        resized = num_rays * self.target_num_samples // num_samples
        self.datamanager.train_num_rays = min(max(resized, 64), self.max_num_rays_per_batch)
        metrics_dict["num_rays_per_batch"] = torch.tensor(float(num_rays))
        return outputs, loss_dict, metrics_dict

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        destination[prefix + BATCH_KEY] = torch.tensor(self.datamanager.train_num_rays)

    def _load_from_state_dict(
        self,
        state_dict: dict[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        # Taken out of the state dict (torch passes a copy meant to be modified), so it is not reported unexpected.
        saved = state_dict.pop(prefix + BATCH_KEY, None)
        if saved is None:
            missing_keys.append(prefix + BATCH_KEY)
        else:
            self.datamanager.train_num_rays = int(saved)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    @staticmethod
    def _mean_over_ranks(num_samples: Int[Tensor, ""]) -> Float[Tensor, ""]:
        """The samples per batch averaged over ranks, so every rank resizes to the same batch (equal shares keep DDP's
        gradient average the average over all rays, and the batch size in the checkpoint is every rank's)."""
        mean = num_samples.double()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(mean)
            mean /= dist.get_world_size()
        return mean
