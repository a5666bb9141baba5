"""The Nerfstudio dataparser on a tiny hand-made dataset with known cameras and OPENCV distortion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from test_colmap_dataparser import write_image
from test_distortion import reference_opencv

from nerfkit.cameras.camera_paths import look_at
from nerfkit.configs.data import SceneDataParserConfig, Split
from nerfkit.data.dataparsers.base_dataparser import DataparserOutputs
from nerfkit.data.datasets import InputDataset
from nerfkit.errors import NerfkitError

WIDTH, HEIGHT, FL_X, FL_Y, CX, CY = 16, 12, 20.0, 18.0, 8.25, 5.75
LENS = dict(k1=-0.1, k2=0.02, p1=1e-3, p2=-1e-3)
CENTRE, RADIUS, NUM_FRAMES = torch.tensor([1.0, 2.0, 3.0]), 4.0, 5
TARGET = torch.tensor([1.5, 2.0, 2.5])
"""A point every camera looks at (off the centre, so it is not just the optical axis)."""


def original_poses() -> torch.Tensor:
    """4x4 camera-to-world poses on a circle of RADIUS around CENTRE, every camera looking at TARGET."""
    angles = torch.arange(NUM_FRAMES) * (2 * torch.pi / NUM_FRAMES)
    positions = CENTRE + RADIUS * torch.stack([angles.cos(), torch.zeros(NUM_FRAMES), angles.sin()], dim=-1)
    poses = torch.eye(4).repeat(NUM_FRAMES, 1, 1)
    poses[:, :3, :] = look_at(positions, TARGET, torch.tensor([0.0, 1.0, 0.0]))
    return poses


@pytest.fixture
def scene(tmp_path: Path) -> Path:
    """Five frames listed in reverse order (the parser sorts them), global intrinsics and OPENCV distortion."""
    root = tmp_path / "scene"
    frames = []
    for index, pose in enumerate(original_poses()):
        write_image(root / "images" / f"frame_{index}.png", WIDTH, HEIGHT)
        frames.append({"file_path": f"images/frame_{index}.png", "transform_matrix": pose.tolist()})
    meta = {"fl_x": FL_X, "fl_y": FL_Y, "cx": CX, "cy": CY, "w": WIDTH, "h": HEIGHT, **LENS, "frames": frames[::-1]}
    (root / "transforms.json").write_text(json.dumps(meta))
    return root


def edit_transforms(root: Path, edit: Any) -> None:
    path = root / "transforms.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def parse(data: Path, split: Split = "train", **settings: Any) -> DataparserOutputs:
    """Kept in the file's orientation, so expected poses are the originals centred and scaled."""
    settings = {"format": "nerfstudio", "eval_interval": 2, "orientation_method": "none", **settings}
    return SceneDataParserConfig(data=data, **settings).setup().get_dataparser_outputs(split)


def test_intrinsics_distortion_and_interval_split(scene: Path) -> None:
    train, val = parse(scene), parse(scene, "val")
    assert [path.name for path in train.image_filenames] == ["frame_1.png", "frame_3.png"]
    assert [path.name for path in val.image_filenames] == ["frame_0.png", "frame_2.png", "frame_4.png"]
    cameras = train.cameras
    assert cameras.camera_model == "OPENCV"
    assert cameras.fx.tolist() == [FL_X] * 2 and cameras.fy.tolist() == [FL_Y] * 2
    assert cameras.cx.tolist() == [CX] * 2 and cameras.cy.tolist() == [CY] * 2
    assert cameras.width.tolist() == [WIDTH] * 2 and cameras.height.tolist() == [HEIGHT] * 2
    expected_lens = torch.tensor([LENS["k1"], LENS["k2"], 0.0, 0.0, LENS["p1"], LENS["p2"]])
    torch.testing.assert_close(cameras.distortion_params, expected_lens.expand(2, 6))
    # Every camera is 1 from the centre after scaling: the far plane reaches past the box's farthest corner.
    assert (train.near_plane, train.far_plane, train.downscale_factor) == (0.05, pytest.approx(1 + 3**0.5), 1)
    assert train.scene_box.aabb.tolist() == [[-1.0] * 3, [1.0] * 3]


def test_poses_are_centred_and_scaled(scene: Path) -> None:
    expected = original_poses()[[1, 3], :3, :]
    expected[:, :, 3] = (expected[:, :, 3] - CENTRE) / RADIUS
    torch.testing.assert_close(parse(scene).cameras.camera_to_worlds, expected)


def test_rays_through_projected_pixels_pass_through_known_points(scene: Path) -> None:
    cameras = parse(scene, "val").cameras
    world_points = torch.tensor([[1.5, 2.0, 2.5], [1.0, 2.4, 3.0], [0.6, 1.7, 3.3]])
    for camera_index, pose in enumerate(original_poses()[[0, 2, 4]]):
        camera_points = (world_points - pose[:3, 3]) @ pose[:3, :3]
        pixels = []
        for x, y, z in camera_points.tolist():
            xd, yd = reference_opencv(x / -z, y / z, **LENS)
            pixels.append((FL_X * xd + CX, FL_Y * yd + CY))
        indices = torch.full((len(pixels),), camera_index)
        rays = cameras.generate_rays(indices, torch.tensor(pixels))
        towards = torch.nn.functional.normalize((world_points - CENTRE) / RADIUS - rays.origins, dim=-1)
        torch.testing.assert_close(rays.directions, towards, atol=1e-5, rtol=0)


def test_per_frame_intrinsics_override_global_ones(scene: Path) -> None:
    def edit(meta: dict[str, Any]) -> None:
        meta["frames"][1]["fl_x"] = 30.0  # frame_3, listed second
        meta["frames"][1]["k1"] = 0.05

    edit_transforms(scene, edit)
    cameras = parse(scene).cameras
    assert cameras.fx.tolist() == [FL_X, 30.0]
    assert cameras.distortion_params[:, 0].tolist() == pytest.approx([LENS["k1"], 0.05])


def test_split_lists_override_the_interval(scene: Path) -> None:
    def edit(meta: dict[str, Any]) -> None:
        meta["train_filenames"] = ["images/frame_4.png", "./images/frame_0.png"]
        meta["val_filenames"] = ["images/frame_2.png"]
        meta["test_filenames"] = ["images/frame_1.png"]

    edit_transforms(scene, edit)
    assert [path.name for path in parse(scene).image_filenames] == ["frame_4.png", "frame_0.png"]
    assert [path.name for path in parse(scene, "test").image_filenames] == ["frame_1.png"]


def test_images_2_folder_is_used_with_scaled_intrinsics(scene: Path) -> None:
    for index in range(NUM_FRAMES):
        write_image(scene / "images_2" / f"frame_{index}.png", WIDTH // 2, HEIGHT // 2)
    outputs = parse(scene, downscale_factor=2)
    assert outputs.image_filenames == [scene / "images_2" / "frame_1.png", scene / "images_2" / "frame_3.png"]
    assert outputs.cameras.fx.tolist() == [FL_X / 2] * 2 and outputs.cameras.cx.tolist() == [CX / 2] * 2
    assert outputs.cameras.width.tolist() == [WIDTH // 2] * 2
    assert outputs.downscale_factor == 1
    assert InputDataset(outputs).images.shape == (2, HEIGHT // 2, WIDTH // 2, 3)


def test_without_images_folder_the_dataset_downscales_and_keeps_distortion(scene: Path, tmp_path: Path) -> None:
    outputs = parse(scene, downscale_factor=2)
    assert outputs.image_filenames[0] == scene / "images" / "frame_1.png"
    assert outputs.cameras.fx.tolist() == [FL_X] * 2 and outputs.downscale_factor == 2
    cameras = InputDataset(outputs, cache_dir=tmp_path / "cache").cameras
    assert cameras.fx.tolist() == [FL_X / 2] * 2 and cameras.camera_model == "OPENCV"
    torch.testing.assert_close(cameras.distortion_params, outputs.cameras.distortion_params)


def test_missing_transforms_file(tmp_path: Path) -> None:
    with pytest.raises(NerfkitError, match="transforms.json not found") as error:
        parse(tmp_path)
    assert error.value.hint


def test_missing_image_names_its_frame(scene: Path) -> None:
    (scene / "images" / "frame_3.png").unlink()
    with pytest.raises(NerfkitError, match=r"frame_3.png, named by frames\[1\].file_path in .*transforms.json"):
        parse(scene)


def test_unknown_camera_model(scene: Path) -> None:
    edit_transforms(scene, lambda meta: meta.update(camera_model="EQUIRECTANGULAR"))
    with pytest.raises(NerfkitError, match=r"transforms.json: camera_model is 'EQUIRECTANGULAR'") as error:
        parse(scene)
    assert "OPENCV_FISHEYE" in str(error.value.hint)


def test_missing_intrinsics_name_the_field(scene: Path) -> None:
    edit_transforms(scene, lambda meta: meta.pop("fl_y"))
    with pytest.raises(NerfkitError, match=r"transforms.json lacks the field 'fl_y' \(neither global nor in frames"):
        parse(scene)


def test_split_list_naming_no_frame(scene: Path) -> None:
    edit_transforms(scene, lambda meta: meta.update(train_filenames=["images/gone.png"], val_filenames=[]))
    with pytest.raises(NerfkitError, match=r"train_filenames names 'images/gone.png'"):
        parse(scene)
    edit_transforms(scene, lambda meta: meta.update(train_filenames=["images/frame_0.png"]))
    with pytest.raises(NerfkitError, match=r"test_filenames is missing"):
        parse(scene, "test")
