"""The viewer: a viser server showing a model from every connected browser's camera, with the training cameras,
the scene and crop boxes, the training's progress and its pause button, and the camera-path editor.

Rendering happens on the caller's thread, in `after_step` between training steps (for at most the panel's share of
the time) or in `serve` when nothing trains, so the model is never used by two threads at once. viser's own threads
only record what the browsers ask for: the latest camera of each, and the panel's settings.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import viser
from jaxtyping import UInt8
from rich.console import Console
from torch import Tensor

from nerfkit.cameras.cameras import Cameras
from nerfkit.configs.viewer import ViewerConfig
from nerfkit.data.scene_box import SceneBox
from nerfkit.models.base_model import Model
from nerfkit.pipelines.base_pipeline import VanillaPipeline
from nerfkit.utils.colormaps import renderable_names
from nerfkit.viewer.camera_path_panel import CameraPathPanel
from nerfkit.viewer.rendering import Corners, DisplaySettings, FrameRender, display_image, resolution_schedule
from nerfkit.viewer.scene_objects import (
    CROP_BOX_COLOUR,
    SCENE_BOX_COLOUR,
    add_box,
    add_training_cameras,
    box_corners,
    camera_view,
    scene_box_array,
    scene_up,
)
from nerfkit.viewer.views import View, image_size, view_cameras, view_from_viser, viser_pose

STATUS_SECONDS = 0.5
"""Least time between two updates of the panel's training figures."""
IDLE_SLEEP = 0.02
"""Pause of a loop that serves browsers while nothing is left to render."""
COLORMAPS = ("default", "viridis", "gray")
INSIDE_CAMERA = 1e-3
"""A browser this close to a training camera (a fraction of the scene box's diagonal) looks through it: that
camera's frustum is hidden, as its thumbnail would cover the view."""


@dataclass
class ViewedRun:
    """What the viewer shows of a run besides its model."""

    cameras: Cameras
    """The training cameras."""
    images: UInt8[Tensor, "num_images height width channels"] | None
    """The training images, for the frustums' thumbnails."""
    scene_box: SceneBox
    """The scene's bounds."""
    run_dir: Path
    """The run folder: camera paths are saved to its camera_paths/ folder."""
    step: int = 0
    """The checkpoint's step, for a finished run."""

    @classmethod
    def of(cls, pipeline: VanillaPipeline, run_dir: Path, step: int = 0) -> ViewedRun:
        """What a pipeline's training split shows: its cameras, images and scene box."""
        datamanager = pipeline.datamanager
        return cls(
            cameras=datamanager.train_cameras,
            images=datamanager.train_dataset.images,
            scene_box=datamanager.train_dataparser_outputs.scene_box,
            run_dir=run_dir,
            step=step,
        )


@dataclass
class BrowserState:
    """One browser: the view it asks for, and the frame in the making."""

    client: viser.ClientHandle
    view: View | None = None
    """The browser's latest camera (None until it reports one)."""
    version: int = 0
    """Counts changes of the view or of the panel's settings; a frame of an older version is dropped."""
    sent_version: int = -1
    """The version of the last frame sent."""
    sent_level: int = -1
    """Index in the resolution schedule of the sharpest frame sent for `sent_version`."""
    frame: FrameRender | None = None
    """The frame being rendered, if any."""
    frame_version: int = -1
    """The version `frame` shows."""
    frame_level: int = 0
    """The index of `frame`'s size in the resolution schedule."""
    frame_settings: DisplaySettings | None = None
    """The panel's settings when `frame` was started."""


class Viewer:
    """The viewer of one run; the server starts when it is built. The trainer calls `after_step` after each step and
    `wait_while_paused` before the next, kit-viewer calls `serve`; `close` ends it."""

    def __init__(self, config: ViewerConfig, model: Model, run: ViewedRun, console: Console, *, training: bool) -> None:
        self.config = config
        self.model = model
        self.run = run
        self.console = console
        self.training = training
        self.lock = threading.Lock()
        self.browsers: dict[int, BrowserState] = {}
        self.round_robin = itertools.count()
        self.paused = threading.Event()
        self.closing = threading.Event()
        self.frames_sent = 0
        self.render_seconds = 0.0
        self.train_seconds = 0.0
        self.last_status = 0.0
        self.output_names: list[str] = ["rgb"]
        with contextlib.redirect_stdout(io.StringIO()):  # viser's banner; `announce` prints the URL
            self.server = viser.ViserServer(host=config.host, port=config.port, label="nerfkit", verbose=False)
        self.port = self.server.get_port()
        self._build_scene()
        self._build_panel()
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)

    @property
    def url(self) -> str:
        host = "localhost" if self.config.host in ("0.0.0.0", "::") else self.config.host
        return f"http://{host}:{self.port}"

    def announce(self) -> None:
        taken = f" (port {self.config.port} is taken)" if self.port != self.config.port else ""
        self.console.print(f"viewer: {self.url}{taken}", soft_wrap=True)

    # The scene and the panel.

    def _build_scene(self) -> None:
        run, scene = self.run, self.server.scene
        up = scene_up(run.cameras)
        scene.set_up_direction(tuple(up))
        aabb = scene_box_array(run.scene_box)
        diagonal = float(np.linalg.norm(aabb[1] - aabb[0]))
        add_box(scene, "/scene_box", aabb, SCENE_BOX_COLOUR)
        self.crop_box = add_box(scene, "/crop_box", aabb, CROP_BOX_COLOUR)
        self.crop_box.visible = False
        self.camera_positions = run.cameras.camera_to_worlds[:, :, 3].double().cpu().numpy()
        self.inside_distance = INSIDE_CAMERA * diagonal
        self.hidden_frustums: set[int] = set()
        self.frustums = add_training_cameras(
            scene,
            run.cameras,
            run.images,
            self.config.frustum_scale * diagonal,
            self.config.max_thumbnails,
            self.config.thumbnail_size,
            self.move_browser,
        )
        first = camera_view(run.cameras, 0)
        # A new browser starts in the first training camera (whose frustum is then hidden), facing the scene's centre.
        self.server.initial_camera.position = tuple(first.camera_to_world[:, 3])
        self.server.initial_camera.look_at = tuple((aabb[0] + aabb[1]) / 2.0)
        self.server.initial_camera.up = tuple(up)
        self.server.initial_camera.fov = first.fov

    def _build_panel(self) -> None:
        gui, config = self.server.gui, self.config
        self.status = gui.add_markdown(self._status_text(self.run.step, None, None))
        self.pause_button = gui.add_button("Pause training", icon=viser.Icon.PLAYER_PAUSE, visible=self.training)
        self.pause_button.on_click(lambda _: self.set_paused(not self.paused.is_set()))
        with gui.add_folder("Render"):
            self.output = gui.add_dropdown("Output", self.output_names, initial_value="rgb")
            self.colormap = gui.add_dropdown("Colormap", COLORMAPS, initial_value="default")
            self.max_resolution = gui.add_slider(
                "Max resolution", 64, 2048, 32, min(2048, max(64, config.max_resolution))
            )
            self.render_share = gui.add_slider(
                "Render share", 0.05, 0.95, 0.05, min(0.95, max(0.05, config.render_share)), visible=self.training,
                hint="Share of the time rendering may take from training while a browser waits",
            )  # fmt: skip
            self.show_cameras = gui.add_checkbox("Training cameras", True)
        aabb = scene_box_array(self.run.scene_box)
        with gui.add_folder("Crop", expand_by_default=False):
            self.crop_enabled = gui.add_checkbox("Crop to box", False, hint="Render and export only inside the box")
            self.crop_min = gui.add_vector3("Min", tuple(aabb[0]), step=0.01)
            self.crop_max = gui.add_vector3("Max", tuple(aabb[1]), step=0.01)
            self.crop_message = gui.add_markdown("")
        with gui.add_folder("Export", expand_by_default=False):
            self.export_commands = gui.add_markdown(self._export_text())
        size = (int(self.run.cameras.width[0]), int(self.run.cameras.height[0]))
        self.camera_path = CameraPathPanel(
            self.server, self.run.run_dir / "camera_paths", size, self._render_command, self.move_browser
        )
        for handle in (
            self.output,
            self.colormap,
            self.max_resolution,
            self.crop_enabled,
            self.crop_min,
            self.crop_max,
        ):
            handle.on_update(lambda _: self._settings_changed())
        self.show_cameras.on_update(lambda _: self._show_cameras())

    def _show_cameras(self) -> None:
        for index, frustum in enumerate(self.frustums):
            frustum.visible = self.show_cameras.value and index not in self.hidden_frustums

    def _hide_frustums_looked_through(self) -> None:
        """Hides the training cameras that a browser sits in, and shows again those no browser sits in any more."""
        with self.lock:
            positions = [browser.view.camera_to_world[:, 3] for browser in self.browsers.values() if browser.view]
        hidden = {
            int(index)
            for position in positions
            for index in np.flatnonzero(np.linalg.norm(self.camera_positions - position, axis=1) < self.inside_distance)
        }
        if hidden != self.hidden_frustums:
            self.hidden_frustums = hidden
            self._show_cameras()

    def _settings_changed(self) -> None:
        crop, problem = self.crop()
        self.crop_message.content = problem
        self.crop_box.visible = crop is not None
        if crop is not None:
            centre, dimensions = box_corners(np.array(crop))
            self.crop_box.position, self.crop_box.dimensions = tuple(centre), tuple(dimensions)
        self.export_commands.content = self._export_text()
        with self.lock:
            for browser in self.browsers.values():
                browser.version += 1

    def crop(self) -> tuple[Corners | None, str]:
        """The crop box when cropping is on and the box is valid, and what is wrong with it otherwise: a box with
        min above max is not applied, and the panel says why."""
        if not self.crop_enabled.value:
            return None, ""
        low, high = tuple(map(float, self.crop_min.value)), tuple(map(float, self.crop_max.value))
        wrong = [axis for axis, a, b in zip("xyz", low, high, strict=True) if a > b]
        if wrong:
            return None, f"**Crop box not applied:** min is above max in {', '.join(wrong)}; lower min or raise max."
        return (low, high), ""

    def settings(self) -> DisplaySettings:
        return DisplaySettings(
            output=self.output.value,
            colormap=self.colormap.value,
            crop=self.crop()[0],
            max_resolution=int(self.max_resolution.value),
        )

    def _config_path(self) -> Path:
        return self.run.run_dir / "config.yml"

    def _render_command(self, camera_path: Path) -> str:
        output = self.run.run_dir / "renders" / f"{camera_path.stem}.mp4"
        return (
            f"kit-render camera-path --load-config {self._config_path()} --camera-path-filename {camera_path} "
            f"--output-path {output}"
        )

    def _export_text(self) -> str:
        crop = self.crop()[0]
        box = ""
        if crop is not None:
            box = " --bounding-box-min {} {} {} --bounding-box-max {} {} {}".format(
                *(f"{value:.3f}" for value in (*crop[0], *crop[1]))
            )
        load = f"--load-config {self._config_path()}"
        return "\n\n".join(
            (
                "Export what the crop box holds (the scene box when cropping is off):",
                f"`kit-export pointcloud {load}{box}`",
                f"`kit-export mesh {load}{box}`",
            )
        )

    # Browsers.

    def _connect(self, client: viser.ClientHandle) -> None:
        browser = BrowserState(client)

        def camera_moved(camera: viser.CameraHandle) -> None:
            with self.lock:
                browser.view = view_from_viser(camera.wxyz, camera.position, camera.fov, camera.aspect)
                browser.version += 1
            self._hide_frustums_looked_through()

        client.camera.on_update(camera_moved)
        with self.lock:
            self.browsers[client.client_id] = browser
        camera_moved(client.camera)

    def _disconnect(self, client: viser.ClientHandle) -> None:
        with self.lock:
            self.browsers.pop(client.client_id, None)

    def move_browser(self, client: viser.ClientHandle, view: View) -> None:
        """Points a browser's camera at `view` (a training camera, a frame of the camera path)."""
        wxyz, position = viser_pose(view.camera_to_world)
        with client.atomic():
            client.camera.fov = view.fov
            client.camera.position = position
            client.camera.wxyz = wxyz

    # Rendering.

    def render_view(self, view: View, width: int, height: int, settings: DisplaySettings | None = None) -> np.ndarray:
        """One whole image of `view`, as the browser would show it once sharp (for tests and benchmarks)."""
        settings = settings or self.settings()
        frame = FrameRender(
            self.model, view_cameras(view, width, height), self.config.num_rays_per_chunk, _box(settings)
        )
        return display_image(frame.render(), settings)

    def _next_frame(self) -> BrowserState | None:
        """The next browser with something to render, taking browsers in turn; its frame is set up."""
        with self.lock:
            browsers = list(self.browsers.values())
            if not browsers:
                return None
            start = next(self.round_robin) % len(browsers)
            settings = self.settings()
            schedule = resolution_schedule(self.config.preview_resolution, settings.max_resolution)
            for browser in browsers[start:] + browsers[:start]:
                if browser.view is None:
                    continue
                if browser.frame is not None and browser.frame_version == browser.version:
                    return browser
                level = 0 if browser.sent_version != browser.version else browser.sent_level + 1
                if level >= len(schedule):
                    browser.frame = None
                    continue
                width, height = image_size(browser.view.aspect, schedule[level])
                browser.frame = FrameRender(
                    self.model,
                    view_cameras(browser.view, width, height),
                    self.config.num_rays_per_chunk,
                    _box(settings),
                )
                browser.frame_version, browser.frame_level, browser.frame_settings = browser.version, level, settings
                return browser
        return None

    def render_for(self, seconds: float) -> float:
        """Renders for about `seconds` (at least one chunk when something waits); returns the time taken."""
        start = time.perf_counter()
        while (browser := self._next_frame()) is not None:
            frame = browser.frame
            if frame is not None and frame.advance():
                self._send(browser, frame)
            if time.perf_counter() - start >= seconds:
                break
        spent = time.perf_counter() - start
        self.render_seconds += spent
        return spent

    def _send(self, browser: BrowserState, frame: FrameRender) -> None:
        outputs = frame.outputs()
        names = renderable_names(outputs)
        if names != self.output_names:
            self.output_names = names
            self.output.options = names
        settings = browser.frame_settings or self.settings()
        image = display_image(outputs, settings)
        with self.lock:
            browser.sent_version, browser.sent_level = browser.frame_version, browser.frame_level
            browser.frame = None
            still_there = browser.client.client_id in self.browsers
        if still_there:  # a browser that left while its frame was rendered gets nothing
            browser.client.scene.set_background_image(image, format="jpeg", jpeg_quality=self.config.jpeg_quality)
            self.frames_sent += 1

    # Training.

    def set_paused(self, paused: bool) -> None:
        if paused:
            self.paused.set()
        else:
            self.paused.clear()
        self.pause_button.label = "Resume training" if paused else "Pause training"
        self.pause_button.icon = viser.Icon.PLAYER_PLAY if paused else viser.Icon.PLAYER_PAUSE

    def after_step(self, step: int, loss: float, rays_per_sec: float, step_seconds: float) -> None:
        """Called between training steps: updates the figures, then renders for the panel's share of the time."""
        self.train_seconds += step_seconds
        if self.closing.is_set():  # closed from another thread (a test, a benchmark) while training goes on
            return
        now = time.perf_counter()
        if now - self.last_status >= STATUS_SECONDS:
            self.last_status = now
            self.status.content = self._status_text(step, loss, rays_per_sec)
        if not self.browsers:
            return
        share = float(self.render_share.value)
        self.render_for(step_seconds * share / (1.0 - share))

    def wait_while_paused(self, step: int, stop_requested: Callable[[], bool]) -> None:
        """Serves the browsers while training is paused (until resumed, or a stop signal arrives)."""
        if self.paused.is_set():
            self.status.content = f"**Paused** at step {step:,}: *Resume training* continues."
        while self.paused.is_set() and not stop_requested():
            self._serve_once()

    def _serve_once(self) -> None:
        if self.render_for(0.1) == 0.0 or not self.browsers:
            time.sleep(IDLE_SLEEP)

    def finished(self, step: int) -> None:
        self.training = False
        self.pause_button.visible = False
        self.status.content = f"**Training finished** at step {step:,}."

    def serve(self) -> None:
        """Serves the browsers until Ctrl-C or `close` (kit-viewer, or --viewer.keep-open after training)."""
        try:
            while not self.closing.is_set():
                self._serve_once()
        except KeyboardInterrupt:
            pass

    def close(self) -> None:
        """Stops serving (a `serve` loop on another thread returns) and shuts the server down."""
        if not self.closing.is_set():
            self.closing.set()
            with contextlib.redirect_stdout(io.StringIO()):  # viser's "Server stopped"
                self.server.stop()

    def _status_text(self, step: int, loss: float | None, rays_per_sec: float | None) -> str:
        if not self.training:
            return f"Checkpoint of step {step:,}."
        if loss is None or rays_per_sec is None:
            return "**Training** is starting."
        total = self.render_seconds + self.train_seconds
        share = self.render_seconds / total if total > 0 else 0.0
        return (
            f"**Training** step {step:,} · loss {loss:.4g} · {rays_per_sec:,.0f} rays/s · "
            f"rendering {share:.0%} of the time"
        )


def _box(settings: DisplaySettings) -> SceneBox | None:
    if settings.crop is None:
        return None
    return SceneBox(aabb=torch.tensor(settings.crop, dtype=torch.float32))
