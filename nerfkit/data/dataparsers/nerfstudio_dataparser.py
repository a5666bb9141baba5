"""The Nerfstudio format: one `transforms.json` with intrinsics, lens distortion, a pose and optional mask per frame."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nerfkit.cameras.distortion import CAMERA_MODELS
from nerfkit.configs.data import Split
from nerfkit.data.dataparsers.capture import Capture, CaptureFrame
from nerfkit.data.dataparsers.transforms_json import (
    check_depth_file,
    existing_image,
    frame_file_path,
    frame_list,
    frame_pose,
    is_number,
    load_json_object,
)
from nerfkit.errors import NerfkitError

FORMAT_HINT = "A Nerfstudio dataset holds transforms.json next to the images it names (see ns-process-data)."
INTRINSICS = ("fl_x", "fl_y", "cx", "cy", "w", "h")
DISTORTION = ("k1", "k2", "k3", "k4", "p1", "p2")
"""In the `[k1, k2, k3, k4, p1, p2]` order of `Cameras.distortion_params`."""
SPLIT_LISTS: dict[Split, str] = {"train": "train_filenames", "val": "val_filenames", "test": "test_filenames"}


@dataclass(frozen=True)
class Frame:
    """One validated frame, its image path still relative to the dataset folder."""

    index: int
    """Position in the file's `frames` list, for error messages after sorting."""
    file_path: str
    pose: list[list[float]]
    intrinsics: dict[str, float]
    distortion: list[float]
    mask_path: str | None


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
    mask_path = frame.get("mask_path")
    if mask_path is not None and not isinstance(mask_path, str):
        raise NerfkitError(f"{path}: frames[{index}].mask_path is {mask_path!r}.", "mask_path must be a file path.")
    return Frame(
        index,
        file_path,
        frame_pose(frame, index, path),
        _frame_intrinsics(frame, meta, index, path),
        distortion,
        mask_path,
    )


def _own_split(meta: dict[str, Any], frames: list[Frame], path: Path) -> dict[Split, list[int]] | None:
    """The split that `{split}_filenames` lists give, as positions in `frames`; None when the file has none."""
    if not any(key in meta for key in SPLIT_LISTS.values()):
        return None
    positions = {os.path.normpath(frame.file_path): index for index, frame in enumerate(frames)}
    split: dict[Split, list[int]] = {}
    for name, key in SPLIT_LISTS.items():
        names = meta.get(key, [] if name == "val" else None)
        if not isinstance(names, list) or not all(isinstance(item, str) for item in names):
            raise NerfkitError(
                f"{path}: {key} is missing or not a list of file names.",
                "Give train_filenames and test_filenames (val_filenames optional) together, or none of them.",
            )
        unknown = [item for item in names if os.path.normpath(item) not in positions]
        if unknown:
            raise NerfkitError(
                f"{path}: {key} names {unknown[0]!r}, which no frame's file_path is.", "List file paths of frames."
            )
        split[name] = [positions[os.path.normpath(item)] for item in names]
    if not split["val"]:
        split["val"] = split["test"]
    return split


def looks_like_nerfstudio(data: Path) -> bool:
    return (data / "transforms.json").is_file()


def read_nerfstudio_capture(data: Path) -> Capture:
    """Frames in file name order, so the interval split does not depend on the order the file lists them in."""
    path = data / "transforms.json"
    meta = load_json_object(path, FORMAT_HINT)
    camera_model = _camera_model(meta, path)
    raw_frames = frame_list(meta, path, FORMAT_HINT)
    frames = sorted(
        (_read_frame(frame, meta, index, path) for index, frame in enumerate(raw_frames)),
        key=lambda frame: frame.file_path,
    )
    for index, frame in enumerate(raw_frames):
        check_depth_file(data, frame, index, path)
    capture_frames = [
        CaptureFrame(
            image_path=existing_image(data / frame.file_path, frame.index, path),
            camera_to_world=np.array(frame.pose, dtype=np.float64),
            fx=frame.intrinsics["fl_x"],
            fy=frame.intrinsics["fl_y"],
            cx=frame.intrinsics["cx"],
            cy=frame.intrinsics["cy"],
            width=round(frame.intrinsics["w"]),
            height=round(frame.intrinsics["h"]),
            distortion=tuple(frame.distortion),
            mask_path=None if frame.mask_path is None else existing_image(data / frame.mask_path, frame.index, path),
        )
        for frame in frames
    ]
    metadata: dict[str, object] = {}
    if "applied_transform" in meta:
        metadata["applied_transform"] = meta["applied_transform"]
    return Capture(
        frames=capture_frames,
        camera_model=camera_model,
        source=path,
        split_indices=_own_split(meta, frames, path),
        metadata=metadata,
    )
