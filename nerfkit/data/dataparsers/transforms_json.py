"""Reading `transforms*.json` files, shared by the formats built on them (Blender, Nerfstudio).

Every check raises NerfkitError naming the file and the field, so a broken dataset can be fixed without a debugger.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from nerfkit.errors import NerfkitError


def is_number(value: Any) -> bool:
    """A finite JSON number; bool is excluded although Python counts it as an int."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def load_json_object(path: Path, format_hint: str) -> dict[str, Any]:
    """The JSON object in `path`; `format_hint` tells the user what the format expects."""
    if not path.is_file():
        raise NerfkitError(f"Transforms file {path} not found.", format_hint + " Check --data and the split.")
    try:
        meta = json.loads(path.read_bytes())
    except json.JSONDecodeError as error:
        raise NerfkitError(
            f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}.",
            "Fix the file, or export it again.",
        ) from error
    except UnicodeDecodeError as error:
        raise NerfkitError(f"{path} is not valid JSON: it is not UTF-8 text.", format_hint) from error
    except OSError as error:
        raise NerfkitError(f"{path} cannot be read: {error.strerror}.", "Check the file's permissions.") from error
    if not isinstance(meta, dict):
        raise NerfkitError(f"{path}: the top level is a {type(meta).__name__}, not an object.", format_hint)
    return meta


def frame_list(meta: dict[str, Any], path: Path, format_hint: str) -> list[Any]:
    """The non-empty `frames` list of a transforms file."""
    if "frames" not in meta:
        raise NerfkitError(f"{path} lacks the field 'frames'.", format_hint)
    if not isinstance(meta["frames"], list) or not meta["frames"]:
        raise NerfkitError(f"{path}: 'frames' is empty or not a list.", "List at least one frame in 'frames'.")
    return meta["frames"]


def frame_file_path(frame: Any, index: int, transforms_path: Path) -> str:
    """The frame's `file_path` string, relative to the dataset folder."""
    if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
        raise NerfkitError(
            f"{transforms_path}: frames[{index}].file_path is missing or not a string.",
            "Each frame needs a file_path relative to the dataset folder, e.g. ./train/r_0.",
        )
    return frame["file_path"]


def existing_image(path: Path, index: int, transforms_path: Path) -> Path:
    """`path` if it is a file; the error names the frame that points at it."""
    if not path.is_file():
        raise NerfkitError(
            f"Image {path}, named by frames[{index}].file_path in {transforms_path}, not found.",
            "Restore the image, or remove its frame from the transforms file.",
        )
    return path


def frame_image_path(data: Path, frame: Any, index: int, transforms_path: Path) -> Path:
    """The existing image a frame names; a name without extension means PNG, as in the original Blender format."""
    path = data / frame_file_path(frame, index, transforms_path)
    if not path.suffix:
        path = path.with_suffix(".png")
    return existing_image(path, index, transforms_path)


NPY_MAGIC = b"\x93NUMPY"
"""The first bytes of every .npy file."""
DEPTH_HINT = "Restore the depth map, or remove depth_file_path from the frame (nerfkit does not train on depth)."


def _depth_map_problem(path: Path) -> str | None:
    """Why a depth map (a .npy array or an image) cannot be read, from its header and size; None when it can."""
    try:
        if path.suffix != ".npy":
            with Image.open(path) as image:
                image.verify()
            return None
        with path.open("rb") as file:
            if file.read(len(NPY_MAGIC)) != NPY_MAGIC:
                return "it is not a NumPy .npy file"
        depth = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, SyntaxError) as error:
        return str(error).rstrip(".")
    if depth.ndim not in (2, 3) or (depth.ndim == 3 and depth.shape[2] != 1) or depth.dtype.kind not in "uif":
        return f"it holds a {depth.dtype} array of shape {depth.shape}, not a height x width map"
    return None


def check_depth_file(data: Path, frame: dict[str, Any], index: int, transforms_path: Path) -> None:
    """A frame's `depth_file_path`, when it has one, must name a readable depth map: nerfkit trains on none, but a
    missing or damaged one means a damaged dataset, which is refused rather than silently used."""
    name = frame.get("depth_file_path")
    if name is None:
        return
    where = f"frames[{index}].depth_file_path in {transforms_path}"
    if not isinstance(name, str):
        raise NerfkitError(f"{where} is {name!r}, not a file path.", DEPTH_HINT)
    path = data / name
    if not path.is_file():
        raise NerfkitError(f"Depth map {path}, named by {where}, not found.", DEPTH_HINT)
    problem = _depth_map_problem(path)
    if problem is not None:
        raise NerfkitError(f"Depth map {path}, named by {where}, cannot be read: {problem}.", DEPTH_HINT)


def frame_pose(frame: dict[str, Any], index: int, transforms_path: Path) -> list[list[float]]:
    """The frame's 4x4 camera-to-world `transform_matrix` (OpenGL convention)."""
    matrix = frame.get("transform_matrix")
    is_4x4 = (
        isinstance(matrix, list)
        and len(matrix) == 4
        and all(isinstance(row, list) and len(row) == 4 and all(is_number(v) for v in row) for row in matrix)
    )
    if not is_4x4:
        raise NerfkitError(
            f"{transforms_path}: frames[{index}].transform_matrix is missing or not a 4x4 matrix of numbers.",
            "Each frame needs its 4x4 camera-to-world matrix (OpenGL convention) as a list of four rows.",
        )
    return matrix
