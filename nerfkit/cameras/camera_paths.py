"""Camera paths to render videos along: an orbit around the scene, smooth paths through cameras, and Nerfstudio's
camera-path files.

Smooth paths are centripetal Catmull-Rom splines on positions (no cusps or overshoot loops when keys are unevenly
spaced), the same spline built from slerps on rotations (smooth turning, always a rotation), and a Catmull-Rom
spline on log focal lengths (zooms at a steady rate, focal lengths stay positive). Every key lands exactly on a
frame, so a path passes through its keys rather than near them.

Camera-path files are Nerfstudio's (`ns-render camera-path`), in the run's world frame (nerfkit does not move or
scale datasets), with camera-to-world matrices in the OpenGL convention:

    {"camera_type": "perspective", "render_width": 800, "render_height": 600, "fps": 24, "seconds": 4,
     "is_cycle": false,
     "camera_path": [{"camera_to_world": [16 numbers, row-major], "fov": 50.0, "aspect": 1.33}, ...],
     "keyframes": [{"matrix": [16 numbers, row-major], "fov": 50.0, "aspect": 1.33}, ...]}

`camera_path` holds one camera per frame, already interpolated by the viewer; they are rendered as they are. Only
when it is missing or empty are the `keyframes` interpolated, into fps x seconds frames evenly spread over the keys
(a loop back to the first key with `is_cycle`). `fov` is the vertical field of view in degrees; `aspect` is ignored
(the render size decides it), as are Nerfstudio's per-keyframe transition times. `smoothness_value` (0 to 1, default
1) joins the keyframes from straight segments to the spline. Matrices may also be given as four rows of four numbers.
nerfkit's viewer writes both lists (`camera_path_record`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from nerfkit.cameras.cameras import Cameras
from nerfkit.errors import NerfkitError

CENTRIPETAL = 0.5
"""Catmull-Rom knot exponent for positions: 0.5 is the centripetal spline, free of cusps and self-intersections."""
MIN_KNOT_STEP = 1e-9
"""Floor on the distance between neighbouring keys, so coincident positions do not divide by zero."""
ROTATION_TOLERANCE = 1e-3
"""How far a camera-path matrix's rotation may be from orthonormal (files hold rounded floats)."""
CAMERA_PATH_HINT = (
    "A camera path is Nerfstudio's JSON: render_width, render_height, fps, seconds, and a camera_path list of "
    "{camera_to_world: 16 numbers (row-major 4x4), fov: vertical degrees} or a keyframes list of {matrix, fov}."
)

Blend = Callable[[Tensor, Tensor, Tensor], Tensor]
"""Interpolates from `start` to `end` by `weight` (0 gives `start`, 1 `end`; beyond extrapolates)."""


def lerp(
    start: Float[Tensor, "n dim"], end: Float[Tensor, "n dim"], weight: Float[Tensor, "n 1"]
) -> Float[Tensor, "n dim"]:
    return start + weight * (end - start)


def slerp(start: Float[Tensor, "n 4"], end: Float[Tensor, "n 4"], weight: Float[Tensor, "n 1"]) -> Float[Tensor, "n 4"]:
    """Constant-speed interpolation of unit quaternions along the shorter arc (q and -q are the same rotation)."""
    cosine = (start * end).sum(dim=-1, keepdim=True)
    end = torch.where(cosine < 0, -end, end)
    angle = torch.acos(cosine.abs().clamp(max=1.0))
    sine = torch.sin(angle)
    nearly_equal = sine < 1e-6
    safe_sine = torch.where(nearly_equal, torch.ones_like(sine), sine)
    start_weight = torch.where(nearly_equal, 1.0 - weight, torch.sin((1.0 - weight) * angle) / safe_sine)
    end_weight = torch.where(nearly_equal, weight, torch.sin(weight * angle) / safe_sine)
    return torch.nn.functional.normalize(start_weight * start + end_weight * end, dim=-1)


def rotation_to_quaternion(rotation: Float[Tensor, "*bs 3 3"]) -> Float[Tensor, "*bs 4"]:
    """Unit quaternions (w, x, y, z), each computed from its largest component so no rotation loses precision."""
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = (row.unbind(-1) for row in rotation.unbind(-2))
    candidates = torch.stack(
        [
            torch.stack([1 + m00 + m11 + m22, m21 - m12, m02 - m20, m10 - m01], dim=-1),
            torch.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], dim=-1),
            torch.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], dim=-1),
            torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], dim=-1),
        ],
        dim=-2,
    )
    # Row k is 4 q_k q; its k-th entry, 4 q_k^2, is largest in the best-conditioned row.
    diagonal = torch.diagonal(candidates, dim1=-2, dim2=-1)
    best = diagonal.argmax(dim=-1, keepdim=True)
    row = torch.take_along_dim(candidates, best[..., None], dim=-2)[..., 0, :]
    return torch.nn.functional.normalize(row, dim=-1)


def quaternion_to_rotation(quaternion: Float[Tensor, "*bs 4"]) -> Float[Tensor, "*bs 3 3"]:
    w, x, y, z = torch.nn.functional.normalize(quaternion, dim=-1).unbind(-1)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def key_frame_indices(num_keys: int, num_frames: int, closed: bool = False) -> list[int]:
    """The frame each key lands on, spread evenly; a closed path ends with the frame where it would return to key 0.

    Rounding to whole frames keeps every key exactly on a frame, at the cost of at most half a frame of timing.
    """
    if num_frames < num_keys:
        raise NerfkitError(
            f"{num_frames} frames cannot pass through {num_keys} keyframes",
            hint="render at least one frame per keyframe (more seconds, frames or frames per second)",
        )
    if closed:
        return [round(index * num_frames / num_keys) for index in range(num_keys + 1)]
    return [round(index * (num_frames - 1) / (num_keys - 1)) for index in range(num_keys)]


def _padded_keys(keys: Float[Tensor, "num_keys dim"], blend: Blend, closed: bool) -> Float[Tensor, "num_padded dim"]:
    """The keys with the neighbours each segment's spline needs: wrapped around for a loop, else extrapolated."""
    if closed:
        order = [len(keys) - 1, *range(len(keys)), 0, 1 % len(keys)]
        return keys[order]
    two = keys.new_full((1, 1), 2.0)
    before = blend(keys[1:2], keys[0:1], two)
    after = blend(keys[-2:-1], keys[-1:], two)
    return torch.cat([before, keys, after])


def _barry_goldman(
    points: Float[Tensor, "4 n dim"], knots: Float[Tensor, "4 n"], time: Float[Tensor, " n"], blend: Blend
) -> Float[Tensor, "n dim"]:
    """Catmull-Rom between points[1] and points[2] as a pyramid of blends, so it works for any blend (lerp, slerp)."""

    def weight(first: int, last: int) -> Tensor:
        return ((time - knots[first]) / (knots[last] - knots[first]))[:, None]

    a1 = blend(points[0], points[1], weight(0, 1))
    a2 = blend(points[1], points[2], weight(1, 2))
    a3 = blend(points[2], points[3], weight(2, 3))
    b1 = blend(a1, a2, weight(0, 2))
    b2 = blend(a2, a3, weight(1, 3))
    return blend(b1, b2, weight(1, 2))


def spline_through_keys(
    keys: Float[Tensor, "num_keys dim"],
    num_frames: int,
    *,
    blend: Blend = lerp,
    knot_exponent: float = 0.0,
    closed: bool = False,
) -> Float[Tensor, "num_frames dim"]:
    """A Catmull-Rom spline sampled at `num_frames` frames that hit every key exactly (see `key_frame_indices`).

    `knot_exponent` 0 spaces the spline's knots uniformly, 0.5 by the square root of the distance between keys.
    """
    if len(keys) == 1:
        return keys.expand(num_frames, -1).clone()
    key_frames = torch.tensor(key_frame_indices(len(keys), num_frames, closed), dtype=keys.dtype)
    padded = _padded_keys(keys, blend, closed)
    steps = (padded[1:] - padded[:-1]).norm(dim=-1).clamp_min(MIN_KNOT_STEP) ** knot_exponent
    knots = torch.cat([steps.new_zeros(1), steps.cumsum(dim=0)])
    frames = torch.arange(num_frames, dtype=keys.dtype)
    segment = (torch.searchsorted(key_frames, frames, right=True) - 1).clamp(max=len(key_frames) - 2)
    progress = (frames - key_frames[segment]) / (key_frames[segment + 1] - key_frames[segment])
    time = knots[segment + 1] + progress * (knots[segment + 2] - knots[segment + 1])
    corners = torch.stack([segment + offset for offset in range(4)])
    return _barry_goldman(padded[corners], knots[corners], time, blend)


def piecewise_through_keys(
    keys: Float[Tensor, "num_keys dim"], num_frames: int, *, blend: Blend = lerp, closed: bool = False
) -> Float[Tensor, "num_frames dim"]:
    """Straight from key to key (by `blend`), landing on the same frames as `spline_through_keys`."""
    if len(keys) == 1:
        return keys.expand(num_frames, -1).clone()
    key_frames = torch.tensor(key_frame_indices(len(keys), num_frames, closed), dtype=keys.dtype)
    ends = torch.cat([keys, keys[:1]]) if closed else keys
    frames = torch.arange(num_frames, dtype=keys.dtype)
    segment = (torch.searchsorted(key_frames, frames, right=True) - 1).clamp(max=len(key_frames) - 2)
    progress = (frames - key_frames[segment]) / (key_frames[segment + 1] - key_frames[segment])
    return blend(ends[segment], ends[segment + 1], progress[:, None])


def smoothed_through_keys(
    keys: Float[Tensor, "num_keys dim"],
    num_frames: int,
    smoothness: float,
    *,
    blend: Blend = lerp,
    knot_exponent: float = 0.0,
    closed: bool = False,
) -> Float[Tensor, "num_frames dim"]:
    """Between straight segments (`smoothness` 0) and the Catmull-Rom spline (1); every value passes the keys."""
    spline = spline_through_keys(keys, num_frames, blend=blend, knot_exponent=knot_exponent, closed=closed)
    if smoothness >= 1.0:
        return spline
    straight = piecewise_through_keys(keys, num_frames, blend=blend, closed=closed)
    return blend(straight, spline, straight.new_full((num_frames, 1), smoothness))


def interpolate_poses(
    keys: Float[Tensor, "num_keys 3 4"], num_frames: int, closed: bool = False, smoothness: float = 1.0
) -> Float[Tensor, "num_frames 3 4"]:
    """Camera-to-world matrices along smooth paths through the keys' positions and rotations."""
    keys64 = keys.double()
    positions = smoothed_through_keys(keys64[:, :, 3], num_frames, smoothness, knot_exponent=CENTRIPETAL, closed=closed)
    quaternions = smoothed_through_keys(
        rotation_to_quaternion(keys64[:, :, :3]), num_frames, smoothness, blend=slerp, closed=closed
    )
    return torch.cat([quaternion_to_rotation(quaternions), positions[:, :, None]], dim=-1).to(keys.dtype)


def interpolate_cameras(cameras: Cameras, num_frames: int, closed: bool = False, smoothness: float = 1.0) -> Cameras:
    """Cameras along a path through `cameras`, zooming steadily between their focal lengths; `smoothness` goes from
    straight segments (0) to the Catmull-Rom spline (1).

    The principal point and image size are the first camera's: a path renders at one resolution. Paths render through
    an undistorted pinhole lens, whatever lens the keyframes had.
    """
    focal = torch.stack([cameras.fx, cameras.fy], dim=-1).double().log()
    focal = smoothed_through_keys(focal, num_frames, smoothness, closed=closed).exp().to(cameras.fx.dtype)
    first = cameras[0]
    return Cameras(
        camera_to_worlds=interpolate_poses(cameras.camera_to_worlds, num_frames, closed, smoothness),
        fx=focal[:, 0],
        fy=focal[:, 1],
        cx=first.cx.repeat(num_frames),
        cy=first.cy.repeat(num_frames),
        width=first.width.repeat(num_frames),
        height=first.height.repeat(num_frames),
    )


def look_at(
    positions: Float[Tensor, "num_cameras 3"], target: Float[Tensor, "3"], up: Float[Tensor, "3"]
) -> Float[Tensor, "num_cameras 3 4"]:
    """Camera-to-world matrices (OpenGL: the camera looks down -z) at `positions` facing `target`, `up` kept up."""
    backward = torch.nn.functional.normalize(positions - target, dim=-1)
    right = torch.nn.functional.normalize(torch.cross(up.expand_as(backward), backward, dim=-1), dim=-1)
    camera_up = torch.cross(backward, right, dim=-1)
    return torch.stack([right, camera_up, backward, positions], dim=-1)


def _unit_perpendicular(up: Float[Tensor, "3"]) -> Float[Tensor, "3"]:
    """A unit vector perpendicular to `up`: the world axis least aligned with it, made perpendicular."""
    axis = torch.zeros_like(up)
    axis[up.abs().argmin()] = 1.0
    return torch.nn.functional.normalize(axis - (axis @ up) * up, dim=0)


def orbit_poses(
    center: Float[Tensor, "3"], up: Float[Tensor, "3"], radius: float, height: float, num_frames: int
) -> Float[Tensor, "num_frames 3 4"]:
    """One turn around the vertical axis through `center`, `height` above it and `radius` from the axis, looking at
    `center`. The last frame stops one step short of the first, so a looping video does not stutter."""
    up = torch.nn.functional.normalize(up, dim=0)
    first = _unit_perpendicular(up)
    second = torch.cross(up, first, dim=0)
    angles = torch.arange(num_frames, dtype=center.dtype) * (2 * math.pi / num_frames)
    around = torch.cos(angles)[:, None] * first + torch.sin(angles)[:, None] * second
    return look_at(center + radius * around + height * up, center, up)


def orbit_radius_and_height(
    positions: Float[Tensor, "num_cameras 3"], center: Float[Tensor, "3"], up: Float[Tensor, "3"]
) -> tuple[float, float]:
    """The cameras' mean distance from the vertical axis through `center` and mean height above it: an orbit that
    sees the scene the way the training views did."""
    up = torch.nn.functional.normalize(up, dim=0)
    offsets = positions - center
    heights = offsets @ up
    radii = (offsets - heights[:, None] * up).norm(dim=-1)
    return float(radii.mean()), float(heights.mean())


def focal_from_fov(fov_degrees: Float[Tensor, "*bs"], image_height: int) -> Float[Tensor, "*bs"]:
    """Focal length in pixels of a vertical field of view."""
    return 0.5 * image_height / torch.tan(0.5 * torch.deg2rad(fov_degrees))


def pinhole_cameras(
    camera_to_worlds: Float[Tensor, "num_cameras 3 4"], focal: Float[Tensor, " num_cameras"], width: int, height: int
) -> Cameras:
    """Square-pixel cameras with the principal point at the image centre."""
    num_cameras = len(camera_to_worlds)
    return Cameras(
        camera_to_worlds=camera_to_worlds,
        fx=focal,
        fy=focal.clone(),
        cx=torch.full((num_cameras,), width / 2),
        cy=torch.full((num_cameras,), height / 2),
        width=torch.full((num_cameras,), width, dtype=torch.long),
        height=torch.full((num_cameras,), height, dtype=torch.long),
    )


@dataclass
class CameraPathFile:
    """A validated camera-path file."""

    cameras: Cameras
    """The `camera_path` cameras, one per frame; or the keyframes when the file has no `camera_path` entries."""
    are_keyframes: bool
    """Whether `cameras` are keyframes, to interpolate into frames."""
    is_cycle: bool
    """Whether keyframes loop back to the first one."""
    fps: float | None
    """Frames per second, when the file gives them."""
    seconds: float | None
    """Length of the video, when the file gives it."""
    keyframes: Cameras | None = None
    """The keyframes, when the file has them (a viewer loads them back to edit the path)."""
    smoothness: float = 1.0
    """How keyframes are joined: straight segments (0) to the Catmull-Rom spline (1, and when the file is silent)."""


def _fail(path: Path, message: str) -> NerfkitError:
    return NerfkitError(f"{path}: {message}", hint=CAMERA_PATH_HINT)


def _number(
    data: dict[str, Any], key: str, path: Path, *, field: str | None = None, required: bool = True
) -> float | None:
    """A positive finite number from `data[key]`; `field` names it in messages."""
    name = field or key
    if key not in data:
        if required:
            raise _fail(path, f"{name} is missing")
        return None
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise _fail(path, f"{name} must be a positive number, not {value!r}")
    return float(value)


def _size(data: dict[str, Any], key: str, path: Path) -> int:
    value = _number(data, key, path)
    if value != int(value):
        raise _fail(path, f"{key} must be a whole number of pixels, not {value!r}")
    return int(value)


def _camera_to_world(value: Any, field: str, path: Path) -> Float[Tensor, "3 4"]:
    """A rigid camera-to-world matrix from 16 row-major numbers or four rows of four."""
    if isinstance(value, str):
        raise _fail(path, f"{field} is a string (Nerfstudio's legacy viewer); give 16 numbers, row-major")
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        matrix = np.empty(0)
    if matrix.size != 16 or not np.isfinite(matrix).all():
        raise _fail(path, f"{field} must be 16 numbers (a row-major 4x4 matrix)")
    matrix = matrix.reshape(4, 4)
    rotation = matrix[:3, :3]
    is_rotation = np.allclose(rotation @ rotation.T, np.eye(3), atol=ROTATION_TOLERANCE) and np.linalg.det(rotation) > 0
    if not is_rotation or not np.allclose(matrix[3], [0, 0, 0, 1], atol=ROTATION_TOLERANCE):
        raise _fail(path, f"{field} is not a rigid camera-to-world matrix (rotation, translation, last row 0 0 0 1)")
    return torch.from_numpy(matrix[:3]).float()


def _cameras(entries: Any, list_name: str, matrix_key: str, width: int, height: int, path: Path) -> Cameras:
    if not isinstance(entries, list):
        raise _fail(path, f"{list_name} must be a list")
    poses, fovs = [], []
    for index, entry in enumerate(entries):
        field = f"{list_name}[{index}]"
        if not isinstance(entry, dict) or matrix_key not in entry:
            raise _fail(path, f"{field} must be an object with {matrix_key} and fov")
        poses.append(_camera_to_world(entry[matrix_key], f"{field}.{matrix_key}", path))
        fov = _number(entry, "fov", path, field=f"{field}.fov")
        if fov >= 180:
            raise _fail(path, f"{field}.fov must be below 180 degrees, not {fov!r}")
        fovs.append(fov)
    return pinhole_cameras(torch.stack(poses), focal_from_fov(torch.tensor(fovs), height), width, height)


def _load_json(path: Path) -> Any:
    if not path.is_file():
        raise NerfkitError(f"camera path file {path} not found", hint="pass --camera-path-filename <file>.json")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise _fail(path, f"line {error.lineno}, column {error.colno}: malformed JSON ({error.msg})") from None
    except UnicodeDecodeError:
        raise _fail(path, "not a JSON text file") from None


def read_camera_path(path: Path) -> CameraPathFile:
    """Reads and checks a camera-path file; errors name the file and the field (and the line for bad JSON)."""
    data = _load_json(path)
    if not isinstance(data, dict):
        raise _fail(path, "must hold a JSON object")
    camera_type = data.get("camera_type", "perspective")
    if camera_type != "perspective":
        raise _fail(path, f"camera_type {camera_type!r} is not supported; only perspective cameras render")
    width, height = _size(data, "render_width", path), _size(data, "render_height", path)
    keyframes = (
        _cameras(data["keyframes"], "keyframes", "matrix", width, height, path) if data.get("keyframes") else None
    )
    are_keyframes = not data.get("camera_path")
    if are_keyframes and keyframes is None:
        raise _fail(path, "no cameras: camera_path and keyframes are both missing or empty")
    smoothness = data.get("smoothness_value", 1.0)
    if isinstance(smoothness, bool) or not isinstance(smoothness, int | float) or not 0.0 <= smoothness <= 1.0:
        raise _fail(path, f"smoothness_value must be a number from 0 to 1, not {smoothness!r}")
    return CameraPathFile(
        cameras=keyframes
        if are_keyframes
        else _cameras(data["camera_path"], "camera_path", "camera_to_world", width, height, path),
        are_keyframes=are_keyframes,
        is_cycle=data.get("is_cycle") is True,
        fps=_number(data, "fps", path, required=False),
        seconds=_number(data, "seconds", path, required=False),
        keyframes=keyframes,
        smoothness=float(smoothness),
    )


def _matrix_entry(pose: Float[Tensor, "3 4"], focal_y: Tensor, width: int, height: int, key: str) -> dict[str, Any]:
    matrix = torch.cat([pose.double().cpu(), torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)])
    fov = math.degrees(2.0 * math.atan(0.5 * height / float(focal_y)))
    return {key: matrix.flatten().tolist(), "fov": fov, "aspect": width / height}


def camera_path_record(
    keyframes: Cameras, *, fps: float, seconds: float, is_cycle: bool, smoothness: float
) -> dict[str, Any]:
    """A Nerfstudio camera-path file's content: the keyframes, and the frames interpolated through them (which
    kit-render renders as they are), at the first keyframe's image size."""
    width, height = int(keyframes.width[0]), int(keyframes.height[0])
    frames = interpolate_cameras(keyframes, max(1, round(seconds * fps)), closed=is_cycle, smoothness=smoothness)
    return {
        "camera_type": "perspective",
        "render_width": width,
        "render_height": height,
        "fps": fps,
        "seconds": seconds,
        "is_cycle": is_cycle,
        "smoothness_value": smoothness,
        "keyframes": [
            _matrix_entry(pose, fy, width, height, "matrix")
            for pose, fy in zip(keyframes.camera_to_worlds, keyframes.fy, strict=True)
        ],
        "camera_path": [
            _matrix_entry(pose, fy, width, height, "camera_to_world")
            for pose, fy in zip(frames.camera_to_worlds, frames.fy, strict=True)
        ],
    }
