"""Evenly spaced frames of a video, extracted by the ffmpeg that imageio-ffmpeg bundles (no system ffmpeg needed).

Consecutive video frames overlap almost entirely, so structure from motion only needs a few hundred of them; picking
them evenly keeps the camera's path covered without the cost of matching every frame.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import imageio_ffmpeg

from nerfkit.errors import NerfkitError
from nerfkit.process_data.images import FRAME_NAME

FRAME_PATTERN = FRAME_NAME.replace("{:05d}", "%05d") + ".png"
"""The same names as copied images (frame_00001.png, ...), in ffmpeg's pattern syntax."""


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def count_frames(video: Path) -> int:
    """The video's frame count, from its packets (fast: nothing is decoded)."""
    if not video.is_file():
        problem = "is not a file" if video.exists() else "does not exist"
        raise NerfkitError(f"--data {video} {problem}.", "Point --data at a video file.")
    try:
        num_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(video))
    except RuntimeError as error:
        raise NerfkitError(
            f"{video} cannot be read as a video: {_last_line(str(error))}",
            "Give a video file ffmpeg can read (mp4, mov, ...).",
        ) from error
    if num_frames < 1:
        raise NerfkitError(f"{video} has no video frames.", "Give a video file with a video stream.")
    return num_frames


def select_filter(num_frames: int, target: int) -> str:
    """An ffmpeg filter keeping `target` evenly spaced frames of `num_frames`, or all of them if there are fewer.

    Frame n is kept when n * target mod num_frames < target: exactly the first frame of each of `target` equal
    slices of the video, i.e. the frames ceil(i * num_frames / target) for i = 0 .. target - 1."""
    if target >= num_frames:
        return "null"
    return f"select='lt(mod(n*{target}\\,{num_frames})\\,{target})'"


def extract_frames(
    video: Path, num_frames: int, destination: Path, target: int, advance: Callable[[int], None]
) -> list[str]:
    """Writes `target` evenly spaced frames of the `num_frames` of `video` (see `count_frames`) into `destination`
    (created) as PNG; returns their file names in order. `advance` is told of frames written as ffmpeg reports them."""
    destination.mkdir(parents=True, exist_ok=True)
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(),
        "-nostdin", "-v", "error", "-nostats", "-progress", "pipe:1",
        "-i", str(video),
        "-map", "0:v:0", "-vf", select_filter(num_frames, target), "-fps_mode", "vfr",
        str(destination / FRAME_PATTERN),
    ]  # fmt: skip
    messages = []
    written = 0
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as ffmpeg:
        assert ffmpeg.stdout is not None
        for line in ffmpeg.stdout:
            key, _, value = line.strip().partition("=")
            if key == "frame" and value.isdigit():
                advance(int(value) - written)
                written = int(value)
            elif not value:
                messages.append(line)
    if ffmpeg.returncode != 0:
        raise NerfkitError(
            f"ffmpeg could not extract frames from {video}: {_last_line(''.join(messages))}",
            "Check that the video plays; re-encode it (e.g. to H.264 mp4) if it does not.",
        )
    return sorted(path.name for path in destination.glob("frame_*.png"))
