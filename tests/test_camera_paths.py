"""Camera paths as pure functions: splines hit their keys, rotations stay rotations, orbits circle the centre, and
camera-path files are read (or refused with the file, field and line named)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch

from nerfkit.cameras.camera_paths import (
    focal_from_fov,
    interpolate_cameras,
    interpolate_poses,
    key_frame_indices,
    look_at,
    orbit_poses,
    orbit_radius_and_height,
    pinhole_cameras,
    quaternion_to_rotation,
    read_camera_path,
    rotation_to_quaternion,
)
from nerfkit.errors import NerfkitError

UP = torch.tensor([0.0, 0.0, 1.0])
CENTER = torch.tensor([0.5, -0.25, 0.1])


def assert_rotations(poses: torch.Tensor) -> None:
    rotations = poses[:, :, :3].double()
    identity = torch.eye(3, dtype=torch.float64).expand_as(rotations)
    torch.testing.assert_close(rotations @ rotations.transpose(1, 2), identity, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.linalg.det(rotations), torch.ones(len(poses), dtype=torch.float64))


def three_keys() -> torch.Tensor:
    """Three cameras around the scene at different heights and distances, all looking at it."""
    positions = torch.tensor([[4.0, 0.0, 1.0], [0.0, 3.0, 2.5], [-3.5, -1.0, 0.5]])
    return look_at(positions, CENTER, UP)


def test_quaternions_round_trip_every_rotation_including_half_turns() -> None:
    quaternions = torch.nn.functional.normalize(torch.randn(500, 4, dtype=torch.float64), dim=-1)
    half_turns = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    rotations = quaternion_to_rotation(torch.cat([quaternions, half_turns]))
    torch.testing.assert_close(quaternion_to_rotation(rotation_to_quaternion(rotations)), rotations)


@pytest.mark.parametrize("closed", [False, True])
def test_interpolated_poses_hit_the_keys_and_stay_rotations(closed: bool) -> None:
    keys = three_keys()
    poses = interpolate_poses(keys, 10, closed=closed)
    assert poses.shape == (10, 3, 4)
    key_frames = key_frame_indices(3, 10, closed)
    assert key_frames == ([0, 3, 7, 10] if closed else [0, 4, 9])
    torch.testing.assert_close(poses[key_frames[:3]], keys, atol=1e-5, rtol=0)
    assert_rotations(poses)


def test_interpolation_is_smooth_and_reproduces_steady_motion() -> None:
    """Evenly spaced keys along a line, turning at a steady rate, give frames evenly spaced and evenly turned."""
    angles = torch.arange(4) * 0.4
    quaternions = torch.stack([torch.cos(angles / 2), 0 * angles, 0 * angles, torch.sin(angles / 2)], dim=-1)
    positions = torch.stack([angles, 2 * angles, 0 * angles], dim=-1)
    keys = torch.cat([quaternion_to_rotation(quaternions), positions[:, :, None]], dim=-1)
    poses = interpolate_poses(keys, 13)
    steps = poses[1:, :, 3] - poses[:-1, :, 3]
    torch.testing.assert_close(steps, steps[:1].expand_as(steps), atol=1e-5, rtol=0)
    yaw = torch.atan2(poses[:, 1, 0], poses[:, 0, 0])
    torch.testing.assert_close(yaw, torch.arange(13) * 0.1, atol=1e-5, rtol=0)


def test_interpolated_cameras_pass_through_the_source_cameras_and_zoom_between_them() -> None:
    cameras = pinhole_cameras(three_keys(), torch.tensor([50.0, 100.0, 80.0]), 40, 30)
    path = interpolate_cameras(cameras, 9)
    assert len(path) == 9
    torch.testing.assert_close(path.camera_to_worlds[[0, 4, 8]], cameras.camera_to_worlds, atol=1e-5, rtol=0)
    torch.testing.assert_close(path.fx[[0, 4, 8]], cameras.fx)
    assert 50.0 < float(path.fx[2]) < 100.0
    assert path.width.tolist() == [40] * 9 and path.cx.tolist() == [20.0] * 9


def test_a_single_key_holds_still() -> None:
    key = three_keys()[:1]
    torch.testing.assert_close(interpolate_poses(key, 4), key.expand(4, 3, 4))


def test_fewer_frames_than_keys_is_refused() -> None:
    with pytest.raises(NerfkitError, match="2 frames cannot pass through 3 keyframes"):
        interpolate_poses(three_keys(), 2)


def test_orbit_circles_the_centre_at_the_radius_and_height_looking_at_it() -> None:
    poses = orbit_poses(CENTER, UP, radius=3.0, height=1.5, num_frames=8)
    offsets = poses[:, :, 3] - CENTER
    torch.testing.assert_close(offsets[:, :2].norm(dim=-1), torch.full((8,), 3.0))
    torch.testing.assert_close(offsets[:, 2], torch.full((8,), 1.5))
    # OpenGL cameras look down -z: the centre lies straight ahead of every camera.
    forward = -poses[:, :, 2]
    torch.testing.assert_close(forward, torch.nn.functional.normalize(-offsets, dim=-1))
    assert (poses[:, 2, 1] > 0).all(), "the image's up points up"
    assert_rotations(poses)
    angles = torch.atan2(offsets[:, 1], offsets[:, 0])
    torch.testing.assert_close(torch.remainder(angles[1:] - angles[:-1], 2 * math.pi), torch.full((7,), math.pi / 4))


def test_orbit_defaults_match_the_training_cameras() -> None:
    poses = orbit_poses(CENTER, UP, radius=2.0, height=-0.5, num_frames=5)
    assert orbit_radius_and_height(poses[:, :, 3], CENTER, UP) == pytest.approx((2.0, -0.5))


def camera_path_json(**fields: Any) -> dict[str, Any]:
    return {"camera_type": "perspective", "render_width": 40, "render_height": 30, "fps": 6, "seconds": 1, **fields}


def entries(key: str, poses: torch.Tensor, fovs: list[float]) -> list[dict[str, Any]]:
    rows = torch.cat([poses, torch.tensor([[[0.0, 0.0, 0.0, 1.0]]]).expand(len(poses), 1, 4)], dim=1)
    return [{key: pose.flatten().tolist(), "fov": fov, "aspect": 4 / 3} for pose, fov in zip(rows, fovs, strict=True)]


def write(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "camera_path.json"
    path.write_text(json.dumps(data, indent=2))
    return path


def test_keyframes_file_interpolates_through_its_keys(tmp_path: Path) -> None:
    keys = three_keys()
    path = write(tmp_path, camera_path_json(keyframes=entries("matrix", keys, [40.0, 60.0, 50.0])))
    file = read_camera_path(path)
    assert file.are_keyframes and not file.is_cycle and (file.fps, file.seconds) == (6.0, 1.0)
    frames = interpolate_cameras(file.cameras, 7)
    torch.testing.assert_close(frames.camera_to_worlds[[0, 3, 6]], keys, atol=1e-5, rtol=0)
    torch.testing.assert_close(frames.fy[[0, 3, 6]], focal_from_fov(torch.tensor([40.0, 60.0, 50.0]), 30))
    assert_rotations(frames.camera_to_worlds)
    assert frames.width.unique().tolist() == [40] and frames.height.unique().tolist() == [30]


def test_camera_path_frames_win_over_keyframes_and_nested_matrices_are_read(tmp_path: Path) -> None:
    poses = three_keys()
    frames = entries("camera_to_world", poses, [45.0, 45.0, 45.0])
    frames[1]["camera_to_world"] = [frames[1]["camera_to_world"][row * 4 : row * 4 + 4] for row in range(4)]
    data = camera_path_json(camera_path=frames, keyframes=entries("matrix", poses[:1], [30.0]), is_cycle=True)
    file = read_camera_path(write(tmp_path, data))
    assert not file.are_keyframes and len(file.cameras) == 3
    torch.testing.assert_close(file.cameras.camera_to_worlds, poses)
    # Nerfstudio's three.js focal length: half the height over tan(half the vertical fov).
    assert float(file.cameras.fx[0]) == pytest.approx(15.0 / math.tan(math.radians(22.5)))


def bad_matrix(entry: dict[str, Any]) -> dict[str, Any]:
    return {**entry, "camera_to_world": [2.0 * value for value in entry["camera_to_world"]]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda data: {**data, "camera_path": []}, "no cameras: camera_path and keyframes are both missing or empty"),
        (lambda data: {key: v for key, v in data.items() if key != "render_width"}, "render_width is missing"),
        (lambda data: {**data, "render_height": 0}, "render_height must be a positive number, not 0"),
        (lambda data: {**data, "camera_type": "fisheye"}, "camera_type 'fisheye' is not supported"),
        (lambda data: {**data, "fps": "fast"}, "fps must be a positive number, not 'fast'"),
        (
            lambda data: {**data, "camera_path": [{**data["camera_path"][0], "fov": 180}]},
            r"camera_path\[0\].fov must be below 180 degrees",
        ),
        (
            lambda data: {**data, "camera_path": [{**data["camera_path"][0], "camera_to_world": [1.0] * 15}]},
            r"camera_path\[0\].camera_to_world must be 16 numbers",
        ),
        (
            lambda data: {**data, "camera_path": [data["camera_path"][0], bad_matrix(data["camera_path"][1])]},
            r"camera_path\[1\].camera_to_world is not a rigid camera-to-world matrix",
        ),
        (
            lambda data: {**data, "camera_path": [], "keyframes": [{"matrix": "[1, 0]", "fov": 50}]},
            r"keyframes\[0\].matrix is a string",
        ),
        (
            lambda data: {**data, "camera_path": [{"fov": 50}]},
            r"camera_path\[0\] must be an object with camera_to_world",
        ),
    ],
)
def test_bad_camera_path_files_name_the_file_and_field(tmp_path: Path, change: Any, message: str) -> None:
    valid = camera_path_json(camera_path=entries("camera_to_world", three_keys(), [50.0, 50.0, 50.0]))
    path = write(tmp_path, change(valid))
    with pytest.raises(NerfkitError, match=message) as error:
        read_camera_path(path)
    assert str(path) in error.value.message


def test_malformed_json_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "render_width": 40,\n  "render_height": 30,,\n  "camera_path": []\n}\n')
    with pytest.raises(NerfkitError, match=r"broken.json: line 3, column 23: malformed JSON") as error:
        read_camera_path(path)
    assert error.value.message.startswith(str(path))


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(NerfkitError, match=f"camera path file {tmp_path / 'none.json'} not found"):
        read_camera_path(tmp_path / "none.json")
