"""A capture: what every dataset format's reader returns, before nerfkit's shared normalisation and split.

Readers (Blender, Nerfstudio, COLMAP, LLFF) only translate files into this one shape, in the format's own world
coordinates; centring, orientation, scaling, the train/eval split and downscaled image folders are applied afterwards,
the same way for every format, by `SceneDataParser`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from jaxtyping import Float, UInt8

from nerfkit.cameras.distortion import CameraModel
from nerfkit.configs.data import Split

NO_DISTORTION = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True)
class CaptureFrame:
    """One image and the camera that took it."""

    image_path: Path
    """The full-resolution image file (checked to exist by the reader)."""
    camera_to_world: Float[np.ndarray, "4 4"]
    """Pose in the format's world coordinates, OpenGL camera axes (x right, y up, looking down -z), float64."""
    fx: float
    """Focal length along x, in pixels of the full-resolution image."""
    fy: float
    """Focal length along y, in pixels of the full-resolution image."""
    cx: float
    """Principal point x, in pixels from the left edge."""
    cy: float
    """Principal point y, in pixels from the top edge."""
    width: int
    """Image width in pixels."""
    height: int
    """Image height in pixels."""
    distortion: tuple[float, float, float, float, float, float] = NO_DISTORTION
    """`[k1, k2, k3, k4, p1, p2]` as in `Cameras.distortion_params`."""
    mask_path: Path | None = None
    """Optional single-channel mask: pixels that are 0 are never trained on."""
    near_far: tuple[float, float] | None = None
    """Depth bounds of the scene seen by this camera, in world units, when the format stores them (LLFF)."""


@dataclass
class Capture:
    """Every frame of a dataset with what the format knows about the scene."""

    frames: list[CaptureFrame]
    """All frames of all splits, in a stable order (by image file name unless the format defines one)."""
    camera_model: CameraModel
    """Lens model shared by every frame."""
    source: Path
    """The file or folder the capture was read from, for messages."""
    split_indices: dict[Split, list[int]] | None = None
    """The format's own split, as positions in `frames`; None: nerfkit's eval split options decide."""
    split_file: str | None = None
    """The file that holds a split of the format's own, with {split} in its name, for messages."""
    points3d: Float[np.ndarray, "num_points 3"] | None = None
    """Sparse structure-from-motion points in the same world coordinates, when the format has them."""
    points3d_rgb: UInt8[np.ndarray, "num_points 3"] | None = None
    """Colours of `points3d`."""
    metadata: dict[str, object] = field(default_factory=dict)
    """Anything else a reader wants to report (e.g. the COLMAP model folder used)."""
