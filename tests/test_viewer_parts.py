"""The viewer's parts without a browser: camera conventions, progressive rendering against the model's own whole-image
render, the crop box, smooth camera paths and their files, and kit-export's crop box."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nerfkit.cameras.camera_paths import (
    camera_path_record,
    focal_from_fov,
    interpolate_cameras,
    key_frame_indices,
    look_at,
    pinhole_cameras,
    read_camera_path,
)
from nerfkit.data.scene_box import SceneBox
from nerfkit.engine.run_loading import load_run
from nerfkit.pipelines.base_pipeline import evaluating
from nerfkit.utils.colormaps import output_image
from nerfkit.viewer.rendering import FrameRender, rendering_state, resolution_schedule
from nerfkit.viewer.views import View, image_size, view_cameras, view_from_viser, viser_pose

KEYS = look_at(torch.tensor([[4.0, 0.0, 1.0], [0.0, 3.5, 2.5], [-3.0, -2.0, 1.5]]), torch.zeros(3), torch.eye(3)[2])


def test_viser_cameras_look_down_plus_z_and_nerfkit_cameras_down_minus_z() -> None:
    view = view_from_viser(np.array([1.0, 0.0, 0.0, 0.0]), np.array([1.0, 2.0, 3.0]), fov=1.0, aspect=1.5)
    np.testing.assert_allclose(view.camera_to_world[:, :3], np.diag([1.0, -1.0, -1.0]), atol=1e-12)
    np.testing.assert_allclose(view.camera_to_world[:, 3], [1.0, 2.0, 3.0])
    pose = KEYS[1].double().numpy()
    wxyz, position = viser_pose(pose)
    back = view_from_viser(wxyz, position, 1.0, 1.0).camera_to_world
    np.testing.assert_allclose(back, pose, atol=1e-9)


def test_image_sizes_keep_the_aspect_and_the_schedule_ends_at_the_maximum() -> None:
    assert image_size(2.0, 128) == (128, 64)
    assert image_size(0.5, 128) == (64, 128)
    assert resolution_schedule(64, 512) == [64, 128, 256, 512]
    assert resolution_schedule(64, 300) == [64, 128, 256, 300]
    assert resolution_schedule(64, 32) == [32]


def test_a_view_renders_through_the_camera_kit_render_builds_from_the_same_fov(tiny_lego_run: Path) -> None:
    view = View(KEYS[0].double().numpy(), fov=math.radians(40.0), aspect=1.0)
    cameras = view_cameras(view, 24, 18)
    reference = pinhole_cameras(KEYS[:1], focal_from_fov(torch.tensor([40.0]), 18), 24, 18)
    torch.testing.assert_close(cameras.fy, reference.fy)
    torch.testing.assert_close(cameras.camera_to_worlds, reference.camera_to_worlds)
    assert (int(cameras.width[0]), int(cameras.height[0])) == (24, 18)


def test_chunked_frames_equal_the_whole_image_render_and_leave_training_state_alone(tiny_lego_run: Path) -> None:
    model = load_run(tiny_lego_run).pipeline.model
    model.train()
    cameras = pinhole_cameras(KEYS, focal_from_fov(torch.full((3,), 45.0), 20), 30, 20)
    frame = FrameRender(model, cameras[1:2], chunk_size=97)
    steps = 0
    while not frame.advance():
        steps += 1
    assert steps == math.ceil(600 / 97) - 1
    random_state = torch.get_rng_state()
    with evaluating(model):
        expected = model.get_outputs_for_camera(cameras, 1)
    outputs = frame.outputs()
    for name in ("rgb", "depth", "accumulation"):
        torch.testing.assert_close(outputs[name], expected[name], atol=1e-5, rtol=1e-4)
    assert model.training, "rendering must hand the model back in training mode"
    assert torch.equal(torch.get_rng_state(), random_state)


def test_the_crop_box_removes_matter_outside_it_and_only_while_rendering(tiny_lego_run: Path) -> None:
    model = load_run(tiny_lego_run).pipeline.model
    cameras = pinhole_cameras(KEYS, focal_from_fov(torch.full((3,), 45.0), 16), 16, 16)
    whole = FrameRender(model, cameras[:1], 256).render()
    everything = SceneBox(aabb=torch.tensor([[-10.0] * 3, [10.0] * 3]))
    nothing = SceneBox(aabb=torch.tensor([[5.0] * 3, [6.0] * 3]))
    torch.testing.assert_close(FrameRender(model, cameras[:1], 256, everything).render()["rgb"], whole["rgb"])
    empty = FrameRender(model, cameras[:1], 256, nothing).render()
    assert whole["accumulation"].max() > 0.5
    assert empty["accumulation"].max() < 1e-6
    with rendering_state(model, nothing):
        assert model.crop_box is nothing
    assert model.crop_box is None


def test_smoothness_goes_from_straight_segments_to_the_spline_and_always_hits_the_keys() -> None:
    keys = pinhole_cameras(KEYS, focal_from_fov(torch.tensor([40.0, 55.0, 45.0]), 20), 20, 20)
    at_keys = key_frame_indices(3, 9)
    straight = interpolate_cameras(keys, 9, smoothness=0.0)
    spline = interpolate_cameras(keys, 9, smoothness=1.0)
    half = interpolate_cameras(keys, 9, smoothness=0.5)
    for path in (straight, spline, half):
        torch.testing.assert_close(path.camera_to_worlds[at_keys], KEYS, atol=1e-5, rtol=0)
        torch.testing.assert_close(path.fy[at_keys], keys.fy, atol=1e-3, rtol=0)
    positions = straight.camera_to_worlds[:, :, 3]
    midway = (positions[at_keys[0]] + positions[at_keys[1]]) / 2
    torch.testing.assert_close(positions[(at_keys[0] + at_keys[1]) // 2], midway, atol=1e-5, rtol=0)
    assert (spline.camera_to_worlds[:, :, 3] - positions).abs().max() > 0.05
    between = half.camera_to_worlds[:, :, 3]
    torch.testing.assert_close(between, (positions + spline.camera_to_worlds[:, :, 3]) / 2, atol=1e-5, rtol=0)


def test_a_saved_path_reads_back_with_its_keyframes_frames_and_settings(tmp_path: Path) -> None:
    keys = pinhole_cameras(KEYS, focal_from_fov(torch.tensor([40.0, 55.0, 45.0]), 30), 40, 30)
    record = camera_path_record(keys, fps=6.0, seconds=2.0, is_cycle=True, smoothness=0.3)
    path = tmp_path / "path.json"
    path.write_text(json.dumps(record))
    file = read_camera_path(path)
    assert not file.are_keyframes and file.is_cycle and file.smoothness == 0.3
    assert (file.fps, file.seconds) == (6.0, 2.0)
    assert len(file.cameras) == 12 and file.keyframes is not None
    torch.testing.assert_close(file.keyframes.camera_to_worlds, KEYS, atol=1e-6, rtol=0)
    torch.testing.assert_close(file.keyframes.fy, keys.fy, atol=1e-3, rtol=0)
    expected = interpolate_cameras(keys, 12, closed=True, smoothness=0.3)
    torch.testing.assert_close(file.cameras.camera_to_worlds, expected.camera_to_worlds, atol=1e-5, rtol=0)
    assert int(file.cameras.width[0]) == 40 and int(file.cameras.height[0]) == 30


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--bounding-box-min", "0", "0", "0"], "--bounding-box-min and --bounding-box-max go together"),
        (["--bounding-box-min", "0", "1", "0", "--bounding-box-max", "1", "0.5", "1"], "in y coordinate"),
    ],
)
def test_export_refuses_a_half_or_inverted_crop_box_before_loading(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from nerfkit.scripts.export import main
    from nerfkit.utils.cli import run_cli

    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["pointcloud", "--load-config", str(tmp_path / "missing"), *flags])
    assert exit_info.value.code == 1
    assert message in capsys.readouterr().err


def test_export_inside_a_crop_box_keeps_only_points_inside_it(tiny_lego_run: Path, tmp_path: Path) -> None:
    from plyfile import PlyData

    from nerfkit.scripts.export import main

    output = tmp_path / "cropped.ply"
    box = ["--bounding-box-min", "-0.3", "-0.3", "-0.3", "--bounding-box-max", "0.3", "0.3", "0.3"]
    assert main(["pointcloud", "--load-config", str(tiny_lego_run), "--output-path", str(output),
                 "--num-points", "500", "--accumulation-threshold", "0.1", *box]) == 0  # fmt: skip
    vertices = PlyData.read(str(output))["vertex"]
    points = np.stack([vertices["x"], vertices["y"], vertices["z"]], axis=-1)
    assert len(points) > 0
    assert np.abs(points).max() <= 0.3 + 1e-6


TEMPLATE_DIR = Path(__file__).resolve().parents[1] / "methods" / "template"


@pytest.mark.parametrize("method", ["vanilla-nerf", "nerfacto", "instant-ngp", "template-plugin"])
def test_every_method_and_a_plug_in_render_in_the_viewer(
    method: str, fake_blender: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The viewer, as kit-viewer starts it, renders each registered method and a plug-in through the model's forward
    call; the crop box and the depth colormap apply to all of them."""
    import io

    from rich.console import Console

    from nerfkit.configs.viewer import ViewerConfig
    from nerfkit.engine.training_run import setup_trainer
    from nerfkit.plugins.registry import ENV_VAR, discover_methods
    from nerfkit.scripts.train import parse_args
    from nerfkit.viewer.rendering import DisplaySettings
    from nerfkit.viewer.viewer import ViewedRun, Viewer

    if method == "template-plugin":
        monkeypatch.syspath_prepend(str(TEMPLATE_DIR))
        monkeypatch.setenv(ENV_VAR, "template-plugin=nerfkit_template.template_config:my_method")
    data = fake_blender(sizes=((16, 12),) * 2)  # type: ignore[operator]
    fake_blender(sizes=((16, 12),), split="val")  # type: ignore[operator]
    argv = [method, "--data", str(data), "--vis", "none", "--output-dir", str(tmp_path / "out")]
    trainer = setup_trainer(parse_args(argv, discover_methods()), Console(file=io.StringIO()))
    run = ViewedRun.of(trainer.pipeline, trainer.run_dir)
    viewer = Viewer(ViewerConfig(port=free_port()), trainer.pipeline.model, run, Console(file=io.StringIO()),
                    training=False)  # fmt: skip
    view = View(KEYS[0].double().numpy(), fov=math.radians(40.0), aspect=1.0)
    try:
        shown = {name: viewer.render_view(view, 12, 10, DisplaySettings(output=name)) for name in ("rgb", "depth")}
        crop = ((5.0, 5.0, 5.0), (6.0, 6.0, 6.0))
        cropped = viewer.render_view(view, 12, 10, DisplaySettings(output="accumulation", crop=crop))
    finally:
        viewer.close()
    model = trainer.pipeline.model
    with evaluating(model):
        outputs = model.get_outputs_for_camera(view_cameras(view, 12, 10), 0)
    for name, image in shown.items():
        expected = (output_image(outputs, name).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        assert np.abs(image.astype(int) - expected.astype(int)).max() <= 1, name
    assert (cropped == 0).all(), "nothing lies in a box outside the scene: the accumulation is black"


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def test_kit_viewer_serves_a_finished_run_until_ctrl_c(tiny_lego_run: Path) -> None:
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    command = [str(Path(sys.executable).parent / "kit-viewer"), "--load-config", str(tiny_lego_run),
               "--device-type", "cpu", "--viewer.port", str(port)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        lines = []
        while not any(line.startswith("viewer: ") for line in lines):
            line = process.stdout.readline()
            assert line, "kit-viewer exited early:\n" + "".join(lines)
            lines.append(line)
        assert f"viewer: http://localhost:{port}\n" in lines
        assert any("nerfkit_models/step-" in line for line in lines), "it names the checkpoint it shows"
        with urllib.request.urlopen(f"http://localhost:{port}/", timeout=30) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
        process.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert process.returncode == 0
    finally:
        process.kill()
