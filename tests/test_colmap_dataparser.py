"""The COLMAP reader on models written from known cameras: intrinsics, lens, poses and rays for every supported camera
model in binary and text form, agreement with pycolmap, and clear errors for broken datasets."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_colmap_model import POSES, make_model

from nerfkit.cameras.distortion import CameraModel, distort_fisheye, distort_opencv
from nerfkit.configs.data import ColmapOptions
from nerfkit.data.colmap_model import (
    CAMERA_MODELS,
    SUPPORTED_MODELS,
    ColmapCamera,
    ColmapImage,
    ColmapModel,
    ColmapPoint3D,
    image_pose_from_camera_to_world,
    write_model,
)
from nerfkit.data.dataparsers.capture import Capture, CaptureFrame
from nerfkit.data.dataparsers.colmap_dataparser import looks_like_colmap, read_colmap_capture
from nerfkit.data.dataparsers.scene_dataparser import capture_cameras
from nerfkit.errors import NerfkitError

PARAMS = {
    "SIMPLE_PINHOLE": [50.0, 32.0, 24.0],
    "PINHOLE": [50.0, 46.0, 31.5, 24.5],
    "SIMPLE_RADIAL": [50.0, 32.0, 24.0, -0.2],
    "RADIAL": [50.0, 32.0, 24.0, -0.2, 0.05],
    "OPENCV": [50.0, 46.0, 31.5, 24.5, -0.2, 0.05, 1e-3, -2e-3],
    "OPENCV_FISHEYE": [50.0, 46.0, 31.5, 24.5, 0.05, -0.02, 0.005, -0.001],
}
"""A camera of 64x48 pixels per model, with a phone-like or mild fisheye lens where the model has one."""
EXPECTED = {
    "SIMPLE_PINHOLE": ("PINHOLE", (50.0, 50.0, 32.0, 24.0), (0.0,) * 6),
    "PINHOLE": ("PINHOLE", (50.0, 46.0, 31.5, 24.5), (0.0,) * 6),
    "SIMPLE_RADIAL": ("OPENCV", (50.0, 50.0, 32.0, 24.0), (-0.2, 0.0, 0.0, 0.0, 0.0, 0.0)),
    "RADIAL": ("OPENCV", (50.0, 50.0, 32.0, 24.0), (-0.2, 0.05, 0.0, 0.0, 0.0, 0.0)),
    "OPENCV": ("OPENCV", (50.0, 46.0, 31.5, 24.5), (-0.2, 0.05, 0.0, 0.0, 1e-3, -2e-3)),
    "OPENCV_FISHEYE": ("OPENCV_FISHEYE", (50.0, 46.0, 31.5, 24.5), (0.05, -0.02, 0.005, -0.001, 0.0, 0.0)),
}
"""Nerfstudio model, (fx, fy, cx, cy) of the 64x48 camera, and `[k1, k2, k3, k4, p1, p2]`."""
IMAGE_NAMES = ("c.png", "a.png", "sub/b.png")
"""Image ids 1, 2, 3 in this order, so sorting by name reorders them; one lies in a subfolder."""
IMAGE_CAMERAS = (1, 4, 1)
POINT_IDS = (9, 2**40, 5)
"""Not in order: the capture lists points by id."""
POINTS = np.array([[0.1, -0.2, 0.3], [-0.25, 0.15, -0.1], [0.0, 0.0, 0.0]])
COLOURS = np.array([[255, 0, 10], [0, 128, 0], [1, 2, 3]], dtype=np.uint8)
DIRECTIONS = torch.tensor([[0.0, 0.0, -1.0], [0.3, -0.2, -1.0], [-0.4, 0.25, -1.0], [0.1, 0.35, -0.9]])
"""Camera-space directions (OpenGL axes) whose rays are checked; all within the 64x48 image."""


def camera(camera_id: int, model_name: str, scale: int = 1) -> ColmapCamera:
    """The model's test camera with its image `scale` times larger (focal lengths and principal point too)."""
    pixel_params = {"f", "fx", "fy", "cx", "cy"}
    params = [
        value * scale if name in pixel_params else value
        for name, value in zip(CAMERA_MODELS[model_name].param_names, PARAMS[model_name], strict=True)
    ]
    return ColmapCamera(camera_id, model_name, 64 * scale, 48 * scale, params)


def consistent_model(model_name: str, camera_4_model: str | None = None) -> ColmapModel:
    """Three posed images seeing every point, with tracks and keypoints that agree (pycolmap checks that). Camera 4
    is camera 1 at twice the resolution, with `camera_4_model` if given."""
    cameras = (camera(1, model_name), camera(4, camera_4_model or model_name, 2))
    images = {}
    for image_id, (name, camera_id, pose) in enumerate(zip(IMAGE_NAMES, IMAGE_CAMERAS, POSES, strict=True), start=1):
        qvec, tvec = image_pose_from_camera_to_world(pose)
        xys = np.arange(2 * len(POINT_IDS) + 2, dtype=float).reshape(-1, 2) + 0.5
        images[image_id] = ColmapImage(image_id, qvec, tvec, camera_id, name, xys, [*POINT_IDS, -1])
    points = {
        point_id: ColmapPoint3D(point_id, xyz, rgb, 0.25, [1, 2, 3], [index] * 3)
        for index, (point_id, xyz, rgb) in enumerate(zip(POINT_IDS, POINTS, COLOURS, strict=True))
    }
    return ColmapModel({c.camera_id: c for c in cameras}, images, points)


def write_image(path: Path, width: int, height: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8)).save(path)


def write_dataset(
    root: Path, model: ColmapModel, binary: bool = True, model_dir: str = "sparse/0", images_dir: str = "images"
) -> Path:
    """The model and an image (at its camera's size) for each of its images; returns `root`."""
    write_model(model, root / model_dir, binary=binary)
    for image in model.images.values():
        found = model.cameras[image.camera_id]
        write_image(root / images_dir / image.name, found.width, found.height)
    return root


def read(root: Path, **options: object) -> Capture:
    return read_colmap_capture(root, ColmapOptions(**{"reader": "nerfkit", **options}))  # type: ignore[arg-type]


def pixels_of(directions: torch.Tensor, frame: CaptureFrame, camera_model: CameraModel) -> torch.Tensor:
    """Where camera-space directions (OpenGL axes) land in the image, by the forward lens model."""
    directions = directions.double()
    xy = torch.stack([directions[:, 0], -directions[:, 1]], dim=-1) / -directions[:, 2:]
    lens = torch.tensor(frame.distortion, dtype=torch.float64)
    if camera_model == "OPENCV":
        xy = distort_opencv(xy, lens)
    elif camera_model == "OPENCV_FISHEYE":
        xy = distort_fisheye(xy, lens)
    return xy * torch.tensor([frame.fx, frame.fy]) + torch.tensor([frame.cx, frame.cy])


def assert_rays_recover(capture: Capture, poses: Sequence[np.ndarray]) -> None:
    """The ray through the pixel where each of DIRECTIONS lands has that direction in the world, from the camera."""
    # float64, so ray checks are limited by the maths, not by float32.
    poses = np.stack([frame.camera_to_world for frame in capture.frames])
    cameras = capture_cameras(capture.frames, poses, capture.camera_model, dtype=torch.float64)
    for index, (frame, pose) in enumerate(zip(capture.frames, poses, strict=True)):
        pixels = pixels_of(DIRECTIONS, frame, capture.camera_model)
        assert ((pixels >= 0) & (pixels <= torch.tensor([frame.width, frame.height]))).all()
        rays = cameras.generate_rays(torch.full((len(DIRECTIONS),), index), pixels)
        expected = torch.nn.functional.normalize(DIRECTIONS.double() @ torch.tensor(pose[:3, :3]).T, dim=-1)
        torch.testing.assert_close(rays.directions, expected, atol=1e-5, rtol=0)
        torch.testing.assert_close(rays.origins, torch.tensor(pose[:3, 3]).expand(len(DIRECTIONS), 3))


@pytest.fixture
def pycolmap_installed() -> None:
    """pycolmap is an optional dependency: its tests skip without it, except in CI, which installs it."""
    try:
        import pycolmap  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("pycolmap is not installed; CI must install it (pip install -e .[test]).")
        pytest.skip("pycolmap is not installed")


FRAME_ORDER = sorted(range(len(IMAGE_NAMES)), key=lambda index: IMAGE_NAMES[index])


@pytest.mark.parametrize("binary", [True, False], ids=["bin", "txt"])
@pytest.mark.parametrize("model_name", SUPPORTED_MODELS)
def test_cameras_poses_points_and_rays(tmp_path: Path, model_name: str, binary: bool) -> None:
    root = write_dataset(tmp_path, consistent_model(model_name), binary)
    capture = read(root)
    camera_model, (fx, fy, cx, cy), lens = EXPECTED[model_name]
    assert capture.camera_model == camera_model
    expected_paths = [root / "images" / name for name in ("a.png", "c.png", "sub/b.png")]
    assert [frame.image_path for frame in capture.frames] == expected_paths
    for frame, index in zip(capture.frames, FRAME_ORDER, strict=True):
        scale = 2 if IMAGE_CAMERAS[index] == 4 else 1
        assert (frame.fx, frame.fy, frame.cx, frame.cy) == (fx * scale, fy * scale, cx * scale, cy * scale)
        assert (frame.width, frame.height) == (64 * scale, 48 * scale)
        assert frame.distortion == lens
        assert frame.camera_to_world.dtype == np.float64
        np.testing.assert_allclose(frame.camera_to_world, POSES[index], atol=1e-12)
        assert frame.near_far is None and frame.mask_path is None
    assert_rays_recover(capture, [POSES[index] for index in FRAME_ORDER])
    by_id = np.argsort(POINT_IDS)
    np.testing.assert_array_equal(capture.points3d, POINTS[by_id])
    np.testing.assert_array_equal(capture.points3d_rgb, COLOURS[by_id])
    assert capture.points3d_rgb.dtype == np.uint8
    assert capture.source == root / "sparse" / "0"
    assert capture.metadata == {"colmap_model": root / "sparse" / "0", "reader": "nerfkit"}
    assert capture.split_indices is None


@pytest.mark.parametrize("binary", [True, False], ids=["bin", "txt"])
@pytest.mark.parametrize("model_name", SUPPORTED_MODELS)
def test_pycolmap_reads_the_same_capture(
    tmp_path: Path, model_name: str, binary: bool, pycolmap_installed: None
) -> None:
    root = write_dataset(tmp_path, consistent_model(model_name), binary)
    ours, theirs = read(root), read(root, reader="pycolmap")
    assert theirs.metadata["reader"] == "pycolmap"
    assert theirs.camera_model == ours.camera_model
    for mine, other in zip(ours.frames, theirs.frames, strict=True):
        np.testing.assert_allclose(other.camera_to_world, mine.camera_to_world, atol=1e-12)
        assert replace(other, camera_to_world=None) == replace(mine, camera_to_world=None)
    np.testing.assert_array_equal(theirs.points3d, ours.points3d)
    np.testing.assert_array_equal(theirs.points3d_rgb, ours.points3d_rgb)


def test_auto_reader_is_pycolmap_when_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pycolmap_installed: None
) -> None:
    root = write_dataset(tmp_path, consistent_model("OPENCV"))
    assert read(root, reader="auto").metadata["reader"] == "pycolmap"
    monkeypatch.setitem(sys.modules, "pycolmap", None)  # import pycolmap now raises ImportError
    assert read(root, reader="auto").metadata["reader"] == "nerfkit"
    with pytest.raises(NerfkitError, match="reader is set to pycolmap, which is not installed"):
        read(root, reader="pycolmap")


def test_pycolmap_rejects_a_model_whose_files_disagree(tmp_path: Path, pycolmap_installed: None) -> None:
    """test_colmap_model's model has tracks that do not match the keypoints: nerfkit reads it, COLMAP does not."""
    root = write_dataset(tmp_path, make_model("OPENCV"))
    assert len(read(root).frames) == 3
    with pytest.raises(
        NerfkitError, match=re.escape(f"pycolmap cannot read the COLMAP model in {root / 'sparse' / '0'}: ")
    ) as error:
        read(root, reader="pycolmap")
    assert "reader option to nerfkit" in str(error.value)


@pytest.mark.parametrize(
    ("first", "second"),
    [("PINHOLE", "OPENCV"), ("SIMPLE_PINHOLE", "RADIAL"), ("PINHOLE", "SIMPLE_RADIAL"), ("SIMPLE_RADIAL", "OPENCV")],
)
def test_pinhole_and_radial_cameras_share_opencv(tmp_path: Path, first: str, second: str) -> None:
    """Pinhole cameras become OPENCV cameras without distortion; the rays stay those of each camera's own model."""
    capture = read(write_dataset(tmp_path, consistent_model(first, second)))
    assert capture.camera_model == "OPENCV"
    by_name = {frame.image_path.name: frame for frame in capture.frames}
    assert by_name["c.png"].distortion == EXPECTED[first][2]
    assert by_name["a.png"].distortion == EXPECTED[second][2]
    assert_rays_recover(capture, [POSES[index] for index in FRAME_ORDER])


@pytest.mark.parametrize("other", ["PINHOLE", "OPENCV"])
def test_fisheye_mixed_with_other_lenses_is_rejected(tmp_path: Path, other: str) -> None:
    root = write_dataset(tmp_path, consistent_model("OPENCV_FISHEYE", other))
    with pytest.raises(NerfkitError, match="mixes fisheye and non-fisheye lenses") as error:
        read(root)
    assert f"camera 1 is OPENCV_FISHEYE, camera 4 is {other}" in str(error.value)
    assert "image_undistorter" in str(error.value)


def test_unused_camera_may_have_any_model(tmp_path: Path) -> None:
    model = consistent_model("PINHOLE")
    model.cameras[8] = ColmapCamera(8, "FOV", 64, 48, [50.0, 50.0, 32.0, 24.0, 0.9])
    assert read(write_dataset(tmp_path, model)).camera_model == "PINHOLE"


@pytest.mark.parametrize("unsupported", ["FULL_OPENCV", "FOV", "THIN_PRISM_FISHEYE"])
def test_unsupported_camera_model(tmp_path: Path, unsupported: str) -> None:
    model = consistent_model("PINHOLE")
    model.cameras[1] = ColmapCamera(
        1, unsupported, 64, 48, np.linspace(1.0, 2.0, len(CAMERA_MODELS[unsupported].param_names))
    )
    root = write_dataset(tmp_path, model)
    with pytest.raises(
        NerfkitError, match=f"Camera 1 uses the COLMAP camera model {unsupported}, which nerfkit"
    ) as error:
        read(root)
    assert str(root / "sparse" / "0") in str(error.value)
    assert all(name in str(error.value) for name in SUPPORTED_MODELS)


def test_missing_images(tmp_path: Path) -> None:
    root = write_dataset(tmp_path, consistent_model("OPENCV"))
    (root / "images" / "a.png").unlink()
    (root / "images" / "sub" / "b.png").unlink()
    with pytest.raises(NerfkitError) as error:
        read(root)
    message = str(error.value)
    assert (
        f"2 of the 3 images the COLMAP model in {root / 'sparse' / '0'} registers are not in {root / 'images'}"
        in message
    )
    assert f"the first is {root / 'images' / 'a.png'}." in message
    assert "images_path" in message


def test_image_using_an_unknown_camera(tmp_path: Path) -> None:
    model = consistent_model("OPENCV")
    del model.cameras[4]
    write_model(model, tmp_path / "sparse" / "0", binary=True)
    with pytest.raises(
        NerfkitError,
        match=r"Image 2 \(a\.png\) of the COLMAP model in .* uses camera 4, which the model's cameras file lacks",
    ):
        read(tmp_path)


def test_model_without_images(tmp_path: Path) -> None:
    model = consistent_model("OPENCV")
    model.images, model.points3D = {}, {}
    write_model(model, tmp_path / "sparse" / "0", binary=True)
    with pytest.raises(NerfkitError, match="registers no images"):
        read(tmp_path)


@pytest.mark.parametrize("reader", ["nerfkit", "pycolmap", "auto"])
@pytest.mark.parametrize("cut", [1, 9, 40])
def test_truncated_points3d_bin(tmp_path: Path, request: pytest.FixtureRequest, reader: str, cut: int) -> None:
    """pycolmap reads some of these without complaint, so every reader setting must report the file."""
    if reader == "pycolmap":
        request.getfixturevalue("pycolmap_installed")
    root = write_dataset(tmp_path, consistent_model("OPENCV"))
    path = root / "sparse" / "0" / "points3D.bin"
    path.write_bytes(path.read_bytes()[:-cut])
    with pytest.raises(NerfkitError, match=re.escape(f"{path} is truncated")):
        read(root, reader=reader)


def test_model_and_images_paths_and_no_points(tmp_path: Path) -> None:
    root = write_dataset(
        tmp_path, consistent_model("PINHOLE"), binary=False, model_dir="recon/model", images_dir="photos"
    )
    assert not looks_like_colmap(root)
    capture = read(root, model_path="recon/model", images_path="photos", load_3d_points=False)
    assert capture.frames[0].image_path == root / "photos" / "a.png"
    assert capture.metadata["colmap_model"] == capture.source == root / "recon" / "model"
    assert capture.points3d is None and capture.points3d_rgb is None
    with pytest.raises(NerfkitError, match="holds no complete COLMAP model"):
        read(root, model_path="recon", images_path="photos")


@pytest.mark.parametrize("model_dir", ["sparse/0", "sparse", "colmap/sparse/0", "."])
def test_looks_like_colmap(tmp_path: Path, model_dir: str) -> None:
    assert not looks_like_colmap(tmp_path)
    write_model(consistent_model("PINHOLE"), tmp_path / model_dir, binary=model_dir != "sparse")
    assert looks_like_colmap(tmp_path)
    (tmp_path / model_dir / ("images.txt" if model_dir == "sparse" else "images.bin")).unlink()
    assert not looks_like_colmap(tmp_path)
