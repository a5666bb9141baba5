"""Shared fixtures: the real lego scene (read-only, by path) and tiny fake Blender datasets."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from nerfkit.cameras.rays import RayBundle
from nerfkit.kernels.hash_encoding import build_fused_kernel

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


LEGO_SFM_NUM_VIEWS = 40
LEGO_SFM_SIDE = (1.0, 1.0, 0.0)
"""The direction (from the scene centre) around which `processed_lego` takes its views."""


def lego_sfm_views(lego_dir: Path) -> list[str]:
    """The LEGO_SFM_NUM_VIEWS train images whose cameras lie closest in direction to LEGO_SFM_SIDE: half of the 80, on
    one side. The bulldozer's left and right sides look alike, so from views all round COLMAP registers a few side
    views on the wrong side (3 of every other view, 5 of the +y half: 3.5 to 8 units off, cameras being 4 from the
    centre); views of one side overlap as densely as all 80 do and never see the other side."""
    frames = json.loads((lego_dir / "transforms_train.json").read_text())["frames"]
    positions = np.array([np.array(frame["transform_matrix"])[:3, 3] for frame in frames])
    closeness = positions / np.linalg.norm(positions, axis=1, keepdims=True) @ np.array(LEGO_SFM_SIDE)
    chosen = np.argsort(-closeness, kind="stable")[:LEGO_SFM_NUM_VIEWS]
    return sorted(Path(frames[index]["file_path"]).name + ".png" for index in chosen)


@pytest.fixture(scope="session")
def processed_lego(lego_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Nerfstudio dataset made by `kit-process-data images` (pycolmap, default settings) from 40 lego train views
    (RGBA, composited onto white by the tool): transforms.json, images/, images_2/4/8/, colmap/, sparse_pc.ply.
    About 2 minutes on 2 CPU cores; read-only, shared by the session. Its input views are linked in the sibling folder
    input/ (`lego_sfm_views`), and frame_0000k.png is the k-th of them by name."""
    from nerfkit.scripts.process_data import main as kit_process_data

    root = tmp_path_factory.mktemp("processed_lego")
    views = root / "input"
    views.mkdir()
    for name in lego_sfm_views(lego_dir):
        (views / name).symlink_to(lego_dir / "train" / name)
    assert kit_process_data(["images", "--data", str(views), "--output-dir", str(root / "dataset")]) == 0
    return root / "dataset"


@pytest.fixture
def fresh_fused_kernel() -> Iterator[None]:
    """Forgets the loaded fused hash kernel before and after the test, so it is looked up again under the test's
    settings and a build that failed under them (a fake PATH, say) does not stay cached for the rest of the session."""
    build_fused_kernel.cache_clear()
    yield
    build_fused_kernel.cache_clear()
