"""kit-render: render a trained run along a camera path, into an mp4 video or a folder of PNG frames.

Examples: `kit-render orbit --load-config outputs/lego/vanilla-nerf/<timestamp> --num-frames 120`,
`kit-render interpolate --load-config <run> --split val --output-path renders/val`,
`kit-render camera-path --load-config <run> --camera-path-filename path.json --rendered-output-names rgb depth`.

An --output-path ending in .mp4 is a video; any other path without a suffix is a folder of 00000.png, 00001.png, ...
Frames are written beside the output and moved into place only when every frame is done, so a failed or interrupted
render never leaves a half-written video or replaces an earlier one. Several --rendered-output-names render side by
side, left to right. Camera-path files are Nerfstudio's; see nerfkit/cameras/camera_paths.py for what is read.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import imageio.v2 as imageio
import numpy as np
import torch
import tyro
from jaxtyping import UInt8
from rich.console import Console

from nerfkit.cameras.camera_paths import (
    CameraPathFile,
    focal_from_fov,
    interpolate_cameras,
    orbit_poses,
    orbit_radius_and_height,
    pinhole_cameras,
    read_camera_path,
)
from nerfkit.cameras.cameras import Cameras
from nerfkit.configs.ranges import Positive, check_ranges, ranged
from nerfkit.data.datamanagers.vanilla_datamanager import VanillaDataManager
from nerfkit.engine.run_loading import load_run
from nerfkit.errors import NerfkitError
from nerfkit.models.base_model import Model
from nerfkit.pipelines.base_pipeline import VanillaPipeline, evaluating
from nerfkit.utils.cli import run_cli
from nerfkit.utils.colormaps import output_image, renderable_names
from nerfkit.utils.progress import work_progress

DEFAULT_FPS = 24.0
DEFAULT_ORBIT_SECONDS = 5.0
DEFAULT_FRAMES_PER_TRANSITION = 10
WORLD_UP = (0.0, 0.0, 1.0)
"""nerfkit's scenes are z-up, as Blender's are."""
VIDEO_SUFFIX = ".mp4"
VIDEO_QUALITY = 8
"""imageio-ffmpeg's 0-10 quality scale: near-lossless for NeRF renders at a modest size."""
FRAME_NAME = "{:05d}.png"
FRAME_PATTERN = re.compile(r"\d{5}\.png")

Frame = UInt8[np.ndarray, "height width 3"]


@dataclass(kw_only=True)
class RenderConfig:
    """What every camera path shares: the run, the outputs, the resolution and the video's timing."""

    load_config: Path
    """The run's config.yml, or the run folder."""
    load_step: ranged(int | None, min=0) = None
    """Render this checkpoint step; default the latest."""
    output_path: Path | None = None
    """A .mp4 video, or a folder for PNG frames; default <run folder>/renders/<subcommand>.mp4."""
    rendered_output_names: tuple[str, ...] = ("rgb",)
    """Model outputs to render (rgb, depth, accumulation, ...); several go side by side."""
    downscale_factor: Positive = 1.0
    """Divide the path's resolution by this (2 renders a quarter of the pixels)."""
    fps: ranged(float | None, above=0) = None
    """Frames per second of the video; default 24, or the camera-path file's."""
    seconds: ranged(float | None, above=0) = None
    """Length of the video; sets the number of frames with --fps."""
    depth_near: ranged(float | None, min=0) = None
    """Depth shown at the low end of the colour map; default each frame's nearest opaque depth."""
    depth_far: ranged(float | None, min=0) = None
    """Depth shown at the high end of the colour map; default each frame's farthest opaque depth."""
    device_type: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to render; auto picks CUDA when torch sees a GPU."""
    eval_num_rays_per_chunk: ranged(int | None, min=1) = None
    """Rays rendered at once; lower it if rendering runs out of memory. Default the run's."""

    name: ClassVar[str]
    """The subcommand; it names the default output file."""

    def check(self) -> None:
        """Rejects what the declared ranges cannot, before the run loads, so a typo costs no loading time."""
        if not self.rendered_output_names:
            raise NerfkitError("--rendered-output-names is empty", hint="name at least one output, e.g. rgb")

    def path(self, pipeline: VanillaPipeline) -> tuple[Cameras, float]:
        """The cameras to render, at full resolution, and the frames per second to play them at."""
        raise NotImplementedError


@dataclass(kw_only=True)
class OrbitRender(RenderConfig):
    """One turn around the scene centre, looking at it."""

    radius: ranged(float | None, above=0) = None
    """Distance from the vertical axis through the centre; default the training cameras' mean."""
    height: ranged(float | None) = None
    """Height above the centre; default the training cameras' mean."""
    num_frames: ranged(int | None, min=1) = None
    """Frames in the turn; default --fps x --seconds (5 seconds)."""
    fov: ranged(float | None, above=0, below=180) = None
    """Vertical field of view in degrees; default the first training camera's."""

    name: ClassVar[str] = "orbit"

    def path(self, pipeline: VanillaPipeline) -> tuple[Cameras, float]:
        train = pipeline.datamanager.train_dataset.cameras.to("cpu")
        center = pipeline.datamanager.train_dataparser_outputs.scene_box.center.cpu()
        up = torch.tensor(WORLD_UP)
        mean_radius, mean_height = orbit_radius_and_height(train.camera_to_worlds[:, :, 3], center, up)
        fps = self.fps or DEFAULT_FPS
        num_frames = _frames(self.num_frames, "--num-frames", self.seconds, fps, round(DEFAULT_ORBIT_SECONDS * fps))
        radius = mean_radius if self.radius is None else self.radius
        height = mean_height if self.height is None else self.height
        width, image_height = int(train.width[0]), int(train.height[0])
        focal = train.fy[0] if self.fov is None else focal_from_fov(torch.tensor(self.fov), image_height)
        poses = orbit_poses(center, up, radius, height, num_frames)
        return pinhole_cameras(poses, focal.repeat(num_frames), width, image_height), fps


@dataclass(kw_only=True)
class InterpolateRender(RenderConfig):
    """A smooth path through a split's cameras, in the split's order."""

    split: Literal["train", "val", "test"] = "train"
    """Whose cameras to pass through."""
    frames_per_transition: ranged(int | None, min=1) = None
    """Frames from one camera to the next; default 10, or spread over --seconds."""

    name: ClassVar[str] = "interpolate"

    def path(self, pipeline: VanillaPipeline) -> tuple[Cameras, float]:
        cameras = split_cameras(pipeline.datamanager, self.split).to("cpu")
        transitions = len(cameras) - 1
        fps = self.fps or DEFAULT_FPS
        per_transition = self.frames_per_transition
        num_frames = _frames(
            None if per_transition is None else transitions * per_transition + 1,
            "--frames-per-transition",
            self.seconds,
            fps,
            transitions * DEFAULT_FRAMES_PER_TRANSITION + 1,
        )
        return interpolate_cameras(cameras, num_frames), fps


@dataclass(kw_only=True)
class CameraPathRender(RenderConfig):
    """The cameras of a Nerfstudio camera-path file: its camera_path frames as they are, else its keyframes
    interpolated over --seconds (default the file's)."""

    camera_path_filename: Path
    """The camera-path JSON file, as Nerfstudio's viewer saves it."""

    name: ClassVar[str] = "camera-path"

    @cached_property
    def camera_path_file(self) -> CameraPathFile:
        return read_camera_path(self.camera_path_filename)

    def check(self) -> None:
        super().check()
        if self.seconds is not None and not self.camera_path_file.are_keyframes:
            raise NerfkitError(
                f"--seconds needs keyframes; {self.camera_path_filename} lists its frames in camera_path "
                f"({len(self.camera_path_file.cameras)} of them)",
                hint="use --fps to play them faster or slower",
            )

    def path(self, pipeline: VanillaPipeline) -> tuple[Cameras, float]:
        file = self.camera_path_file
        fps = self.fps or file.fps or DEFAULT_FPS
        if not file.are_keyframes:
            return file.cameras, fps
        seconds = self.seconds or file.seconds
        if seconds is None:
            raise NerfkitError(
                f"{self.camera_path_filename}: seconds is missing, so the keyframes' frames are unknown",
                hint="add seconds to the file, or pass --seconds",
            )
        num_frames = max(1, round(seconds * fps))
        return interpolate_cameras(file.cameras, num_frames, closed=file.is_cycle, smoothness=file.smoothness), fps


Command = (
    Annotated[OrbitRender, tyro.conf.subcommand("orbit")]
    | Annotated[InterpolateRender, tyro.conf.subcommand("interpolate")]
    | Annotated[CameraPathRender, tyro.conf.subcommand("camera-path")]
)


def _frames(frames: int | None, frames_flag: str, seconds: float | None, fps: float, default: int) -> int:
    """The frame count from the frames flag or --seconds, whichever was given (not both)."""
    if frames is not None and seconds is not None:
        raise NerfkitError(f"{frames_flag} and --seconds both set the number of frames", hint="give one of them")
    if seconds is not None:
        return max(1, round(seconds * fps))
    return default if frames is None else frames


def split_cameras(datamanager: VanillaDataManager, split: str) -> Cameras:
    """A split's cameras at the resolution the run trained at; a split the run did not load is parsed (no pixels)."""
    if split == "train":
        return datamanager.train_dataset.cameras
    if split == datamanager.config.eval_split:
        return datamanager.eval_dataset.cameras
    config = datamanager.config
    dataparser = config.dataparser if config.data is None else replace(config.dataparser, data=config.data)
    outputs = dataparser.setup().get_dataparser_outputs(split)
    return outputs.downscaled_cameras()


def render_frame(
    model: Model, cameras: Cameras, index: int, names: tuple[str, ...], depth_range: tuple[float | None, float | None]
) -> Frame:
    """One camera's outputs side by side, as 8-bit RGB."""
    outputs = model.get_outputs_for_camera(cameras, index)
    available = renderable_names(outputs)
    unknown = [name for name in names if name not in available]
    if unknown:
        raise NerfkitError(
            f"--rendered-output-names: {', '.join(unknown)} not among this model's outputs",
            hint=f"choose from {', '.join(available)}",
        )
    image = torch.cat([output_image(outputs, name, depth_range) for name in names], dim=1)
    return (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).cpu().numpy()


def pad_to_even(frame: Frame) -> Frame:
    """H.264 stores colour at half resolution, so odd sizes are padded by repeating the last row or column."""
    height, width = frame.shape[:2]
    return np.pad(frame, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")


def is_video(output: Path) -> bool:
    return output.suffix.lower() == VIDEO_SUFFIX


def check_output(output: Path) -> None:
    """Refuses outputs that are not a video or a frame folder, and folders holding anything but earlier frames."""
    if is_video(output):
        if output.is_dir():
            raise NerfkitError(f"--output-path {output} is a folder", hint="give a file name ending in .mp4")
        return
    if output.suffix and not output.is_dir():
        raise NerfkitError(
            f"--output-path {output}: {output.suffix} is not a supported output",
            hint="end it in .mp4 for a video, or give a folder for PNG frames",
        )
    if output.is_file():
        raise NerfkitError(f"--output-path {output} is a file, not a folder for frames")
    if output.is_dir() and not all(FRAME_PATTERN.fullmatch(entry.name) for entry in output.iterdir()):
        raise NerfkitError(
            f"--output-path {output} holds files other than rendered frames",
            hint="give a new or empty folder; one holding only an earlier render's frames is replaced",
        )


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _move_into_place(staged: Path, output: Path) -> None:
    """Replaces `output` with `staged`; an earlier folder of frames is moved aside until the new one is in place."""
    if not output.is_dir():
        os.replace(staged, output)
        return
    earlier = output.with_name(f".{output.name}.earlier-{os.getpid()}")
    output.rename(earlier)
    staged.rename(output)
    shutil.rmtree(earlier)


@contextmanager
def staged_output(output: Path) -> Iterator[Path]:
    """A temporary path beside `output` that replaces it only when the block succeeds; otherwise it is removed."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staged = output.with_name(f".{output.stem}.partial-{os.getpid()}{output.suffix}")
    try:
        yield staged
        _move_into_place(staged, output)
    finally:
        _remove(staged)


@contextmanager
def frame_writer(path: Path, fps: float) -> Iterator[Callable[[Frame], None]]:
    """Writes frames to a video (mp4) or a folder of PNGs at `path`."""
    if is_video(path):
        writer = imageio.get_writer(
            path, format="FFMPEG", fps=fps, codec="libx264", quality=VIDEO_QUALITY, macro_block_size=1,
            ffmpeg_log_level="error",
        )  # fmt: skip
        with closing(writer):
            yield lambda frame: writer.append_data(pad_to_even(frame))
        return
    path.mkdir()
    counter = itertools.count()
    yield lambda frame: imageio.imwrite(path / FRAME_NAME.format(next(counter)), frame)


def render(config: RenderConfig, console: Console) -> Path:
    """Renders the config's camera path; returns where the frames went."""
    config.check()
    run = load_run(
        config.load_config,
        load_step=config.load_step,
        device_type=config.device_type,
        eval_num_rays_per_chunk=config.eval_num_rays_per_chunk,
        console=console,
    )
    output = config.output_path or run.run_dir / "renders" / f"{config.name}{VIDEO_SUFFIX}"
    check_output(output)
    cameras, fps = config.path(run.pipeline)
    cameras = cameras.rescale_output_resolution(1 / config.downscale_factor)
    if int(cameras.width.min()) < 1 or int(cameras.height.min()) < 1:
        raise NerfkitError(f"--downscale-factor {config.downscale_factor:g} leaves frames without pixels")
    model = run.pipeline.model
    depth_range = (config.depth_near, config.depth_far)
    with evaluating(model), work_progress(console) as progress:
        task = progress.add_task("render frames", total=len(cameras))
        frames = (
            render_frame(model, cameras, i, config.rendered_output_names, depth_range) for i in range(len(cameras))
        )
        first = next(frames)  # an unknown output name fails here, before anything is written
        with staged_output(output) as staged, frame_writer(staged, fps) as write:
            for frame in itertools.chain([first], frames):
                write(frame)
                progress.advance(task)
    height, width = first.shape[:2]
    padded = " (padded to even sizes for H.264)" if is_video(output) and (height % 2 or width % 2) else ""
    console.print(f"wrote {len(cameras)} frames of {width}x{height} at {fps:g} fps to {output}{padded}")
    return output


def main(argv: list[str]) -> int:
    config = tyro.cli(Command, args=argv, prog="kit-render", description=__doc__)
    check_ranges(config)
    render(config, Console(highlight=False, soft_wrap=True))
    return 0


def entrypoint() -> None:
    run_cli(main)


if __name__ == "__main__":
    entrypoint()
