"""A run's cameras as JSON, for tools that place or compare views (e.g. overlaying them on an exported mesh)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nerfkit.cameras.cameras import Cameras
from nerfkit.data.scene_box import SceneBox

CONVENTION = "opengl: the camera looks down its -z axis, +y up, +x right; camera_to_world maps camera to world points"
"""Stated in the file, as tools disagree on camera axes."""


def cameras_to_json(cameras: Cameras, image_filenames: list[Path], scene_box: SceneBox) -> dict[str, Any]:
    """Per camera its image, 4x4 camera-to-world matrix, intrinsics in pixels of the resolution it was trained at and
    lens (model and [k1, k2, k3, k4, p1, p2], zeros for a pinhole); and the scene box, which bounds what it learnt."""
    bottom_row = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    frames = [
        {
            "file_path": str(filename),
            "camera_to_world": torch.cat([cameras.camera_to_worlds[index].cpu(), bottom_row]).tolist(),
            "fx": float(cameras.fx[index]),
            "fy": float(cameras.fy[index]),
            "cx": float(cameras.cx[index]),
            "cy": float(cameras.cy[index]),
            "width": int(cameras.width[index]),
            "height": int(cameras.height[index]),
            "camera_model": cameras.camera_model,
            "distortion_params": [0.0] * 6
            if cameras.distortion_params is None
            else cameras.distortion_params[index].tolist(),
        }
        for index, filename in enumerate(image_filenames)
    ]
    aabb = scene_box.aabb.tolist()
    return {"convention": CONVENTION, "scene_box": {"min": aabb[0], "max": aabb[1]}, "cameras": frames}
