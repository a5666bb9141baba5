"""COLMAP sparse models (cameras, images, points3D) read and written in binary or text form, without pycolmap.

COLMAP is where real captures get their poses; this module turns its files into plain numpy and into nerfkit's
conventions (OpenGL camera axes, Nerfstudio camera model names), so dataparsers never touch the file formats.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from jaxtyping import Float, Int, UInt8

from nerfkit.errors import NerfkitError

BINARY_HINT = (
    "The file is damaged or was not written by COLMAP. Re-run COLMAP's mapper, or rewrite the model with "
    "`colmap model_converter --input_path IN --output_path OUT --output_type BIN`."
)
TEXT_HINT = (
    "Compare it with the format in the COLMAP docs (Output Format), or rewrite the model with "
    "`colmap model_converter --input_path IN --output_path OUT --output_type TXT`."
)
MODEL_DIR_CANDIDATES = ("sparse/0", "sparse", "colmap/sparse/0", ".")
"""Where, relative to a dataset folder, a COLMAP model is looked for, in order."""


@dataclass(frozen=True)
class CameraModel:
    """A COLMAP camera model: its id in the binary format, its parameter names, and its Nerfstudio name if supported."""

    name: str
    model_id: int
    param_names: tuple[str, ...]
    nerfstudio_name: str | None = None


CAMERA_MODELS: dict[str, CameraModel] = {
    model.name: model
    for model in (
        CameraModel("SIMPLE_PINHOLE", 0, ("f", "cx", "cy"), "PINHOLE"),
        CameraModel("PINHOLE", 1, ("fx", "fy", "cx", "cy"), "PINHOLE"),
        CameraModel("SIMPLE_RADIAL", 2, ("f", "cx", "cy", "k"), "OPENCV"),
        CameraModel("RADIAL", 3, ("f", "cx", "cy", "k1", "k2"), "OPENCV"),
        CameraModel("OPENCV", 4, ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2"), "OPENCV"),
        CameraModel("OPENCV_FISHEYE", 5, ("fx", "fy", "cx", "cy", "k1", "k2", "k3", "k4"), "OPENCV_FISHEYE"),
        CameraModel("FULL_OPENCV", 6, ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6")),
        CameraModel("FOV", 7, ("fx", "fy", "cx", "cy", "omega")),
        CameraModel("SIMPLE_RADIAL_FISHEYE", 8, ("f", "cx", "cy", "k")),
        CameraModel("RADIAL_FISHEYE", 9, ("f", "cx", "cy", "k1", "k2")),
        CameraModel(
            "THIN_PRISM_FISHEYE", 10, ("fx", "fy", "cx", "cy", "k1", "k2", "p1", "p2", "k3", "k4", "sx1", "sy1")
        ),
    )
}
_MODELS_BY_ID = {model.model_id: model for model in CAMERA_MODELS.values()}
SUPPORTED_MODELS = tuple(name for name, model in CAMERA_MODELS.items() if model.nerfstudio_name)
DISTORTION_NAMES = ("k1", "k2", "k3", "k4", "p1", "p2")


class _ValueRecord:
    """Equality by value, arrays included, so whole models compare with `==` (e.g. after a round trip)."""

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        pairs = ((getattr(self, f.name), getattr(other, f.name)) for f in fields(self))
        return all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b for a, b in pairs)


@dataclass(eq=False)
class ColmapCamera(_ValueRecord):
    """One camera's intrinsics; `params` are ordered as `CAMERA_MODELS[model].param_names`."""

    camera_id: int
    model: str
    width: int
    height: int
    params: Float[np.ndarray, " num_params"]

    def __post_init__(self) -> None:
        self.params = np.asarray(self.params, dtype=np.float64).reshape(-1)


@dataclass(eq=False)
class ColmapImage(_ValueRecord):
    """One registered image: its world-to-camera pose in OpenCV axes and its 2D keypoints."""

    image_id: int
    qvec: Float[np.ndarray, "4"]
    """World-to-camera rotation as a unit quaternion (w, x, y, z)."""
    tvec: Float[np.ndarray, "3"]
    """World-to-camera translation."""
    camera_id: int
    name: str
    """Image path relative to COLMAP's image folder."""
    xys: Float[np.ndarray, "num_points 2"]
    point3D_ids: Int[np.ndarray, " num_points"]
    """The 3D point each keypoint observes, -1 for none."""

    def __post_init__(self) -> None:
        self.qvec = np.asarray(self.qvec, dtype=np.float64).reshape(4)
        self.tvec = np.asarray(self.tvec, dtype=np.float64).reshape(3)
        self.xys = np.asarray(self.xys, dtype=np.float64).reshape(-1, 2)
        self.point3D_ids = np.asarray(self.point3D_ids, dtype=np.int64).reshape(-1)


@dataclass(eq=False)
class ColmapPoint3D(_ValueRecord):
    """One triangulated point and the (image, keypoint) pairs that observe it."""

    point3D_id: int
    xyz: Float[np.ndarray, "3"]
    rgb: UInt8[np.ndarray, "3"]
    error: float
    """Mean reprojection error in pixels."""
    image_ids: Int[np.ndarray, " track_length"]
    point2D_idxs: Int[np.ndarray, " track_length"]

    def __post_init__(self) -> None:
        self.xyz = np.asarray(self.xyz, dtype=np.float64).reshape(3)
        self.rgb = np.asarray(self.rgb, dtype=np.uint8).reshape(3)
        self.error = float(self.error)
        self.image_ids = np.asarray(self.image_ids, dtype=np.int64).reshape(-1)
        self.point2D_idxs = np.asarray(self.point2D_idxs, dtype=np.int64).reshape(-1)


@dataclass
class ColmapModel:
    """A sparse reconstruction, each record keyed by its id; field names match the file stems."""

    cameras: dict[int, ColmapCamera]
    images: dict[int, ColmapImage]
    points3D: dict[int, ColmapPoint3D]


_Record = TypeVar("_Record", ColmapCamera, ColmapImage, ColmapPoint3D)


def lookup_camera_model(key: int | str, where: str) -> CameraModel:
    """The model for a binary model id or a text model name; `where` locates the record in the error message."""
    model = _MODELS_BY_ID.get(key) if isinstance(key, int) else CAMERA_MODELS.get(key)
    if model is None:
        known = ", ".join(f"{m.name} ({m.model_id})" for m in CAMERA_MODELS.values())
        raise NerfkitError(f"{where}: unknown COLMAP camera model {key!r}.", f"COLMAP's models are {known}.")
    return model


def intrinsics(camera: ColmapCamera) -> dict[str, Any]:
    """Focal lengths, principal point and distortion in Nerfstudio's terms (distortion the model lacks is 0)."""
    model = lookup_camera_model(camera.model, f"camera {camera.camera_id}")
    if model.nerfstudio_name is None:
        raise NerfkitError(
            f"Camera {camera.camera_id} uses the COLMAP camera model {model.name}, which nerfkit does not support.",
            f"Supported models: {', '.join(SUPPORTED_MODELS)}. Re-run COLMAP's feature extractor with "
            "--ImageReader.camera_model OPENCV, or undistort the images with `colmap image_undistorter`.",
        )
    named = dict(zip(model.param_names, camera.params.tolist(), strict=True))
    if "f" in named:
        named["fx"] = named["fy"] = named.pop("f")
    if "k" in named:
        named["k1"] = named.pop("k")
    return {
        "camera_model": model.nerfstudio_name,
        **{name: named[name] for name in ("fx", "fy", "cx", "cy")},
        **{name: named.get(name, 0.0) for name in DISTORTION_NAMES},
    }


def qvec_to_rotation(qvec: Float[np.ndarray, "4"]) -> Float[np.ndarray, "3 3"]:
    """Rotation matrix of a (w, x, y, z) quaternion, normalised first since text files round it."""
    w, x, y, z = np.asarray(qvec, dtype=np.float64) / np.linalg.norm(qvec)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_to_qvec(rotation: Float[np.ndarray, "3 3"]) -> Float[np.ndarray, "4"]:
    """The (w, x, y, z) quaternion of a rotation, with w >= 0; built from its largest component for stability."""
    r = np.asarray(rotation, dtype=np.float64)
    diagonal_signs = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]])
    squares = (1 + diagonal_signs @ np.diag(r)) / 4
    largest = int(np.argmax(squares))
    # 4 * (w*x, w*y, w*z, x*y, x*z, y*z) from the off-diagonal entries.
    wx, wy, wz = r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]
    xy, xz, yz = r[0, 1] + r[1, 0], r[0, 2] + r[2, 0], r[1, 2] + r[2, 1]
    products = np.array([[0, wx, wy, wz], [wx, 0, xy, xz], [wy, xy, 0, yz], [wz, xz, yz, 0]])
    pivot = np.sqrt(squares[largest])
    qvec = products[largest] / (4 * pivot)
    qvec[largest] = pivot
    return -qvec if qvec[0] < 0 else qvec


_OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0])
"""Flips the camera's y and z axes: OpenCV (x right, y down, z forward) <-> OpenGL (x right, y up, z back)."""


def camera_to_world(image: ColmapImage) -> Float[np.ndarray, "4 4"]:
    """The image's camera-to-world pose in OpenGL axes, as nerfkit's `Cameras` expects."""
    world_to_camera = qvec_to_rotation(image.qvec)
    pose = np.eye(4)
    pose[:3, :3] = world_to_camera.T @ _OPENCV_TO_OPENGL
    pose[:3, 3] = -world_to_camera.T @ image.tvec
    return pose


def image_pose_from_camera_to_world(
    pose: Float[np.ndarray, "3 4"] | Float[np.ndarray, "4 4"],
) -> tuple[Float[np.ndarray, "4"], Float[np.ndarray, "3"]]:
    """COLMAP's (qvec, tvec) for an OpenGL camera-to-world pose: the inverse of `camera_to_world`."""
    pose = np.asarray(pose, dtype=np.float64)
    world_to_camera = (pose[:3, :3] @ _OPENCV_TO_OPENGL).T
    return rotation_to_qvec(world_to_camera), -world_to_camera @ pose[:3, 3]


class _BinaryReader:
    """Sequential little-endian reads that report a short or overlong file as a NerfkitError naming it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = path.read_bytes()
        self.offset = 0

    def _take(self, size: int, what: str) -> bytes:
        if self.offset + size > len(self.data):
            raise NerfkitError(
                f"{self.path} is truncated: it ends at byte {len(self.data)}, inside {what} starting at byte "
                f"{self.offset}.",
                BINARY_HINT,
            )
        self.offset += size
        return self.data[self.offset - size : self.offset]

    def values(self, fmt: str, what: str) -> tuple[Any, ...]:
        return struct.unpack("<" + fmt, self._take(struct.calcsize("<" + fmt), what))

    def array(self, dtype: np.dtype, count: int, what: str) -> np.ndarray:
        return np.frombuffer(self._take(dtype.itemsize * count, what), dtype=dtype)

    def string(self, what: str) -> str:
        end = self.data.find(b"\0", self.offset)
        raw = self._take((len(self.data) + 1 if end < 0 else end + 1) - self.offset, what)
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as error:
            raise NerfkitError(
                f"{self.path}: {what} at byte {self.offset - len(raw)} is not UTF-8.", BINARY_HINT
            ) from error

    def records(
        self, read_record: Callable[[_BinaryReader], _Record], key: Callable[[_Record], int]
    ) -> dict[int, _Record]:
        """A uint64 count, that many records, and nothing after them."""
        (count,) = self.values("Q", "the record count")
        records = [read_record(self) for _ in range(count)]
        if self.offset != len(self.data):
            raise NerfkitError(
                f"{self.path} has {len(self.data) - self.offset} unexpected bytes after its {count} records.",
                BINARY_HINT,
            )
        return {key(record): record for record in records}


_POINT2D = np.dtype([("xy", "<f8", (2,)), ("point3D_id", "<i8")])
_TRACK_ELEMENT = np.dtype([("image_id", "<u4"), ("point2D_idx", "<u4")])


def _read_camera_bin(reader: _BinaryReader) -> ColmapCamera:
    camera_id, model_id, width, height = reader.values("IiQQ", "a camera record")
    model = lookup_camera_model(model_id, f"{reader.path}, camera {camera_id}")
    params = reader.array(np.dtype("<f8"), len(model.param_names), f"camera {camera_id}'s parameters")
    return ColmapCamera(camera_id, model.name, width, height, params)


def _read_image_bin(reader: _BinaryReader) -> ColmapImage:
    image_id, *pose, camera_id = reader.values("I7dI", "an image record")
    name = reader.string(f"image {image_id}'s name")
    (count,) = reader.values("Q", f"image {image_id}'s keypoint count")
    points = reader.array(_POINT2D, count, f"image {image_id}'s keypoints")
    return ColmapImage(image_id, pose[:4], pose[4:], camera_id, name, points["xy"], points["point3D_id"])


def _read_point3d_bin(reader: _BinaryReader) -> ColmapPoint3D:
    point3d_id, *xyz_rgb, error, length = reader.values("Q3d3BdQ", "a 3D point record")
    track = reader.array(_TRACK_ELEMENT, length, f"3D point {point3d_id}'s track")
    return ColmapPoint3D(point3d_id, xyz_rgb[:3], xyz_rgb[3:], error, track["image_id"], track["point2D_idx"])


def _text_lines(path: Path) -> Iterator[tuple[str, str]]:
    """(where, line) for every line that is not a comment; `where` is 'path, line n' for error messages."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise NerfkitError(f"{path} is not UTF-8 text.", TEXT_HINT) from error
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.lstrip().startswith("#"):
            yield f"{path}, line {number}", line


def _expect_fields(ok: bool, where: str, layout: str, found: int) -> None:
    if not ok:
        raise NerfkitError(f"{where}: expected the fields {layout}, found {found} fields.", TEXT_HINT)


def _numbers(tokens: list[str], dtype: type, where: str, what: str) -> np.ndarray:
    try:
        return np.array(tokens, dtype=dtype)
    except (ValueError, OverflowError) as error:
        raise NerfkitError(f"{where}: {what} must be numbers, found {' '.join(tokens)!r}.", TEXT_HINT) from error


def _read_cameras_txt(path: Path) -> dict[int, ColmapCamera]:
    cameras = {}
    for where, line in _text_lines(path):
        if not (tokens := line.split()):
            continue
        layout = "CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]"
        _expect_fields(len(tokens) >= 4, where, layout, len(tokens))
        model = lookup_camera_model(tokens[1], where)
        _expect_fields(
            len(tokens) == 4 + len(model.param_names), where, f"{layout} with PARAMS {model.param_names}", len(tokens)
        )
        camera_id, width, height = _numbers([tokens[0], *tokens[2:4]], np.int64, where, "CAMERA_ID WIDTH HEIGHT")
        params = _numbers(tokens[4:], np.float64, where, "PARAMS")
        cameras[int(camera_id)] = ColmapCamera(int(camera_id), model.name, int(width), int(height), params)
    return cameras


def _read_images_txt(path: Path) -> dict[int, ColmapImage]:
    """Two lines per image; the keypoint line may be empty, so only the pose line skips blank lines."""
    images = {}
    lines = _text_lines(path)
    for where, line in lines:
        if not line.strip():
            continue
        tokens = line.split(maxsplit=9)
        _expect_fields(len(tokens) == 10, where, "IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME", len(tokens))
        image_id, camera_id = _numbers([tokens[0], tokens[8]], np.int64, where, "IMAGE_ID CAMERA_ID")
        pose = _numbers(tokens[1:8], np.float64, where, "QW QX QY QZ TX TY TZ")
        points_where, points_line = next(lines, (where, ""))
        points = points_line.split()
        _expect_fields(len(points) % 3 == 0, points_where, "POINTS2D[] as (X Y POINT3D_ID)", len(points))
        xys = _numbers(points, np.float64, points_where, "X Y POINT3D_ID").reshape(-1, 3)[:, :2]
        point3d_ids = _numbers(points[2::3], np.int64, points_where, "POINT3D_ID")
        images[int(image_id)] = ColmapImage(
            int(image_id), pose[:4], pose[4:], int(camera_id), tokens[9], xys, point3d_ids
        )
    return images


def _read_points3d_txt(path: Path) -> dict[int, ColmapPoint3D]:
    points = {}
    for where, line in _text_lines(path):
        if not (tokens := line.split()):
            continue
        layout = "POINT3D_ID X Y Z R G B ERROR TRACK[] as (IMAGE_ID POINT2D_IDX)"
        _expect_fields(len(tokens) >= 8 and len(tokens) % 2 == 0, where, layout, len(tokens))
        point3d_id = int(_numbers(tokens[:1], np.int64, where, "POINT3D_ID")[0])
        xyz, error = (
            _numbers(tokens[1:4], np.float64, where, "X Y Z"),
            _numbers(tokens[7:8], np.float64, where, "ERROR"),
        )
        rgb = _numbers(tokens[4:7], np.int64, where, "R G B")
        if not ((rgb >= 0) & (rgb <= 255)).all():
            raise NerfkitError(f"{where}: R G B must lie in 0..255, found {rgb.tolist()}.", TEXT_HINT)
        track = _numbers(tokens[8:], np.int64, where, "TRACK[]").reshape(-1, 2)
        points[point3d_id] = ColmapPoint3D(point3d_id, xyz, rgb, error[0], track[:, 0], track[:, 1])
    return points


def _write_binary(path: Path, records: dict[int, _Record], encode: Callable[[_Record], bytes]) -> None:
    path.write_bytes(struct.pack("<Q", len(records)) + b"".join(encode(record) for record in records.values()))


def _structured(dtype: np.dtype, **columns: np.ndarray) -> bytes:
    rows = np.empty(len(next(iter(columns.values()))), dtype=dtype)
    for name, column in columns.items():
        rows[name] = column
    return rows.tobytes()


def _encode_camera(camera: ColmapCamera) -> bytes:
    model_id = lookup_camera_model(camera.model, f"camera {camera.camera_id}").model_id
    header = struct.pack("<IiQQ", camera.camera_id, model_id, camera.width, camera.height)
    return header + camera.params.astype("<f8").tobytes()


def _encode_image(image: ColmapImage) -> bytes:
    header = struct.pack("<I7dI", image.image_id, *image.qvec, *image.tvec, image.camera_id)
    points = _structured(_POINT2D, xy=image.xys, point3D_id=image.point3D_ids)
    return header + image.name.encode("utf-8") + b"\0" + struct.pack("<Q", len(image.xys)) + points


def _encode_point3d(point: ColmapPoint3D) -> bytes:
    header = struct.pack("<Q3d3BdQ", point.point3D_id, *point.xyz, *point.rgb, point.error, len(point.image_ids))
    return header + _structured(_TRACK_ELEMENT, image_id=point.image_ids, point2D_idx=point.point2D_idxs)


def _token(value: Any) -> str:
    """Floats as their shortest exact repr, so text files round-trip bit for bit."""
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)


def _line(*values: Any) -> str:
    return " ".join(map(_token, values)) + "\n"


def _write_text(path: Path, header: str, records: dict[int, _Record], encode: Callable[[_Record], str]) -> None:
    path.write_text(f"# {header}\n# Number of records: {len(records)}\n" + "".join(map(encode, records.values())))


def _text_camera(camera: ColmapCamera) -> str:
    return _line(camera.camera_id, camera.model, camera.width, camera.height, *camera.params)


def _text_image(image: ColmapImage) -> str:
    pose = _line(image.image_id, *image.qvec, *image.tvec, image.camera_id, image.name)
    return pose + _line(*(value for (x, y), i in zip(image.xys, image.point3D_ids, strict=True) for value in (x, y, i)))


def _text_point3d(point: ColmapPoint3D) -> str:
    track = (value for pair in zip(point.image_ids, point.point2D_idxs, strict=True) for value in pair)
    return _line(point.point3D_id, *point.xyz, *point.rgb, point.error, *track)


_BINARY_READERS: dict[str, Callable[[Path], dict]] = {
    "cameras": lambda path: _BinaryReader(path).records(_read_camera_bin, lambda camera: camera.camera_id),
    "images": lambda path: _BinaryReader(path).records(_read_image_bin, lambda image: image.image_id),
    "points3D": lambda path: _BinaryReader(path).records(_read_point3d_bin, lambda point: point.point3D_id),
}
_TEXT_READERS: dict[str, Callable[[Path], dict]] = {
    "cameras": _read_cameras_txt,
    "images": _read_images_txt,
    "points3D": _read_points3d_txt,
}


def model_format(folder: Path) -> str | None:
    """'.bin' or '.txt' when the folder holds all three model files in that form (binary preferred), else None."""
    for suffix in (".bin", ".txt"):
        if all((folder / f"{name}{suffix}").is_file() for name in _BINARY_READERS):
            return suffix
    return None


def read_model(path: Path) -> ColmapModel:
    """The model in a folder holding cameras, images and points3D as .bin (preferred) or .txt."""
    suffix = model_format(path)
    if suffix is None:
        raise NerfkitError(
            f"{path} holds no complete COLMAP model: cameras, images and points3D, all .bin or all .txt.",
            "Point at the folder COLMAP's mapper wrote (usually sparse/0).",
        )
    readers = _BINARY_READERS if suffix == ".bin" else _TEXT_READERS
    return ColmapModel(**{name: read(path / f"{name}{suffix}") for name, read in readers.items()})


def write_model(model: ColmapModel, path: Path, binary: bool) -> None:
    """Write the three model files into `path` (created if needed), in COLMAP's binary or text form."""
    path.mkdir(parents=True, exist_ok=True)
    if binary:
        _write_binary(path / "cameras.bin", model.cameras, _encode_camera)
        _write_binary(path / "images.bin", model.images, _encode_image)
        _write_binary(path / "points3D.bin", model.points3D, _encode_point3d)
    else:
        _write_text(path / "cameras.txt", "CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]", model.cameras, _text_camera)
        images_header = "IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME\n# POINTS2D[] as (X Y POINT3D_ID)"
        _write_text(path / "images.txt", images_header, model.images, _text_image)
        points_header = "POINT3D_ID X Y Z R G B ERROR TRACK[] as (IMAGE_ID POINT2D_IDX)"
        _write_text(path / "points3D.txt", points_header, model.points3D, _text_point3d)


def find_model_dir(data: Path) -> Path:
    """The first of `MODEL_DIR_CANDIDATES` under `data` that holds a complete model."""
    candidates = [data / candidate for candidate in MODEL_DIR_CANDIDATES]
    for candidate in candidates:
        if model_format(candidate) is not None:
            return candidate
    raise NerfkitError(
        f"No COLMAP model (cameras, images, points3D as .bin or .txt) found; looked in "
        f"{', '.join(str(candidate) for candidate in candidates)}.",
        "Run COLMAP (feature extraction, matching, mapper) on the images, or point --data at the folder above "
        "sparse/0.",
    )
