"""The NeRF-synthetic Blender format: `transforms_{split}.json` holding one field of view and a pose per frame."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, get_args

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from nerfkit.cameras.cameras import Cameras
from nerfkit.configs.data import Split
from nerfkit.data.dataparsers.capture import Capture, CaptureFrame
from nerfkit.data.dataparsers.transforms_json import (
    check_depth_file,
    frame_image_path,
    frame_list,
    frame_pose,
    is_number,
    load_json_object,
)
from nerfkit.data.datasets import open_image
from nerfkit.errors import NerfkitError

SPLITS: tuple[Split, ...] = get_args(Split)
FORMAT_HINT = "A Blender dataset holds transforms_{train,val,test}.json next to its image folders."


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


def looks_like_blender(data: Path) -> bool:
    """Any split file will do: a held-out set is often shipped as transforms_test.json and its images alone."""
    return any((data / f"transforms_{split}.json").is_file() for split in SPLITS)


def read_blender_capture(data: Path) -> Capture:
    """Every split's frames; the split files define the split. A split without its file is simply absent, and asking
    for it then says so (the split selection names the split)."""
    frames: list[CaptureFrame] = []
    split_indices: dict[Split, list[int]] = {}
    for split in SPLITS:
        transforms_path = data / f"transforms_{split}.json"
        if not transforms_path.is_file():
            continue
        meta = _load_transforms(transforms_path)
        image_filenames = [
            frame_image_path(data, frame, index, transforms_path) for index, frame in enumerate(meta["frames"])
        ]
        # One header per split: its frames share the size; the dataset checks that when it decodes pixels.
        with open_image(image_filenames[0]) as first_image:
            width, height = first_image.size
        focal = 0.5 * width / math.tan(0.5 * meta["camera_angle_x"])
        split_indices[split] = list(range(len(frames), len(frames) + len(image_filenames)))
        for index, (frame, image_path) in enumerate(zip(meta["frames"], image_filenames, strict=True)):
            pose = np.array(frame_pose(frame, index, transforms_path), dtype=np.float64)
            check_depth_file(data, frame, index, transforms_path)
            frames.append(CaptureFrame(image_path, pose, focal, focal, width / 2, height / 2, width, height))
    return Capture(
        frames=frames,
        camera_model="PINHOLE",
        source=data,
        split_indices=split_indices,
        split_file="transforms_{split}.json",
    )
