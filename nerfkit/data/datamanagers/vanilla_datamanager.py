"""Turns a dataset into batches of rays with the colours of the pixels they pass through."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import torch
from torch import Tensor, nn

from nerfkit.cameras.cameras import Cameras
from nerfkit.cameras.rays import RayBundle
from nerfkit.configs.data import VanillaDataManagerConfig
from nerfkit.data.datasets import InputDataset


class VanillaDataManager:
    """Samples pixels uniformly over every image of a split.

    Sampling draws from the global torch RNG, which the trainer seeds per rank and saves in checkpoints: ranks draw
    different rays, and a resumed run draws the same rays as an uninterrupted one.
    """

    train_num_rays: int
    """Rays per training batch: the config's at first; a dynamic-batch pipeline resizes it every step."""

    def __init__(self, config: VanillaDataManagerConfig, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)
        self.train_num_rays = config.train_num_rays_per_batch
        dataparser_config = config.dataparser if config.data is None else replace(config.dataparser, data=config.data)
        dataparser = dataparser_config.setup()
        self.train_dataparser_outputs = dataparser.get_dataparser_outputs("train")
        self.eval_dataparser_outputs = dataparser.get_dataparser_outputs(config.eval_split)
        self.train_dataset = InputDataset(self.train_dataparser_outputs, self.device, config.cache_dir)
        self.eval_dataset = InputDataset(self.eval_dataparser_outputs, self.device, config.cache_dir)

    @property
    def train_cameras(self) -> Cameras:
        return self.train_dataset.cameras

    @property
    def eval_cameras(self) -> Cameras:
        return self.eval_dataset.cameras

    def _sample_rays(self, dataset: InputDataset, num_rays: int) -> tuple[RayBundle, dict[str, Tensor]]:
        num_images, height, width, _ = dataset.images.shape
        if dataset.valid_pixels is None:
            indices = torch.stack(
                [torch.randint(high, (num_rays,), device=self.device) for high in (num_images, height, width)], dim=-1
            )
        else:
            valid = dataset.valid_pixels
            flat = valid[torch.randint(len(valid), (num_rays,), device=self.device)]
            indices = torch.stack([flat // (height * width), flat // width % height, flat % width], dim=-1)
        camera_indices, ys, xs = indices.unbind(dim=-1)
        pixel_centres = torch.stack([xs, ys], dim=-1).float() + 0.5
        ray_bundle = dataset.cameras.generate_rays(camera_indices, pixel_centres)
        image = dataset.images[camera_indices, ys, xs].float() / 255.0
        return ray_bundle, {"image": image, "indices": indices}

    def next_train(self, step: int, num_rays: int | None = None) -> tuple[RayBundle, dict[str, Tensor]]:
        """Rays through random training pixels (`num_rays`, default `train_num_rays`); batch holds their colours and
        (camera, y, x) indices."""
        return self._sample_rays(self.train_dataset, num_rays or self.train_num_rays)

    def next_eval(self, step: int) -> tuple[RayBundle, dict[str, Tensor]]:
        """Rays through random evaluation pixels, batched as in `next_train`."""
        return self._sample_rays(self.eval_dataset, self.config.eval_num_rays_per_batch)

    def next_eval_image(self, step: int) -> tuple[int, dict[str, Tensor]]:
        """One evaluation image chosen by `step` alone, leaving the global RNG (and so training batches) untouched."""
        generator = torch.Generator().manual_seed(step)
        camera_index = int(torch.randint(len(self.eval_dataset), (1,), generator=generator))
        return camera_index, {"image": self.eval_dataset.get_image(camera_index)}

    def iter_eval_images(self) -> Iterator[tuple[int, dict[str, Tensor]]]:
        """Every evaluation image in camera order."""
        for camera_index in range(len(self.eval_dataset)):
            yield camera_index, {"image": self.eval_dataset.get_image(camera_index)}

    def get_param_groups(self) -> dict[str, list[nn.Parameter]]:
        """None yet; the hook through which a camera-pose optimiser adds its parameters."""
        return {}
