"""The dataparser for every supported format: detect the format, read it, normalise the scene, split it.

Formats differ only in their files; a reader turns them into a `Capture`. What a user tunes (orientation, centring,
scaling, the eval split, downscaling) is one set of options applied the same way to every format, with per-format
defaults where the formats really differ (Blender scenes are already centred and scaled; captures are not).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from nerfkit.cameras.cameras import Cameras
from nerfkit.configs.data import SceneDataParserConfig, Split
from nerfkit.data.dataparsers.base_dataparser import DataParser, DataparserOutputs
from nerfkit.data.dataparsers.blender_dataparser import looks_like_blender, read_blender_capture
from nerfkit.data.dataparsers.capture import Capture, CaptureFrame
from nerfkit.data.dataparsers.colmap_dataparser import looks_like_colmap, read_colmap_capture
from nerfkit.data.dataparsers.llff_dataparser import looks_like_llff, read_llff_capture
from nerfkit.data.dataparsers.nerfstudio_dataparser import looks_like_nerfstudio, read_nerfstudio_capture
from nerfkit.data.dataparsers.scene_normalisation import (
    Centring,
    Orientation,
    Scaling,
    apply_to_points,
    apply_to_poses,
    normalisation_transform,
    scale_to_box,
)
from nerfkit.data.dataparsers.splits import split_indices
from nerfkit.data.datasets import open_image
from nerfkit.data.scene_box import SceneBox
from nerfkit.errors import NerfkitError
from nerfkit.utils.files import check_data_folder

FormatName = Literal["blender", "nerfstudio", "colmap", "llff"]


@dataclass(frozen=True)
class FormatDefaults:
    """Settings that depend on the format when the config leaves them on auto."""

    orientation: Orientation
    centring: Centring
    scaling: Scaling
    scene_scale: float
    near_plane: float
    far_plane: float | None
    """None: just past the farthest corner of the scene box seen from the farthest camera."""


BOUNDED_SYNTHETIC = FormatDefaults("none", "none", "none", scene_scale=1.5, near_plane=2.0, far_plane=6.0)
"""Blender scenes: centred at the origin, cameras 4 units out, the object within 1.5."""
CAPTURE = FormatDefaults("up", "poses", "cameras", scene_scale=1.0, near_plane=0.05, far_plane=None)
"""Real captures: arbitrary frame and units, handheld cameras come close to the subject."""


@dataclass(frozen=True)
class DatasetFormat:
    """How to recognise a format in a folder and read it."""

    looked_for: str
    """What detection checks, for the error when nothing matches."""
    detect: Callable[[Path], bool]
    read: Callable[[Path, SceneDataParserConfig], Capture]
    defaults: FormatDefaults


FORMATS: dict[FormatName, DatasetFormat] = {
    "blender": DatasetFormat(
        "transforms_train.json, transforms_val.json or transforms_test.json (Blender)",
        looks_like_blender,
        lambda data, _: read_blender_capture(data),
        BOUNDED_SYNTHETIC,
    ),
    "nerfstudio": DatasetFormat(
        "transforms.json (Nerfstudio)", looks_like_nerfstudio, lambda data, _: read_nerfstudio_capture(data), CAPTURE
    ),
    "colmap": DatasetFormat(
        "sparse/0/{cameras,images,points3D}.{bin,txt} (COLMAP)",
        looks_like_colmap,
        lambda data, config: read_colmap_capture(data, config.colmap),
        CAPTURE,
    ),
    "llff": DatasetFormat(
        "poses_bounds.npy (LLFF)", looks_like_llff, lambda data, config: read_llff_capture(data, config.llff), CAPTURE
    ),
}
"""In detection order: a Nerfstudio dataset made from COLMAP often keeps its sparse/0 beside transforms.json."""


def detect_format(data: Path) -> FormatName:
    """The first format whose files are in `data`."""
    for name, dataset_format in FORMATS.items():
        if dataset_format.detect(data):
            return name
    looked_for = "; ".join(dataset_format.looked_for for dataset_format in FORMATS.values())
    raise NerfkitError(
        f"{data} holds no dataset nerfkit recognises; looked for {looked_for}.",
        "Point --data at the dataset folder, or make one from photos or a video with kit-process-data.",
    )


@dataclass(frozen=True)
class NormalisedScene:
    """A capture moved into nerfkit's frame, shared by all splits."""

    capture: Capture
    format: FormatName
    detected: bool
    poses: np.ndarray
    """Normalised camera-to-world poses, (num_frames, 4, 4)."""
    transform: np.ndarray
    """Capture to normalised frame: x' = scale * (R x + t), [R | t] of shape (3, 4)."""
    scale: float
    scene_scale: float
    near_plane: float
    far_plane: float


def _far_plane(poses: np.ndarray, scene_scale: float) -> float:
    """Far enough that a ray from the farthest camera crosses the whole scene box."""
    farthest_camera = float(np.linalg.norm(poses[:, :3, 3], axis=-1).max())
    return farthest_camera + math.sqrt(3) * scene_scale


def _near_far_from_bounds(frames: list[CaptureFrame], scale: float) -> tuple[float, float] | None:
    """Planes bracketing the per-camera depth bounds some formats store (LLFF), with a margin."""
    bounds = [frame.near_far for frame in frames if frame.near_far is not None]
    if len(bounds) != len(frames):
        return None
    return 0.9 * scale * min(near for near, _ in bounds), 1.1 * scale * max(far for _, far in bounds)


def normalise_scene(config: SceneDataParserConfig, data: Path) -> NormalisedScene:
    """Reads the dataset in `data` and moves it into nerfkit's frame as the config asks."""
    name = detect_format(data) if config.format == "auto" else config.format
    dataset_format = FORMATS[name]
    capture = dataset_format.read(data, config)
    defaults = dataset_format.defaults

    orientation = defaults.orientation if config.orientation_method == "auto" else config.orientation_method
    centring = defaults.centring if config.center_method == "auto" else config.center_method
    scaling = defaults.scaling if config.scale_method == "auto" else config.scale_method
    poses = np.stack([frame.camera_to_world for frame in capture.frames])
    transform = normalisation_transform(poses, orientation, centring)
    scale = scale_to_box(poses, transform, scaling) * config.scale_factor
    normalised = apply_to_poses(poses, transform, scale)
    scene_scale = defaults.scene_scale if config.scene_scale is None else config.scene_scale
    bounds = _near_far_from_bounds(capture.frames, scale)
    near = config.near_plane if config.near_plane is not None else bounds[0] if bounds else defaults.near_plane
    far = config.far_plane if config.far_plane is not None else bounds[1] if bounds else defaults.far_plane
    return NormalisedScene(
        capture=capture,
        format=name,
        detected=config.format == "auto",
        poses=normalised,
        transform=transform,
        scale=scale,
        scene_scale=scene_scale,
        near_plane=near,
        far_plane=_far_plane(normalised, scene_scale) if far is None else far,
    )


def prescaled_images(frames: list[CaptureFrame], factor: int) -> list[Path] | None:
    """The frames' images in a sibling `<folder>_<factor>` (images_4 beside images), when all are there at the size
    the downscaled cameras expect; None otherwise, and the dataset downscales and caches instead."""
    if factor == 1:
        return None
    paths = [
        frame.image_path.parent.with_name(f"{frame.image_path.parent.name}_{factor}") / frame.image_path.name
        for frame in frames
    ]
    if not all(path.is_file() for path in paths):
        return None
    with open_image(paths[0]) as image:
        size = image.size
    expected = (round(frames[0].width / factor), round(frames[0].height / factor))
    return paths if size == expected else None


def check_downscaled_size(outputs: DataparserOutputs, data: Path) -> None:
    """Refuses a downscale factor that leaves an image without pixels (a 6-pixel side divided by 16)."""
    scaled = outputs.downscaled_cameras()
    if bool((scaled.width >= 1).all() and (scaled.height >= 1).all()):
        return
    smallest = int(torch.minimum(outputs.cameras.width, outputs.cameras.height).min())
    raise NerfkitError(
        f"--pipeline.datamanager.dataparser.downscale-factor {outputs.downscale_factor} leaves the images of {data} "
        f"without pixels (their smallest side is {smallest} pixels)",
        hint=f"use a downscale factor of at most {smallest}",
    )


def capture_cameras(
    frames: list[CaptureFrame], poses: np.ndarray, camera_model: str, dtype: torch.dtype = torch.float32
) -> Cameras:
    """Full-resolution cameras of `frames` with camera-to-world `poses` (num_frames, 3 or 4, 4)."""

    def column(name: str) -> torch.Tensor:
        return torch.tensor([getattr(frame, name) for frame in frames], dtype=dtype)

    return Cameras(
        camera_to_worlds=torch.from_numpy(poses[:, :3, :]).to(dtype),
        fx=column("fx"),
        fy=column("fy"),
        cx=column("cx"),
        cy=column("cy"),
        width=column("width").long(),
        height=column("height").long(),
        distortion_params=None if camera_model == "PINHOLE" else column("distortion"),
        camera_model=camera_model,  # type: ignore[arg-type]
    )


class SceneDataParser(DataParser):
    """Reads and normalises the dataset once; each split is then a selection of its frames."""

    config: SceneDataParserConfig

    def __init__(self, config: SceneDataParserConfig) -> None:
        super().__init__(config)
        self._scene: NormalisedScene | None = None

    @property
    def scene(self) -> NormalisedScene:
        if self._scene is None:
            self._scene = normalise_scene(self.config, check_data_folder(self.config.data))
        return self._scene

    def get_dataparser_outputs(self, split: Split = "train") -> DataparserOutputs:
        scene, config = self.scene, self.config
        capture = scene.capture
        data = check_data_folder(config.data)
        names = [str(_relative(frame.image_path, data)) for frame in capture.frames]
        indices = split_indices(
            names,
            split,
            config.eval_mode,
            capture.split_indices,
            capture.source,
            config.eval_interval,
            config.train_fraction,
            config.eval_list,
            capture.split_file,
        )
        if not indices:
            raise NerfkitError(
                f"No image of {data} is in the {split} split ({len(names)} images).",
                "Add images, or change the dataparser's eval_mode, eval_interval or train_fraction.",
            )
        frames = [capture.frames[index] for index in indices]
        cameras = capture_cameras(frames, scene.poses[indices], capture.camera_model)
        factor = config.downscale_factor
        if factor < 1:
            raise NerfkitError(f"downscale_factor is {factor!r}.", "Set downscale_factor to a whole number, 1 or more.")
        points = capture.points3d
        xyz = None if points is None else torch.from_numpy(apply_to_points(points, scene.transform, scene.scale))
        rgb = None if points is None or capture.points3d_rgb is None else torch.from_numpy(capture.points3d_rgb)
        outputs = DataparserOutputs(
            image_filenames=[frame.image_path for frame in frames],
            cameras=cameras,
            scene_box=SceneBox.cube(scene.scene_scale),
            downscale_factor=factor,
            near_plane=scene.near_plane,
            far_plane=scene.far_plane,
            points3d_xyz=xyz,
            points3d_rgb=rgb,
            mask_filenames=[frame.mask_path for frame in frames],
            dataparser_transform=torch.from_numpy(scene.transform).float(),
            dataparser_scale=scene.scale,
            format_description=f"{scene.format} ({'detected' if scene.detected else 'as configured'})",
        )
        check_downscaled_size(outputs, data)
        prescaled = prescaled_images(frames, factor)
        if prescaled is None:
            return outputs
        # The files are already at the training size: the outputs describe them, and leave the dataset nothing to do.
        return replace(outputs, image_filenames=prescaled, cameras=outputs.downscaled_cameras(), downscale_factor=1)


def _relative(path: Path, data: Path) -> Path:
    try:
        return path.relative_to(data)
    except ValueError:
        return path
