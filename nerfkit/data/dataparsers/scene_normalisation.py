"""Moving a capture's cameras into nerfkit's scene frame: oriented (+z up), centred and scaled into the scene box.

Real captures come in whatever frame structure-from-motion chose: arbitrary up, origin and units. Every method's scene
box, near/far planes and contraction assume the scene sits around the origin at unit scale, so all formats pass their
poses through the same `normalisation_transform`. The transform is saved in the run so that renders and exports can
map results back to the capture's own coordinates.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from jaxtyping import Float

Orientation = Literal["up", "pca", "none"]
Centring = Literal["poses", "focus", "none"]
Scaling = Literal["cameras", "none"]


def _rotation_taking(source: Float[np.ndarray, "3"], target: Float[np.ndarray, "3"]) -> Float[np.ndarray, "3 3"]:
    """The smallest rotation that takes unit vector `source` to unit vector `target` (Rodrigues' formula)."""
    axis = np.cross(source, target)
    cosine = float(np.dot(source, target))
    sine = float(np.linalg.norm(axis))
    if sine < 1e-12:
        if cosine > 0:
            return np.eye(3)
        # Opposite vectors: half a turn about any axis perpendicular to them.
        perpendicular = np.cross(source, [1.0, 0.0, 0.0] if abs(source[0]) < 0.9 else [0.0, 1.0, 0.0])
        perpendicular /= np.linalg.norm(perpendicular)
        return 2 * np.outer(perpendicular, perpendicular) - np.eye(3)
    k = axis / sine
    cross = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + sine * cross + (1 - cosine) * cross @ cross


def orientation_rotation(poses: Float[np.ndarray, "num_cameras 4 4"], method: Orientation) -> Float[np.ndarray, "3 3"]:
    """World rotation that makes +z the scene's up.

    "up": the mean of the cameras' up vectors, as people hold cameras roughly level. "pca": the direction in which the
    camera centres spread least becomes z (cameras circling an object lie near a horizontal plane), signed to agree
    with the mean camera up so the scene is not upside down.
    """
    if method == "none":
        return np.eye(3)
    mean_up = poses[:, :3, 1].mean(axis=0)
    if method == "up":
        return _rotation_taking(mean_up / np.linalg.norm(mean_up), np.array([0.0, 0.0, 1.0]))
    centres = poses[:, :3, 3] - poses[:, :3, 3].mean(axis=0)
    _, eigenvectors = np.linalg.eigh(centres.T @ centres)
    # eigh sorts eigenvalues ascending: the largest spread becomes x, the smallest z.
    rotation = eigenvectors[:, ::-1].T.copy()
    if np.linalg.det(rotation) < 0:
        rotation[1] *= -1
    if (rotation @ mean_up)[2] < 0:
        rotation[[1, 2]] *= -1
    return rotation


def focus_point(poses: Float[np.ndarray, "num_cameras 4 4"]) -> Float[np.ndarray, "3"]:
    """The point closest, in least squares, to every camera's optical axis: what a capture looks at.

    Nearly parallel axes (a forward-facing capture) make the problem ill-posed; the mean camera centre is used then.
    """
    directions = -poses[:, :3, 2]
    directions = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    projectors = np.eye(3)[None] - directions[:, :, None] * directions[:, None, :]
    lhs = projectors.sum(axis=0)
    rhs = np.einsum("nij,nj->i", projectors, poses[:, :3, 3])
    if np.linalg.cond(lhs) > 1e6:
        return poses[:, :3, 3].mean(axis=0)
    return np.linalg.solve(lhs, rhs)


def normalisation_transform(
    poses: Float[np.ndarray, "num_cameras 4 4"], orientation: Orientation, centring: Centring
) -> Float[np.ndarray, "3 4"]:
    """The rigid transform [R | t] from capture coordinates to oriented, centred ones."""
    rotation = orientation_rotation(poses, orientation)
    rotated = np.einsum("ij,njk->nik", rotation, poses[:, :3, :])
    if centring == "poses":
        centre = rotated[:, :, 3].mean(axis=0)
    elif centring == "focus":
        centre = rotation @ focus_point(poses)
    else:
        centre = np.zeros(3)
    return np.concatenate([rotation, (0.0 - centre)[:, None]], axis=1)  # 0 - x: no "-0.0" in saved files


def scale_to_box(
    poses: Float[np.ndarray, "num_cameras 4 4"], transform: Float[np.ndarray, "3 4"], scaling: Scaling
) -> float:
    """Factor that puts every transformed camera centre inside [-1, 1]^3 with the farthest coordinate on its face."""
    if scaling == "none":
        return 1.0
    centres = poses[:, :3, 3] @ transform[:, :3].T + transform[:, 3]
    largest = float(np.abs(centres).max())
    return 1.0 / largest if largest > 0 else 1.0


def apply_to_poses(
    poses: Float[np.ndarray, "num_cameras 4 4"], transform: Float[np.ndarray, "3 4"], scale: float
) -> Float[np.ndarray, "num_cameras 4 4"]:
    """Camera-to-world poses in the normalised frame: rotated and translated by `transform`, positions scaled."""
    moved = np.tile(np.eye(4), (len(poses), 1, 1))
    moved[:, :3, :3] = np.einsum("ij,njk->nik", transform[:, :3], poses[:, :3, :3])
    moved[:, :3, 3] = scale * (poses[:, :3, 3] @ transform[:, :3].T + transform[:, 3])
    return moved


def apply_to_points(
    points: Float[np.ndarray, "num_points 3"], transform: Float[np.ndarray, "3 4"], scale: float
) -> Float[np.ndarray, "num_points 3"]:
    """Points from capture coordinates to the normalised frame."""
    return scale * (points @ transform[:, :3].T + transform[:, 3])


def to_capture_coordinates(
    points: Float[np.ndarray, "num_points 3"], transform: Float[np.ndarray, "3 4"], scale: float
) -> Float[np.ndarray, "num_points 3"]:
    """The inverse of `apply_to_points`: normalised-frame points back in the capture's own coordinates."""
    return (points / scale - transform[:, 3]) @ transform[:, :3]


def poses_to_capture_coordinates(
    poses: Float[np.ndarray, "num_cameras 3 4"], transform: Float[np.ndarray, "3 4"], scale: float
) -> Float[np.ndarray, "num_cameras 3 4"]:
    """The inverse of `apply_to_poses`: normalised camera-to-world poses back in the capture's coordinates."""
    rotation = transform[:, :3]
    back = np.empty_like(poses)
    back[:, :, :3] = np.einsum("ji,njk->nik", rotation, poses[:, :, :3])
    back[:, :, 3] = to_capture_coordinates(poses[:, :, 3], transform, scale)
    return back
