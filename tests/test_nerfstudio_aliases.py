"""A Nerfstudio command line works unchanged where nerfkit has the feature: its flag names, a part chosen with a
flag and a value, and a dataparser subcommand with its own flags, each noted once with nerfkit's spelling."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from test_train_e2e import kit_train

from nerfkit.configs.nerfstudio_aliases import translate

DATAPARSER_FIELDS = {"downscale_factor", "train_fraction", "scale_factor", "orientation_method"}


def parts(*paths: str):
    return lambda path: path in paths


def test_flags_part_choices_and_dataparser_subcommands_translate() -> None:
    arguments = [
        "--pipeline.model.max-res", "1024",
        "--pipeline.model.base-res=8",
        "--pipeline.model.disable-scene-contraction", "True",
        "--pipeline.model.proposal-initial-sampler", "piecewise",
        "--pipeline.model.background-color", "last_sample",
        "--max-num-iterations", "5",
        "blender-data", "--downscale-factor", "8", "--train-split-fraction", "0.5",
    ]  # fmt: skip
    translated, notes = translate(arguments, parts("pipeline.model.background-color"), DATAPARSER_FIELDS)
    assert translated == [
        "--pipeline.model.max-resolution", "1024",
        "--pipeline.model.base-resolution", "8",
        "--pipeline.model.scene-contraction", "off",
        "--pipeline.model.sampler.initial-sampler", "lin-disp",
        "pipeline.model.background-color:last-sample",
        "--max-num-iterations", "5",
        "--pipeline.datamanager.dataparser.format", "blender",
        "--pipeline.datamanager.dataparser.downscale-factor", "8",
        "--pipeline.datamanager.dataparser.train-fraction", "0.5",
    ]  # fmt: skip
    assert len(notes) == 6 and all(note.startswith("note: Nerfstudio's ") for note in notes)


def test_a_bare_boolean_alias_and_nerfkits_own_spellings_are_left_alone() -> None:
    arguments = ["--pipeline.model.disable-scene-contraction", "colmap", "--pipeline.model.background-color:white"]
    translated, _ = translate(arguments, parts(), DATAPARSER_FIELDS)
    assert translated == [
        "--pipeline.model.scene-contraction", "off",
        "--pipeline.datamanager.dataparser.format", "colmap",
        "--pipeline.model.background-color:white",
    ]  # fmt: skip
    assert translate(["--data", "x", "--vis", "none"], parts(), DATAPARSER_FIELDS) == (
        ["--data", "x", "--vis", "none"],
        [],
    )


def test_a_nerfstudio_command_line_trains(
    lego_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    code = kit_train(
        "nerfacto", "--data", str(lego_dir), "--run-dir", str(run_dir), "--vis", "none",
        "--max-num-iterations", "3", "--steps-per-eval-batch", "0", "--steps-per-eval-image", "0",
        "--pipeline.datamanager.train-num-rays-per-batch", "64",
        "--pipeline.model.max-res", "64", "--pipeline.model.num-levels", "4",
        "--pipeline.model.log2-hashmap-size", "12",
        "--pipeline.model.num-proposal-samples-per-ray", "16", "8", "--pipeline.model.num-nerf-samples-per-ray", "8",
        "--pipeline.model.background-color", "white", "--pipeline.model.proposal-warmup", "100",
        "--pipeline.model.camera-optimizer.mode", "off",
        "blender-data", "--downscale-factor", "8",
    )  # fmt: skip
    assert code == 0
    saved = yaml.safe_load((run_dir / "config.yml").read_text())["config"]
    model = saved["pipeline"]["model"]
    assert model["max_resolution"] == 64 and model["background_color"]["type"] == "white"
    assert model["sampler"]["num_nerf_samples_per_ray"] == 8 and model["sampler"]["warmup"] == 100
    dataparser = saved["pipeline"]["datamanager"]["dataparser"]
    assert dataparser["format"] == "blender" and dataparser["downscale_factor"] == 8
    assert "note: Nerfstudio's --pipeline.model.max-res is --pipeline.model.max-resolution" in capsys.readouterr().err
    assert sorted(path.name for path in (run_dir / "nerfkit_models").iterdir()) == ["step-000000003.ckpt"]
