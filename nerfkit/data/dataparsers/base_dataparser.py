"""The dataparser contract: files on disk in, cameras and image paths out."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nerfkit.cameras.cameras import Cameras
from nerfkit.configs.base_config import InstantiateConfig, Target
from nerfkit.data.scene_box import SceneBox

Split = Literal["train", "val", "test"]


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
