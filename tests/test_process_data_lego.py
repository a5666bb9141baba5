"""Acceptance: kit-process-data on 40 real lego views recovers Blender's cameras (up to a similarity, which structure
from motion cannot know), and its dataset loads. The SfM run (~2 minutes) is the session's `processed_lego`."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from jaxtyping import Float

from nerfkit.configs.data import SceneDataParserConfig
from nerfkit.data.colmap_model import qvec_to_rotation
from nerfkit.data.datasets import InputDataset

MIN_REGISTERED = 35
"""Of the 40 views; COLMAP registers all 40 of these in our runs, so this leaves room for a few unlucky views."""
MAX_RELATIVE_RMS = 0.02
"""Camera-centre RMS error over the cameras' mean distance to their centroid. COLMAP's centres on these views are
within about 0.2% of it (measured: 0.22% RMS, 0.55% at worst), so 2% is a tenfold margin for its randomness, while one
view registered on the wrong side (the failure seen with views all round the bulldozer, moving it ~4 units of ~2.8)
alone lifts the RMS of 40 views above 20%."""
MAX_FOCAL_ERROR = 0.02
"""COLMAP's focal length is 1.1% short of Blender's in our runs, traded against the OPENCV distortion it also fits."""


def umeyama(
    source: Float[np.ndarray, "num 3"], target: Float[np.ndarray, "num 3"]
) -> tuple[float, Float[np.ndarray, "3 3"], Float[np.ndarray, "3"]]:
    """The similarity (scale, rotation, translation) taking `source` to `target` with least squared error
    (Umeyama 1991), the rotation kept proper (no reflection)."""
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    u, singular, vt = np.linalg.svd(target_centred.T @ source_centred / len(source))
    sign = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rotation = u @ sign @ vt
    scale = float(np.trace(np.diag(singular) @ sign) / (source_centred**2).sum(axis=1).mean())
    return scale, rotation, target_mean - scale * rotation @ source_mean


def test_umeyama_recovers_a_known_similarity() -> None:
    points = np.random.default_rng(0).normal(size=(10, 3))
    rotation = qvec_to_rotation(np.array([0.3, -0.5, 0.7, 0.2]))
    scale, found_rotation, translation = umeyama(points, 2.5 * points @ rotation.T + [1.0, -2.0, 0.5])
    assert scale == pytest.approx(2.5)
    np.testing.assert_allclose(found_rotation, rotation, atol=1e-12)
    np.testing.assert_allclose(translation, [1.0, -2.0, 0.5], atol=1e-12)


def recovered_and_blender_centres(dataset: Path, lego_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Camera centres of the registered frames, and of the Blender views they were made from, in the same order."""
    inputs = sorted(path.name for path in (dataset.parent / "input").iterdir())
    blender = {
        Path(frame["file_path"]).name + ".png": np.array(frame["transform_matrix"])[:3, 3]
        for frame in json.loads((lego_dir / "transforms_train.json").read_text())["frames"]
    }
    recovered, expected = [], []
    for frame in json.loads((dataset / "transforms.json").read_text())["frames"]:
        number = int(Path(frame["file_path"]).stem.removeprefix("frame_"))
        recovered.append(np.array(frame["transform_matrix"])[:3, 3])
        expected.append(blender[inputs[number - 1]])
    return np.array(recovered), np.array(expected)


def test_colmap_registers_the_views_where_blender_put_them(processed_lego: Path, lego_dir: Path) -> None:
    recovered, expected = recovered_and_blender_centres(processed_lego, lego_dir)
    assert len(recovered) >= MIN_REGISTERED
    scale, rotation, translation = umeyama(recovered, expected)
    errors = np.linalg.norm(scale * recovered @ rotation.T + translation - expected, axis=1)
    scene_size = np.linalg.norm(expected - expected.mean(axis=0), axis=1).mean()
    assert np.sqrt((errors**2).mean()) / scene_size < MAX_RELATIVE_RMS


def test_focal_length_and_image_size_match_blender(processed_lego: Path, lego_dir: Path) -> None:
    transforms = json.loads((processed_lego / "transforms.json").read_text())
    camera_angle_x = json.loads((lego_dir / "transforms_train.json").read_text())["camera_angle_x"]
    focal = 400 / math.tan(camera_angle_x / 2)
    assert (transforms["w"], transforms["h"], transforms["camera_model"]) == (800, 800, "OPENCV")
    assert transforms["fl_x"] == pytest.approx(focal, rel=MAX_FOCAL_ERROR)
    assert transforms["fl_y"] == pytest.approx(focal, rel=MAX_FOCAL_ERROR)


def test_dataset_loads_from_its_pyramid_composited_onto_white(processed_lego: Path) -> None:
    config = SceneDataParserConfig(data=processed_lego, downscale_factor=8)
    outputs = config.setup().get_dataparser_outputs("train")
    assert outputs.format_description == "nerfstudio (detected)"
    assert {path.parent.name for path in outputs.image_filenames} == {"images_8"}
    images = InputDataset(outputs).images
    assert tuple(images.shape[1:]) == (100, 100, 3)
    assert (images[:, 0, 0] == 255).all()  # the corners are background
