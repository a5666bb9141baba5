"""Shared fixtures: the real lego scene (read-only, by path) and tiny fake Blender datasets."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nerfkit.cameras.rays import RayBundle

LEGO = Path(__file__).resolve().parents[2] / "shared/data/lego"


@pytest.fixture(scope="session")
def lego_dir() -> Path:
    """The lego scene; in CI its absence is a failure, elsewhere a skip."""
    if not LEGO.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{LEGO} is missing; CI must provide the lego data.")
        pytest.skip(f"{LEGO} is missing")
    return LEGO


@pytest.fixture(scope="session")
def lego_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One downscale cache for the session, so lego is resized once however many tests load it."""
    return tmp_path_factory.mktemp("nerfkit_cache")


@pytest.fixture
def fake_blender(tmp_path: Path) -> Callable[..., Path]:
    """Writes a tiny Blender-format dataset (one split) and returns its folder."""

    def write(sizes: Sequence[tuple[int, int]] = ((8, 6), (8, 6)), channels: int = 4, split: str = "train") -> Path:
        root = tmp_path / "scene"
        (root / split).mkdir(parents=True, exist_ok=True)
        frames = []
        for index, (width, height) in enumerate(sizes):
            pixels = np.random.default_rng(index).integers(0, 256, (height, width, channels), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / f"r_{index}.png")
            pose = np.eye(4)
            pose[2, 3] = 4.0 + index
            frames.append({"file_path": f"./{split}/r_{index}", "transform_matrix": pose.tolist()})
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.7, "frames": frames}))
        return root

    return write


def rays_towards_origin(num_rays: int, seed: int = 0) -> RayBundle:
    """Rays from a sphere of radius 4 towards points near the origin, like Blender cameras."""
    generator = torch.Generator().manual_seed(seed)
    origins = torch.nn.functional.normalize(torch.randn(num_rays, 3, generator=generator), dim=-1) * 4.0
    targets = (torch.rand(num_rays, 3, generator=generator) - 0.5) * 2.0
    return RayBundle(
        origins=origins,
        directions=torch.nn.functional.normalize(targets - origins, dim=-1),
        camera_indices=torch.zeros(num_rays, 1, dtype=torch.long),
    )


@pytest.fixture
def random_rays() -> Callable[..., RayBundle]:
    """Builds fixed, reproducible rays for model tests: `random_rays(num_rays, seed=0)`."""
    return rays_towards_origin


TINY_RUN_STEPS = 30
"""Steps of the `tiny_lego_run` fixture; it saves checkpoints at half and all of them."""


@pytest.fixture(scope="session")
def tiny_lego_run(lego_dir: Path, lego_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished vanilla-nerf run folder (tiny model, lego at 1/8, a few seconds of training) for the commands that
    load runs. Every val image is scored at the last step (eval/all_images/* in metrics.csv) and --eval-when-finished
    scores the test split (eval_test.json). Treat it as read-only: it is shared by the whole session."""
    from kit_flags import TINY_MODEL

    from nerfkit.scripts.train import main as kit_train

    run = tmp_path_factory.mktemp("tiny_lego_run") / "run"
    argv = ["vanilla-nerf", *TINY_MODEL, "--data", str(lego_dir), "--run-dir", str(run),
            "--pipeline.datamanager.dataparser.downscale-factor", "8",
            "--pipeline.datamanager.cache-dir", str(lego_cache_dir),
            "--max-num-iterations", str(TINY_RUN_STEPS), "--steps-per-save", str(TINY_RUN_STEPS // 2),
            "--steps-per-eval-batch", "0", "--steps-per-eval-image", "0",
            "--steps-per-eval-all-images", str(TINY_RUN_STEPS), "--eval-when-finished", "--vis", "none"]  # fmt: skip
    assert kit_train(argv) == 0
    return run
