"""The dataparser contract: files on disk in, cameras and image paths out."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float, UInt8
from torch import Tensor

from nerfkit.cameras.cameras import Cameras
from nerfkit.configs.data import DataParserConfig, Split
from nerfkit.data.scene_box import SceneBox

DATAPARSER_TRANSFORMS = "dataparser_transforms.json"
"""File in a run folder recording `DataparserOutputs.transforms_record()`."""


@dataclass
class DataparserOutputs:
    """One split of a dataset, as the rest of nerfkit sees it."""

    image_filenames: list[Path]
    """One image file per camera, in camera order."""
    cameras: Cameras
    """Cameras at the resolution of the image files."""
    scene_box: SceneBox
    """Box that holds the scene."""
    downscale_factor: int = 1
    """How many times smaller than the image files the dataset trains on them (1: as they are)."""
    near_plane: float | None = None
    """Where sampling starts along each ray when the model's config leaves it open (None: the format has no bound)."""
    far_plane: float | None = None
    """Where sampling ends along each ray when the model's config leaves it open (None: the format has no bound)."""
    points3d_xyz: Float[Tensor, "num_points 3"] | None = None
    """Sparse points of the reconstruction, in nerfkit's coordinates, when the format has them."""
    points3d_rgb: UInt8[Tensor, "num_points 3"] | None = None
    """Colours of `points3d_xyz`, when the format has them."""
    mask_filenames: list[Path | None] | None = None
    """Per camera, a mask image whose zero pixels are never trained on (None: the whole image counts)."""
    dataparser_transform: Float[Tensor, "3 4"] = field(default_factory=lambda: torch.eye(4)[:3])
    """[R | t] taking the dataset's own coordinates to nerfkit's: x' = dataparser_scale * (R x + t)."""
    dataparser_scale: float = 1.0
    """Scale applied after `dataparser_transform`."""
    format_description: str = ""
    """Which format was read and how it was chosen, for the log."""

    def downscaled_cameras(self) -> Cameras:
        """`cameras` at the resolution training uses: the one place intrinsics follow the downscale factor."""
        return self.cameras.rescale_output_resolution(1 / self.downscale_factor)

    def transforms_record(self) -> dict[str, Any]:
        """What a run saves so results can be mapped back to the dataset's own coordinates."""
        return {
            "transform": self.dataparser_transform.tolist(),
            "scale": self.dataparser_scale,
            "format": self.format_description,
        }


class DataParser:
    """Reads one dataset format."""

    def __init__(self, config: DataParserConfig) -> None:
        self.config = config

    @abstractmethod
    def get_dataparser_outputs(self, split: Split = "train") -> DataparserOutputs:
        """Parses one split; raises NerfkitError naming the file or field when the data is malformed."""
