"""The Blender dataparser on the real lego scene, and its message for every kind of broken dataset."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from nerfkit.configs.data import SceneDataParserConfig, Split
from nerfkit.data.dataparsers.base_dataparser import DataparserOutputs
from nerfkit.errors import NerfkitError


def parse(data: Path, split: Split = "train", **settings: Any) -> DataparserOutputs:
    return SceneDataParserConfig(data=data, **settings).setup().get_dataparser_outputs(split)


def test_lego_splits_and_cameras(lego_dir: Path) -> None:
    counts = {split: len(parse(lego_dir, split).image_filenames) for split in ("train", "val", "test")}
    assert counts == {"train": 80, "val": 5, "test": 10}

    outputs = parse(lego_dir, "val", downscale_factor=4)
    meta = json.loads((lego_dir / "transforms_val.json").read_text())
    focal = 0.5 * 800 / math.tan(0.5 * meta["camera_angle_x"])
    cameras = outputs.cameras
    torch.testing.assert_close(cameras.fx, torch.full((5,), focal))
    torch.testing.assert_close(cameras.fy, torch.full((5,), focal))
    assert cameras.cx.tolist() == [400.0] * 5 and cameras.cy.tolist() == [400.0] * 5
    # Cameras stay at full resolution; the dataset applies the downscale.
    assert cameras.width.tolist() == [800] * 5 and cameras.height.tolist() == [800] * 5
    expected_poses = torch.tensor([frame["transform_matrix"] for frame in meta["frames"]])[:, :3, :]
    torch.testing.assert_close(cameras.camera_to_worlds, expected_poses)
    assert outputs.image_filenames[0] == lego_dir / "val" / "r_5.png"
    assert (outputs.near_plane, outputs.far_plane, outputs.downscale_factor) == (2.0, 6.0, 4)
    assert outputs.scene_box.aabb.tolist() == [[-1.5] * 3, [1.5] * 3]


def test_file_path_with_extension_is_kept(fake_blender: Callable[..., Path]) -> None:
    root = fake_blender()
    transforms = root / "transforms_train.json"
    meta = json.loads(transforms.read_text())
    meta["frames"][0]["file_path"] = "train/r_0.png"
    transforms.write_text(json.dumps(meta))
    assert parse(root).image_filenames[0] == root / "train" / "r_0.png"


def test_missing_data_folder(tmp_path: Path) -> None:
    with pytest.raises(NerfkitError, match="does not exist") as error:
        parse(tmp_path / "nowhere")
    assert "nowhere" in error.value.message and "data" in error.value.message


def test_data_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(NerfkitError, match="is not a directory"):
        parse(tmp_path / "file")


def test_missing_split_file(fake_blender: Callable[..., Path]) -> None:
    with pytest.raises(NerfkitError, match="defines no val split") as error:
        parse(fake_blender(), "val")
    assert "eval_mode" in error.value.hint


def test_invalid_json_names_line_and_column(fake_blender: Callable[..., Path]) -> None:
    root = fake_blender()
    (root / "transforms_train.json").write_text('{\n  "camera_angle_x": 0.7,\n  "frames": [,]\n}')
    with pytest.raises(NerfkitError, match=r"transforms_train.json is not valid JSON: .* line 3, column 14"):
        parse(root)


def drop(*keys: str | int) -> Callable[[Any], Any]:
    """An edit that deletes the field at `keys` (a path into the JSON)."""

    def edit(meta: Any) -> Any:
        parent = meta
        for key in keys[:-1]:
            parent = parent[key]
        del parent[keys[-1]]
        return meta

    return edit


def set_frame(index: int, key: str, value: Any) -> Callable[[Any], Any]:
    def edit(meta: Any) -> Any:
        meta["frames"][index][key] = value
        return meta

    return edit


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda meta: meta["frames"], "top level is a list, not an object"),
        (drop("frames"), "lacks the field 'frames'"),
        (drop("camera_angle_x"), "lacks the field 'camera_angle_x'"),
        (lambda meta: {**meta, "camera_angle_x": "wide"}, "camera_angle_x is 'wide'"),
        (lambda meta: {**meta, "frames": []}, "'frames' is empty"),
        (drop("frames", 1, "file_path"), r"frames\[1\].file_path is missing"),
        (set_frame(1, "file_path", 7), r"frames\[1\].file_path is missing or not a string"),
        (drop("frames", 1, "transform_matrix"), r"frames\[1\].transform_matrix is missing"),
        (set_frame(0, "transform_matrix", [[1.0, 0.0, 0.0, 0.0]] * 3), r"frames\[0\].transform_matrix .* not a 4x4"),
        (set_frame(1, "transform_matrix", [[1, 0, 0, "x"]] * 4), r"frames\[1\].transform_matrix .* not a 4x4"),
        (set_frame(1, "file_path", "./train/gone"), r"gone.png, named by frames\[1\].file_path .* not found"),
    ],
)
def test_malformed_transforms(fake_blender: Callable[..., Path], edit: Callable[[Any], Any], expected: str) -> None:
    root = fake_blender()
    transforms = root / "transforms_train.json"
    transforms.write_text(json.dumps(edit(json.loads(transforms.read_text()))))
    with pytest.raises(NerfkitError, match=expected) as error:
        parse(root)
    assert "transforms_train.json" in error.value.message
    assert error.value.hint


def test_unreadable_first_image(fake_blender: Callable[..., Path]) -> None:
    root = fake_blender()
    (root / "train" / "r_0.png").write_bytes(b"not an image")
    with pytest.raises(NerfkitError, match=r"r_0.png cannot be read"):
        parse(root)
