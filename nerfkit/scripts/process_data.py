"""kit-process-data: turn a folder of images or a video into a Nerfstudio-format dataset, posed by COLMAP.

Examples: `kit-process-data images --data photos/ --output-dir data/mug`,
`kit-process-data video --data walk.mp4 --num-frames-target 200 --output-dir data/walk`,
`kit-process-data images --data photos/ --output-dir data/mug --sfm-tool colmap-binary --colmap-cmd /opt/colmap`,
`kit-process-data images --output-dir data/mug --skip-colmap --num-downscales 2`.

The output folder gets images/ (frame_00001.png, ...; transparent pixels composited onto --background), images_2/,
images_4/, images_8/ (--num-downscales), colmap/database.db and colmap/sparse/0 (the model with the most registered
images), transforms.json (OpenGL camera-to-world poses in COLMAP's world, shared intrinsics) and sparse_pc.ply.
Structure from motion runs through pycolmap (`pip install pycolmap`), or a COLMAP program with --sfm-tool
colmap-binary. A failed run leaves an earlier output in the folder whole; --skip-colmap rewrites only transforms.json,
the point cloud and the downscaled images from the model already there (or --colmap-model-path).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import tyro
from rich.console import Console

from nerfkit.configs.ranges import Count, Fraction, NonNegativeInt, check_ranges
from nerfkit.data.colmap_model import ColmapModel, find_model_dir, read_model
from nerfkit.errors import NerfkitError
from nerfkit.process_data.colmap_runner import (
    COLMAP_CAMERA_MODELS,
    CameraType,
    MatchingMethod,
    SfmSettings,
    SfmTool,
    check_registered,
    keep_largest_model,
    make_backend,
)
from nerfkit.process_data.colmap_to_nerfstudio import TRANSFORMS_NAME, write_nerfstudio_files
from nerfkit.process_data.images import Background, copy_images, list_images, pyramid_factors, write_pyramid_level
from nerfkit.process_data.output_dir import check_output_dir, install, pyramid_levels, remove_entry, work_folder
from nerfkit.process_data.stages import Stages
from nerfkit.process_data.video import count_frames, extract_frames
from nerfkit.utils.cli import run_cli


@dataclass(kw_only=True)
class ProcessDataConfig(ABC):
    """What images and video share: structure from motion and the dataset written from it."""

    data: Path | None = None
    output_dir: Path
    """The dataset folder to write (created if needed)."""
    camera_type: CameraType = "perspective"
    """Lens: perspective (OPENCV), fisheye (OPENCV_FISHEYE), pinhole (PINHOLE: renders, undistorted images)."""
    matching_method: MatchingMethod
    """Pairs to match: exhaustive (all), sequential (neighbours by name), vocab_tree (needs --vocab-tree-path)."""
    sfm_tool: SfmTool = "pycolmap"
    """Run COLMAP through pycolmap (pip install pycolmap) or a COLMAP program (apt-get install colmap)."""
    colmap_cmd: str = "colmap"
    """The COLMAP program for --sfm-tool colmap-binary: a name on PATH or a path."""
    gpu: bool = False
    """Extract and match features on the GPU (needs COLMAP built with CUDA)."""
    max_image_size: Count = 3200
    """Longest side, in pixels, that images are shrunk to for feature extraction (COLMAP's default); lower is faster."""
    vocab_tree_path: Path | None = None
    """The vocabulary tree file for --matching-method vocab_tree."""
    num_downscales: NonNegativeInt = 3
    """Write images_2/, images_4/, ... up to images_{2^n}/ for training at lower resolution."""
    min_registered_fraction: Fraction = 0.5
    """Fail when COLMAP registers fewer than this fraction of the images."""
    skip_colmap: bool = False
    """Reuse the model and images/ of an earlier run; rewrite only transforms.json, sparse_pc.ply, images_N/."""
    colmap_model_path: Path | None = None
    """With --skip-colmap: the COLMAP model to convert, instead of <output-dir>/colmap/sparse/0."""
    overwrite: bool = False
    """Write into an --output-dir holding files kit-process-data did not write (they are left alone)."""
    verbose: bool = False
    """Show COLMAP's own log."""
    debug: bool = False
    """Show the full traceback of errors (NERFKIT_DEBUG=1 does too)."""

    @abstractmethod
    def inputs(self, data: Path) -> Any:
        """The validated input, read before any work starts."""

    @abstractmethod
    def write_frames(self, inputs: Any, destination: Path, stages: Stages) -> int:
        """Writes the frames for COLMAP into `destination`; returns how many."""

    def check(self) -> None:
        """Rejects argument combinations that tyro's types let through, before anything is read."""
        if not self.skip_colmap and self.data is None:
            raise NerfkitError("--data is required (unless --skip-colmap).", "Give the images' folder or the video.")
        if self.colmap_model_path is not None and not self.skip_colmap:
            raise NerfkitError("--colmap-model-path is only read with --skip-colmap.", "Add --skip-colmap, or drop it.")

    def sfm_settings(self) -> SfmSettings:
        return SfmSettings(
            camera_model=COLMAP_CAMERA_MODELS[self.camera_type],
            matching_method=self.matching_method,
            use_gpu=self.gpu,
            max_image_size=self.max_image_size,
            vocab_tree_path=self.vocab_tree_path,
            verbose=self.verbose,
        )


@dataclass(kw_only=True)
class ImagesConfig(ProcessDataConfig):
    """A folder of photos (JPEG or PNG, sorted by name)."""

    data: Path | None = None
    """The folder holding the images, not searched recursively (required unless --skip-colmap)."""
    background: Background = "white"
    """Colour that transparent pixels are composited onto, as COLMAP ignores alpha."""
    matching_method: MatchingMethod = "exhaustive"

    def inputs(self, data: Path) -> list[Path]:
        return list_images(data)

    def write_frames(self, inputs: list[Path], destination: Path, stages: Stages) -> int:
        with stages.stage("copy images", total=len(inputs)) as advance:
            return len(copy_images(inputs, destination, self.background, advance))


@dataclass(kw_only=True)
class VideoConfig(ProcessDataConfig):
    """A video, from which evenly spaced frames are taken."""

    data: Path | None = None
    """The video file, anything ffmpeg reads: mp4, mov, ... (required unless --skip-colmap)."""
    num_frames_target: Count = 300
    """How many frames to take, evenly spaced (all of them if the video has fewer)."""
    matching_method: MatchingMethod = "sequential"

    def inputs(self, data: Path) -> int:
        return count_frames(data)

    def write_frames(self, inputs: int, destination: Path, stages: Stages) -> int:
        assert self.data is not None
        with stages.stage("extract frames", total=min(inputs, self.num_frames_target)) as advance:
            return len(extract_frames(self.data, inputs, destination, self.num_frames_target, advance))


Command = (
    Annotated[ImagesConfig, tyro.conf.subcommand("images")] | Annotated[VideoConfig, tyro.conf.subcommand("video")]
)


def run_colmap(config: ProcessDataConfig, stages: Stages, console: Console) -> ColmapModel:
    """Frames and COLMAP's files are made in a work folder and moved into the output only once mapping succeeded."""
    assert config.data is not None
    backend = make_backend(config.sfm_tool, config.sfm_settings(), config.colmap_cmd)
    inputs = config.inputs(config.data)
    with work_folder(config.output_dir) as work:
        images, colmap = work / "images", work / "colmap"
        num_images = config.write_frames(inputs, images, stages)
        colmap.mkdir()
        database = colmap / "database.db"
        with stages.stage("feature extraction"):
            backend.extract_features(database, images)
        with stages.stage("matching"):
            backend.match(database)
        with stages.stage("mapping", total=num_images if backend.counts_registrations else None) as advance:
            backend.map(database, images, colmap / "sparse", advance)
        result = keep_largest_model(colmap / "sparse", num_images, config.matching_method)
        registered = len(result.model.images)
        console.print(f"COLMAP registered {registered} of {num_images} images")
        if len(result.sizes) > 1:
            sizes = ", ".join(map(str, result.sizes))
            console.print(f"COLMAP's mapper made {len(result.sizes)} models ({sizes} images); kept the largest")
        check_registered(registered, num_images, config.min_registered_fraction, config.matching_method)
        install(work, config.output_dir, ["images", "colmap"])
    return result.model


def existing_model(config: ProcessDataConfig) -> ColmapModel:
    """The model --skip-colmap converts, checked against the images it names."""
    try:
        model_dir = find_model_dir(config.colmap_model_path or config.output_dir)
    except NerfkitError as error:
        raise NerfkitError(
            f"--skip-colmap: {error.message}",
            "--skip-colmap converts the model of an earlier kit-process-data run in --output-dir (or "
            "--colmap-model-path): run without --skip-colmap to make one.",
        ) from None
    model = read_model(model_dir)
    images = config.output_dir / "images"
    missing = sorted(image.name for image in model.images.values() if not (images / image.name).is_file())
    if missing:
        raise NerfkitError(
            f"The COLMAP model names {len(missing)} images that {images} lacks, e.g. {missing[0]}.",
            "--skip-colmap reuses images/ of an earlier kit-process-data run in --output-dir: run without "
            "--skip-colmap, or copy the model's images there.",
        )
    return model


def write_pyramid(output_dir: Path, file_paths: Sequence[str], num_downscales: int, stages: Stages) -> None:
    """images_2/, images_4/, ... of the frames in transforms.json; levels beyond --num-downscales are removed."""
    factors = pyramid_factors(num_downscales)
    for level in pyramid_levels(output_dir):
        if level.name not in {f"images_{factor}" for factor in factors}:
            remove_entry(level)
    for factor in factors:
        with stages.stage(f"downscale x{factor}", total=len(file_paths)) as advance:
            write_pyramid_level(output_dir, file_paths, factor, advance)


def main(argv: list[str]) -> int:
    config = tyro.cli(Command, args=argv, prog="kit-process-data", description=__doc__)
    check_ranges(config)
    config.check()
    check_output_dir(config.output_dir, config.overwrite)
    console = Console(highlight=False, markup=False, soft_wrap=True)
    with Stages(console) as stages:
        model = existing_model(config) if config.skip_colmap else run_colmap(config, stages, console)
        with stages.stage("conversion"):
            transforms = write_nerfstudio_files(model, config.output_dir)
        write_pyramid(
            config.output_dir, [frame["file_path"] for frame in transforms["frames"]], config.num_downscales, stages
        )
    console.print(f"wrote {config.output_dir / TRANSFORMS_NAME} with {len(transforms['frames'])} posed frames")
    return 0


def entrypoint() -> None:
    run_cli(main)


if __name__ == "__main__":
    entrypoint()
