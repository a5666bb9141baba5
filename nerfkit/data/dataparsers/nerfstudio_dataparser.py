"""The Nerfstudio format: one `transforms.json` with intrinsics, lens distortion and a pose per frame.

Poses are normalised by centring the camera positions and scaling the farthest camera to distance 1, so one scene box
and near/far planes suit any capture. Orientation (e.g. up along +z) and other centring options come later.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from nerfkit.cameras.cameras import Cameras
from nerfkit.cameras.distortion import CAMERA_MODELS
from nerfkit.configs.base_config import Target
from nerfkit.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs, Split
from nerfkit.data.dataparsers.transforms_json import (
    check_data_folder,
    existing_image,
    frame_file_path,
    frame_list,
    frame_pose,
    is_number,
    load_json_object,
)
from nerfkit.data.scene_box import SceneBox
from nerfkit.errors import NerfkitError

FORMAT_HINT = "A Nerfstudio dataset holds transforms.json next to the images it names (see ns-process-data)."
INTRINSICS = ("fl_x", "fl_y", "cx", "cy", "w", "h")
DISTORTION = ("k1", "k2", "k3", "k4", "p1", "p2")
"""In the `[k1, k2, k3, k4, p1, p2]` order of `Cameras.distortion_params`."""
SPLIT_LISTS: dict[Split, str] = {"train": "train_filenames", "val": "val_filenames", "test": "test_filenames"}


@dataclass
class NerfstudioDataParserConfig(DataParserConfig):
    """Dataset in the Nerfstudio format (a transforms.json, as written by ns-process-data)."""

    _target: Target = field(default_factory=lambda: Nerfstudio)
    """The class that `setup()` builds."""
    data: Path | None = None
    """Folder holding transforms.json and the images it names."""
    downscale_factor: int = 1
    """Divide image width and height by this factor; images_{factor}/ is used when it exists, else a cached copy."""
    eval_every: int = 8
    """Every eval_every-th frame (from the first, in file name order) is held out, as for LLFF and Mip-NeRF 360."""
    scene_scale: float = 1.0
    """Half-size of the cube scene box; the normalised cameras lie within distance 1 of its centre."""
    near_plane: float = 0.05
    """Distance from the camera where the scene starts: close, as handheld captures come near the subject."""
    far_plane: float = 3.0
    """Distance from the camera where the scene ends: past the default box's farthest corner (1 + sqrt(3))."""


@dataclass(frozen=True)
class Frame:
    """One validated frame, its image path still relative to the dataset folder."""

    index: int
    """Position in the file's `frames` list, for error messages after sorting."""
    file_path: str
    pose: list[list[float]]
    intrinsics: dict[str, float]
    distortion: list[float]


def _camera_model(meta: dict[str, Any], path: Path) -> str:
    """The dataset's one camera model; Nerfstudio assumes OPENCV when the field is absent."""
    model = meta.get("camera_model", "OPENCV")
    if model not in CAMERA_MODELS:
        raise NerfkitError(
            f"{path}: camera_model is {model!r}.", f"Set camera_model to one of {', '.join(CAMERA_MODELS)}."
        )
    return model


def _frame_value(frame: dict[str, Any], meta: dict[str, Any], key: str, index: int, path: Path) -> float | None:
    """The frame's own value of `key`, else the file's global one; None when neither has it."""
    value = frame.get(key, meta.get(key))
    if value is not None and not is_number(value):
        raise NerfkitError(f"{path}: {key} of frames[{index}] is {value!r}.", f"{key} must be a number.")
    return value


def _frame_intrinsics(frame: dict[str, Any], meta: dict[str, Any], index: int, path: Path) -> dict[str, float]:
    """Focal lengths, principal point and image size in pixels; per-frame values override global ones."""
    intrinsics = {key: _frame_value(frame, meta, key, index, path) for key in INTRINSICS}
    for key, value in intrinsics.items():
        if value is None:
            raise NerfkitError(
                f"{path} lacks the field '{key}' (neither global nor in frames[{index}]).",
                f"Give {', '.join(INTRINSICS)} at the top level, or in every frame.",
            )
    for key in ("fl_x", "fl_y", "w", "h"):
        if intrinsics[key] <= 0:
            raise NerfkitError(f"{path}: {key} of frames[{index}] is {intrinsics[key]!r}.", f"{key} must be positive.")
    return intrinsics


def _read_frame(frame: Any, meta: dict[str, Any], index: int, path: Path) -> Frame:
    file_path = frame_file_path(frame, index, path)
    distortion = [_frame_value(frame, meta, key, index, path) or 0.0 for key in DISTORTION]
    return Frame(
        index, file_path, frame_pose(frame, index, path), _frame_intrinsics(frame, meta, index, path), distortion
    )


def _split_indices(meta: dict[str, Any], frames: list[Frame], split: Split, eval_every: int, path: Path) -> list[int]:
    """Frames of `split`: those its `{split}_filenames` list names, else the eval_every interval split."""
    if not any(key in meta for key in SPLIT_LISTS.values()):
        if eval_every < 1:
            raise NerfkitError(f"eval_every is {eval_every!r}.", "Set eval_every to a whole number, 1 or more.")
        return [index for index in range(len(frames)) if (index % eval_every == 0) != (split == "train")]
    key = SPLIT_LISTS[split]
    names = meta.get(key)
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise NerfkitError(
            f"{path}: {key} is missing or not a list of file names.",
            "Give train_filenames, val_filenames and test_filenames together, or none of them.",
        )
    positions = {os.path.normpath(frame.file_path): index for index, frame in enumerate(frames)}
    unknown = [name for name in names if os.path.normpath(name) not in positions]
    if unknown:
        raise NerfkitError(
            f"{path}: {key} names {unknown[0]!r}, which no frame's file_path is.", "List file paths of frames."
        )
    return [positions[os.path.normpath(name)] for name in names]


def normalise_poses(poses: Float[Tensor, "num_cameras 4 4"]) -> Float[Tensor, "num_cameras 4 4"]:
    """Poses with the camera positions centred on their mean and the farthest one at distance 1."""
    positions = poses[:, :3, 3]
    centred = positions - positions.mean(dim=0)
    farthest = float(centred.norm(dim=-1).max())
    normalised = poses.clone()
    normalised[:, :3, 3] = centred / farthest if farthest > 0 else centred
    return normalised


def nerfstudio_cameras(
    poses: Float[Tensor, "num_cameras 4 4"], frames: list[Frame], camera_model: str, scale: float
) -> Cameras:
    """Cameras from the frames' intrinsics and distortion, with images scaled by `scale`."""

    def column(key: str) -> Tensor:
        return torch.tensor([frame.intrinsics[key] for frame in frames], dtype=torch.float32)

    cameras = Cameras(
        camera_to_worlds=poses[:, :3, :],
        fx=column("fl_x"),
        fy=column("fl_y"),
        cx=column("cx"),
        cy=column("cy"),
        width=column("w").round().long(),
        height=column("h").round().long(),
        distortion_params=torch.tensor([frame.distortion for frame in frames], dtype=torch.float32),
        camera_model=camera_model,
    )
    return cameras if scale == 1 else cameras.rescale_output_resolution(scale)


class Nerfstudio(DataParser):
    """Reads the Nerfstudio format; not yet offered by the datamanager or trainer."""

    config: NerfstudioDataParserConfig

    def get_dataparser_outputs(self, split: Split = "train") -> DataparserOutputs:
        data = check_data_folder(self.config.data)
        path = data / "transforms.json"
        meta = load_json_object(path, FORMAT_HINT)
        camera_model = _camera_model(meta, path)
        frames = sorted(
            (_read_frame(frame, meta, index, path) for index, frame in enumerate(frame_list(meta, path, FORMAT_HINT))),
            key=lambda frame: frame.file_path,
        )
        # Normalised over every frame, so all splits share one world.
        poses = normalise_poses(torch.tensor([frame.pose for frame in frames], dtype=torch.float64)).float()
        indices = _split_indices(meta, frames, split, self.config.eval_every, path)
        if not indices:
            raise NerfkitError(
                f"{path}: no frame is in the {split} split.", "Add frames, or change eval_every or the split lists."
            )
        factor = self.config.downscale_factor
        folder = data / f"images_{factor}"
        # A pre-downscaled folder holds the same file names; otherwise the dataset downscales and caches.
        prescaled = factor > 1 and folder.is_dir()
        chosen = [frames[i] for i in indices]
        image_filenames = [
            existing_image(
                folder / Path(frame.file_path).name if prescaled else data / frame.file_path, frame.index, path
            )
            for frame in chosen
        ]
        cameras = nerfstudio_cameras(poses[indices], chosen, camera_model, 1 / factor if prescaled else 1)
        return DataparserOutputs(
            image_filenames=image_filenames,
            cameras=cameras,
            scene_box=SceneBox.cube(self.config.scene_scale),
            metadata={
                "near_plane": self.config.near_plane,
                "far_plane": self.config.far_plane,
                "downscale_factor": 1 if prescaled else factor,
            },
        )
