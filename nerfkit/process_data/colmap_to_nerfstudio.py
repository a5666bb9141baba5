"""A COLMAP model as a Nerfstudio dataset: transforms.json (intrinsics, OpenGL camera-to-world poses) and the sparse
points as a PLY.

Poses stay in COLMAP's world coordinates (`applied_transform` is the identity), converted by the same
`colmap_model` functions the COLMAP dataparser uses, so both readings of one model agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import Float

from nerfkit.data.colmap_model import ColmapCamera, ColmapModel, camera_to_world, intrinsics
from nerfkit.errors import NerfkitError
from nerfkit.exporters.files import write_ply
from nerfkit.utils.files import write_json

TRANSFORMS_NAME = "transforms.json"
PLY_NAME = "sparse_pc.ply"
DISTORTION_KEYS: dict[str, tuple[str, ...]] = {
    "PINHOLE": (),
    "OPENCV": ("k1", "k2", "p1", "p2"),
    "OPENCV_FISHEYE": ("k1", "k2", "k3", "k4"),
}
"""The distortion coefficients each Nerfstudio camera model uses; others are omitted rather than written as 0."""


def camera_fields(camera: ColmapCamera) -> tuple[str, dict[str, float]]:
    """The camera's Nerfstudio model name, and its fl_x, fl_y, cx, cy, w, h and distortion fields."""
    values = intrinsics(camera)
    model = values["camera_model"]
    fields = {"fl_x": values["fx"], "fl_y": values["fy"], "cx": values["cx"], "cy": values["cy"]}
    fields |= {"w": camera.width, "h": camera.height} | {key: values[key] for key in DISTORTION_KEYS[model]}
    return model, fields


def transforms_from_model(model: ColmapModel, images_folder: str = "images") -> dict[str, Any]:
    """transforms.json's content: one frame per registered image, in name order, under `images_folder`.

    Intrinsics are global when every image shares one camera (as kit-process-data's COLMAP run makes them), else
    per frame. Nerfstudio has one camera model per dataset, so cameras of different models are refused."""
    if not model.images:
        raise NerfkitError("The COLMAP model has no registered images.", "Run COLMAP again on the images.")
    used = {image.camera_id for image in model.images.values()}
    missing = used - model.cameras.keys()
    if missing:
        raise NerfkitError(
            f"The COLMAP model's images use camera {min(missing)}, which its cameras file lacks.",
            "The model is incomplete; run COLMAP's mapper again.",
        )
    cameras = {camera_id: camera_fields(model.cameras[camera_id]) for camera_id in sorted(used)}
    model_names = sorted({name for name, _ in cameras.values()})
    if len(model_names) > 1:
        raise NerfkitError(
            f"The COLMAP model mixes camera models ({', '.join(model_names)}); a Nerfstudio dataset has one.",
            "Run COLMAP with one camera model for every image (kit-process-data's --camera-type).",
        )
    shared = len(cameras) == 1
    frames = []
    for image in sorted(model.images.values(), key=lambda image: image.name):
        frame = {
            "file_path": (Path(images_folder) / image.name).as_posix(),
            "transform_matrix": camera_to_world(image).tolist(),
            "colmap_im_id": image.image_id,
        }
        frames.append(frame if shared else frame | cameras[image.camera_id][1])
    return {
        "camera_model": model_names[0],
        **(next(iter(cameras.values()))[1] if shared else {}),
        "frames": frames,
        "applied_transform": np.eye(4)[:3].tolist(),
        "ply_file_path": PLY_NAME,
    }


def sparse_points(model: ColmapModel) -> tuple[Float[np.ndarray, "num 3"], Float[np.ndarray, "num 3"]]:
    """The model's 3D points and their colours in [0, 1], in point id order."""
    points = [model.points3D[point_id] for point_id in sorted(model.points3D)]
    positions = np.array([point.xyz for point in points], dtype=np.float64).reshape(-1, 3)
    colours = np.array([point.rgb for point in points], dtype=np.float64).reshape(-1, 3) / 255.0
    return positions, colours


def write_nerfstudio_files(model: ColmapModel, output_dir: Path) -> dict[str, Any]:
    """Writes sparse_pc.ply and then transforms.json (which names it) into `output_dir`, each whole or not at all;
    returns transforms.json's content."""
    transforms = transforms_from_model(model)
    write_ply(output_dir / PLY_NAME, *sparse_points(model))
    write_json(output_dir / TRANSFORMS_NAME, transforms)
    return transforms
