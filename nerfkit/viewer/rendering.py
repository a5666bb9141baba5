"""Rendering for the viewer: one image a chunk of rays at a time, so that a newer camera, or a training step that is
due, never waits for a whole image; and a schedule of sizes that makes each view sharper while the camera rests."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import UInt8
from torch import Tensor

from nerfkit.cameras.cameras import Cameras
from nerfkit.data.scene_box import SceneBox
from nerfkit.models.base_model import Model
from nerfkit.pipelines.base_pipeline import evaluating
from nerfkit.utils.colormaps import Colormap, output_image

Corners = tuple[tuple[float, float, float], tuple[float, float, float]]
"""An axis-aligned box's (min, max) corners."""


@dataclass(frozen=True)
class DisplaySettings:
    """What the panel asks every view to show; any change re-renders the views."""

    output: str = "rgb"
    """The model output shown."""
    colormap: Colormap = "default"
    """How a single-channel output becomes colours."""
    crop: Corners | None = None
    """The crop box's (min, max) corners, when cropping is on and the box is valid."""
    max_resolution: int = 512
    """Longest side of the sharpest render."""


def resolution_schedule(preview: int, maximum: int) -> list[int]:
    """Longest sides to render after the camera moves: the preview, then doubling up to `maximum`. Each size costs
    four times the one before, so all the coarser ones together cost a third of the sharpest."""
    sizes = [min(preview, maximum)]
    while sizes[-1] < maximum:
        sizes.append(min(sizes[-1] * 2, maximum))
    return sizes


@contextmanager
def rendering_state(model: Model, crop: SceneBox | None) -> Iterator[None]:
    """Eval mode, no gradients, the crop box, and the random state left as it was: training that continues after a
    render draws exactly what it would have drawn without the viewer."""
    devices = [model.device] if model.device.type == "cuda" else []
    previous_crop = model.crop_box
    model.crop_box = crop
    try:
        with torch.random.fork_rng(devices=devices), evaluating(model):
            yield
    finally:
        model.crop_box = previous_crop


class FrameRender:
    """One camera's image, rendered `chunk_size` rays per call to `advance`."""

    def __init__(self, model: Model, cameras: Cameras, chunk_size: int, crop: SceneBox | None = None) -> None:
        image_rays = cameras.generate_image_rays(0)
        self.height, self.width = image_rays.shape
        self.model = model
        self.rays = image_rays.flatten().to(model.device)
        self.chunk_size = chunk_size
        self.crop = crop
        self.next_ray = 0
        self.parts: dict[str, list[Tensor]] = defaultdict(list)

    @property
    def done(self) -> bool:
        return self.next_ray >= len(self.rays)

    def advance(self) -> bool:
        """Renders the next chunk; returns whether the image is complete."""
        chunk = self.rays[self.next_ray : self.next_ray + self.chunk_size]
        with rendering_state(self.model, self.crop):
            for name, value in self.model.per_ray_outputs(chunk).items():
                self.parts[name].append(value)
        self.next_ray += len(chunk)
        return self.done

    def outputs(self) -> dict[str, Tensor]:
        """Every per-ray output as a (height, width, channels) image; call once `done`."""
        return {name: torch.cat(parts).reshape(self.height, self.width, -1) for name, parts in self.parts.items()}

    def render(self) -> dict[str, Tensor]:
        """The whole image at once."""
        while not self.advance():
            pass
        return self.outputs()


def display_image(outputs: dict[str, Tensor], settings: DisplaySettings) -> UInt8[np.ndarray, "height width 3"]:
    """The output the panel selects as 8-bit RGB (rgb when the model has no such output)."""
    name = settings.output if settings.output in outputs else "rgb"
    image = output_image(outputs, name, colormap=settings.colormap)
    return (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).cpu().numpy()
