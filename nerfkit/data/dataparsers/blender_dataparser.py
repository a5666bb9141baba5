"""The NeRF-synthetic Blender format: `transforms_{split}.json` holding one field of view and a pose per frame."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from nerfkit.cameras.cameras import Cameras
from nerfkit.configs.base_config import Target
from nerfkit.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs, Split
from nerfkit.data.dataparsers.transforms_json import (
    check_data_folder,
    frame_image_path,
    frame_list,
    frame_pose,
    is_number,
    load_json_object,
)
from nerfkit.data.datasets import open_image
from nerfkit.data.scene_box import SceneBox
from nerfkit.errors import NerfkitError

FORMAT_HINT = "A Blender dataset holds transforms_{train,val,test}.json next to its image folders."


@dataclass
class BlenderDataParserConfig(DataParserConfig):
    """Dataset in the NeRF-synthetic Blender format."""

    _target: Target = field(default_factory=lambda: Blender)
    """The class that `setup()` builds."""
    data: Path | None = None
    """Folder holding transforms_{train,val,test}.json and the images they name (None: the built-in scene)."""
    downscale_factor: int = 1
    """Divide image width and height by this factor."""
    scene_scale: float = 1.5
    """Half-size of the cube scene box, as the NeRF paper's Blender scenes use."""
    near_plane: float = 2.0
    """Distance from the camera where the scene starts."""
    far_plane: float = 6.0
    """Distance from the camera where the scene ends."""


def _load_transforms(path: Path) -> dict[str, Any]:
    meta = load_json_object(path, FORMAT_HINT)
    if "camera_angle_x" not in meta:
        raise NerfkitError(f"{path} lacks the field 'camera_angle_x'.", FORMAT_HINT)
    if not (is_number(meta["camera_angle_x"]) and 0 < meta["camera_angle_x"] < math.pi):
        raise NerfkitError(
            f"{path}: camera_angle_x is {meta['camera_angle_x']!r}.",
            "camera_angle_x is the horizontal field of view in radians, a number between 0 and pi.",
        )
    frame_list(meta, path, FORMAT_HINT)
    return meta


def blender_cameras(poses: Float[Tensor, "num_cameras 4 4"], camera_angle_x: float, width: int, height: int) -> Cameras:
    """Pinhole cameras sharing one horizontal field of view, centred principal point, square pixels."""
    focal = 0.5 * width / math.tan(0.5 * camera_angle_x)
    ones = torch.ones(len(poses))
    return Cameras(
        camera_to_worlds=poses[:, :3, :],
        fx=ones * focal,
        fy=ones * focal,
        cx=ones * width / 2,
        cy=ones * height / 2,
        width=ones.long() * width,
        height=ones.long() * height,
    )


class Blender(DataParser):
    """Reads the NeRF-synthetic Blender format; every frame shares the one field of view."""

    config: BlenderDataParserConfig

    def get_dataparser_outputs(self, split: Split = "train") -> DataparserOutputs:
        data = check_data_folder(self.config.data)
        transforms_path = data / f"transforms_{split}.json"
        meta = _load_transforms(transforms_path)
        image_filenames: list[Path] = []
        poses: list[list[list[float]]] = []
        for index, frame in enumerate(meta["frames"]):
            image_filenames.append(frame_image_path(data, frame, index, transforms_path))
            poses.append(frame_pose(frame, index, transforms_path))
        # Only the header is read here; the dataset decodes the pixels, once.
        with open_image(image_filenames[0]) as first_image:
            width, height = first_image.size
        cameras = blender_cameras(torch.tensor(poses, dtype=torch.float32), meta["camera_angle_x"], width, height)
        return DataparserOutputs(
            image_filenames=image_filenames,
            cameras=cameras,
            scene_box=SceneBox.cube(self.config.scene_scale),
            metadata={
                "near_plane": self.config.near_plane,
                "far_plane": self.config.far_plane,
                "downscale_factor": self.config.downscale_factor,
            },
        )
