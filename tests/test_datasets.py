"""Image decoding, downscaling and its cache, and the errors for images that cannot be used."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nerfkit.configs.data import SceneDataParserConfig
from nerfkit.data import datasets
from nerfkit.data.dataparsers.base_dataparser import DataparserOutputs
from nerfkit.data.datasets import InputDataset, cache_root
from nerfkit.errors import NerfkitError


def parse(data: Path, downscale_factor: int = 1, split: str = "train") -> DataparserOutputs:
    config = SceneDataParserConfig(data=data, downscale_factor=downscale_factor)
    return config.setup().get_dataparser_outputs(split)


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def test_images_decoded_once_into_uint8(fake_blender: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = parse(fake_blender())
    dataset = InputDataset(outputs, "cpu")
    assert dataset.images.dtype == torch.uint8
    assert dataset.images.shape == (2, 6, 8, 4)
    for index, filename in enumerate(outputs.image_filenames):
        np.testing.assert_array_equal(dataset.images[index].numpy(), pixels(filename))

    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("an image was decoded again")

    monkeypatch.setattr(Image, "open", no_decoding)
    image = dataset.get_image(1)
    assert image.dtype == torch.float32
    torch.testing.assert_close(image, dataset.images[1].float() / 255)


def test_images_and_cameras_go_to_the_device(fake_blender: Callable[..., Path]) -> None:
    dataset = InputDataset(parse(fake_blender()), "meta")
    assert dataset.images.device.type == "meta"
    assert dataset.cameras.device.type == "meta"


def test_rgb_images_have_three_channels(fake_blender: Callable[..., Path]) -> None:
    assert InputDataset(parse(fake_blender(channels=3))).images.shape == (2, 6, 8, 3)


def test_lego_downscaled_by_8_keeps_alpha(lego_dir: Path, lego_cache_dir: Path) -> None:
    outputs = parse(lego_dir, downscale_factor=8, split="val")
    dataset = InputDataset(outputs, cache_dir=lego_cache_dir)
    assert dataset.images.shape == (5, 100, 100, 4)
    alpha = dataset.images[..., 3]
    assert int(alpha.min()) == 0 and int(alpha.max()) == 255
    assert dataset.cameras.width.tolist() == [100] * 5 and dataset.cameras.height.tolist() == [100] * 5
    torch.testing.assert_close(dataset.cameras.fx, outputs.cameras.fx / 8)
    torch.testing.assert_close(dataset.cameras.cx, torch.full((5,), 50.0))


def test_downscale_cache_is_reused_and_invalidated(
    fake_blender: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = fake_blender(sizes=[(16, 12)] * 2)
    dataset_files = sorted(root.rglob("*"))
    cache = tmp_path / "cache"
    resized: list[tuple[int, int]] = []
    real_resize = datasets.resize_image

    def counting_resize(image: Image.Image, size: tuple[int, int]) -> Image.Image:
        resized.append(size)
        return real_resize(image, size)

    monkeypatch.setattr(datasets, "resize_image", counting_resize)
    first = InputDataset(parse(root, downscale_factor=2), cache_dir=cache)
    assert resized == [(8, 6)] * 2
    original = root / "train" / "r_1.png"
    expected = np.asarray(Image.open(original).resize((8, 6), Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(first.images[1].numpy(), expected)

    second = InputDataset(parse(root, downscale_factor=2), cache_dir=cache)
    assert len(resized) == 2
    assert torch.equal(second.images, first.images)

    Image.new("RGBA", (16, 12), (10, 200, 30, 255)).save(original)
    stat = original.stat()
    os.utime(original, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    third = InputDataset(parse(root, downscale_factor=2), cache_dir=cache)
    assert len(resized) == 3
    assert torch.equal(third.images[0], first.images[0])
    assert third.images[1].reshape(-1, 4).unique(dim=0).tolist() == [[10, 200, 30, 255]]

    assert sorted(root.rglob("*")) == dataset_files
    assert not list(cache.rglob("*.tmp"))


def test_cache_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(datasets.CACHE_ENV_VAR, str(tmp_path / "from_env"))
    assert cache_root(tmp_path / "given") == tmp_path / "given"
    assert cache_root() == tmp_path / "from_env"
    monkeypatch.delenv(datasets.CACHE_ENV_VAR)
    assert cache_root() == Path.home() / ".cache" / "nerfkit"


def test_env_cache_dir_receives_downscaled_images(
    fake_blender: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(datasets.CACHE_ENV_VAR, str(tmp_path / "from_env"))
    InputDataset(parse(fake_blender(), downscale_factor=2))
    assert len(list((tmp_path / "from_env").rglob("*.png"))) == 2


def test_indivisible_size_rounds(fake_blender: Callable[..., Path], tmp_path: Path) -> None:
    dataset = InputDataset(parse(fake_blender(sizes=[(18, 13)]), downscale_factor=4), cache_dir=tmp_path / "cache")
    size = (round(18 / 4), round(13 / 4))
    assert dataset.images.shape[1:3] == (size[1], size[0])
    assert (int(dataset.cameras.width[0]), int(dataset.cameras.height[0])) == size


def test_mixed_sizes_error(fake_blender: Callable[..., Path]) -> None:
    outputs = parse(fake_blender(sizes=[(8, 6), (10, 6)]))
    with pytest.raises(NerfkitError, match=r"r_1.png is 10x6 but .*r_0.png is 8x6"):
        InputDataset(outputs)


def test_size_disagreeing_with_camera(fake_blender: Callable[..., Path]) -> None:
    outputs = parse(fake_blender())
    outputs.cameras.width[:] = 9
    with pytest.raises(NerfkitError, match=r"r_0.png is 8x6 but its camera says 9x6"):
        InputDataset(outputs)


@pytest.mark.parametrize(
    "damage",
    [lambda data: b"not an image at all", lambda data: data[: len(data) // 2]],
    ids=["garbage", "truncated"],
)
def test_corrupt_image_error(fake_blender: Callable[..., Path], damage: Callable[[bytes], bytes]) -> None:
    root = fake_blender(sizes=[(64, 48)] * 2)
    outputs = parse(root)
    image = root / "train" / "r_1.png"
    image.write_bytes(damage(image.read_bytes()))
    with pytest.raises(NerfkitError, match=r"r_1.png cannot be read") as error:
        InputDataset(outputs)
    assert error.value.hint


def test_downscale_factor_below_one(fake_blender: Callable[..., Path]) -> None:
    with pytest.raises(NerfkitError, match="downscale_factor is 0"):
        InputDataset(parse(fake_blender(), downscale_factor=0))


def test_unwritable_cache_error(fake_blender: Callable[..., Path], tmp_path: Path) -> None:
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("")
    with pytest.raises(NerfkitError, match="Cannot write to the image cache") as error:
        InputDataset(parse(fake_blender(), downscale_factor=2), cache_dir=not_a_folder)
    assert "cache_dir" in str(error.value.hint)
