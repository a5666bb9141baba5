"""The format-independent dataparser: detection, normalisation, splits, masks, and lego read back as COLMAP."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from nerfkit.cameras.camera_paths import look_at
from nerfkit.configs.data import SceneDataParserConfig, Split, VanillaDataManagerConfig
from nerfkit.data.colmap_model import (
    ColmapCamera,
    ColmapImage,
    ColmapModel,
    image_pose_from_camera_to_world,
    write_model,
)
from nerfkit.data.dataparsers.base_dataparser import DataparserOutputs
from nerfkit.data.dataparsers.scene_dataparser import detect_format
from nerfkit.data.dataparsers.scene_normalisation import (
    apply_to_points,
    apply_to_poses,
    focus_point,
    normalisation_transform,
    orientation_rotation,
    poses_to_capture_coordinates,
    scale_to_box,
    to_capture_coordinates,
)
from nerfkit.data.dataparsers.splits import fraction_split, interval_split
from nerfkit.errors import NerfkitError

SIZE = 8
TARGET = np.array([2.0, -1.0, 3.0])


def circle_poses(num: int, tilt_up: np.ndarray, radius: float = 3.0) -> np.ndarray:
    """Cameras on a circle around TARGET in the plane normal to `tilt_up`, all looking at TARGET with that up."""
    up = tilt_up / np.linalg.norm(tilt_up)
    side = np.cross(up, [0.3, 0.2, 0.9])
    side /= np.linalg.norm(side)
    other = np.cross(up, side)
    angles = np.arange(num) * 2 * math.pi / num
    positions = TARGET + radius * (np.cos(angles)[:, None] * side + np.sin(angles)[:, None] * other) + 0.5 * up
    poses = np.tile(np.eye(4), (num, 1, 1))
    poses[:, :3, :] = look_at(
        torch.tensor(positions), torch.tensor(TARGET), torch.tensor(up, dtype=torch.float64)
    ).numpy()
    return poses


def test_up_orientation_makes_mean_camera_up_plus_z() -> None:
    poses = circle_poses(7, np.array([0.3, -0.5, 0.8]))
    rotation = orientation_rotation(poses, "up")
    mean_up = (rotation @ poses[:, :3, 1].T).T.mean(axis=0)
    np.testing.assert_allclose(mean_up / np.linalg.norm(mean_up), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)


def test_pca_orientation_puts_the_camera_circle_in_a_horizontal_plane() -> None:
    poses = circle_poses(9, np.array([-0.6, 0.2, 0.7]))
    transform = normalisation_transform(poses, "pca", "poses")
    moved = apply_to_poses(poses, transform, 1.0)
    assert np.ptp(moved[:, 2, 3]) < 1e-9  # every camera at one height
    assert moved[:, :3, 1].mean(axis=0)[2] > 0  # and right side up
    assert np.linalg.det(transform[:, :3]) == pytest.approx(1.0)


def test_focus_centring_moves_the_looked_at_point_to_the_origin() -> None:
    poses = circle_poses(6, np.array([0.0, 0.0, 1.0]))
    np.testing.assert_allclose(focus_point(poses), TARGET, atol=1e-9)
    transform = normalisation_transform(poses, "up", "focus")
    np.testing.assert_allclose(apply_to_points(TARGET[None], transform, 2.5), 0.0, atol=1e-9)


def test_scaling_puts_the_farthest_camera_coordinate_on_the_box_and_inverts() -> None:
    poses = circle_poses(5, np.array([0.1, 0.9, 0.2]), radius=7.0)
    transform = normalisation_transform(poses, "up", "poses")
    scale = scale_to_box(poses, transform, "cameras")
    assert np.abs(apply_to_poses(poses, transform, scale)[:, :3, 3]).max() == pytest.approx(1.0)
    back = poses_to_capture_coordinates(apply_to_poses(poses, transform, scale)[:, :3], transform, scale)
    np.testing.assert_allclose(back, poses[:, :3], atol=1e-12)
    points = np.random.default_rng(0).normal(size=(10, 3))
    np.testing.assert_allclose(
        to_capture_coordinates(apply_to_points(points, transform, scale), transform, scale), points
    )


def test_interval_and_fraction_splits_partition_the_frames() -> None:
    assert interval_split(10, "train", 4) == [1, 2, 3, 5, 6, 7, 9]
    assert interval_split(10, "test", 4) == [0, 4, 8]
    train, held_out = fraction_split(10, "train", 0.8), fraction_split(10, "val", 0.8)
    assert len(train) == 8 and train[0] == 0 and train[-1] == 9
    assert sorted(train + held_out) == list(range(10))


# A tiny Nerfstudio-format capture in an arbitrary frame: used for the options that do not depend on the format.


def write_capture(root: Path, num: int = 6, masks: bool = False) -> Path:
    frames = []
    for index, pose in enumerate(circle_poses(num, np.array([0.2, 0.3, 0.9]))):
        name = f"images/frame_{index:02d}.png"
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((SIZE, SIZE, 3), 20 * index, dtype=np.uint8)).save(root / name)
        frame: dict[str, Any] = {"file_path": name, "transform_matrix": pose.tolist()}
        if masks:
            (root / "masks").mkdir(exist_ok=True)
            mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
            mask[2:4, 5:7] = 255
            Image.fromarray(mask).save(root / f"masks/frame_{index:02d}.png")
            frame["mask_path"] = f"masks/frame_{index:02d}.png"
        frames.append(frame)
    meta = {"camera_model": "PINHOLE", "fl_x": 9.0, "fl_y": 9.0, "cx": 4.0, "cy": 4.0, "w": SIZE, "h": SIZE}
    (root / "transforms.json").write_text(json.dumps({**meta, "frames": frames}))
    return root


def parse(data: Path, split: Split = "train", **settings: Any) -> DataparserOutputs:
    return SceneDataParserConfig(data=data, **settings).setup().get_dataparser_outputs(split)


def test_format_is_detected_and_reported(tmp_path: Path, lego_dir: Path) -> None:
    assert detect_format(lego_dir) == "blender"
    assert detect_format(write_capture(tmp_path / "capture")) == "nerfstudio"
    assert parse(tmp_path / "capture").format_description == "nerfstudio (detected)"
    assert parse(tmp_path / "capture", format="nerfstudio").format_description == "nerfstudio (as configured)"


def test_folder_of_no_known_format_lists_what_was_looked_for(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    with pytest.raises(NerfkitError, match="holds no dataset nerfkit recognises") as error:
        parse(tmp_path / "photos")
    for looked_for in ("transforms_train.json", "transforms.json", "sparse/0", "poses_bounds.npy"):
        assert looked_for in error.value.message
    assert "kit-process-data" in error.value.hint


def test_capture_defaults_orient_centre_and_scale_and_record_the_transform(tmp_path: Path) -> None:
    outputs = parse(write_capture(tmp_path / "capture"), eval_mode="all")
    positions = outputs.cameras.camera_to_worlds[:, :, 3].double()
    assert positions.abs().max().item() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(positions.mean(dim=0), torch.zeros(3, dtype=torch.float64), atol=1e-6, rtol=0)
    mean_up = outputs.cameras.camera_to_worlds[:, :, 1].mean(dim=0)
    torch.testing.assert_close(
        torch.nn.functional.normalize(mean_up, dim=0), torch.tensor([0.0, 0, 1]), atol=1e-6, rtol=0
    )
    record = outputs.transforms_record()
    original = circle_poses(6, np.array([0.2, 0.3, 0.9]))[:, :3, 3]
    back = to_capture_coordinates(positions.numpy(), np.array(record["transform"]), record["scale"])
    np.testing.assert_allclose(back, original, atol=1e-5)


def test_eval_modes(tmp_path: Path) -> None:
    data = write_capture(tmp_path / "capture")
    names = lambda outputs: [path.name for path in outputs.image_filenames]  # noqa: E731
    assert names(parse(data, "val", eval_interval=3)) == ["frame_00.png", "frame_03.png"]
    assert len(parse(data, eval_mode="fraction", train_fraction=0.5).image_filenames) == 3
    assert len(parse(data, "test", eval_mode="all").image_filenames) == 6
    (tmp_path / "eval.txt").write_text("frame_02.png\nimages/frame_05.png\n")
    assert names(parse(data, "test", eval_mode="list", eval_list=tmp_path / "eval.txt")) == [
        "frame_02.png",
        "frame_05.png",
    ]
    (tmp_path / "eval.txt").write_text("frame_99.png\n")
    with pytest.raises(NerfkitError, match="names 'frame_99.png', which is not an image of the dataset"):
        parse(data, eval_mode="list", eval_list=tmp_path / "eval.txt")


def test_masked_pixels_are_never_sampled(tmp_path: Path) -> None:
    data = write_capture(tmp_path / "capture", masks=True)
    config = VanillaDataManagerConfig(data=data, dataparser=SceneDataParserConfig(eval_mode="all"))
    datamanager = config.setup()
    assert datamanager.train_dataset.masks is not None and datamanager.train_dataset.masks.sum() == 6 * 4
    torch.manual_seed(0)
    _, batch = datamanager.next_train(0, num_rays=500)
    ys, xs = batch["indices"][:, 1], batch["indices"][:, 2]
    assert ((ys >= 2) & (ys < 4) & (xs >= 5) & (xs < 7)).all()
    assert len(set(batch["indices"][:, 0].tolist())) == 6


def test_lego_written_as_colmap_gives_the_blender_parser_rays(lego_dir: Path, tmp_path: Path) -> None:
    """The lego train poses as a COLMAP model (PINHOLE, the same focal length) read back without normalisation."""
    blender = parse(lego_dir, "train", format="blender")
    root = tmp_path / "lego_colmap"
    (root / "images").mkdir(parents=True)
    cameras, images = blender.cameras, {}
    for index, path in enumerate(blender.image_filenames):
        (root / "images" / path.name).symlink_to(path)
        pose = cameras.camera_to_worlds[index].double().numpy()
        qvec, tvec = image_pose_from_camera_to_world(pose)
        images[index + 1] = ColmapImage(index + 1, qvec, tvec, 1, path.name, np.zeros((0, 2)), np.zeros(0, np.int64))
    focal, centre = float(cameras.fx[0]), float(cameras.cx[0])
    colmap_camera = ColmapCamera(1, "PINHOLE", 800, 800, np.array([focal, focal, centre, centre]))
    write_model(ColmapModel({1: colmap_camera}, images, {}), root / "sparse" / "0", binary=True)

    as_is = dict(orientation_method="none", center_method="none", scale_method="none", eval_mode="all")
    colmap = parse(root, "train", format="colmap", **as_is)
    assert [path.name for path in colmap.image_filenames] == sorted(path.name for path in blender.image_filenames)
    order = [blender.image_filenames.index(lego_dir / "train" / path.name) for path in colmap.image_filenames]
    generator = torch.Generator().manual_seed(0)
    camera_indices = torch.randint(len(order), (2000,), generator=generator)
    pixels = torch.rand(2000, 2, generator=generator) * 800
    expected = blender.cameras.generate_rays(torch.tensor(order)[camera_indices], pixels)
    actual = colmap.cameras.generate_rays(camera_indices, pixels)
    torch.testing.assert_close(actual.origins, expected.origins, atol=1e-5, rtol=0)
    torch.testing.assert_close(actual.directions, expected.directions, atol=1e-5, rtol=0)
