"""Run folders written by nerfkit 0.2.0 (tests/fixtures/old_runs, see make_old_runs.py) load, evaluate and resume."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from nerfkit.engine.checkpoints import list_checkpoints, load_checkpoint
from nerfkit.engine.training_run import train
from nerfkit.plugins.registry import get_registry
from nerfkit.scripts import eval as kit_eval
from nerfkit.scripts.train import parse_args

FIXTURES = Path(__file__).parent / "fixtures" / "old_runs"
METHODS = sorted(path.name for path in FIXTURES.iterdir() if path.is_dir())


@pytest.fixture(autouse=True)
def cache(lego_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NERFKIT_CACHE_DIR", str(lego_cache_dir))


@pytest.fixture(params=METHODS)
def old_run(request: pytest.FixtureRequest, lego_dir: Path, tmp_path: Path) -> Path:
    """A copy of one fixture run folder, its data path pointing at this machine's lego."""
    run_dir = tmp_path / request.param
    shutil.copytree(FIXTURES / request.param, run_dir)
    config = run_dir / "config.yml"
    config.write_text(config.read_text().replace("@LEGO@", str(lego_dir)))
    return run_dir


def test_the_fixtures_cover_the_hash_grid_methods() -> None:
    assert METHODS == ["instant-ngp", "nerfacto"]


def test_an_old_run_scores_as_it_did_when_written(old_run: Path, tmp_path: Path) -> None:
    """Every weight, buffer (the occupancy grid) and setting arrives: the renders score as they did for the writer."""
    report_path = tmp_path / "report.json"
    argv = ["--load-config", str(old_run), "--split", "val", "--output-path", str(report_path)]
    assert kit_eval.main(argv) == 0
    report = json.loads(report_path.read_text())
    written = json.loads((FIXTURES / f"{old_run.name}-eval-val.json").read_text())
    assert report["checkpoint_step"] == written["checkpoint_step"] == 4
    assert report["images"] == written["images"]
    assert report["psnr_per_image"] == pytest.approx(written["psnr_per_image"], abs=1e-3)
    assert report["ssim_per_image"] == pytest.approx(written["ssim_per_image"], abs=1e-4)


def test_an_old_run_resumes(old_run: Path) -> None:
    argv = ["--resume", str(old_run), "--max-num-iterations", "6", "--steps-per-save", "2"]
    assert train(parse_args(argv, get_registry()), console=Console(quiet=True)) == 0
    checkpoints = list_checkpoints(old_run / "nerfkit_models")
    assert max(checkpoints) == 6
    assert load_checkpoint(checkpoints[6])["step"] == 6
