"""The pipeline joins data and model: it owns the datamanager and the model and turns steps into losses."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from nerfkit.configs.pipelines import VanillaPipelineConfig
from nerfkit.engine.callbacks import TrainingCallback, TrainingCallbackAttributes
from nerfkit.kernels.backends import Backends
from nerfkit.utils.timing import synchronize


@contextmanager
def evaluating(module: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients for the block, then back to the module's previous mode."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


class VanillaPipeline(nn.Module):
    """Samples rays, renders them, and scores the result."""

    def __init__(
        self,
        config: VanillaPipelineConfig,
        device: torch.device | str,
        backends: Backends | None = None,
        mixed_precision: bool = False,
    ) -> None:
        super().__init__()
        self.config = config
        self.datamanager = config.datamanager.setup(device=device)
        outputs = self.datamanager.train_dataparser_outputs
        self.model = config.model.setup(
            scene_box=outputs.scene_box,
            num_train_data=len(outputs.image_filenames),
            near_plane=outputs.near_plane,
            far_plane=outputs.far_plane,
            backends=backends,
            mixed_precision=mixed_precision,
        ).to(device)

    def train_num_rays(self) -> int:
        """Rays in the next training batch; the datamanager holds the number."""
        return self.datamanager.train_num_rays

    def forward(self, step: int) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        """A training step's outputs, losses and metrics: the call DistributedDataParallel wraps."""
        return self.get_train_loss_dict(step)

    def get_train_loss_dict(self, step: int) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        ray_bundle, batch = self.datamanager.next_train(step)
        outputs = self.model(ray_bundle)
        metrics_dict = self.model.get_metrics_dict(outputs, batch)
        loss_dict = self.model.get_loss_dict(outputs, batch, metrics_dict)
        return outputs, loss_dict, metrics_dict

    def get_eval_loss_dict(self, step: int) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor]]:
        with evaluating(self.model):
            ray_bundle, batch = self.datamanager.next_eval(step)
            outputs = self.model(ray_bundle)
            metrics_dict = self.model.get_metrics_dict(outputs, batch)
            loss_dict = self.model.get_loss_dict(outputs, batch, metrics_dict)
        return outputs, loss_dict, metrics_dict

    def _render_eval_image(self, camera_index: int, batch: dict[str, Tensor]) -> tuple[dict[str, float], dict]:
        start = time.perf_counter()
        outputs = self.model.get_outputs_for_camera(self.datamanager.eval_cameras, camera_index)
        synchronize(self.model.device)
        seconds = time.perf_counter() - start
        metrics, images = self.model.get_image_metrics_and_images(outputs, batch)
        height, width = batch["image"].shape[:2]
        metrics["num_rays_per_sec"] = height * width / seconds
        return metrics, images

    def get_eval_image_metrics_and_images(self, step: int) -> tuple[dict[str, float], dict[str, Tensor]]:
        """Renders one eval image (chosen from the step) and scores it."""
        with evaluating(self.model):
            camera_index, batch = self.datamanager.next_eval_image(step)
            return self._render_eval_image(camera_index, batch)

    def get_average_eval_image_metrics(self, step: int) -> dict[str, float]:
        """Mean of each image metric over every eval image."""
        totals: dict[str, float] = defaultdict(float)
        count = 0
        with evaluating(self.model):
            for camera_index, batch in self.datamanager.iter_eval_images():
                metrics, _ = self._render_eval_image(camera_index, batch)
                for name, value in metrics.items():
                    totals[name] += value
                count += 1
        return {name: total / count for name, total in totals.items()}

    def get_param_groups(self) -> dict[str, list[nn.Parameter]]:
        return {**self.datamanager.get_param_groups(), **self.model.get_param_groups()}

    def get_training_callbacks(self, attributes: TrainingCallbackAttributes) -> list[TrainingCallback]:
        return self.model.get_training_callbacks(attributes)
