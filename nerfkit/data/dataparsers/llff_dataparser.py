"""LLFF datasets (NeRF's forward-facing scenes, Mip-NeRF 360): `poses_bounds.npy` beside an `images/` folder.

Row i of poses_bounds.npy belongs to the i-th image by file name. It holds a 3x5 matrix, flattened row by row, then
the near and far depth of the scene points that camera sees. The matrix's first four columns are the camera-to-world
pose with LLFF's camera axes (down, right, backwards); its last column is (height, width, focal) in pixels of the
images COLMAP ran on, which need not be the size of the images now in the folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from jaxtyping import Float

from nerfkit.configs.data import LLFFOptions
from nerfkit.data.dataparsers.capture import Capture, CaptureFrame
from nerfkit.data.datasets import open_image
from nerfkit.errors import NerfkitError

POSES_BOUNDS = "poses_bounds.npy"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""Files of the images folder that count as images, as in LLFF's own loader (case-insensitive)."""
FORMAT_HINT = (
    "LLFF's poses_bounds.npy is a float array of shape (num_images, 17): per image a 3x5 [pose | (h, w, focal)] "
    "matrix flattened row by row, then near and far. Write it again with LLFF's imgs2poses.py."
)


def looks_like_llff(data: Path) -> bool:
    return (data / POSES_BOUNDS).is_file()


def load_poses_bounds(path: Path) -> Float[np.ndarray, "num_images 17"]:
    """The checked array: a .npy of finite numbers, 17 per image, positive sizes and focal, 0 < near < far."""
    try:
        with path.open("rb") as file:
            array = np.lib.format.read_array(file, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise NerfkitError(f"{path} is not a readable NumPy .npy file: {error}", FORMAT_HINT) from error
    if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != 17 or array.dtype.kind not in "iuf":
        raise NerfkitError(
            f"{path} holds an array of shape {array.shape} and type {array.dtype}; expected (num_images, 17) floats.",
            FORMAT_HINT,
        )
    array = array.astype(np.float64)
    hwf, bounds = array[:, 4:15:5], array[:, 15:]
    bad_rows = (
        ~np.isfinite(array).all(axis=1) | (hwf <= 0).any(axis=1) | (bounds[:, 0] <= 0) | (bounds[:, 1] <= bounds[:, 0])
    )
    if bad_rows.any():
        row = int(np.argmax(bad_rows))
        raise NerfkitError(
            f"{path} (shape {array.shape}): row {row} is {array[row].tolist()}, which has a value that is not finite, "
            "a height, width or focal that is not positive, or bounds that are not 0 < near < far.",
            FORMAT_HINT,
        )
    return array


def llff_to_opengl(poses: Float[np.ndarray, "num_images 3 4"]) -> Float[np.ndarray, "num_images 4 4"]:
    """4x4 camera-to-world poses in OpenGL axes (right, up, backwards) from LLFF's (down, right, backwards)."""
    down, right, backwards, position = np.moveaxis(poses, -1, 0)
    opengl = np.tile(np.eye(4), (len(poses), 1, 1))
    opengl[:, :3, :] = np.stack([right, -down, backwards, position], axis=-1)
    return opengl


def _image_files(folder: Path, count: int, poses_path: Path) -> list[Path]:
    if not folder.is_dir():
        raise NerfkitError(
            f"The images folder {folder} of the LLFF dataset {poses_path.parent} does not exist.",
            "Put the images beside poses_bounds.npy in images/, or set the LLFF option images_path.",
        )
    files = sorted(
        (path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")),
        key=lambda path: path.name,
    )
    if len(files) != count:
        raise NerfkitError(
            f"{poses_path} holds {count} poses but {folder} holds {len(files)} images ({', '.join(IMAGE_SUFFIXES)}).",
            "The poses belong to the images sorted by name, one each: put back the images COLMAP posed and remove "
            "any others, or write poses_bounds.npy again with LLFF's imgs2poses.py.",
        )
    return files


def _frame(
    image_path: Path, pose: Float[np.ndarray, "4 4"], row: Float[np.ndarray, "17"], poses_path: Path
) -> CaptureFrame:
    """The frame with its intrinsics scaled from the size poses_bounds.npy gives to the image's actual size."""
    height, width, focal = row[4:15:5]
    with open_image(image_path) as image:
        actual_width, actual_height = image.size
    scale_x, scale_y = actual_width / width, actual_height / height
    if abs(height * scale_x - actual_height) > 1:
        raise NerfkitError(
            f"{image_path} is {actual_width}x{actual_height} pixels, which is not {width:g}x{height:g} (its size in "
            f"{poses_path}) scaled evenly.",
            "Use the images the poses were computed from (or copies resized without cropping or rotating).",
        )
    return CaptureFrame(
        image_path=image_path,
        camera_to_world=pose,
        fx=float(focal * scale_x),
        fy=float(focal * scale_y),
        cx=actual_width / 2,
        cy=actual_height / 2,
        width=actual_width,
        height=actual_height,
        near_far=(float(row[15]), float(row[16])),
    )


def read_llff_capture(data: Path, options: LLFFOptions) -> Capture:
    """One pinhole frame per image, principal point at the centre, and LLFF's per-image depth bounds."""
    path = data / POSES_BOUNDS
    rows = load_poses_bounds(path)
    poses = llff_to_opengl(rows[:, :15].reshape(-1, 3, 5)[:, :, :4])
    images = _image_files(data / options.images_path, len(rows), path)
    frames = [_frame(image, pose, row, path) for image, pose, row in zip(images, poses, rows, strict=True)]
    return Capture(frames=frames, camera_model="PINHOLE", source=path)
