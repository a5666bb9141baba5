"""Replaceable parts and experiment files: choosing parts from the command line or YAML, and the parts themselves."""

from __future__ import annotations

import copy
import csv
import dataclasses
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from kit_flags import TINY_MODEL
from rich.console import Console

from nerfkit.cameras.rays import RayBundle
from nerfkit.configs.config_types import register_config_type
from nerfkit.configs.fields import HashGridEncodingConfig, SHEncodingConfig
from nerfkit.configs.model_components import (
    AABBColliderConfig,
    BackgroundConfig,
    LinDispSamplerConfig,
    PDFSamplerConfig,
    RandomBackgroundConfig,
    UniformSamplerConfig,
)
from nerfkit.configs.models import VanillaModelConfig
from nerfkit.configs.serialization import read_yaml
from nerfkit.configs.trainer import TrainerConfig
from nerfkit.data.scene_box import SceneBox
from nerfkit.engine.run_config import load_run_config
from nerfkit.engine.training_run import train
from nerfkit.errors import NerfkitError
from nerfkit.model_components.component_context import ComponentContext
from nerfkit.model_components.spacing import spacing_fn
from nerfkit.plugins import components
from nerfkit.plugins.components import implementations
from nerfkit.plugins.registry import get_registry
from nerfkit.scripts.train import config_as_yaml, parse_args

LEGO_FLAGS = [
    *TINY_MODEL,
    "--pipeline.datamanager.dataparser.downscale-factor", "16",
    "--vis", "none",
    "--steps-per-eval-batch", "0",
    "--steps-per-eval-image", "0",
    "--steps-per-eval-all-images", "0",
]  # fmt: skip
"""vanilla-nerf on lego at 50x50 pixels with a tiny model: a step takes milliseconds."""

CONTEXT = ComponentContext(SceneBox.cube(1.5), near_plane=2.0, far_plane=6.0)


def vanilla_defaults() -> TrainerConfig:
    return copy.deepcopy(get_registry().get("vanilla-nerf").config)


def train_psnr(run_dir: Path) -> list[float]:
    with (run_dir / "metrics.csv").open() as file:
        return [float(row["value"]) for row in csv.DictReader(file) if row["name"] == "train/psnr"]


# ---------------------------------------------------------------------------------------------------------------
# Choosing parts from the command line


def method_help(method: str, capsys: pytest.CaptureFixture[str]) -> str:
    """`kit-train METHOD --help`, with the boxes' borders and line breaks taken out."""
    with pytest.raises(SystemExit) as exit_info:
        parse_args([method, "--help"], get_registry())
    assert exit_info.value.code == 0
    return " ".join(capsys.readouterr().out.replace("│", " ").split())


def test_help_lists_the_parts_that_fit_each_field_with_their_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    help_text = method_help("vanilla-nerf", capsys)
    for slot, (offered, refused) in {
        "coarse-sampler": (["uniform", "lin-disp"], ["pdf", "occupancy-grid", "proposal"]),
        "fine-sampler": (["uniform", "lin-disp", "pdf"], ["occupancy-grid", "proposal"]),
        "position-encoding": (["frequency", "hash-grid"], ["spherical-harmonics"]),
        "direction-encoding": (["frequency", "spherical-harmonics"], ["hash-grid"]),
        "background-color": (["white", "black", "random", "last-sample"], []),
        "collider": (["near-far", "aabb"], []),
    }.items():
        for choice in offered:
            assert f"pipeline.model.{slot}:{choice} " in help_text, (slot, choice)
        for choice in refused:
            assert f"pipeline.model.{slot}:{choice} " not in help_text, (slot, choice)
    assert "Evenly spaced in distance up to a switch distance" in help_text


@pytest.mark.parametrize("method", ["vanilla-nerf", "vanilla-nerf-occupancy", "instant-ngp", "nerfacto"])
def test_help_offers_only_parts_the_model_accepts(method: str, capsys: pytest.CaptureFixture[str]) -> None:
    help_text = method_help(method, capsys)
    model = get_registry().get(method).config.pipeline.model
    slots = components.component_slots(type(model))
    for name, slot in slots.items():
        offered = set(re.findall(rf"pipeline\.model\.{name.replace('_', '-')}:([a-z0-9-]+) ", help_text))
        fitting = set(slot.fitting())
        assert offered == (fitting if len(fitting) > 1 else set()), (name, offered, fitting)
        assert type(getattr(model, name)) in slot.fitting().values()
    if method == "nerfacto":
        assert "pipeline.model.sampler:" not in help_text  # proposal is its only sampler: no choice to offer
        assert "--pipeline.model.sampler.num-nerf-samples-per-ray INT" in help_text


def test_a_refused_part_on_the_command_line_names_the_parts_that_fit() -> None:
    with pytest.raises(NerfkitError, match="pipeline.model.sampler cannot be 'pdf'") as error:
        parse_args(["nerfacto", "pipeline.model.sampler:pdf"], get_registry())
    assert error.value.hint == "choose one of: proposal"
    # Naming the only part that fits is allowed, though there is nothing to choose.
    config = parse_args(["nerfacto", "pipeline.model.sampler:proposal", "--max-num-iterations", "3"], get_registry())
    assert type(config.pipeline.model.sampler).__name__ == "ProposalSamplerConfig"


def test_kit_train_help_shows_the_ways_to_start(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--help"], get_registry())
    assert exit_info.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    for usage in ["kit-train METHOD [flags]", "kit-train --resume RUN_FOLDER", "kit-train --config FILE",
                  "kit-train --load-config RUN/config.yml", "nerfacto", "vanilla-nerf"]:  # fmt: skip
        assert usage in help_text, usage


def test_help_shows_common_flags_first_and_the_optimizer_groups_last(capsys: pytest.CaptureFixture[str]) -> None:
    help_text = method_help("nerfacto", capsys)
    order = [
        "--data ", "--max-num-iterations ", "--output-dir ", "--steps-per-save ", "--timestamp ",
        "--pipeline.datamanager.train-num-rays-per-batch ", "--pipeline.model.num-levels ",
        "--pipeline.model.sampler.num-nerf-samples-per-ray ", "--machine.seed ", "--logging.steps-per-log ",
        "--optimizers.proposal-networks.optimizer.lr ", "--optimizers.camera-opt.scheduler.max-steps ",
    ]  # fmt: skip
    positions = [help_text.index(flag) for flag in order]
    assert positions == sorted(positions), sorted(order, key=help_text.index)


def test_vanilla_nerf_trains_with_its_coarse_sampler_replaced_and_the_run_reloads_it(
    lego_dir: Path, lego_cache_dir: Path, tmp_path: Path
) -> None:
    # The choice may come after the flags of the default choice, which tyro alone would refuse.
    args = [
        "vanilla-nerf", "--data", str(lego_dir), "--run-dir", str(tmp_path / "run"), *LEGO_FLAGS,
        "--pipeline.datamanager.cache-dir", str(lego_cache_dir), "--max-num-iterations", "150",
        "--logging.steps-per-log", "10", "--optimizers.fields.optimizer.lr", "5e-3",
        "pipeline.model.coarse-sampler:lin-disp", "--pipeline.model.coarse-sampler.switch-distance", "3.0",
    ]  # fmt: skip
    config = parse_args(args, get_registry())
    assert config.pipeline.model.coarse_sampler == LinDispSamplerConfig(num_samples=8, switch_distance=3.0)
    assert train(config, console=Console(quiet=True)) == 0

    psnr = train_psnr(tmp_path / "run")
    # 150 steps of a tiny model: the training PSNR must rise clearly above the first steps' (~8-9 dB on lego).
    assert sum(psnr[-3:]) / 3 > sum(psnr[:3]) / 3 + 3.0, psnr

    saved = read_yaml(tmp_path / "run" / "config.yml")["config"]["pipeline"]["model"]["coarse_sampler"]
    assert saved == {"type": "lin-disp", "num_samples": 8, "train_stratified": True, "switch_distance": 3.0}
    reloaded = load_run_config(tmp_path / "run" / "config.yml")
    assert reloaded.pipeline.model.coarse_sampler == config.pipeline.model.coarse_sampler
    again = parse_args(["--load-config", str(tmp_path / "run" / "config.yml")], get_registry())
    assert again.pipeline.model == reloaded.pipeline.model


def test_part_choices_and_flags_go_in_any_order(lego_dir: Path) -> None:
    choices = ["pipeline.model.coarse-sampler:lin-disp", "pipeline.model.background-color:random"]
    flags = ["--data", str(lego_dir), "--pipeline.model.coarse-sampler.num-samples", "5"]
    first = parse_args(["vanilla-nerf", *flags, *choices], get_registry())
    second = parse_args(["vanilla-nerf", choices[1], *flags, choices[0]], get_registry())
    assert first == second
    assert first.pipeline.model.coarse_sampler == LinDispSamplerConfig(num_samples=5)
    assert first.pipeline.model.background_color == RandomBackgroundConfig()


def test_a_repeated_flag_keeps_its_last_value(lego_dir: Path) -> None:
    """Scripts append overrides to a base command line; tyro alone refuses a flag seen again after a part's flag."""
    args = [
        "vanilla-nerf", "--data", str(lego_dir), "--max-num-iterations", "3",
        "--pipeline.model.coarse-sampler.num-samples", "8", "--pipeline.model.skip-connections", "1", "2",
        "--max-num-iterations=4", "--pipeline.model.skip-connections", "3",
    ]  # fmt: skip
    config = parse_args(args, get_registry())
    assert config.max_num_iterations == 4 and config.pipeline.model.skip_connections == (3,)
    assert config.pipeline.model.coarse_sampler.num_samples == 8


def test_a_flag_value_that_looks_like_a_choice_stays_a_value(lego_dir: Path) -> None:
    config = parse_args(
        ["vanilla-nerf", "--data", str(lego_dir), "--experiment-name", "pipeline.model.collider:aabb"], get_registry()
    )
    assert config.experiment_name == "pipeline.model.collider:aabb"
    assert type(config.pipeline.model.collider).__name__ == "NearFarColliderConfig"


# ---------------------------------------------------------------------------------------------------------------
# Experiment files


EXPERIMENT = """\
pipeline:
  datamanager:
    train_num_rays_per_batch: 96
  model:
    base_mlp_layer_width: 48
    fine_sampler:
      num_samples: 12
    coarse_sampler:
      type: lin-disp
      num_samples: 10
      switch_distance: 2.5
    background_color: random
optimizers:
  fields:
    optimizer:
      lr: 0.002
"""


def test_experiment_file_then_flags_give_the_expected_config(
    lego_dir: Path, lego_cache_dir: Path, tmp_path: Path
) -> None:
    experiment = tmp_path / "experiment.yml"
    experiment.write_text(EXPERIMENT)
    args = [
        "vanilla-nerf", "--config", str(experiment), "--pipeline.model.base-mlp-layer-width", "40",
        "--data", str(lego_dir),
    ]  # fmt: skip
    config = parse_args(args, get_registry())

    expected = vanilla_defaults()
    expected.data = lego_dir
    expected.config = experiment
    expected.pipeline.datamanager.train_num_rays_per_batch = 96
    expected.pipeline.model.base_mlp_layer_width = 40  # the flag wins over the file's 48
    expected.pipeline.model.fine_sampler = PDFSamplerConfig(num_samples=12)
    expected.pipeline.model.coarse_sampler = LinDispSamplerConfig(num_samples=10, switch_distance=2.5)
    expected.pipeline.model.background_color = RandomBackgroundConfig()
    expected.optimizers["fields"].optimizer.lr = 0.002
    assert config == expected

    # Training starts from it.
    run = dataclasses.replace(
        config, run_dir=tmp_path / "run", max_num_iterations=2, vis="none", steps_per_eval_batch=0,
        steps_per_eval_image=0, steps_per_eval_all_images=0,
    )  # fmt: skip
    run.pipeline.datamanager.dataparser.downscale_factor = 16
    run.pipeline.datamanager.cache_dir = lego_cache_dir
    assert train(run, console=Console(quiet=True)) == 0
    saved = load_run_config(tmp_path / "run" / "config.yml")
    assert saved.pipeline.model == config.pipeline.model


def test_print_config_is_a_valid_experiment_file(lego_dir: Path, tmp_path: Path) -> None:
    args = ["vanilla-nerf", "pipeline.model.collider:aabb", "--data", str(lego_dir), "--max-num-iterations", "9"]
    config = parse_args(args, get_registry())
    printed = tmp_path / "printed.yml"
    printed.write_text(config_as_yaml(config))
    from_file = parse_args(["--config", str(printed)], get_registry())
    assert from_file == dataclasses.replace(config, config=printed)
    assert from_file.pipeline.model.collider == AABBColliderConfig()


def test_print_config_prints_and_exits(
    lego_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from nerfkit.engine import training_run
    from nerfkit.scripts import train as train_script

    monkeypatch.setattr(training_run, "launch_training", lambda *args, **kwargs: pytest.fail("must not train"))
    assert train_script.main(["vanilla-nerf", "--data", str(lego_dir), "--print-config"]) == 0
    output = capsys.readouterr().out
    assert output.startswith("# kit-train vanilla-nerf --config FILE")
    assert "coarse_sampler:\n      type: uniform\n      num_samples: 64" in output


def test_a_saved_run_config_is_a_valid_experiment_file(tiny_lego_run: Path, tmp_path: Path) -> None:
    config = parse_args(["--config", str(tiny_lego_run / "config.yml"), "--output-dir", str(tmp_path)], get_registry())
    saved = load_run_config(tiny_lego_run / "config.yml")
    assert config.pipeline == saved.pipeline and config.optimizers == saved.optimizers
    assert config.method_name == saved.method_name


# ---------------------------------------------------------------------------------------------------------------
# Plug-ins


PLUGIN = '''
from dataclasses import dataclass

from nerfkit.configs.model_components import BackgroundConfig
from nerfkit.model_components.backgrounds import ConstantBackground
from nerfkit.plugins.components import register_component


@register_component("grey")
@dataclass
class GreyBackgroundConfig(BackgroundConfig):
    """Mid-grey behind the scene (a test plug-in)."""

    level: float = 0.5
    """Grey level."""

    def setup(self):
        return ConstantBackground((self.level,) * 3)
'''


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module registering a `grey` background, named in NERFKIT_COMPONENTS and loaded afresh."""
    (tmp_path / "grey_background_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(components.ENV_VAR, "grey_background_plugin, missing_plugin_module")
    components.load_component_plugins.cache_clear()
    yield "grey_background_plugin"
    components.load_component_plugins.cache_clear()
    sys.modules.pop("grey_background_plugin", None)


def test_a_plugin_part_becomes_a_choice_and_a_broken_one_only_warns(
    plugin_module: str, lego_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "grey" in implementations(BackgroundConfig)
    assert "missing_plugin_module" in capsys.readouterr().err
    choice = ["pipeline.model.background-color:grey", "--pipeline.model.background-color.level", "0.25"]
    config = parse_args(["vanilla-nerf", "--data", str(lego_dir), *choice], get_registry())
    background = config.pipeline.model.background_color
    assert type(background).__name__ == "GreyBackgroundConfig" and background.level == 0.25
    experiment = tmp_path / "grey.yml"
    experiment.write_text("pipeline:\n  model:\n    background_color: {type: grey, level: 0.75}\n")
    from_file = parse_args(["vanilla-nerf", "--config", str(experiment)], get_registry())
    assert from_file.pipeline.model.background_color.level == 0.75
    rendered = background.setup()(4, torch.device("cpu"))
    assert torch.equal(rendered, torch.full((4, 3), 0.25))


def test_a_part_name_is_unique_within_its_kind() -> None:
    with pytest.raises(NerfkitError, match="'uniform' is registered twice"):

        @register_config_type("uniform")
        @dataclasses.dataclass
        class AnotherUniform(UniformSamplerConfig):
            """A clash."""


# ---------------------------------------------------------------------------------------------------------------
# Checks at start-up


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"coarse_sampler": PDFSamplerConfig()}, "model.coarse_sampler cannot be 'pdf'"),
        ({"position_encoding": SHEncodingConfig()}, "model.position_encoding cannot be 'spherical-harmonics'"),
        ({"direction_encoding": HashGridEncodingConfig()}, "model.direction_encoding cannot be 'hash-grid'"),
    ],
    ids=["pdf-as-coarse", "sh-for-positions", "hash-grid-for-directions"],
)
def test_incompatible_parts_fail_before_anything_is_built(overrides: dict[str, object], message: str) -> None:
    config = dataclasses.replace(VanillaModelConfig(near_plane=2.0, far_plane=6.0), **overrides)
    with pytest.raises(NerfkitError, match=message):
        config.setup(scene_box=SceneBox.cube(1.5), num_train_data=1)


# ---------------------------------------------------------------------------------------------------------------
# The parts


def test_lin_disp_sampler_tiles_the_ray_evenly_in_its_spacing() -> None:
    rays = RayBundle(
        origins=torch.zeros(3, 3),
        directions=torch.eye(3),
        nears=torch.full((3, 1), 0.5),
        fars=torch.tensor([[2.0], [10.0], [100.0]]),
        camera_indices=torch.zeros(3, 1, dtype=torch.long),
    )
    sampler = LinDispSamplerConfig(num_samples=16, switch_distance=1.0).setup(CONTEXT).eval()
    samples = sampler(rays)
    bins = samples.bins
    torch.testing.assert_close(bins[:, :1], rays.nears)
    torch.testing.assert_close(bins[:, -1:], rays.fars)
    # Equal steps in the lin-disp spacing g(t), which is what makes far samples sparse.
    steps = torch.diff(spacing_fn(bins, "lin-disp", 1.0), dim=-1)
    torch.testing.assert_close(steps, steps[:, :1].expand_as(steps), rtol=1e-4, atol=1e-6)
    assert (torch.diff(bins, dim=-1)[:, -1] > torch.diff(bins, dim=-1)[:, 0]).all()


def test_aabb_collider_clips_rays_to_the_box() -> None:
    origins = torch.tensor([[0.0, 0.0, 4.0], [0.0, 0.0, 4.0], [5.0, 5.0, 4.0], [0.0, 0.0, 0.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
    rays = RayBundle(origins=origins, directions=directions, camera_indices=torch.zeros(4, 1, dtype=torch.long))
    collider = AABBColliderConfig().setup(ComponentContext(SceneBox.cube(1.0), near_plane=0.1, far_plane=20.0))
    clipped = collider(rays)
    # Through the box (3 to 5), pointing away, beside it, and starting inside it (from the near plane to the face).
    torch.testing.assert_close(clipped.nears[:, 0], torch.tensor([3.0, 0.1, 0.1, 0.1]))
    torch.testing.assert_close(clipped.fars[:, 0], torch.tensor([5.0, 0.1, 0.1, 1.0]))
