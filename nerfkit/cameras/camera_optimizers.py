"""Camera pose refinement: a learned correction of each training camera's pose, for captures whose poses are slightly
off (COLMAP, phone tracking). Each camera holds a 6-vector, translation then rotation (axis times angle), zero at the
start; rays from that camera are rotated about the camera's centre and the centre is moved.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from nerfkit.cameras.rays import RayBundle
from nerfkit.configs.cameras import CameraOptimizerConfig, CameraOptimizerMode

SMALL_ANGLE_SQUARED = 1e-2
"""Below this squared angle the exponential maps use Taylor series: exact to float32 precision, finite gradients."""


def skew(vectors: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs 3 3"]:
    """The matrices K with K @ x = vectors x x (cross product)."""
    x, y, z = vectors.unbind(-1)
    zero = torch.zeros_like(x)
    rows = [torch.stack(row, dim=-1) for row in ((zero, -z, y), (z, zero, -x), (-y, x, zero))]
    return torch.stack(rows, dim=-2)


def _series(
    theta_squared: Float[Tensor, "*bs 1 1"], exact: Float[Tensor, "*bs 1 1"], taylor: tuple[float, float, float]
) -> Float[Tensor, "*bs 1 1"]:
    """A coefficient of the exponential maps: `exact` (computed where the angle is not small), else its Taylor series
    a + b theta^2 + c theta^4."""
    a, b, c = taylor
    return torch.where(theta_squared < SMALL_ANGLE_SQUARED, a + theta_squared * (b + theta_squared * c), exact)


def _rotation_coefficients(
    rotation_vectors: Float[Tensor, "*bs 3"],
) -> tuple[Float[Tensor, "*bs 3 3"], Float[Tensor, "*bs 1 1"], Float[Tensor, "*bs 1 1"], Float[Tensor, "*bs 1 1"]]:
    """K and the coefficients sin t / t, (1 - cos t) / t^2 and (t - sin t) / t^3 of the angle t."""
    theta_squared = (rotation_vectors**2).sum(dim=-1)[..., None, None]
    # The exact branch never sees a small angle, so its divisions (and their gradients) stay finite.
    safe_squared = torch.where(theta_squared < SMALL_ANGLE_SQUARED, torch.ones_like(theta_squared), theta_squared)
    theta = torch.sqrt(safe_squared)
    sin, cos = torch.sin(theta), torch.cos(theta)
    a = _series(theta_squared, sin / theta, (1.0, -1 / 6, 1 / 120))
    b = _series(theta_squared, (1 - cos) / safe_squared, (1 / 2, -1 / 24, 1 / 720))
    c = _series(theta_squared, (theta - sin) / (safe_squared * theta), (1 / 6, -1 / 120, 1 / 5040))
    return skew(rotation_vectors), a, b, c


def so3_exp(rotation_vectors: Float[Tensor, "*bs 3"]) -> Float[Tensor, "*bs 3 3"]:
    """Rotation matrices of axis-angle vectors (Rodrigues): I + sin t / t K + (1 - cos t) / t^2 K^2."""
    k, a, b, _ = _rotation_coefficients(rotation_vectors)
    eye = torch.eye(3, dtype=rotation_vectors.dtype, device=rotation_vectors.device)
    return eye + a * k + b * (k @ k)


def pose_corrections(tangents: Float[Tensor, "*bs 6"], mode: CameraOptimizerMode) -> Float[Tensor, "*bs 3 4"]:
    """[R | t] of tangent vectors (translation, rotation): SO3xR3 takes the translation as is, SE3 exponentiates the
    twist, whose translation is V @ translation with V = I + (1 - cos t) / t^2 K + (t - sin t) / t^3 K^2."""
    translation, rotation_vector = tangents[..., :3], tangents[..., 3:]
    rotation = so3_exp(rotation_vector)
    if mode == "SE3":
        k, _, b, c = _rotation_coefficients(rotation_vector)
        eye = torch.eye(3, dtype=tangents.dtype, device=tangents.device)
        translation = ((eye + b * k + c * (k @ k)) @ translation[..., None])[..., 0]
    return torch.cat([rotation, translation[..., None]], dim=-1)


class CameraOptimizer(nn.Module):
    """The pose corrections of `num_cameras` training cameras; all zero (the identity) at the start."""

    def __init__(self, config: CameraOptimizerConfig, num_cameras: int) -> None:
        super().__init__()
        self.config = config
        # Present in every mode, so checkpoints have the same keys whatever the mode.
        self.pose_adjustment = nn.Parameter(torch.zeros(num_cameras, 6))

    @property
    def enabled(self) -> bool:
        return self.config.mode != "off"

    def get_param_groups(self) -> dict[str, list[nn.Parameter]]:
        """The `camera_opt` group, when pose refinement is on."""
        return {"camera_opt": [self.pose_adjustment]} if self.enabled else {}

    def forward(self, camera_indices: Int[Tensor, " num_rays"]) -> Float[Tensor, "num_rays 3 4"]:
        """Each ray's camera's correction [R | t]."""
        return pose_corrections(self.pose_adjustment, self.config.mode)[camera_indices]

    def apply_to_rays(self, ray_bundle: RayBundle) -> RayBundle:
        """Rays of training cameras with their cameras' corrections: directions rotated by R, origins moved by t."""
        if not self.enabled:
            return ray_bundle
        corrections = self(ray_bundle.camera_indices[..., 0])
        directions = (corrections[..., :3] @ ray_bundle.directions[..., None])[..., 0]
        return replace(ray_bundle, origins=ray_bundle.origins + corrections[..., 3], directions=directions)

    def get_loss_dict(self) -> dict[str, Tensor]:
        if not self.enabled:
            return {}
        translation, rotation = self.pose_adjustment[:, :3], self.pose_adjustment[:, 3:]
        penalty = self.config.trans_l2_penalty * translation.norm(dim=-1).mean()
        return {"camera_opt_regularizer": penalty + self.config.rot_l2_penalty * rotation.norm(dim=-1).mean()}

    def get_metrics_dict(self) -> dict[str, Tensor]:
        """Mean correction per camera: translation in scene units, rotation in degrees."""
        if not self.enabled:
            return {}
        adjustment = self.pose_adjustment.detach()
        return {
            "camera_opt_translation": adjustment[:, :3].norm(dim=-1).mean(),
            "camera_opt_rotation_degrees": torch.rad2deg(adjustment[:, 3:].norm(dim=-1).mean()),
        }
