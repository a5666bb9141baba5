"""The NeRF-synthetic Blender format: `transforms_{split}.json` holding one field of view and a pose per frame."""

from __future__ import annotations

import json
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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _load_transforms(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise NerfkitError(f"Transforms file {path} not found.", FORMAT_HINT + " Check --data and the split.")
    try:
        meta = json.loads(path.read_bytes())
    except json.JSONDecodeError as error:
        raise NerfkitError(
            f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}.",
            "Fix the file, or re-export it from Blender.",
        ) from error
    except UnicodeDecodeError as error:
        raise NerfkitError(f"{path} is not valid JSON: it is not UTF-8 text.", FORMAT_HINT) from error
    if not isinstance(meta, dict):
        raise NerfkitError(f"{path}: the top level is a {type(meta).__name__}, not an object.", FORMAT_HINT)
    for key in ("camera_angle_x", "frames"):
        if key not in meta:
            raise NerfkitError(f"{path} lacks the field '{key}'.", FORMAT_HINT)
    if not (_is_number(meta["camera_angle_x"]) and 0 < meta["camera_angle_x"] < math.pi):
        raise NerfkitError(
            f"{path}: camera_angle_x is {meta['camera_angle_x']!r}.",
            "camera_angle_x is the horizontal field of view in radians, a number between 0 and pi.",
        )
    if not isinstance(meta["frames"], list) or not meta["frames"]:
        raise NerfkitError(f"{path}: 'frames' is empty or not a list.", "List at least one frame in 'frames'.")
    return meta


def _frame_image_path(data: Path, frame: Any, index: int, transforms_path: Path) -> Path:
    if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
        raise NerfkitError(
            f"{transforms_path}: frames[{index}].file_path is missing or not a string.",
            "Each frame needs a file_path relative to the dataset folder, e.g. ./train/r_0.",
        )
    path = data / frame["file_path"]
    # The original format names images without their extension.
    if not path.suffix:
        path = path.with_suffix(".png")
    if not path.is_file():
        raise NerfkitError(
            f"Image {path}, named by frames[{index}].file_path in {transforms_path}, not found.",
            "Restore the image, or remove its frame from the transforms file.",
        )
    return path


def _frame_pose(frame: dict[str, Any], index: int, transforms_path: Path) -> list[list[float]]:
    matrix = frame.get("transform_matrix")
    is_4x4 = (
        isinstance(matrix, list)
        and len(matrix) == 4
        and all(isinstance(row, list) and len(row) == 4 and all(_is_number(v) for v in row) for row in matrix)
    )
    if not is_4x4:
        raise NerfkitError(
            f"{transforms_path}: frames[{index}].transform_matrix is missing or not a 4x4 matrix of numbers.",
            "Each frame needs its 4x4 camera-to-world matrix (OpenGL convention) as a list of four rows.",
        )
    return matrix


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
        data = self.config.data
        if data is None:
            raise NerfkitError("No dataset folder is set (field data).", "Point --data at the dataset folder.")
        if not data.is_dir():
            problem = "is not a directory" if data.exists() else "does not exist"
            raise NerfkitError(f"Dataset folder {data} (field data) {problem}.", "Point --data at the dataset folder.")
        transforms_path = data / f"transforms_{split}.json"
        meta = _load_transforms(transforms_path)
        image_filenames: list[Path] = []
        poses: list[list[list[float]]] = []
        for index, frame in enumerate(meta["frames"]):
            image_filenames.append(_frame_image_path(data, frame, index, transforms_path))
            poses.append(_frame_pose(frame, index, transforms_path))
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
