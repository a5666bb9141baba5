"""Camera configs: pose refinement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from nerfkit.configs.base_config import InstantiateConfig, Target
from nerfkit.configs.ranges import NonNegative

CameraOptimizerMode = Literal["off", "SO3xR3", "SE3"]
"""off; SO3xR3: rotation and translation learned apart; SE3: one rigid motion."""


@dataclass
class CameraOptimizerConfig(InstantiateConfig):
    """Per-training-camera pose corrections, learned with the scene."""

    _target: Target = "nerfkit.cameras.camera_optimizers:CameraOptimizer"
    mode: CameraOptimizerMode = "SO3xR3"
    """off; SO3xR3: rotation and translation learned apart; SE3: one rigid motion (translation follows rotation)."""
    trans_l2_penalty: NonNegative = 1e-2
    """Weight of the mean translation length in the loss, which keeps corrections from drifting."""
    rot_l2_penalty: NonNegative = 1e-3
    """Weight of the mean rotation angle (radians) in the loss."""
