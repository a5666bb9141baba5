"""COLMAP model files: exact round trips for every supported camera model, poses and rays that agree with COLMAP's
projection, and a NerfkitError naming the file for every kind of damaged model."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from nerfkit.cameras.cameras import Cameras
from nerfkit.data.colmap_model import (
    CAMERA_MODELS,
    SUPPORTED_MODELS,
    ColmapCamera,
    ColmapImage,
    ColmapModel,
    ColmapPoint3D,
    camera_to_world,
    find_model_dir,
    image_pose_from_camera_to_world,
    intrinsics,
    read_model,
    write_model,
)
from nerfkit.errors import NerfkitError

PARAMS = {
    "SIMPLE_PINHOLE": [50.5, 32.0, 24.25],
    "PINHOLE": [50.5, 48.125, 32.0, 24.25],
    "SIMPLE_RADIAL": [50.5, 32.0, 24.25, 0.01],
    "RADIAL": [50.5, 32.0, 24.25, 0.01, -0.002],
    "OPENCV": [50.5, 48.125, 32.0, 24.25, 0.01, -0.002, 0.0003, -0.0004],
    "OPENCV_FISHEYE": [50.5, 48.125, 32.0, 24.25, 0.01, -0.002, 0.003, -0.0004],
}
EXPECTED_INTRINSICS = {
    "SIMPLE_PINHOLE": dict(camera_model="PINHOLE", fx=50.5, fy=50.5, cx=32.0, cy=24.25),
    "PINHOLE": dict(camera_model="PINHOLE", fx=50.5, fy=48.125, cx=32.0, cy=24.25),
    "SIMPLE_RADIAL": dict(camera_model="OPENCV", fx=50.5, fy=50.5, cx=32.0, cy=24.25, k1=0.01),
    "RADIAL": dict(camera_model="OPENCV", fx=50.5, fy=50.5, cx=32.0, cy=24.25, k1=0.01, k2=-0.002),
    "OPENCV": dict(
        camera_model="OPENCV", fx=50.5, fy=48.125, cx=32.0, cy=24.25, k1=0.01, k2=-0.002, p1=0.0003, p2=-0.0004
    ),
    "OPENCV_FISHEYE": dict(
        camera_model="OPENCV_FISHEYE", fx=50.5, fy=48.125, cx=32.0, cy=24.25, k1=0.01, k2=-0.002, k3=0.003, k4=-0.0004
    ),
}
POINTS = np.array([[0.1, -0.2, 0.3], [-0.25, 0.15, -0.1], [0.0, 0.0, 0.0], [0.3, 0.3, -0.3]])


def look_at_origin(position: np.ndarray) -> np.ndarray:
    """OpenGL camera-to-world (4, 4): the camera's -z axis points at the origin, +y roughly up the world z."""
    back = position / np.linalg.norm(position)
    right = np.cross([0.0, 0.0, 1.0], back)
    right /= np.linalg.norm(right)
    pose = np.eye(4)
    pose[:3, :3] = np.stack([right, np.cross(back, right), back], axis=1)
    pose[:3, 3] = position
    return pose


POSES = [look_at_origin(np.array(p)) for p in ([3.0, 0.5, 1.0], [-1.0, 2.5, 0.5], [0.5, -3.0, -1.5])]


def make_model(model_name: str) -> ColmapModel:
    """Two cameras, three posed images (one with no keypoints, one with a space in its name), four points."""
    cameras = {
        camera_id: ColmapCamera(camera_id, model_name, 64 * scale, 48 * scale, np.array(PARAMS[model_name]) * scale)
        for camera_id, scale in ((1, 1), (7, 2))
    }
    images = {}
    for index, pose in enumerate(POSES):
        qvec, tvec = image_pose_from_camera_to_world(pose)
        count = 0 if index == 1 else 3
        images[index + 1] = ColmapImage(
            image_id=index + 1,
            qvec=qvec,
            tvec=tvec,
            camera_id=7 if index == 2 else 1,
            name=f"frame {index:03d}.png",
            xys=np.arange(2 * count, dtype=float).reshape(count, 2) * 1.125 + 0.1,
            point3D_ids=[5, -1, 9][:count],
        )
    points = {
        point_id: ColmapPoint3D(
            point_id, xyz, [40 * index, 255, 0], 0.1 * index, [1, 3][: index % 3], [0, 2][: index % 3]
        )
        for index, (point_id, xyz) in enumerate(zip((5, 9, 10, 2**40), POINTS, strict=True))
    }
    return ColmapModel(cameras, images, points)


def quaternion_rotate(qvec: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Rotate by a (w, x, y, z) unit quaternion as q v q*, independently of the module's rotation matrices."""
    w, axis = qvec[0], qvec[1:]
    twice_cross = 2 * np.cross(axis, vector)
    return vector + w * twice_cross + np.cross(axis, twice_cross)


def colmap_project(camera: ColmapCamera, image: ColmapImage, point: np.ndarray) -> np.ndarray:
    """COLMAP's pinhole projection: world to camera with (qvec, tvec), then x = f * X / Z + c in OpenCV axes."""
    x, y, z = quaternion_rotate(image.qvec, point) + image.tvec
    assert z > 0, "the test scene must lie in front of every camera"
    found = intrinsics(camera)
    return np.array([found["fx"] * x / z + found["cx"], found["fy"] * y / z + found["cy"]])


@pytest.mark.parametrize("binary", [True, False], ids=["bin", "txt"])
@pytest.mark.parametrize("model_name", SUPPORTED_MODELS)
def test_round_trip_is_exact(tmp_path: Path, model_name: str, binary: bool) -> None:
    model = make_model(model_name)
    write_model(model, tmp_path, binary=binary)
    suffix = ".bin" if binary else ".txt"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"{n}{suffix}" for n in ("cameras", "images", "points3D")
    )
    read = read_model(tmp_path)
    assert read == model
    for image_id, pose in enumerate(POSES, start=1):
        np.testing.assert_allclose(camera_to_world(read.images[image_id]), pose, atol=1e-12)


@pytest.mark.parametrize("model_name", SUPPORTED_MODELS)
def test_text_and_binary_read_identically(tmp_path: Path, model_name: str) -> None:
    write_model(make_model(model_name), tmp_path / "bin", binary=True)
    write_model(make_model(model_name), tmp_path / "txt", binary=False)
    assert read_model(tmp_path / "bin") == read_model(tmp_path / "txt")


def test_binary_is_preferred_over_text(tmp_path: Path) -> None:
    write_model(make_model("PINHOLE"), tmp_path, binary=True)
    write_model(make_model("OPENCV"), tmp_path, binary=False)
    assert read_model(tmp_path).cameras[1].model == "PINHOLE"


@pytest.mark.parametrize("model_name", SUPPORTED_MODELS)
def test_intrinsics_in_nerfstudio_terms(model_name: str) -> None:
    expected = {"k1": 0.0, "k2": 0.0, "k3": 0.0, "k4": 0.0, "p1": 0.0, "p2": 0.0, **EXPECTED_INTRINSICS[model_name]}
    assert intrinsics(make_model(model_name).cameras[1]) == expected


def test_identity_pose_is_opencv_axes_turned_opengl() -> None:
    image = ColmapImage(1, [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0], 1, "a.png", np.zeros((0, 2)), [])
    np.testing.assert_array_equal(camera_to_world(image), np.diag([1.0, -1.0, -1.0, 1.0]))


@pytest.mark.parametrize("model_name", ["SIMPLE_PINHOLE", "PINHOLE"])
def test_rays_through_projected_pixels_hit_the_points(tmp_path: Path, model_name: str) -> None:
    write_model(make_model(model_name), tmp_path, binary=True)
    model = read_model(tmp_path)
    for image in model.images.values():
        camera = model.cameras[image.camera_id]
        found = intrinsics(camera)
        cameras = Cameras(
            camera_to_worlds=torch.tensor(camera_to_world(image)[None, :3]),
            **{name: torch.tensor([found[name]], dtype=torch.float64) for name in ("fx", "fy", "cx", "cy")},
            width=torch.tensor([camera.width]),
            height=torch.tensor([camera.height]),
        )
        pixels = np.stack([colmap_project(camera, image, point) for point in POINTS])
        rays = cameras.generate_rays(torch.zeros(len(POINTS), dtype=torch.long), torch.tensor(pixels))
        to_points = POINTS - rays.origins.numpy()
        along = np.sum(to_points * rays.directions.numpy(), axis=-1, keepdims=True)
        assert (along > 0).all()
        np.testing.assert_allclose(to_points - along * rays.directions.numpy(), 0.0, atol=1e-9)


def test_unsupported_model_is_read_but_rejected_by_intrinsics(tmp_path: Path) -> None:
    model = make_model("PINHOLE")
    model.cameras[1] = ColmapCamera(1, "FULL_OPENCV", 64, 48, np.linspace(1.0, 2.0, 12))
    write_model(model, tmp_path, binary=True)
    camera = read_model(tmp_path).cameras[1]
    assert camera == model.cameras[1]
    with pytest.raises(NerfkitError, match="FULL_OPENCV") as error:
        intrinsics(camera)
    assert all(name in str(error.value) for name in SUPPORTED_MODELS)


def test_model_ids_match_colmap() -> None:
    names = [name for name, _ in sorted(CAMERA_MODELS.items(), key=lambda item: item[1].model_id)]
    assert names[:6] == list(PARAMS) and len(names) == 11 and names[-1] == "THIN_PRISM_FISHEYE"


@pytest.mark.parametrize("cut", [1, 9, 40])
def test_truncated_points3d_bin(tmp_path: Path, cut: int) -> None:
    write_model(make_model("OPENCV"), tmp_path, binary=True)
    path = tmp_path / "points3D.bin"
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(NerfkitError, match=r"points3D\.bin is truncated"):
        read_model(tmp_path)


def test_trailing_bytes_in_images_bin(tmp_path: Path) -> None:
    write_model(make_model("OPENCV"), tmp_path, binary=True)
    with (tmp_path / "images.bin").open("ab") as file:
        file.write(b"\0\0\0")
    with pytest.raises(NerfkitError, match=r"images\.bin has 3 unexpected bytes"):
        read_model(tmp_path)


def test_unknown_camera_model_id(tmp_path: Path) -> None:
    write_model(make_model("PINHOLE"), tmp_path, binary=True)
    path = tmp_path / "cameras.bin"
    data = bytearray(path.read_bytes())
    data[12:16] = struct.pack("<i", 99)  # after the uint64 count and the first uint32 camera id
    path.write_bytes(bytes(data))
    with pytest.raises(NerfkitError, match=r"cameras\.bin, camera 1: unknown COLMAP camera model 99"):
        read_model(tmp_path)


@pytest.mark.parametrize(
    ("file", "bad_line", "message"),
    [
        ("cameras.txt", "1 PINHOLE 64 48 50 50 32\n", r"cameras\.txt, line 3: expected the fields"),
        ("cameras.txt", "1 FISHEYE_X 64 48 50\n", r"cameras\.txt, line 3: unknown COLMAP camera model 'FISHEYE_X'"),
        ("cameras.txt", "1 SIMPLE_PINHOLE 64 forty 1 2 3\n", r"cameras\.txt, line 3: CAMERA_ID WIDTH HEIGHT must be"),
        ("images.txt", "1 1 0 0 0 0 0\n\n", r"images\.txt, line 3: expected the fields IMAGE_ID"),
        ("images.txt", "1 1 0 0 0 0 0 0 1 a.png\n1 2\n", r"images\.txt, line 4: expected the fields POINTS2D"),
        ("points3D.txt", "1 0 0 0 1 2 3 0.5 7\n", r"points3D\.txt, line 3: expected the fields POINT3D_ID"),
        ("points3D.txt", "1 0 0 0 1 2 300 0.5\n", r"points3D\.txt, line 3: R G B must lie in 0\.\.255"),
    ],
)
def test_malformed_text_line(tmp_path: Path, file: str, bad_line: str, message: str) -> None:
    model = make_model("PINHOLE")
    model.images = {}
    model.points3D = {}
    write_model(model, tmp_path, binary=False)
    (tmp_path / file).write_text("# a comment\n  # an indented comment\n" + bad_line)
    with pytest.raises(NerfkitError, match=message):
        read_model(tmp_path)


def test_find_model_dir(tmp_path: Path) -> None:
    write_model(make_model("PINHOLE"), tmp_path / "sparse" / "0", binary=True)
    assert find_model_dir(tmp_path) == tmp_path / "sparse" / "0"
    write_model(make_model("PINHOLE"), tmp_path / "flat", binary=False)
    assert find_model_dir(tmp_path / "flat") == tmp_path / "flat"


def test_find_model_dir_lists_where_it_looked(tmp_path: Path) -> None:
    (tmp_path / "sparse" / "0").mkdir(parents=True)
    (tmp_path / "sparse" / "0" / "cameras.bin").write_bytes(b"")
    with pytest.raises(NerfkitError) as error:
        find_model_dir(tmp_path)
    for candidate in ("sparse/0", "sparse", "colmap/sparse/0"):
        assert str(tmp_path / candidate) in str(error.value)
    assert f"{tmp_path}." in str(error.value)
