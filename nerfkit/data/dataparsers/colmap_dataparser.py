"""COLMAP datasets: a sparse model (cameras, images, points3D) beside the images it registered.

nerfkit's own reader (`colmap_model`) always reads the model first, even when pycolmap is chosen, because pycolmap
4.2.1 does not check binary files: a truncated or corrupted `points3D.bin` is read as garbage without complaint, ends
in an unrelated error ("Image with ID 0 does not exist", `std::bad_alloc`), or makes it allocate and fill gigabytes
for a corrupted count. nerfkit's reader names the broken file and byte instead. pycolmap then adds COLMAP's own
consistency checks (e.g. that each 3D point's track and the images' keypoints agree), which nerfkit's reader skips.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from jaxtyping import Float, UInt8

from nerfkit.cameras.distortion import CameraModel
from nerfkit.configs.data import ColmapOptions, ColmapReader
from nerfkit.data.colmap_model import (
    DISTORTION_NAMES,
    MODEL_DIR_CANDIDATES,
    ColmapCamera,
    ColmapImage,
    ColmapModel,
    ColmapPoint3D,
    camera_to_world,
    find_model_dir,
    intrinsics,
    model_format,
    read_model,
)
from nerfkit.data.dataparsers.capture import Capture, CaptureFrame
from nerfkit.errors import NerfkitError


def looks_like_colmap(data: Path) -> bool:
    """Whether one of the usual model folders under `data` holds a complete model."""
    return any(model_format(data / candidate) is not None for candidate in MODEL_DIR_CANDIDATES)


def _pycolmap_module(reader: ColmapReader) -> ModuleType | None:
    """pycolmap when the setting allows it and it is installed; None means nerfkit's reader."""
    if reader == "nerfkit":
        return None
    try:
        import pycolmap
    except ImportError as error:
        if reader == "pycolmap":
            raise NerfkitError(
                "The COLMAP reader is set to pycolmap, which is not installed.",
                "Install it with `pip install nerfkit[colmap]`, or set the COLMAP reader option to nerfkit or auto.",
            ) from error
        return None
    return pycolmap


def _read_with_pycolmap(pycolmap: ModuleType, folder: Path) -> ColmapModel:
    """The model as pycolmap reads it, as nerfkit's records but without keypoints and tracks: a capture needs
    neither, and copying them one point at a time through the bindings is slow on real models."""
    try:
        reconstruction = pycolmap.Reconstruction(folder)
    except (ValueError, IndexError, RuntimeError) as error:
        raise NerfkitError(
            f"pycolmap cannot read the COLMAP model in {folder}: {error}",
            "The files are well-formed but disagree with each other (which nerfkit's own reader does not check). "
            "Re-export the model with COLMAP, or set the COLMAP reader option to nerfkit.",
        ) from error
    cameras = {
        camera_id: ColmapCamera(camera_id, camera.model.name, camera.width, camera.height, camera.params)
        for camera_id, camera in reconstruction.cameras.items()
    }
    images = {image_id: _image_from_pycolmap(image_id, image) for image_id, image in reconstruction.images.items()}
    points = {
        point_id: ColmapPoint3D(point_id, point.xyz, point.color, point.error, [], [])
        for point_id, point in reconstruction.points3D.items()
    }
    return ColmapModel(cameras, images, points)


def _image_from_pycolmap(image_id: int, image: Any) -> ColmapImage:
    pose = image.cam_from_world()
    x, y, z, w = pose.rotation.quat  # Eigen's order; COLMAP's files and nerfkit put w first.
    return ColmapImage(image_id, [w, x, y, z], pose.translation, image.camera_id, image.name, np.zeros((0, 2)), [])


def _shared_camera_model(
    cameras: dict[int, ColmapCamera], found: dict[int, dict[str, Any]], folder: Path
) -> CameraModel:
    """The one lens model of all cameras: PINHOLE cameras join OPENCV ones (`intrinsics` gives them zero distortion),
    but a fisheye cannot stand in for a pinhole or radial-tangential lens, nor the other way round."""
    models = {values["camera_model"] for values in found.values()}
    if models == {"PINHOLE", "OPENCV"}:
        return "OPENCV"
    if len(models) == 1:
        return models.pop()
    used = ", ".join(f"camera {camera_id} is {camera.model}" for camera_id, camera in cameras.items())
    raise NerfkitError(
        f"The COLMAP model in {folder} mixes fisheye and non-fisheye lenses ({used}); nerfkit needs one lens model.",
        "Re-run COLMAP with one --ImageReader.camera_model for all images, or undistort them with "
        "`colmap image_undistorter`.",
    )


def _used_cameras(model: ColmapModel, images: list[ColmapImage], folder: Path) -> dict[int, ColmapCamera]:
    """The cameras the images use (unused ones may have any model), by id."""
    for image in images:
        if image.camera_id not in model.cameras:
            raise NerfkitError(
                f"Image {image.image_id} ({image.name}) of the COLMAP model in {folder} uses camera "
                f"{image.camera_id}, which the model's cameras file lacks.",
                "Re-export the model with COLMAP.",
            )
    return {camera_id: model.cameras[camera_id] for camera_id in sorted({image.camera_id for image in images})}


def _camera_intrinsics(camera: ColmapCamera, folder: Path) -> dict[str, Any]:
    """`intrinsics`, with its error located in the model folder."""
    try:
        return intrinsics(camera)
    except NerfkitError as error:
        raise NerfkitError(f"{folder}: {error.message}", error.hint) from error


def _existing_images(images: list[ColmapImage], images_folder: Path, folder: Path) -> list[Path]:
    """The images' files; all must exist, and the error counts the missing ones to tell a wrong folder from a gap."""
    paths = [images_folder / image.name for image in images]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        raise NerfkitError(
            f"{len(missing)} of the {len(paths)} images the COLMAP model in {folder} registers are not in "
            f"{images_folder}; the first is {missing[0]}.",
            "Put the images COLMAP ran on there (named as in the model), or set the COLMAP option images_path "
            "(relative to --data) to the folder that holds them.",
        )
    return paths


def _points(
    model: ColmapModel,
) -> tuple[Float[np.ndarray, "num_points 3"], UInt8[np.ndarray, "num_points 3"]]:
    """Positions and colours of the 3D points, by point id."""
    points = [model.points3D[point_id] for point_id in sorted(model.points3D)]
    xyz = np.array([point.xyz for point in points], dtype=np.float64).reshape(-1, 3)
    rgb = np.array([point.rgb for point in points], dtype=np.uint8).reshape(-1, 3)
    return xyz, rgb


def read_colmap_capture(data: Path, options: ColmapOptions) -> Capture:
    """Every image the model registered, by name, with its camera and pose, and the sparse points."""
    folder = find_model_dir(data) if options.model_path is None else data / options.model_path
    model = read_model(folder)
    pycolmap = _pycolmap_module(options.reader)
    if pycolmap is not None:
        model = _read_with_pycolmap(pycolmap, folder)
    images = sorted(model.images.values(), key=lambda image: image.name)
    if not images:
        raise NerfkitError(
            f"The COLMAP model in {folder} registers no images.", "Re-run COLMAP's mapper; it found no poses."
        )
    cameras = _used_cameras(model, images, folder)
    found = {camera_id: _camera_intrinsics(camera, folder) for camera_id, camera in cameras.items()}
    camera_model = _shared_camera_model(cameras, found, folder)
    paths = _existing_images(images, data / options.images_path, folder)
    frames = []
    for image, path in zip(images, paths, strict=True):
        camera, values = cameras[image.camera_id], found[image.camera_id]
        frames.append(
            CaptureFrame(
                image_path=path,
                camera_to_world=camera_to_world(image),
                **{name: values[name] for name in ("fx", "fy", "cx", "cy")},
                width=camera.width,
                height=camera.height,
                distortion=tuple(values[name] for name in DISTORTION_NAMES),  # type: ignore[arg-type]
            )
        )
    points3d, points3d_rgb = _points(model) if options.load_3d_points else (None, None)
    return Capture(
        frames=frames,
        camera_model=camera_model,
        source=folder,
        points3d=points3d,
        points3d_rgb=points3d_rgb,
        metadata={"colmap_model": folder, "reader": "nerfkit" if pycolmap is None else "pycolmap"},
    )
