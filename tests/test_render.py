"""kit-render end to end on the tiny trained lego run: videos and frame folders of the requested length and size,
camera-path keyframes rendered exactly, and user errors that exit 1 with a message and leave the output untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from nerfkit.cameras.camera_paths import focal_from_fov, look_at, pinhole_cameras
from nerfkit.engine.run_loading import load_run
from nerfkit.pipelines.base_pipeline import evaluating
from nerfkit.scripts.render import main, pad_to_even, render_frame
from nerfkit.utils.cli import run_cli

KIT_RENDER = Path(sys.executable).parent / "kit-render"
EXIT_USER_ERROR = 1


@dataclass
class Result:
    code: int
    out: str
    err: str


KitRender = Callable[..., Result]


@pytest.fixture
def kit_render(capsys: pytest.CaptureFixture[str]) -> KitRender:
    """Runs kit-render in-process, as its entry point does: errors become a message and an exit code."""

    def run(*args: str | Path) -> Result:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            run_cli(main, [str(arg) for arg in args])
        captured = capsys.readouterr()
        return Result(int(exit_info.value.code), captured.out, captured.err)

    return run


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    return list(iio.imiter(path)), iio.immeta(path)["fps"]


def test_orbit_writes_an_mp4_with_the_requested_frames_and_size(
    kit_render: KitRender, tiny_lego_run: Path, tmp_path: Path
) -> None:
    output = tmp_path / "videos" / "orbit.mp4"
    result = kit_render("orbit", "--load-config", tiny_lego_run, "--downscale-factor", "5", "--num-frames", "6",
                        "--fps", "12", "--output-path", output)  # fmt: skip
    assert result.code == 0, result.err
    frames, fps = read_video(output)
    assert len(frames) == 6 and fps == 12
    assert {frame.shape for frame in frames} == {(20, 20, 3)}
    assert "wrote 6 frames of 20x20 at 12 fps" in result.out
    assert [path.name for path in output.parent.iterdir()] == ["orbit.mp4"], "no temporary files are left"


def test_odd_sizes_are_padded_for_h264(kit_render: KitRender, tiny_lego_run: Path, tmp_path: Path) -> None:
    output = tmp_path / "odd.mp4"
    result = kit_render("orbit", "--load-config", tiny_lego_run, "--downscale-factor", "4", "--num-frames", "2",
                        "--output-path", output)  # fmt: skip
    assert result.code == 0, result.err
    frames, _ = read_video(output)
    assert len(frames) == 2 and frames[0].shape == (26, 26, 3)
    assert "2 frames of 25x25" in result.out and "padded to even sizes" in result.out
    frame = np.arange(5 * 3 * 3, dtype=np.uint8).reshape(5, 3, 3)
    padded = pad_to_even(frame)
    assert padded.shape == (6, 4, 3)
    np.testing.assert_array_equal(padded[:5, :3], frame)
    np.testing.assert_array_equal(padded[5, :3], frame[4])
    np.testing.assert_array_equal(padded[:5, 3], frame[:, 2])


def test_frame_folder_puts_outputs_side_by_side_and_replaces_an_earlier_render(
    kit_render: KitRender, tiny_lego_run: Path, tmp_path: Path
) -> None:
    output = tmp_path / "frames"
    args = ["orbit", "--load-config", tiny_lego_run, "--downscale-factor", "4", "--output-path", output,
            "--rendered-output-names", "rgb", "depth", "accumulation"]  # fmt: skip
    assert kit_render(*args, "--num-frames", "2").code == 0
    assert sorted(path.name for path in output.iterdir()) == ["00000.png", "00001.png"]
    image = iio.imread(output / "00001.png")
    assert image.shape == (25, 75, 3)
    accumulation = image[:, 50:].astype(int)
    assert (accumulation[..., 0] == accumulation[..., 1]).all(), "single-channel outputs are grey"
    assert kit_render(*args, "--num-frames", "1").code == 0
    assert sorted(path.name for path in output.iterdir()) == ["00000.png"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["frames"]


def keyframes_json(path: Path, keys: torch.Tensor, fovs: list[float], **fields: object) -> Path:
    rows = torch.cat([keys, torch.tensor([[[0.0, 0.0, 0.0, 1.0]]]).expand(len(keys), 1, 4)], dim=1)
    keyframes = [
        {"matrix": row.flatten().tolist(), "fov": fov, "aspect": 1.0} for row, fov in zip(rows, fovs, strict=True)
    ]
    data = {"camera_type": "perspective", "render_width": 20, "render_height": 20, "fps": 5, "seconds": 1,
            "keyframes": keyframes, **fields}  # fmt: skip
    path.write_text(json.dumps(data))
    return path


def test_camera_path_frames_at_the_keys_are_the_keyframes(
    kit_render: KitRender, tiny_lego_run: Path, tmp_path: Path
) -> None:
    keys = look_at(torch.tensor([[4.0, 0.0, 1.0], [0.0, 3.5, 2.5], [-3.0, -2.0, 1.5]]), torch.zeros(3), torch.eye(3)[2])
    fovs = [40.0, 55.0, 45.0]
    camera_path = keyframes_json(tmp_path / "path.json", keys, fovs)
    output = tmp_path / "frames"
    result = kit_render("camera-path", "--load-config", tiny_lego_run, "--camera-path-filename", camera_path,
                        "--output-path", output)  # fmt: skip
    assert result.code == 0, result.err
    assert "wrote 5 frames of 20x20 at 5 fps" in result.out
    frames = [iio.imread(output / f"{index:05d}.png") for index in range(5)]
    model = load_run(tiny_lego_run).pipeline.model
    key_cameras = pinhole_cameras(keys, focal_from_fov(torch.tensor(fovs), 20), 20, 20)
    with evaluating(model):
        for key, frame in enumerate([0, 2, 4]):
            expected = render_frame(model, key_cameras, key, ("rgb",), (None, None))
            assert np.abs(frames[frame].astype(int) - expected.astype(int)).max() <= 1


def test_interpolate_passes_through_a_split_the_run_did_not_load(
    kit_render: KitRender, tiny_lego_run: Path, tmp_path: Path
) -> None:
    output = tmp_path / "test.mp4"
    result = kit_render("interpolate", "--load-config", tiny_lego_run, "--split", "test", "--downscale-factor", "10",
                        "--frames-per-transition", "1", "--output-path", output)  # fmt: skip
    assert result.code == 0, result.err
    frames, fps = read_video(output)
    assert len(frames) == 10 and frames[0].shape == (10, 10, 3) and fps == 24


def test_missing_run_exits_1_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-run"
    output = tmp_path / "orbit.mp4"
    result = subprocess.run([str(KIT_RENDER), "orbit", "--load-config", str(missing), "--output-path", str(output)],
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == EXIT_USER_ERROR
    assert f"run config {missing} not found" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def frame_path_json(path: Path) -> Path:
    path.write_text(json.dumps({"render_width": 20, "render_height": 20, "fps": 5, "camera_path": [
        {"camera_to_world": [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 4, 0, 0, 0, 1], "fov": 50}]}))  # fmt: skip
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["orbit", "--num-frames", "3", "--seconds", "1"], "--num-frames and --seconds both set the number of frames"),
        (["orbit", "--downscale-factor", "0"], "--downscale-factor must be > 0, got 0.0"),
        (["orbit", "--fov", "180"], "--fov must be > 0 and < 180, got 180.0"),
        (["orbit", "--fps", "inf"], "--fps must be finite and > 0, got inf"),
        (["orbit", "--downscale-factor", "1000"], "--downscale-factor 1000 leaves frames without pixels"),
        (
            ["orbit", "--output-path", "{tmp}/orbit.gif"],
            "--output-path {tmp}/orbit.gif: .gif is not a supported output",
        ),
        (
            ["orbit", "--downscale-factor", "10", "--rendered-output-names", "rgb", "normals"],
            "--rendered-output-names: normals not among",
        ),
        (["camera-path", "--camera-path-filename", "{tmp}/empty.json"], "{tmp}/empty.json: no cameras"),
        (["camera-path", "--camera-path-filename", "{tmp}/broken.json"], "{tmp}/broken.json: line 3, column 3"),
        (["camera-path", "--camera-path-filename", "{tmp}/frames.json", "--seconds", "2"], "--seconds needs keyframes"),
    ],
)
def test_user_errors_exit_1_and_leave_the_output_as_it_was(
    kit_render: KitRender, tiny_lego_run: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "empty.json").write_text(json.dumps({"render_width": 20, "render_height": 20, "camera_path": []}))
    (tmp_path / "broken.json").write_text('{\n  "render_width": 20\n  "render_height": 20\n}\n')
    frame_path_json(tmp_path / "frames.json")
    earlier = tmp_path / "orbit.mp4"
    earlier.write_bytes(b"an earlier render")
    before = sorted(tmp_path.iterdir())
    args = [arg.format(tmp=tmp_path) for arg in args]
    output = [] if "--output-path" in args else ["--output-path", earlier]
    result = kit_render(*args, "--load-config", tiny_lego_run, *output)
    assert result.code == EXIT_USER_ERROR
    assert message.format(tmp=tmp_path) in result.err
    assert "Traceback" not in result.err
    assert sorted(tmp_path.iterdir()) == before, "no file is added or removed"
    assert earlier.read_bytes() == b"an earlier render"


def test_a_folder_holding_other_files_is_refused(kit_render: KitRender, tiny_lego_run: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    result = kit_render("orbit", "--load-config", tiny_lego_run, "--output-path", tmp_path)
    assert result.code == EXIT_USER_ERROR
    assert f"--output-path {tmp_path} holds files other than rendered frames" in result.err
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]
