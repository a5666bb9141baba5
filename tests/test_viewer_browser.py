"""The viewer in a real browser: Debian's Chromium, headless, driven by Playwright, against instant-ngp training on
the built-in scene with --vis viewer. What a person sees is checked on screenshots of the page's WebGL canvas.

Setting NERFKIT_VIEWER_SCREENSHOT=<file.png> trains longer first (SCREENSHOT_STEPS) and saves a screenshot of the
whole page: the README's picture (docs/viewer.png)."""

from __future__ import annotations

import io
import math
import os
import shutil
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from rich.console import Console

from nerfkit.cameras.camera_paths import key_frame_indices
from nerfkit.engine.trainer import Trainer
from nerfkit.engine.training_run import setup_trainer
from nerfkit.plugins.registry import get_registry
from nerfkit.scripts.train import parse_args
from nerfkit.viewer.viewer import BrowserState, Viewer
from nerfkit.viewer.views import View, view_from_viser

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
"""Debian's package; GitHub's Ubuntu runners have Google Chrome instead."""
CHROMIUM_FLAGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist", "--no-sandbox"]
"""WebGL without a GPU: Chromium's software renderer (SwiftShader), as on a CI machine."""
TIMEOUT = 60.0
SCREENSHOT = os.environ.get("NERFKIT_VIEWER_SCREENSHOT")
SCREENSHOT_STEPS = 1500
NGP_FLAGS = ["--pipeline.target-num-samples", "8192", "--pipeline.model.eval-num-rays-per-chunk", "4096"]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


@dataclass
class LiveRun:
    trainer: Trainer
    viewer: Viewer
    thread: threading.Thread
    log: io.StringIO


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed; .ci/run installs it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module", autouse=True)
def builtin_scene_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One cache for this module's runs (the built-in scene is written once), not the user's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NERFKIT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
        yield


def start_run(root: Path, *flags: str) -> LiveRun:
    """instant-ngp training on the built-in scene in a background thread, with the viewer on a free port."""
    argv = ["instant-ngp", "--vis", "viewer", "--viewer.port", str(free_port()), "--viewer.max-resolution", "128",
            "--viewer.preview-resolution", "32", "--steps-per-eval-batch", "0", "--steps-per-eval-image", "0",
            "--output-dir", str(root), "--timestamp", "run", *NGP_FLAGS, *flags]  # fmt: skip
    log = io.StringIO()
    trainer = setup_trainer(parse_args(argv, get_registry()), Console(file=log, width=200))
    assert trainer.viewer is not None
    thread = threading.Thread(target=trainer.train, daemon=True)
    thread.start()
    return LiveRun(trainer, trainer.viewer, thread, log)


def end_run(run: LiveRun) -> None:
    run.trainer.stop.signal_number = signal.SIGINT
    run.viewer.close()
    run.thread.join(timeout=TIMEOUT)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRun]:
    """A run that trains until the module's tests are done."""
    resolution = ["--viewer.max-resolution", "512"] if SCREENSHOT else []
    run = start_run(tmp_path_factory.mktemp("viewer"), "--max-num-iterations", "1000000", *resolution)
    steps = SCREENSHOT_STEPS if SCREENSHOT else 60
    wait_for(lambda: run.trainer.step >= steps, f"{steps} training steps", timeout=3600)
    yield run
    end_run(run)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def canvas(page: object) -> np.ndarray:
    return iio.imread(page.locator("canvas").first.screenshot(), extension=".png")[..., :3].astype(float)  # type: ignore[attr-defined]


def changed_share(first: np.ndarray, second: np.ndarray) -> float:
    """The share of pixels that changed visibly (by more than 40 of 255 in some channel)."""
    return float((np.abs(first - second).max(axis=-1) > 40).mean())


def only_browser(viewer: Viewer) -> BrowserState:
    with viewer.lock:
        assert len(viewer.browsers) == 1
        return next(iter(viewer.browsers.values()))


def sharp(browser: BrowserState) -> bool:
    """Whether the browser shows the sharpest frame of what it asks for."""
    return browser.sent_version == browser.version and browser.frame is None and browser.sent_level > 0


def settle(page: object, browser: BrowserState) -> np.ndarray:
    wait_for(lambda: sharp(browser), "the sharpest frame")
    page.wait_for_timeout(500)  # type: ignore[attr-defined]
    return canvas(page)


@pytest.fixture(scope="module")
def page(chromium: object, live: LiveRun) -> Iterator[object]:
    page = chromium.new_page(viewport={"width": 900, "height": 600})  # type: ignore[attr-defined]
    page.goto(live.viewer.url)
    wait_for(lambda: len(live.viewer.browsers) == 1, "the page to connect")
    yield page
    page.close()


def test_the_page_shows_a_render_that_is_not_blank(live: LiveRun, page: object) -> None:
    assert f"viewer: {live.viewer.url}" in live.log.getvalue()
    image = settle(page, only_browser(live.viewer))
    assert image.std() > 20.0, "the canvas looks uniform"
    assert len(np.unique(image.reshape(-1, 3) // 8, axis=0)) > 50, "the canvas has hardly any colours"
    if SCREENSHOT:
        page.locator(".mantine-Notification-root button").first.click()  # type: ignore[attr-defined]
        page.wait_for_timeout(1000)  # type: ignore[attr-defined]
        page.screenshot(path=SCREENSHOT)  # type: ignore[attr-defined]


def test_moving_the_camera_and_switching_to_depth_change_the_image(live: LiveRun, page: object) -> None:
    browser = only_browser(live.viewer)
    live.viewer.show_cameras.value = False  # the render alone
    camera = browser.client.camera
    camera.position, camera.look_at = (2.5, 0.0, 1.5), (0.0, 0.0, 0.0)
    before = settle(page, browser)
    camera.position, camera.look_at = (0.0, 2.5, 1.5), (0.0, 0.0, 0.0)
    moved = settle(page, browser)
    if shots := os.environ.get("NERFKIT_DEBUG_SHOTS"):
        iio.imwrite(f"{shots}/before.png", before.astype(np.uint8))
        iio.imwrite(f"{shots}/moved.png", moved.astype(np.uint8))
    assert changed_share(before, moved) > 0.03
    live.viewer.output.value = "depth"
    depth = settle(page, browser)
    if shots:
        iio.imwrite(f"{shots}/depth.png", depth.astype(np.uint8))
    assert changed_share(moved, depth) > 0.03
    live.viewer.output.value = "rgb"
    live.viewer.show_cameras.value = True


def test_the_training_cameras_are_drawn_and_clicking_one_moves_the_view_there(live: LiveRun, page: object) -> None:
    cameras = live.trainer.pipeline.datamanager.train_cameras
    assert len(live.viewer.frustums) == len(cameras)
    browser = only_browser(live.viewer)
    target = cameras.camera_to_worlds[3].double().numpy()
    live.viewer.move_browser(browser.client, View(target, fov=0.7, aspect=1.0))
    camera = browser.client.camera
    wait_for(lambda: np.allclose(camera.position, target[:, 3], atol=1e-3), "the browser to move to camera 3")
    reported = view_from_viser(camera.wxyz, camera.position, camera.fov, camera.aspect)
    np.testing.assert_allclose(reported.camera_to_world, target, atol=1e-3)


def test_an_inverted_crop_box_is_explained_in_the_panel_and_a_valid_one_crops(live: LiveRun, page: object) -> None:
    viewer, browser = live.viewer, only_browser(live.viewer)
    viewer.set_paused(True)  # the same weights for every screenshot
    viewer.show_cameras.value = False
    page.get_by_text("Crop", exact=True).click()  # type: ignore[attr-defined]
    left = slice(0, 500)  # left of the panel, whose height changes with its messages
    whole = settle(page, browser)[:, left]
    viewer.crop_min.value, viewer.crop_max.value = (0.5, -1.0, -1.0), (0.2, 1.0, 1.0)
    viewer.crop_enabled.value = True
    wait_for(lambda: page.get_by_text("Crop box not applied").count() == 1, "the panel's message")  # type: ignore[attr-defined]
    assert "min is above max in x" in viewer.crop_message.content
    unchanged = settle(page, browser)[:, left]
    assert changed_share(whole, unchanged) < 0.002, "an invalid box leaves the render as it was"
    viewer.crop_min.value = (-0.1, -1.0, -1.0)
    viewer.crop_max.value = (0.1, 1.0, 1.0)
    assert viewer.crop_message.content == ""
    cropped = settle(page, browser)[:, left]
    assert changed_share(whole, cropped) > 0.01
    assert "--bounding-box-min -0.100 -1.000 -1.000 --bounding-box-max 0.100 1.000 1.000" in (
        viewer.export_commands.content
    )
    viewer.crop_enabled.value = False
    viewer.show_cameras.value = True
    viewer.set_paused(False)


def test_pause_stops_the_step_counter_and_resume_continues_it(live: LiveRun, page: object) -> None:
    page.get_by_role("button", name="Pause training").click()  # type: ignore[attr-defined]
    wait_for(live.viewer.paused.is_set, "the pause")
    page.wait_for_timeout(500)  # type: ignore[attr-defined]
    paused_at = live.trainer.step
    page.wait_for_timeout(2000)  # type: ignore[attr-defined]
    assert live.trainer.step == paused_at
    assert page.get_by_text(f"Paused at step {paused_at:,}").count() == 1  # type: ignore[attr-defined]
    page.get_by_role("button", name="Resume training").click()  # type: ignore[attr-defined]
    wait_for(lambda: live.trainer.step > paused_at + 5, "training to go on")


def test_two_browsers_and_one_leaving_mid_render_leave_training_going(
    chromium: object, live: LiveRun, page: object
) -> None:
    second = chromium.new_page(viewport={"width": 500, "height": 400})  # type: ignore[attr-defined]
    second.goto(live.viewer.url)
    wait_for(lambda: len(live.viewer.browsers) == 2, "the second page to connect")
    with live.viewer.lock:
        states = list(live.viewer.browsers.values())
    wait_for(lambda: all(sharp(state) for state in states), "a sharp frame in each page")
    states[-1].client.camera.fov = 0.9  # a new frame starts for the second page ...
    second.close()  # ... which leaves before it is done
    wait_for(lambda: len(live.viewer.browsers) == 1, "the viewer to notice the page left")
    step = live.trainer.step
    wait_for(lambda: live.trainer.step > step + 5, "training to go on")
    settle(page, only_browser(live.viewer))


def test_the_viewer_stays_up_after_training_and_a_saved_camera_path_renders_its_keyframes(
    chromium: object, tmp_path: Path
) -> None:
    from nerfkit.scripts.render import main as kit_render

    run = start_run(tmp_path / "outputs", "--max-num-iterations", "150", "--viewer.keep-open")
    page = chromium.new_page(viewport={"width": 600, "height": 400})  # type: ignore[attr-defined]
    try:
        page.goto(run.viewer.url)
        wait_for(lambda: page.get_by_text("Training finished at step 150").count() == 1, "the finished status")
        assert run.thread.is_alive(), "--viewer.keep-open keeps serving after training"
        editor = run.viewer.camera_path
        camera = only_browser(run.viewer).client.camera
        views = []
        for angle in (0.0, 40.0, 80.0):
            position = (3.5 * math.cos(math.radians(angle)), 3.5 * math.sin(math.radians(angle)), 2.0)
            camera.position = position
            camera.look_at = (0.0, 0.0, 0.3)
            views.append(view_from_viser(camera.wxyz, camera.position, camera.fov, camera.aspect))
            np.testing.assert_allclose(views[-1].camera_to_world[:, 3], position)
            editor.add_keyframe(views[-1])
        editor.width.value, editor.height.value = 40, 30
        editor.seconds.value, editor.fps.value = 1.0, 7.0
        path = editor.save("round_trip")
        assert path == run.trainer.run_dir / "camera_paths/round_trip.json"
    finally:
        page.close()
        end_run(run)
    output = tmp_path / "frames"
    assert kit_render(["camera-path", "--load-config", str(run.trainer.run_dir), "--camera-path-filename",
                       str(path), "--output-path", str(output)]) == 0  # fmt: skip
    for view, frame in zip(views, key_frame_indices(3, 7), strict=True):
        rendered = iio.imread(output / f"{frame:05d}.png").astype(int)
        expected = run.viewer.render_view(view, 40, 30).astype(int)
        assert np.abs(rendered - expected).max() <= 1, f"frame {frame}"


def test_a_taken_port_moves_to_the_next_free_one_and_the_viewer_closes_with_the_run(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["instant-ngp", "--vis", "viewer", "--viewer.port", str(port), "--max-num-iterations", "3",
                "--steps-per-eval-batch", "0", "--steps-per-eval-image", "0", "--output-dir", str(tmp_path),
                "--timestamp", "run", *NGP_FLAGS]  # fmt: skip
        log = io.StringIO()
        trainer = setup_trainer(parse_args(argv, get_registry()), Console(file=log, width=200))
        assert trainer.viewer is not None and trainer.viewer.port != port
        assert f"(port {port} is taken)" in log.getvalue()
        served = trainer.viewer.port
        trainer.train()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", served)) != 0, "the viewer must close with the run"
