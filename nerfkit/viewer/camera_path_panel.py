"""The camera-path editor: keyframes taken from the browser's view, previewed along the interpolated path, saved as
a Nerfstudio camera-path file that `kit-render camera-path` renders, and loaded back to edit."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import viser

from nerfkit.cameras.camera_paths import (
    camera_path_record,
    focal_from_fov,
    interpolate_cameras,
    pinhole_cameras,
    read_camera_path,
)
from nerfkit.cameras.cameras import Cameras
from nerfkit.errors import NerfkitError
from nerfkit.utils.files import write_json
from nerfkit.viewer.scene_objects import MoveBrowser, camera_view
from nerfkit.viewer.views import View, view_from_viser, viser_pose

KEYFRAME_COLOUR = (220, 40, 40)
PATH_COLOUR = (220, 40, 40)
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def browser_view(client: viser.ClientHandle) -> View:
    """What this browser looks through now."""
    camera = client.camera
    return view_from_viser(camera.wxyz, camera.position, camera.fov, camera.aspect)


class CameraPathPanel:
    """The 'Camera path' folder of the panel, and the keyframes and path it draws in the scene."""

    def __init__(
        self,
        server: viser.ViserServer,
        folder: Path,
        render_size: tuple[int, int],
        render_command: Callable[[Path], str],
        move_client: MoveBrowser,
    ) -> None:
        self.server = server
        self.folder = folder
        self.render_command = render_command
        self.move_client = move_client
        self.keyframes: list[View] = []
        self.drawn: list[viser.SceneNodeHandle] = []
        self.lock = threading.Lock()
        self.playing = threading.Event()
        gui = server.gui
        with gui.add_folder("Camera path", expand_by_default=False):
            self.fov = gui.add_slider("FOV (degrees)", 5.0, 150.0, 1.0, 50.0, hint="Field of view of the browser now")
            self.add_button = gui.add_button("Add keyframe", icon=viser.Icon.PLUS, hint="Add the current view")
            self.clear_button = gui.add_button("Clear keyframes", icon=viser.Icon.TRASH)
            self.seconds = gui.add_number("Duration (s)", 4.0, min=0.1, max=3600.0, step=0.1)
            self.fps = gui.add_number("Frames per second", 24.0, min=1.0, max=240.0, step=1.0)
            self.smoothness = gui.add_slider("Smoothness", 0.0, 1.0, 0.05, 1.0, hint="0: straight segments, 1: spline")
            self.loop = gui.add_checkbox("Loop", False, hint="Return to the first keyframe at the end")
            self.width = gui.add_number("Render width", render_size[0], min=1, max=8192, step=1)
            self.height = gui.add_number("Render height", render_size[1], min=1, max=8192, step=1)
            self.preview = gui.add_slider("Preview frame", 0, 1, 1, 0, disabled=True)
            self.play_button = gui.add_button("Play preview", icon=viser.Icon.PLAYER_PLAY, disabled=True)
            self.name = gui.add_text("File name", "camera_path")
            self.save_button = gui.add_button("Save camera path", icon=viser.Icon.DEVICE_FLOPPY, disabled=True)
            self.saved = gui.add_dropdown("Saved paths", self.saved_names() or ("(none)",))
            self.load_button = gui.add_button("Load camera path", icon=viser.Icon.FOLDER_OPEN)
            self.message = gui.add_markdown("No keyframes yet: move the view, then *Add keyframe*.")
        self.fov.on_update(self._on_fov)
        self.add_button.on_click(lambda event: event.client and self.add_keyframe(browser_view(event.client)))
        self.clear_button.on_click(lambda _: self.clear())
        for handle in (self.seconds, self.fps, self.smoothness, self.loop, self.width, self.height):
            handle.on_update(lambda _: self.redraw())
        self.preview.on_update(self._on_preview)
        self.play_button.on_click(self._on_play)
        self.save_button.on_click(lambda _: self._report(self._save_named))
        self.load_button.on_click(lambda _: self._report(self._load_selected))

    def add_keyframe(self, view: View) -> None:
        with self.lock:
            self.keyframes.append(view)
        self.redraw()

    def clear(self) -> None:
        with self.lock:
            self.keyframes.clear()
        self.redraw()

    def keyframe_cameras(self) -> Cameras:
        """The keyframes as cameras of the render size (each keeps its own field of view)."""
        width, height = int(self.width.value), int(self.height.value)
        with self.lock:
            poses = torch.tensor(np.stack([view.camera_to_world for view in self.keyframes]), dtype=torch.float32)
            fovs = torch.tensor([math.degrees(view.fov) for view in self.keyframes])
        return pinhole_cameras(poses, focal_from_fov(fovs, height), width, height)

    def num_frames(self) -> int:
        return max(1, round(float(self.seconds.value) * float(self.fps.value)))

    def frames(self) -> Cameras:
        """Every frame of the path, as kit-render will render it."""
        return interpolate_cameras(
            self.keyframe_cameras(), self.num_frames(), closed=self.loop.value, smoothness=float(self.smoothness.value)
        )

    def record(self) -> dict:
        """The camera-path file's content."""
        return camera_path_record(
            self.keyframe_cameras(),
            fps=float(self.fps.value),
            seconds=float(self.seconds.value),
            is_cycle=self.loop.value,
            smoothness=float(self.smoothness.value),
        )

    def save(self, name: str) -> Path:
        """Writes the path to <run>/camera_paths/<name>.json; returns the file."""
        stem = name.removesuffix(".json")
        if not FILE_NAME.fullmatch(stem):
            raise NerfkitError(f"file name {name!r}: use letters, digits, '.', '_' and '-' only")
        if not self.keyframes:
            raise NerfkitError("no keyframes to save: add some first")
        path = self.folder / f"{stem}.json"
        self.folder.mkdir(parents=True, exist_ok=True)
        write_json(path, self.record())
        self.saved.options = self.saved_names()
        self.saved.value = stem
        return path

    def load(self, path: Path) -> None:
        """Takes the keyframes and settings of a camera-path file (one with keyframes, as viewers save)."""
        file = read_camera_path(path)
        if file.keyframes is None:
            raise NerfkitError(f"{path} has no keyframes to edit (only rendered frames)")
        cameras = file.keyframes
        with self.lock:
            self.keyframes = [camera_view(cameras, index) for index in range(len(cameras))]
        self.width.value, self.height.value = int(cameras.width[0]), int(cameras.height[0])
        self.fps.value = file.fps or self.fps.value
        self.seconds.value = file.seconds or self.seconds.value
        self.loop.value = file.is_cycle
        self.smoothness.value = file.smoothness
        self.redraw()

    def saved_names(self) -> tuple[str, ...]:
        return tuple(sorted(path.stem for path in self.folder.glob("*.json"))) if self.folder.is_dir() else ()

    def _save_named(self) -> str:
        path = self.save(self.name.value)
        return f"Saved {path}. Render it with:\n\n`{self.render_command(path)}`"

    def _load_selected(self) -> str:
        path = self.folder / f"{self.saved.value}.json"
        self.load(path)
        return f"loaded {path}"

    def _report(self, action: Callable[[], str]) -> None:
        """Runs a panel action; its outcome, or what went wrong, is shown in the panel instead of raised."""
        try:
            self.message.content = action()
        except NerfkitError as error:
            self.message.content = f"**Not done:** {error.message}" + (f" ({error.hint})" if error.hint else "")

    def _on_fov(self, event: viser.GuiEvent) -> None:
        for client in self.server.get_clients().values():
            client.camera.fov = math.radians(float(self.fov.value))

    def _on_preview(self, event: viser.GuiEvent) -> None:
        if not self.keyframes:
            return
        try:
            frames = self.frames()
        except NerfkitError:
            return
        index = min(int(self.preview.value), len(frames) - 1)
        view = camera_view(frames, index)
        clients = [event.client] if event.client is not None else list(self.server.get_clients().values())
        for client in clients:
            self.move_client(client, view)

    def _on_play(self, event: viser.GuiEvent) -> None:
        if self.playing.is_set():
            self.playing.clear()
            return
        self.playing.set()
        self.play_button.label = "Stop preview"
        try:
            for index in range(self.num_frames()):
                if not self.playing.is_set():
                    break
                self.preview.value = index
                time.sleep(1.0 / float(self.fps.value))
        finally:
            self.playing.clear()
            self.play_button.label = "Play preview"

    def redraw(self) -> None:
        """Keyframe frustums, the path's line, and the panel's controls and message, after any change."""
        scene = self.server.scene
        with self.lock:
            keyframes = list(self.keyframes)
        for handle in self.drawn:
            handle.remove()
        self.drawn = []
        for index, view in enumerate(keyframes):
            wxyz, position = viser_pose(view.camera_to_world)
            frustum = scene.add_camera_frustum(
                f"/camera_path/keyframe_{index:03d}",
                fov=view.fov,
                aspect=view.aspect,
                scale=0.08,
                color=KEYFRAME_COLOUR,
                wxyz=wxyz,
                position=position,
            )
            self.drawn.append(frustum)
        has_path = len(keyframes) > 0
        for handle in (self.save_button, self.play_button, self.preview):
            handle.disabled = not has_path
        if not has_path:
            self.message.content = "No keyframes yet: move the view, then *Add keyframe*."
            return
        try:
            positions = self.frames().camera_to_worlds[:, :, 3].double().numpy()
        except NerfkitError as error:
            self.message.content = f"**Path not valid:** {error.message}" + (f" ({error.hint})" if error.hint else "")
            return
        self.preview.max = max(1, len(positions) - 1)
        if len(positions) > 1:
            segments = np.stack([positions[:-1], positions[1:]], axis=1)
            self.drawn.append(
                scene.add_line_segments("/camera_path/line", segments, colors=PATH_COLOUR, thickness=0.005)
            )
        self.message.content = f"{len(keyframes)} keyframes, {len(positions)} frames."
