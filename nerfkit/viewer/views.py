"""What a browser looks through, and how it maps to nerfkit's cameras.

viser reports a camera as a rotation (w, x, y, z) and a position in the OpenCV convention (looking down +z, y down)
with a vertical field of view in radians; nerfkit's cameras are camera-to-world matrices in the OpenGL convention
(looking down -z, y up), as Nerfstudio's camera paths are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from viser import transforms

from nerfkit.cameras.camera_paths import pinhole_cameras
from nerfkit.cameras.cameras import Cameras

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])
"""Flips y and z of a camera's axes: the same matrix turns OpenGL axes back into OpenCV ones."""


@dataclass(frozen=True)
class View:
    """A browser's camera: where it is, where it looks, how wide, and its window's shape."""

    camera_to_world: Float[np.ndarray, "3 4"]
    """Pose in the OpenGL convention, in the run's world frame."""
    fov: float
    """Vertical field of view, radians."""
    aspect: float
    """Width over height of the browser's canvas."""


def view_from_viser(wxyz: Float[np.ndarray, "4"], position: Float[np.ndarray, "3"], fov: float, aspect: float) -> View:
    rotation = transforms.SO3(np.asarray(wxyz, dtype=np.float64)).as_matrix() @ OPENCV_TO_OPENGL
    return View(np.concatenate([rotation, np.asarray(position, dtype=np.float64)[:, None]], axis=1), fov, aspect)


def viser_pose(camera_to_world: Float[np.ndarray, "3 4"]) -> tuple[Float[np.ndarray, "4"], Float[np.ndarray, "3"]]:
    """The (wxyz, position) that viser takes for an OpenGL camera-to-world matrix."""
    rotation = np.asarray(camera_to_world[:, :3], dtype=np.float64) @ OPENCV_TO_OPENGL
    return transforms.SO3.from_matrix(rotation).wxyz, np.asarray(camera_to_world[:, 3], dtype=np.float64)


def image_size(aspect: float, long_side: int) -> tuple[int, int]:
    """(width, height) of an image of this aspect whose longer side is `long_side` pixels."""
    if aspect >= 1.0:
        return long_side, max(1, round(long_side / aspect))
    return max(1, round(long_side * aspect)), long_side


def vertical_fov(focal_y: float, height: float) -> float:
    """Vertical field of view, radians, of a pinhole camera."""
    return 2.0 * math.atan(0.5 * height / focal_y)


def view_cameras(view: View, width: int, height: int) -> Cameras:
    """The one pinhole camera that renders `view` at width x height."""
    focal = torch.tensor([0.5 * height / math.tan(0.5 * view.fov)])
    pose = torch.from_numpy(view.camera_to_world).float()[None]
    return pinhole_cameras(pose, focal, width, height)
