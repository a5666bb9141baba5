"""The LLFF reader on poses_bounds.npy files written from known OpenGL cameras: poses, intrinsics scaled to the
images' real size, depth bounds and rays, and clear errors for malformed files."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from test_colmap_dataparser import assert_rays_recover, write_image
from test_colmap_model import POSES

from nerfkit.configs.data import LLFFOptions
from nerfkit.data.dataparsers.llff_dataparser import looks_like_llff, read_llff_capture
from nerfkit.errors import NerfkitError

HEIGHT, WIDTH, FOCAL = 48, 64, 50.0
BOUNDS = [(0.5, 6.0), (0.7, 5.0), (1.0, 8.0)]
NAMES = ("IMG_2.JPG", "IMG_10.png", "IMG_3.jpeg")
"""File names whose name order (IMG_10, IMG_2, IMG_3) is not the order above; upper-case suffixes count too."""


def llff_rows(
    poses: Sequence[np.ndarray],
    hwf: tuple[float, float, float] = (HEIGHT, WIDTH, FOCAL),
    bounds: Sequence[tuple[float, float]] = BOUNDS,
) -> np.ndarray:
    """poses_bounds.npy rows of OpenGL camera-to-world poses: LLFF's camera axes are (down, right, backwards)."""
    rows = []
    for pose, near_far in zip(poses, bounds, strict=True):
        llff = np.stack([-pose[:3, 1], pose[:3, 0], pose[:3, 2], pose[:3, 3], hwf], axis=1)
        rows.append([*llff.reshape(-1), *near_far])
    return np.array(rows)


def write_llff(root: Path, rows: np.ndarray, image_size: tuple[int, int] = (WIDTH, HEIGHT)) -> Path:
    """poses_bounds.npy and images named from NAMES, one per row (row i is the i-th image by name); returns `root`."""
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "poses_bounds.npy", rows)
    for name in NAMES[: len(rows)]:
        write_image(root / "images" / name, *image_size)
    return root


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    """The three known cameras, POSES[i] for the i-th image by name."""
    return write_llff(tmp_path / "scene", llff_rows(POSES))


def test_poses_intrinsics_bounds_and_rays(scene: Path) -> None:
    (scene / "images" / "notes.txt").write_text("not an image")
    capture = read_llff_capture(scene, LLFFOptions())
    assert [frame.image_path.name for frame in capture.frames] == ["IMG_10.png", "IMG_2.JPG", "IMG_3.jpeg"]
    assert all(frame.image_path.parent == scene / "images" for frame in capture.frames)
    assert capture.camera_model == "PINHOLE"
    assert capture.source == scene / "poses_bounds.npy"
    assert capture.points3d is None and capture.split_indices is None
    for frame, pose, near_far in zip(capture.frames, POSES, BOUNDS, strict=True):
        assert (frame.fx, frame.fy, frame.cx, frame.cy) == (FOCAL, FOCAL, WIDTH / 2, HEIGHT / 2)
        assert (frame.width, frame.height) == (WIDTH, HEIGHT)
        assert frame.near_far == near_far
        assert frame.distortion == (0.0,) * 6
        assert frame.camera_to_world.dtype == np.float64
        np.testing.assert_allclose(frame.camera_to_world, pose, atol=1e-12)
    assert_rays_recover(capture, POSES)


def test_llff_axes_are_down_right_backwards(tmp_path: Path) -> None:
    """A camera whose down is world -y, right world +x and back world +z is the OpenGL identity rotation."""
    llff = np.array([[0.0, 1.0, 0.0, 1.0, HEIGHT], [-1.0, 0.0, 0.0, 2.0, WIDTH], [0.0, 0.0, 1.0, 3.0, FOCAL]])
    root = write_llff(tmp_path, np.array([[*llff.reshape(-1), 1.0, 2.0]]))
    expected = np.eye(4)
    expected[:3, 3] = [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(read_llff_capture(root, LLFFOptions()).frames[0].camera_to_world, expected)


@pytest.mark.parametrize(("hwf", "size"), [((48, 64, 50.0), (16, 12)), ((50, 67, 60.0), (17, 13))])
def test_intrinsics_follow_the_image_size(
    tmp_path: Path, hwf: tuple[float, float, float], size: tuple[int, int]
) -> None:
    """poses_bounds.npy gives the size COLMAP saw; the images may be smaller (rounded) copies."""
    (height, width, focal), (actual_width, actual_height) = hwf, size
    root = write_llff(tmp_path, llff_rows(POSES, hwf), size)
    capture = read_llff_capture(root, LLFFOptions())
    for frame in capture.frames:
        assert (frame.width, frame.height) == size
        assert frame.fx == pytest.approx(focal * actual_width / width)
        assert frame.fy == pytest.approx(focal * actual_height / height)
        assert (frame.cx, frame.cy) == (actual_width / 2, actual_height / 2)
    assert_rays_recover(capture, POSES)


def test_images_path(tmp_path: Path) -> None:
    root = write_llff(tmp_path, llff_rows(POSES))
    (root / "images").rename(root / "photos")
    assert looks_like_llff(root)
    capture = read_llff_capture(root, LLFFOptions(images_path="photos"))
    assert capture.frames[0].image_path == root / "photos" / "IMG_10.png"
    with pytest.raises(NerfkitError, match=re.escape(f"The images folder {root / 'images'} of the LLFF dataset")):
        read_llff_capture(root, LLFFOptions())


def test_looks_like_llff(tmp_path: Path) -> None:
    assert not looks_like_llff(tmp_path)
    np.save(tmp_path / "poses_bounds.npy", llff_rows(POSES))
    assert looks_like_llff(tmp_path)


def test_image_count_must_match_the_poses(scene: Path) -> None:
    (scene / "images" / "IMG_3.jpeg").unlink()
    path = scene / "poses_bounds.npy"
    with pytest.raises(NerfkitError, match=re.escape(f"{path} holds 3 poses but {scene / 'images'} holds 2 images")):
        read_llff_capture(scene, LLFFOptions())


def test_image_of_another_shape(tmp_path: Path) -> None:
    root = write_llff(tmp_path, llff_rows(POSES), (HEIGHT, WIDTH))  # portrait images, landscape poses
    with pytest.raises(NerfkitError, match=r"IMG_10\.png is 48x64 pixels, which is not 64x48 \(its size in .*poses"):
        read_llff_capture(root, LLFFOptions())


def _rows_with(row: int, column: int, value: float) -> np.ndarray:
    rows = llff_rows(POSES)
    rows[row, column] = value
    return rows


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"near far\n1 2\n", "is not a readable NumPy .npy file: the magic string is not correct"),
        (np.zeros((3, 15)), r"holds an array of shape \(3, 15\) and type float64; expected \(num_images, 17\)"),
        (np.zeros((0, 17)), r"holds an array of shape \(0, 17\)"),
        (np.zeros(17), r"holds an array of shape \(17,\)"),
        (np.array([["a"] * 17]), r"holds an array of shape \(1, 17\) and type <U1"),
        (np.array([{"pose": 1}], dtype=object), "Object arrays cannot be loaded"),
        (_rows_with(1, 3, np.nan), r"\(shape \(3, 17\)\): row 1 is \[.*nan"),
        (_rows_with(2, 14, -50.0), r"\(shape \(3, 17\)\): row 2 is .* not positive"),
        (_rows_with(0, 15, 0.0), r"\(shape \(3, 17\)\): row 0 is .* not 0 < near < far"),
        (_rows_with(0, 16, 0.1), r"\(shape \(3, 17\)\): row 0 is .* not 0 < near < far"),
    ],
    ids=["text", "columns", "empty", "1d", "strings", "pickle", "nan", "focal", "near", "far"],
)
def test_malformed_poses_bounds(tmp_path: Path, content: bytes | np.ndarray, message: str) -> None:
    root = write_llff(tmp_path, llff_rows(POSES))
    path = root / "poses_bounds.npy"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.save(path, content)
    with pytest.raises(NerfkitError, match=re.escape(str(path)) + ".*" + message) as error:
        read_llff_capture(root, LLFFOptions())
    assert "imgs2poses" in str(error.value)


def test_truncated_poses_bounds(tmp_path: Path) -> None:
    root = write_llff(tmp_path, llff_rows(POSES))
    path = root / "poses_bounds.npy"
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(NerfkitError, match=re.escape(f"{path} is not a readable NumPy .npy file: Failed to read all")):
        read_llff_capture(root, LLFFOptions())
