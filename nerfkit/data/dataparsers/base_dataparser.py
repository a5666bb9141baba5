"""The dataparser contract: files on disk in, cameras and image paths out."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from nerfkit.cameras.cameras import Cameras
from nerfkit.configs.base_config import InstantiateConfig, Target
from nerfkit.data.dataparsers.capture import Split
from nerfkit.data.scene_box import SceneBox

DATAPARSER_TRANSFORMS = "dataparser_transforms.json"
"""File in a run folder recording `DataparserOutputs.transforms_record()`."""


@dataclass
class DataparserOutputs:
    """One split of a dataset, as the rest of nerfkit sees it."""

    image_filenames: list[Path]
    """One image file per camera, in camera order."""
    cameras: Cameras
    """Cameras at the images' full resolution."""
    scene_box: SceneBox
    """Box that holds the scene."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Extra values for the model, e.g. near_plane and far_plane."""
    mask_filenames: list[Path | None] | None = None
    """Per camera, a mask image whose zero pixels are never trained on (None: the whole image counts)."""
    dataparser_transform: Float[Tensor, "3 4"] = field(default_factory=lambda: torch.eye(4)[:3])
    """[R | t] taking the dataset's own coordinates to nerfkit's: x' = dataparser_scale * (R x + t)."""
    dataparser_scale: float = 1.0
    """Scale applied after `dataparser_transform`."""
    format_description: str = ""
    """Which format was read and how it was chosen, for the log."""

    def transforms_record(self) -> dict[str, Any]:
        """What a run saves so results can be mapped back to the dataset's own coordinates."""
        return {
            "transform": self.dataparser_transform.tolist(),
            "scale": self.dataparser_scale,
            "format": self.format_description,
        }


@dataclass
class DataParserConfig(InstantiateConfig):
    """Base config of a dataparser."""

    _target: Target = field(default_factory=lambda: DataParser)
    data: Path | None = None
    """Folder of the dataset."""


class DataParser:
    """Reads one dataset format."""

    def __init__(self, config: DataParserConfig) -> None:
        self.config = config

    @abstractmethod
    def get_dataparser_outputs(self, split: Split = "train") -> DataparserOutputs:
        """Parses one split; raises NerfkitError naming the file or field when the data is malformed."""
