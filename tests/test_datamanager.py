"""Ray batches from the lego scene at 100x100: shapes, consistency with the cameras and images, reproducibility."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nerfkit.configs.data import SceneDataParserConfig, VanillaDataManagerConfig
from nerfkit.data.datamanagers.vanilla_datamanager import VanillaDataManager

NUM_RAYS = 256


def make_datamanager(lego_dir: Path, cache_dir: Path, **settings: object) -> VanillaDataManager:
    config = VanillaDataManagerConfig(
        data=lego_dir,
        dataparser=SceneDataParserConfig(data=Path("does/not/exist"), downscale_factor=8),
        train_num_rays_per_batch=NUM_RAYS,
        eval_num_rays_per_batch=NUM_RAYS // 2,
        cache_dir=cache_dir,
        **settings,
    )
    return config.setup()


@pytest.fixture(scope="module")
def datamanager(lego_dir: Path, lego_cache_dir: Path) -> VanillaDataManager:
    # The dataparser's own data path is bogus: setup only works if `data` overrides it.
    return make_datamanager(lego_dir, lego_cache_dir)


def test_setup(datamanager: VanillaDataManager) -> None:
    assert len(datamanager.train_dataset) == 80 and len(datamanager.eval_dataset) == 5
    assert datamanager.train_cameras is datamanager.train_dataset.cameras
    assert datamanager.eval_cameras.width.tolist() == [100] * 5
    assert datamanager.get_param_groups() == {}


def test_eval_split(lego_dir: Path, lego_cache_dir: Path) -> None:
    assert len(make_datamanager(lego_dir, lego_cache_dir, eval_split="test").eval_dataset) == 10


def test_train_batch_shapes(datamanager: VanillaDataManager) -> None:
    ray_bundle, batch = datamanager.next_train(0)
    assert ray_bundle.origins.shape == ray_bundle.directions.shape == (NUM_RAYS, 3)
    assert ray_bundle.camera_indices.shape == (NUM_RAYS, 1)
    assert batch["image"].shape == (NUM_RAYS, 4) and batch["image"].dtype == torch.float32
    assert 0 <= float(batch["image"].min()) and float(batch["image"].max()) <= 1
    assert batch["indices"].shape == (NUM_RAYS, 3) and batch["indices"].dtype == torch.long
    torch.testing.assert_close(ray_bundle.camera_indices[:, 0], batch["indices"][:, 0])

    eval_rays, eval_batch = datamanager.next_eval(0)
    assert eval_rays.origins.shape == (NUM_RAYS // 2, 3)
    assert eval_batch["image"].shape == (NUM_RAYS // 2, 4)
    assert int(eval_batch["indices"][:, 0].max()) < 5


def test_batch_matches_image_rays_and_pixels(datamanager: VanillaDataManager) -> None:
    torch.manual_seed(0)
    ray_bundle, batch = datamanager.next_train(0)
    for ray, (camera, y, x) in enumerate(batch["indices"].tolist()[:32]):
        image_rays = datamanager.train_cameras.generate_image_rays(camera)
        torch.testing.assert_close(ray_bundle.directions[ray], image_rays.directions[y, x])
        torch.testing.assert_close(ray_bundle.origins[ray], image_rays.origins[y, x])
    camera, y, x = batch["indices"].unbind(dim=-1)
    torch.testing.assert_close(batch["image"], datamanager.train_dataset.images[camera, y, x].float() / 255)


def test_batches_reproducible_under_manual_seed(datamanager: VanillaDataManager) -> None:
    torch.manual_seed(1)
    _, first = datamanager.next_train(0)
    torch.manual_seed(1)
    _, again = datamanager.next_train(0)
    _, later = datamanager.next_train(1)
    assert torch.equal(first["indices"], again["indices"])
    assert not torch.equal(first["indices"], later["indices"])


def test_next_eval_image_leaves_global_rng(datamanager: VanillaDataManager) -> None:
    state = torch.get_rng_state()
    index, batch = datamanager.next_eval_image(7)
    assert torch.equal(torch.get_rng_state(), state)
    assert datamanager.next_eval_image(7)[0] == index
    assert 0 <= index < 5
    assert batch["image"].shape == (100, 100, 4) and batch["image"].dtype == torch.float32
    torch.testing.assert_close(batch["image"], datamanager.eval_dataset.images[index].float() / 255)
    assert len({datamanager.next_eval_image(step)[0] for step in range(20)}) > 1


def test_iter_eval_images_in_order(datamanager: VanillaDataManager) -> None:
    images = list(datamanager.iter_eval_images())
    assert [index for index, _ in images] == [0, 1, 2, 3, 4]
    assert all(batch["image"].shape == (100, 100, 4) for _, batch in images)
