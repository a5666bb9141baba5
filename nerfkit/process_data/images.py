"""The dataset's images: which files count as input, copies COLMAP can read, and the downscaled pyramid.

COLMAP ignores alpha, so transparent pixels (Blender renders, cut-outs) would be matched as whatever colour they
happen to store; copies are therefore composited onto a plain background. Images without alpha are copied byte for
byte, which keeps their EXIF focal length for COLMAP's initial guess.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from PIL import Image

from nerfkit.data.datasets import image_has_alpha, open_image, resize_image
from nerfkit.errors import NerfkitError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
FRAME_NAME = "frame_{:05d}"
"""Copies are numbered from 1 in input order, as Nerfstudio names them."""
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"white": (255, 255, 255), "black": (0, 0, 0)}
Background = Literal["white", "black"]
JPEG_QUALITY = 95
"""For downscaled JPEGs: Pillow's default (75) blurs the fine detail that NeRFs are trained on."""


def list_images(folder: Path) -> list[Path]:
    """The JPEG and PNG files directly in `folder` (any case of suffix), sorted by name."""
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise NerfkitError(f"--data {folder} {problem}.", "Point --data at the folder that holds the images.")
    images = sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise NerfkitError(
            f"--data {folder} holds no images.", f"Put the images ({', '.join(IMAGE_SUFFIXES)}) directly in it."
        )
    return images


def copy_name(source: Path, number: int, composited: bool) -> str:
    """The copy's file name: composited images become PNG, others keep their format."""
    suffix = ".png" if composited or source.suffix.lower() == ".png" else ".jpg"
    return FRAME_NAME.format(number) + suffix


def copy_image(source: Path, destination_folder: Path, number: int, background: Background) -> str:
    """Copies `source` as image `number` (alpha composited onto `background`); returns the copy's file name."""
    with open_image(source) as image:
        composited = image_has_alpha(image)
        name = copy_name(source, number, composited)
        if composited:
            rgba = image.convert("RGBA")
            flat = Image.new("RGBA", rgba.size, BACKGROUNDS[background] + (255,))
            Image.alpha_composite(flat, rgba).convert("RGB").save(destination_folder / name)
            return name
    shutil.copyfile(source, destination_folder / name)
    return name


def copy_images(
    sources: Sequence[Path], destination: Path, background: Background, advance: Callable[[int], None]
) -> list[str]:
    """Copies every source into `destination` (created) in order; returns the copies' file names."""
    destination.mkdir(parents=True, exist_ok=True)
    names = []
    for number, source in enumerate(sources, start=1):
        names.append(copy_image(source, destination, number, background))
        advance(1)
    return names


def downscaled_size(size: tuple[int, int], factor: int) -> tuple[int, int]:
    """Width and height divided by `factor` and rounded as `Cameras.rescale_output_resolution` rounds them (half to
    even), so the dataparser's cameras match the pyramid's images exactly."""
    return round(size[0] / factor), round(size[1] / factor)


def pyramid_factors(num_downscales: int) -> list[int]:
    """2, 4, 8, ... : the images_{factor} folders for `num_downscales` levels."""
    return [2**level for level in range(1, num_downscales + 1)]


def write_pyramid_level(dataset: Path, file_paths: Sequence[str], factor: int, advance: Callable[[int], None]) -> Path:
    """images_{factor}/ in `dataset`, holding each image (a path relative to `dataset`) downscaled under its file name,
    where the Nerfstudio dataparser looks for it.

    The level is written under a temporary name and swapped in whole, because the dataparser uses an images_{factor}
    folder whenever one exists: a half-written one must never be seen."""
    level = dataset / f"images_{factor}"
    staging = dataset / f".images_{factor}.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for file_path in file_paths:
        with open_image(dataset / file_path) as image:
            small = resize_image(image, downscaled_size(image.size, factor))
        small.save(staging / Path(file_path).name, quality=JPEG_QUALITY)
        advance(1)
    shutil.rmtree(level, ignore_errors=True)
    staging.rename(level)
    return level
