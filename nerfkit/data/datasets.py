"""The images of one split, decoded once into a single uint8 tensor; downscaled copies are cached on disk as PNG."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from jaxtyping import Bool, Float, Int, UInt8
from PIL import Image
from torch import Tensor

from nerfkit.cameras.cameras import Cameras
from nerfkit.data.dataparsers.base_dataparser import DataparserOutputs
from nerfkit.errors import NerfkitError

CACHE_ENV_VAR = "NERFKIT_CACHE_DIR"
"""Environment variable naming the cache folder when the config gives none."""


def cache_root(cache_dir: Path | None = None) -> Path:
    """The folder for downscaled images: `cache_dir`, else $NERFKIT_CACHE_DIR, else ~/.cache/nerfkit."""
    if cache_dir is not None:
        return cache_dir
    from_env = os.environ.get(CACHE_ENV_VAR)
    return Path(from_env) if from_env else Path.home() / ".cache" / "nerfkit"


def cached_image_path(original: Path, factor: int, root: Path) -> Path:
    """The cache file of `original` downscaled by `factor`; an edited original gets a new key, so never a stale copy."""
    original = original.resolve()
    stat = original.stat()
    key = f"{original}\n{stat.st_size}\n{stat.st_mtime_ns}\n{factor}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return root / "downscaled_images" / f"{original.stem}-{digest}.png"


def resize_image(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Downscales with a filter that averages, so thin structures do not alias away."""
    return image.resize(size, Image.Resampling.LANCZOS)


@contextmanager
def open_image(path: Path) -> Iterator[Image.Image]:
    """Opens lazily (only the header until pixels are used); any failure to read raises a NerfkitError naming `path`."""
    try:
        with Image.open(path) as image:
            yield image
    except (OSError, ValueError, SyntaxError) as error:
        raise NerfkitError(
            f"Image {path} cannot be read: {error}", "Replace the file with a valid image, or remove its frame."
        ) from error


def _decode(path: Path, mode: str) -> Image.Image:
    with open_image(path) as image:
        return image.convert(mode)


def _write_atomically(image: Image.Image, path: Path) -> None:
    """Readers, other ranks included, see either no file or a complete one."""
    temp = path.with_name(f".{path.stem}-{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(temp, format="PNG")
        os.replace(temp, path)
    except OSError as error:
        raise NerfkitError(
            f"Cannot write to the image cache {path.parent}: {error}",
            f"Give a writable folder with the datamanager's cache_dir or ${CACHE_ENV_VAR}.",
        ) from error
    finally:
        if temp.exists():
            temp.unlink()


def load_downscaled_image(original: Path, factor: int, size: tuple[int, int], mode: str, root: Path) -> Image.Image:
    """`original` resized to `size` (width, height): read from the cache when there, else resized and cached."""
    cached = cached_image_path(original, factor, root)
    if cached.is_file():
        return _decode(cached, mode)
    image = resize_image(_decode(original, mode), size)
    _write_atomically(image, cached)
    return image


def image_has_alpha(image: Image.Image) -> bool:
    """An alpha band, or a palette/greyscale image with a transparent colour."""
    return "A" in image.getbands() or "transparency" in image.info


def _check_headers(filenames: list[Path], cameras: Cameras) -> str:
    """Checks every size from the headers before any pixel is decoded; returns RGBA when any image has alpha."""
    has_alpha = False
    first_size: tuple[int, int] | None = None
    for index, filename in enumerate(filenames):
        with open_image(filename) as image:
            size = image.size
            has_alpha = has_alpha or image_has_alpha(image)
        first_size = first_size or size
        if size != first_size:
            raise NerfkitError(
                f"Image {filename} is {size[0]}x{size[1]} but {filenames[0]} is {first_size[0]}x{first_size[1]}.",
                "All images of a split must have the same size; resize or remove the odd one.",
            )
        camera_size = (int(cameras.width[index]), int(cameras.height[index]))
        if size != camera_size:
            raise NerfkitError(
                f"Image {filename} is {size[0]}x{size[1]} but its camera says {camera_size[0]}x{camera_size[1]}.",
                "Fix the image size recorded in the dataset's camera metadata, or replace the image.",
            )
    return "RGBA" if has_alpha else "RGB"


def _load_masks(filenames: list[Path | None], size: tuple[int, int]) -> Bool[Tensor, "num_images height width"]:
    """Masks at the images' size (nearest-neighbour, so they stay binary); an image without one is all valid."""
    masks = torch.ones((len(filenames), size[1], size[0]), dtype=torch.bool)
    for index, filename in enumerate(filenames):
        if filename is not None:
            mask = _decode(filename, "L")
            masks[index] = torch.from_numpy(np.asarray(mask.resize(size, Image.Resampling.NEAREST)) > 0)
    return masks


class InputDataset:
    """All images of a split as one uint8 tensor on the device, so ray batches are gathered by index, not decoded."""

    images: UInt8[Tensor, "num_images height width channels"]
    """Pixels; 4 channels (RGBA) when the images have alpha, else 3."""
    cameras: Cameras
    """The split's cameras at the resolution of `images`, on the device."""
    masks: Bool[Tensor, "num_images height width"] | None
    """Pixels that may be trained on, when the dataset has masks; None: all."""
    valid_pixels: Int[Tensor, " num_valid"] | None
    """Flat (image, y, x) indices of the unmasked pixels, the ones ray batches draw from; None: all pixels."""

    def __init__(
        self,
        dataparser_outputs: DataparserOutputs,
        device: torch.device | str = "cpu",
        cache_dir: Path | None = None,
    ) -> None:
        self.image_filenames = dataparser_outputs.image_filenames
        factor = dataparser_outputs.downscale_factor
        mode = _check_headers(self.image_filenames, dataparser_outputs.cameras)
        cameras = dataparser_outputs.downscaled_cameras()
        # The cameras' rounding decides the downscaled size, so images and cameras cannot disagree.
        size = (int(cameras.width[0]), int(cameras.height[0]))
        root = cache_root(cache_dir)
        images = torch.empty((len(self.image_filenames), size[1], size[0], len(mode)), dtype=torch.uint8)
        for index, filename in enumerate(self.image_filenames):
            if factor == 1:
                image = _decode(filename, mode)
            else:
                image = load_downscaled_image(filename, factor, size, mode, root)
            images.numpy()[index] = np.asarray(image)
        self.images = images.to(device)
        self.cameras = cameras.to(device)
        masks = dataparser_outputs.mask_filenames
        self.masks = None if masks is None or all(m is None for m in masks) else _load_masks(masks, size).to(device)
        self.valid_pixels = None if self.masks is None else self.masks.flatten().nonzero().squeeze(-1)
        if self.valid_pixels is not None and len(self.valid_pixels) == 0:
            raise NerfkitError("Every pixel of every image is masked out.", "Check the dataset's mask images.")

    def __len__(self) -> int:
        return self.images.shape[0]

    def get_image(self, index: int) -> Float[Tensor, "height width channels"]:
        """One image as float32 in [0, 1], the form losses and metrics take."""
        return self.images[index].float() / 255.0
