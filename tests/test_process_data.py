"""kit-process-data without real structure from motion: COLMAP's flags per version, frames from a video, images,
pyramids, the model -> transforms.json conversion (loaded back by the dataparser), and every user error.

A fake SfM back-end writes models of known cameras, so the whole command runs in a second and its answers are exact.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import plyfile
import pytest
import torch
from PIL import Image

from nerfkit.cameras.camera_paths import look_at
from nerfkit.configs.data import SceneDataParserConfig
from nerfkit.data.colmap_model import (
    ColmapCamera,
    ColmapImage,
    ColmapModel,
    ColmapPoint3D,
    image_pose_from_camera_to_world,
    read_model,
    write_model,
)
from nerfkit.data.datasets import InputDataset
from nerfkit.errors import NerfkitError
from nerfkit.process_data import colmap_runner
from nerfkit.process_data.colmap_runner import (
    BinaryBackend,
    SfmBackend,
    SfmSettings,
    feature_extractor_args,
    matcher_args,
    parse_colmap_version,
)
from nerfkit.process_data.colmap_to_nerfstudio import transforms_from_model
from nerfkit.process_data.images import copy_image, downscaled_size, list_images
from nerfkit.process_data.video import count_frames, extract_frames
from nerfkit.scripts import process_data
from nerfkit.scripts.process_data import main

WIDTH, HEIGHT = 13, 7
"""Odd sizes, so every pyramid level rounds (13 / 2 = 6.5 -> 6, 7 / 2 = 3.5 -> 4, half to even)."""
OPENCV_PARAMS = [15.0, 14.5, 6.25, 3.75, -0.05, 0.01, 1e-3, -2e-3]
FISHEYE_PARAMS = [15.0, 14.5, 6.25, 3.75, 0.02, -0.01, 3e-3, -4e-4]
SETTINGS = SfmSettings("OPENCV", "exhaustive", use_gpu=False, max_image_size=3200, vocab_tree_path=None, verbose=False)


def known_poses(count: int) -> np.ndarray:
    """OpenGL camera-to-world (count, 4, 4) poses on a circle, looking at a point off the origin."""
    angles = torch.arange(count) * (2 * torch.pi / count)
    positions = torch.stack([3 * angles.cos(), 3 * angles.sin(), torch.full((count,), 1.5)], dim=-1).double()
    poses = np.tile(np.eye(4), (count, 1, 1))
    poses[:, :3, :] = look_at(
        positions, torch.tensor([0.2, -0.1, 0.3]).double(), torch.tensor([0.0, 0.0, 1.0]).double()
    ).numpy()
    return poses


def known_model(
    names: list[str], camera_ids: list[int] | None = None, models: dict[int, str] | None = None
) -> ColmapModel:
    """A model with one image per name (camera 1 unless `camera_ids`), poses from `known_poses`, three points."""
    camera_ids = camera_ids or [1] * len(names)
    models = models or {1: "OPENCV"}
    params = {"OPENCV": OPENCV_PARAMS, "OPENCV_FISHEYE": FISHEYE_PARAMS, "PINHOLE": OPENCV_PARAMS[:4]}
    cameras = {i: ColmapCamera(i, model, WIDTH, HEIGHT, params[model]) for i, model in models.items()}
    images = {}
    for image_id, (name, camera_id, pose) in enumerate(
        zip(names, camera_ids, known_poses(len(names)), strict=True), start=1
    ):
        qvec, tvec = image_pose_from_camera_to_world(pose)
        images[image_id] = ColmapImage(image_id, qvec, tvec, camera_id, name, np.zeros((0, 2)), np.zeros(0))
    points = {
        point_id: ColmapPoint3D(point_id, xyz, rgb, 0.5, [1], [0])
        for point_id, xyz, rgb in [(7, [0.1, 0.2, 0.3], [255, 0, 10]), (9, [-1.0, 0.5, 2.0], [0, 128, 255])]
    }
    return ColmapModel(cameras, images, points)


def write_rgb(path: Path, seed: int, size: tuple[int, int] = (WIDTH, HEIGHT)) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Four PNG photos of WIDTH x HEIGHT and a file that is not an image."""
    folder = tmp_path / "photos"
    for index in range(4):
        write_rgb(folder / f"photo_{index}.png", index)
    (folder / "notes.txt").write_text("not an image")
    return folder


class FakeBackend(SfmBackend):
    """Structure from motion that 'registers' the first `registered` images of each model size it is given."""

    counts_registrations = True

    def __init__(self, model_sizes: list[int]) -> None:
        super().__init__(SETTINGS)
        self.model_sizes = model_sizes

    def extract_features(self, database: Path, images: Path) -> None:
        database.write_text("fake database")

    def match(self, database: Path) -> None:
        assert database.is_file()

    def map(self, database: Path, images: Path, sparse: Path, advance: Callable[[int], None]) -> None:
        names = sorted(path.name for path in images.iterdir())
        for index, size in enumerate(self.model_sizes):
            write_model(known_model(names[:size]), sparse / str(index), binary=True)
            advance(size)


@pytest.fixture
def fake_sfm(monkeypatch: pytest.MonkeyPatch) -> Callable[[list[int]], None]:
    """Makes kit-process-data use a FakeBackend making models of the given sizes."""

    def use(model_sizes: list[int]) -> None:
        monkeypatch.setattr(process_data, "make_backend", lambda *_: FakeBackend(model_sizes))

    return use


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def load_transforms(output: Path) -> dict:
    return json.loads((output / "transforms.json").read_text())


# COLMAP program flags and versions


BANNERS = {
    "COLMAP 3.8 -- Structure-from-Motion and Multi-View Stereo\n(Commit Unknown on Unknown without CUDA)": (3, 8),
    "COLMAP 3.12.4 -- Structure-from-Motion and Multi-View Stereo": (3, 12),
    "COLMAP 3.13.0 -- Structure-from-Motion and Multi-View Stereo\n(Commit 1a2b3c on 2025-11-07 with CUDA)": (3, 13),
    "COLMAP 3.14.0.dev0 -- Structure-from-Motion and Multi-View Stereo": (3, 14),
    "COLMAP 4.0.1 (Commit 17cb8503 on 2026-03-15 without CUDA)": (4, 0),
}


@pytest.mark.parametrize(("banner", "version"), BANNERS.items())
def test_version_is_read_from_the_banner(banner: str, version: tuple[int, int]) -> None:
    assert parse_colmap_version(banner) == version


def test_no_version_in_unrelated_output() -> None:
    assert parse_colmap_version("usage: colmapper [options]") is None


@pytest.mark.parametrize(
    ("version", "extraction", "matching"),
    [
        ((3, 8), "SiftExtraction", "SiftMatching"),
        ((3, 12), "SiftExtraction", "SiftMatching"),
        ((3, 13), "FeatureExtraction", "FeatureMatching"),
        ((4, 0), "FeatureExtraction", "FeatureMatching"),
    ],
)
def test_gpu_and_image_size_flags_follow_the_version(version: tuple[int, int], extraction: str, matching: str) -> None:
    gpu = SfmSettings("OPENCV_FISHEYE", "sequential", True, 1600, None, False)
    extract = feature_extractor_args(version, gpu, Path("db.db"), Path("images"))
    assert extract[0] == "feature_extractor"
    pairs = dict(zip(extract[1::2], extract[2::2], strict=True))
    assert pairs == {
        "--database_path": "db.db",
        "--image_path": "images",
        "--ImageReader.single_camera": "1",
        "--ImageReader.camera_model": "OPENCV_FISHEYE",
        f"--{extraction}.use_gpu": "1",
        f"--{extraction}.max_image_size": "1600",
    }
    match = matcher_args(version, gpu, Path("db.db"))
    assert match == ["sequential_matcher", "--database_path", "db.db", f"--{matching}.use_gpu", "1"]


def test_vocab_tree_matcher_gets_the_tree() -> None:
    settings = SfmSettings("OPENCV", "vocab_tree", False, 3200, Path("tree.bin"), False)
    args = matcher_args((3, 8), settings, Path("db.db"))
    assert args[0] == "vocab_tree_matcher"
    assert args[-2:] == ["--VocabTreeMatching.vocab_tree_path", "tree.bin"]
    assert args[args.index("--SiftMatching.use_gpu") + 1] == "0"


def fake_colmap(folder: Path, banner_command: str, banner: str, exit_code: int = 0) -> Path:
    """A `colmap` program that prints `banner` for `banner_command`, and otherwise logs its arguments and exits."""
    script = folder / "colmap"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "{banner_command}" ]; then echo "{banner}"; exit 0; fi\n'
        f'echo "$@" >> "{folder / "calls.txt"}"\n'
        'echo "fake colmap says: cannot open database"\n'
        f"exit {exit_code}\n"
    )
    script.chmod(0o755)
    return script


@pytest.mark.parametrize(("banner_command", "flag"), [("-h", "--FeatureExtraction.use_gpu"), ("version", None)])
def test_binary_backend_runs_flags_for_its_version(tmp_path: Path, banner_command: str, flag: str | None) -> None:
    """The version comes from `colmap -h`, or `colmap version` when the help lacks it (then 3.8's flags)."""
    banner = "COLMAP 3.13.0 -- Structure-from-Motion" if banner_command == "-h" else "COLMAP 3.8"
    backend = BinaryBackend(SETTINGS, str(fake_colmap(tmp_path, banner_command, banner)))
    backend.extract_features(tmp_path / "db.db", tmp_path / "images")
    backend.match(tmp_path / "db.db")
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert [call.split()[0] for call in calls[-2:]] == ["feature_extractor", "exhaustive_matcher"]
    assert (flag or "--SiftExtraction.use_gpu") + " 0" in calls[-2]


def test_binary_failure_shows_its_output(tmp_path: Path) -> None:
    backend = BinaryBackend(SETTINGS, str(fake_colmap(tmp_path, "-h", "COLMAP 3.8", exit_code=3)))
    with pytest.raises(NerfkitError, match="colmap mapper` failed \\(exit code 3\\)") as error:
        backend.map(tmp_path / "db.db", tmp_path / "images", tmp_path / "sparse", lambda _: None)
    assert "fake colmap says: cannot open database" in error.value.message


def test_binary_without_version_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NerfkitError, match="did not say which COLMAP version"):
        BinaryBackend(SETTINGS, str(fake_colmap(tmp_path, "--nothing", "")))


@pytest.mark.skipif(shutil.which("colmap") is None, reason="no colmap program installed (apt-get install colmap)")
def test_installed_colmap_accepts_the_flags(tmp_path: Path) -> None:
    """The real program rejects unknown options, so extraction and matching succeeding proves the flags fit it."""
    for index in range(2):
        write_rgb(tmp_path / "images" / f"frame_{index}.png", index, (64, 48))
    backend = BinaryBackend(SETTINGS, "colmap")
    backend.extract_features(tmp_path / "database.db", tmp_path / "images")
    backend.match(tmp_path / "database.db")
    assert (tmp_path / "database.db").stat().st_size > 0


# Inputs: images and video


def test_images_are_listed_by_name_whatever_the_suffix_case(tmp_path: Path) -> None:
    for name in ["b.JPG", "a.png", "c.jpeg", "d.Png", "e.gif", "f.txt"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [path.name for path in list_images(tmp_path)] == ["a.png", "b.JPG", "c.jpeg", "d.Png"]


def test_empty_or_missing_image_folder(tmp_path: Path) -> None:
    with pytest.raises(NerfkitError, match="holds no images"):
        list_images(tmp_path)
    with pytest.raises(NerfkitError, match="does not exist"):
        list_images(tmp_path / "missing")


@pytest.mark.parametrize(("background", "value"), [("white", 255), ("black", 0)])
def test_alpha_is_composited_onto_the_background(tmp_path: Path, background: str, value: int) -> None:
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = [200, 100, 50, 255]  # opaque
    rgba[0, 1] = [200, 100, 50, 0]  # transparent
    Image.fromarray(rgba).save(tmp_path / "in.png")
    name = copy_image(tmp_path / "in.png", tmp_path, 3, background)
    assert name == "frame_00003.png"
    with Image.open(tmp_path / name) as copy:
        assert copy.mode == "RGB"
        pixels = np.asarray(copy)
    assert pixels[0, 0].tolist() == [200, 100, 50]
    assert pixels[0, 1].tolist() == [value] * 3


def test_images_without_alpha_are_copied_byte_for_byte(tmp_path: Path) -> None:
    """Keeping the file keeps its EXIF, which COLMAP reads for a first guess of the focal length."""
    write_rgb(tmp_path / "photo.png", 0)
    Image.open(tmp_path / "photo.png").save(tmp_path / "photo.JPEG")
    assert copy_image(tmp_path / "photo.JPEG", tmp_path, 1, "white") == "frame_00001.jpg"
    assert (tmp_path / "frame_00001.jpg").read_bytes() == (tmp_path / "photo.JPEG").read_bytes()


VIDEO_FRAMES = 30
BAR_STEP = 4
"""The white bar moves this many pixels per frame, so a frame's bar position tells which source frame it is."""


@pytest.fixture
def video(tmp_path: Path) -> Path:
    """30 frames of a white bar moving right across black (x = 4 * frame)."""
    frames = np.zeros((VIDEO_FRAMES, 64, 144, 3), dtype=np.uint8)  # a multiple of 16 wide, which H.264 keeps
    for index in range(VIDEO_FRAMES):
        frames[index, :, BAR_STEP * index : BAR_STEP * index + 8] = 255
    path = tmp_path / "walk.mp4"
    iio.imwrite(path, frames, fps=10, codec="libx264")
    return path


def source_frame(path: Path) -> int:
    """Which video frame an extracted frame is, from the position of its bar."""
    columns = np.asarray(Image.open(path).convert("L"), dtype=np.float64).mean(axis=0)
    return round((np.flatnonzero(columns > 128).mean() - 3.5) / BAR_STEP)


@pytest.mark.parametrize("target", [7, 10, 1])
def test_video_frames_are_evenly_spaced(video: Path, tmp_path: Path, target: int) -> None:
    assert count_frames(video) == VIDEO_FRAMES
    reported = []
    names = extract_frames(video, VIDEO_FRAMES, tmp_path / "frames", target, reported.append)
    assert names == [f"frame_{number:05d}.png" for number in range(1, target + 1)]
    assert sum(reported) == target
    expected = [-(-index * VIDEO_FRAMES // target) for index in range(target)]  # ceil(i * 30 / target)
    assert [source_frame(tmp_path / "frames" / name) for name in names] == expected


def test_short_video_gives_every_frame(video: Path, tmp_path: Path) -> None:
    names = extract_frames(video, VIDEO_FRAMES, tmp_path / "frames", 100, lambda _: None)
    assert len(names) == VIDEO_FRAMES


def test_unreadable_video(tmp_path: Path) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    with pytest.raises(NerfkitError, match="cannot be read as a video"):
        count_frames(tmp_path / "broken.mp4")
    with pytest.raises(NerfkitError, match="does not exist"):
        count_frames(tmp_path / "missing.mp4")


def test_video_subcommand_writes_frames_and_matches_sequentially(
    video: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backends = []

    def make(tool: str, settings: SfmSettings, colmap_cmd: str) -> FakeBackend:
        backends.append(settings)
        return FakeBackend([8])

    monkeypatch.setattr(process_data, "make_backend", make)
    output = tmp_path / "out"
    assert main(["video", "--data", str(video), "--num-frames-target", "8", "--output-dir", str(output)]) == 0
    assert backends[0].matching_method == "sequential"
    assert len(list((output / "images").iterdir())) == 8
    assert len(load_transforms(output)["frames"]) == 8


# The model -> Nerfstudio conversion


def test_transforms_have_shared_intrinsics_and_opengl_poses() -> None:
    names = [f"frame_{index:05d}.png" for index in (3, 1, 2)]
    transforms = transforms_from_model(known_model(names))
    fx, fy, cx, cy, k1, k2, p1, p2 = OPENCV_PARAMS
    expected = {"camera_model": "OPENCV", "fl_x": fx, "fl_y": fy, "cx": cx, "cy": cy, "w": WIDTH, "h": HEIGHT}
    assert {key: transforms[key] for key in expected} == expected
    assert (transforms["k1"], transforms["k2"], transforms["p1"], transforms["p2"]) == (k1, k2, p1, p2)
    assert "k3" not in transforms and "k4" not in transforms
    assert transforms["applied_transform"] == np.eye(4)[:3].tolist()
    assert transforms["ply_file_path"] == "sparse_pc.ply"
    frames = transforms["frames"]
    assert [frame["file_path"] for frame in frames] == [f"images/frame_0000{i}.png" for i in (1, 2, 3)]
    # Image ids follow `names`, poses follow ids: frame_00001 is the second image, with the second pose.
    poses = known_poses(3)
    for frame, image_index in zip(frames, [1, 2, 0], strict=True):
        np.testing.assert_allclose(frame["transform_matrix"], poses[image_index], atol=1e-12)
        assert "fl_x" not in frame


def test_several_cameras_give_per_frame_intrinsics() -> None:
    model = known_model(["a.png", "b.png"], camera_ids=[1, 2], models={1: "OPENCV_FISHEYE", 2: "OPENCV_FISHEYE"})
    model.cameras[2].params[0] = 99.0
    transforms = transforms_from_model(model)
    assert transforms["camera_model"] == "OPENCV_FISHEYE" and "fl_x" not in transforms
    assert [frame["fl_x"] for frame in transforms["frames"]] == [15.0, 99.0]
    assert [frame["k4"] for frame in transforms["frames"]] == [-4e-4, -4e-4]
    assert "p1" not in transforms["frames"][0]


def test_pinhole_has_no_distortion_fields() -> None:
    transforms = transforms_from_model(known_model(["a.png"], models={1: "PINHOLE"}))
    assert transforms["camera_model"] == "PINHOLE"
    assert not {"k1", "k2", "k3", "k4", "p1", "p2"} & transforms.keys()


def test_mixed_camera_models_are_refused() -> None:
    model = known_model(["a.png", "b.png"], camera_ids=[1, 2], models={1: "OPENCV", 2: "PINHOLE"})
    with pytest.raises(NerfkitError, match="mixes camera models \\(OPENCV, PINHOLE\\)"):
        transforms_from_model(model)


def test_downscaled_size_rounds_like_the_cameras() -> None:
    assert downscaled_size((13, 7), 2) == (6, 4)
    assert downscaled_size((1001, 601), 2) == (500, 300)
    assert downscaled_size((13, 7), 8) == (2, 1)


# The whole command, with the fake back-end


def test_images_subcommand_writes_a_dataset_the_dataparser_loads(
    photos: Path, tmp_path: Path, fake_sfm: Callable[[list[int]], None], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sfm([4])
    output = tmp_path / "out"
    assert main(["images", "--data", str(photos), "--output-dir", str(output)]) == 0
    assert "COLMAP registered 4 of 4 images" in capsys.readouterr().out
    names = [f"frame_{number:05d}.png" for number in range(1, 5)]
    assert sorted(path.name for path in (output / "images").iterdir()) == names
    assert (output / "colmap/database.db").is_file() and (output / "colmap/sparse/0/images.bin").is_file()
    assert not (output / ".kit-process-data").exists()
    for factor, size in [(2, (6, 4)), (4, (3, 2)), (8, (2, 1))]:
        for name in names:
            assert Image.open(output / f"images_{factor}" / name).size == size
    ply = plyfile.PlyData.read(output / "sparse_pc.ply")["vertex"]
    np.testing.assert_allclose(np.stack([ply["x"], ply["y"], ply["z"]], axis=1), [[0.1, 0.2, 0.3], [-1, 0.5, 2]])
    assert np.stack([ply["red"], ply["green"], ply["blue"]], axis=1).tolist() == [[255, 0, 10], [0, 128, 255]]

    for factor, size in [(1, (WIDTH, HEIGHT)), (2, (6, 4))]:
        parsed = SceneDataParserConfig(data=output, downscale_factor=factor).setup().get_dataparser_outputs("train")
        assert parsed.format_description == "nerfstudio (detected)"
        assert parsed.cameras.camera_model == "OPENCV"
        assert [path.parent.name for path in parsed.image_filenames] == ["images" if factor == 1 else "images_2"] * 3
        assert tuple(InputDataset(parsed).images.shape[1:3]) == size[::-1]


def test_largest_of_several_models_is_kept(
    photos: Path, tmp_path: Path, fake_sfm: Callable[[list[int]], None], capsys: pytest.CaptureFixture[str]
) -> None:
    fake_sfm([2, 4, 3])
    output = tmp_path / "out"
    assert main(["images", "--data", str(photos), "--output-dir", str(output)]) == 0
    out = capsys.readouterr().out
    assert "COLMAP registered 4 of 4 images" in out
    assert "made 3 models (4, 3, 2 images); kept the largest" in out
    assert len(load_transforms(output)["frames"]) == 4
    assert len(read_model(output / "colmap/sparse/0").images) == 4
    assert len(read_model(output / "colmap/sparse/1").images) == 2


@pytest.mark.parametrize(
    ("model_sizes", "message"),
    [([1], "registered only 1 of 5 images, fewer than --min-registered-fraction 0.5"), ([], "made no model")],
)
def test_too_few_registered_images_fail_and_keep_the_earlier_output(
    photos: Path, tmp_path: Path, fake_sfm: Callable[[list[int]], None], model_sizes: list[int], message: str
) -> None:
    output = tmp_path / "out"
    fake_sfm([4])
    assert main(["images", "--data", str(photos), "--output-dir", str(output)]) == 0
    before = snapshot(output)
    write_rgb(photos / "photo_9.png", 9)
    fake_sfm(model_sizes)
    with pytest.raises(NerfkitError, match=message) as error:
        main(["images", "--data", str(photos), "--output-dir", str(output), "--matching-method", "sequential"])
    assert "--matching-method exhaustive" in error.value.hint and "overlap" in error.value.hint
    assert snapshot(output) == before


def test_lower_registered_fraction_accepts_a_partial_model(
    photos: Path, tmp_path: Path, fake_sfm: Callable[[list[int]], None]
) -> None:
    fake_sfm([1])
    output = tmp_path / "out"
    assert (
        main(["images", "--data", str(photos), "--output-dir", str(output), "--min-registered-fraction", "0.25"]) == 0
    )
    assert len(load_transforms(output)["frames"]) == 1
    assert sorted(path.name for path in (output / "images_2").iterdir()) == ["frame_00001.png"]


def test_skip_colmap_rewrites_only_transforms_and_pyramid(
    photos: Path, tmp_path: Path, fake_sfm: Callable[[list[int]], None]
) -> None:
    fake_sfm([4])
    output = tmp_path / "out"
    assert main(["images", "--data", str(photos), "--output-dir", str(output)]) == 0
    kept = {name: snapshot(output / name) for name in ("images", "colmap")}
    (output / "transforms.json").unlink()
    fake_sfm([])  # would fail if COLMAP ran
    assert main(["images", "--output-dir", str(output), "--skip-colmap", "--num-downscales", "1"]) == 0
    assert {name: snapshot(output / name) for name in ("images", "colmap")} == kept
    assert len(load_transforms(output)["frames"]) == 4
    assert sorted(path.name for path in output.glob("images_*")) == ["images_2"]


def test_skip_colmap_with_another_model(tmp_path: Path) -> None:
    """--colmap-model-path converts a model made elsewhere, for images already in <output-dir>/images."""
    output = tmp_path / "out"
    for index in range(3):
        write_rgb(output / "images" / f"view_{index}.png", index)
    write_model(known_model([f"view_{index}.png" for index in range(3)]), tmp_path / "model", binary=False)
    argv = ["images", "--output-dir", str(output), "--skip-colmap", "--colmap-model-path", str(tmp_path / "model")]
    assert main(argv) == 0
    assert [frame["file_path"] for frame in load_transforms(output)["frames"]] == [
        f"images/view_{index}.png" for index in range(3)
    ]
    (output / "images/view_1.png").unlink()
    with pytest.raises(NerfkitError, match="names 1 images that .* lacks, e.g. view_1.png"):
        main(argv)


def test_skip_colmap_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(NerfkitError, match="No COLMAP model"):
        main(["images", "--output-dir", str(tmp_path), "--skip-colmap"])


def test_foreign_files_in_the_output_folder_need_overwrite(
    photos: Path, tmp_path: Path, fake_sfm: Callable[[list[int]], None]
) -> None:
    fake_sfm([4])
    output = tmp_path / "out"
    output.mkdir()
    (output / "thesis.tex").write_text("precious")
    argv = ["images", "--data", str(photos), "--output-dir", str(output)]
    with pytest.raises(NerfkitError, match=r"already holds files that kit-process-data did not write \(thesis.tex\)"):
        main(argv)
    assert sorted(path.name for path in output.iterdir()) == ["thesis.tex"]
    assert main([*argv, "--overwrite"]) == 0
    assert (output / "thesis.tex").read_text() == "precious"
    # A folder holding only an earlier output is rewritten without asking.
    (output / "thesis.tex").unlink()
    assert main(argv) == 0


def test_missing_pycolmap_says_how_to_install(photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pycolmap", None)  # makes `import pycolmap` raise ImportError
    monkeypatch.setattr(colmap_runner.shutil, "which", lambda _: None)
    with pytest.raises(NerfkitError, match="pycolmap, COLMAP's Python bindings, is not installed") as error:
        main(["images", "--data", str(photos), "--output-dir", str(tmp_path / "out")])
    for advice in ("pip install pycolmap", "pip install nerfkit[colmap]", "apt-get install colmap", "colmap-binary"):
        assert advice in error.value.hint
    assert not (tmp_path / "out").exists()


def test_missing_colmap_program(photos: Path, tmp_path: Path) -> None:
    argv = ["images", "--data", str(photos), "--output-dir", str(tmp_path / "out"), "--sfm-tool", "colmap-binary"]
    with pytest.raises(NerfkitError, match=r"'/nowhere/colmap' \(--colmap-cmd\) was not found") as error:
        main([*argv, "--colmap-cmd", "/nowhere/colmap"])
    assert "apt-get install colmap" in error.value.hint


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--data is required"),
        (["--data", "x", "--colmap-model-path", "m"], "only read with --skip-colmap"),
        (["--data", "x", "--num-downscales", "-1"], "--num-downscales must be >= 0, got -1"),
        (["--data", "x", "--min-registered-fraction", "1.5"], "--min-registered-fraction must be 0 to 1, got 1.5"),
        (["--data", "x", "--max-image-size", "0"], "--max-image-size must be >= 1, got 0"),
        (["--data", "x", "--matching-method", "vocab_tree"], "needs a vocabulary tree"),
    ],
)
def test_argument_errors(tmp_path: Path, extra: list[str], message: str) -> None:
    with pytest.raises(NerfkitError, match=message):
        main(["images", "--output-dir", str(tmp_path / "out"), *extra])
    assert not (tmp_path / "out").exists()


def test_console_script_prints_one_line_error_without_traceback(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "nerfkit.scripts.process_data", "images", "--output-dir", str(tmp_path)]
    result = subprocess.run([*command, "--data", str(tmp_path / "none")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "error: --data" in result.stderr and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    debug = subprocess.run([*command, "--data", str(tmp_path / "none"), "--debug"], capture_output=True, text=True)
    assert "Traceback" in debug.stderr
