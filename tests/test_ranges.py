"""Declared ranges of numeric config fields: on every numeric field, in --help, and checked over the whole tree."""

from __future__ import annotations

import copy
import dataclasses
import math
import sys
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from test_config_docs import config_classes

from nerfkit.configs.ranges import Count, Fraction, Positive, Range, check_ranges, declared_ranges, ranged
from nerfkit.configs.trainer import TrainerConfig
from nerfkit.errors import NerfkitError
from nerfkit.plugins import components
from nerfkit.plugins.registry import get_registry
from nerfkit.scripts import download_data, export, process_data, render
from nerfkit.scripts import eval as kit_eval
from nerfkit.scripts.train import parse_args


def vanilla_defaults() -> TrainerConfig:
    return copy.deepcopy(get_registry().get("vanilla-nerf").config)


@pytest.mark.parametrize(
    ("bounds", "description", "inside", "outside"),
    [
        (Range(min=1), ">= 1", [1, 10**9], [0, -1, 0.5]),
        (Range(above=0), "> 0", [1e-12, 3.0], [0.0, -1e-9, math.nan, math.inf]),
        (Range(min=0, max=1), "0 to 1", [0, 0.5, 1], [-0.1, 1.1, math.nan]),
        (Range(above=0, below=180), "> 0 and < 180", [1e-9, 179.5], [0.0, 180, math.inf]),
        (Range(), "finite", [-1e30, 0.0], [math.nan, -math.inf]),
    ],
)
def test_a_range_says_what_it_admits(bounds: Range, description: str, inside: list, outside: list) -> None:
    assert bounds.describe() == description
    assert all(bounds.admits(value) for value in [*inside, None, tuple(inside)])
    assert not any(bounds.admits(value) for value in [*outside, tuple([*inside, *outside[:1]]), True, "1"])


@dataclass
class Group:
    """A config nested in a dict, as optimizer groups are."""

    lr: Positive = 1e-3
    """Learning rate."""
    samples: ranged(tuple[int, ...], min=1) = (4, 2)
    """Samples per level."""


@dataclass
class Tree:
    """A config tree with a nested config, a dict of them and an optional number."""

    steps: Count = 5
    """Steps."""
    share: ranged(float | None, min=0, max=1) = None
    """Share, or None."""
    groups: dict[str, Group] = field(default_factory=lambda: {"fields": Group(), "camera_opt": Group()})
    """Groups."""


def test_check_ranges_names_every_flag_out_of_range_in_the_whole_tree() -> None:
    tree = Tree(steps=0, share=2.0)
    tree.groups["camera_opt"] = Group(lr=math.nan, samples=(4, 0))
    with pytest.raises(NerfkitError) as error:
        check_ranges(tree)
    assert error.value.message == (
        "--steps must be >= 1, got 0; --share must be 0 to 1, got 2.0; "
        "--groups.camera-opt.lr must be finite and > 0, got nan; --groups.camera-opt.samples must be >= 1, got (4, 0)"
    )
    check_ranges(Tree())


def test_check_ranges_of_a_file_names_the_file_and_its_keys() -> None:
    with pytest.raises(NerfkitError) as error:
        check_ranges(Tree(groups={"fields": Group(lr=-1.0)}), source="run/config.yml")
    assert error.value.message == "run/config.yml: groups.fields.lr must be > 0, got -1.0"
    assert "run/config.yml" in error.value.hint


def numeric_fields(cls: type) -> Iterator[str]:
    """Fields of a config class holding numbers: int or float, optional or not, or tuples of them (not bool)."""
    hints = typing.get_type_hints(cls)
    for config_field in dataclasses.fields(cls):
        kinds = set(typing.get_args(hints[config_field.name])) or {hints[config_field.name]}
        kinds = {typing.get_args(kind)[0] if typing.get_origin(kind) is tuple else kind for kind in kinds}
        if not config_field.name.startswith("_") and kinds & {int, float}:
            yield config_field.name


def command_config_classes() -> set[type]:
    """The configs of kit-eval and of every subcommand of kit-render, kit-export, kit-process-data and
    kit-download-data."""
    scripts = (render, export, process_data, download_data)
    subcommands = {typing.get_args(option)[0] for script in scripts for option in typing.get_args(script.Command)}
    return {kit_eval.EvalConfig, *subcommands}


def test_every_numeric_config_field_declares_its_range() -> None:
    assert {"fov", "num_frames"} <= set(numeric_fields(render.OrbitRender))
    undeclared = [
        f"{cls.__module__}.{cls.__qualname__}.{name}"
        for cls in config_classes() | command_config_classes()
        for name in numeric_fields(cls)
        if name not in declared_ranges(cls)
    ]
    assert not undeclared, "numeric fields without a declared range:\n" + "\n".join(sorted(undeclared))


def test_every_method_default_lies_in_its_ranges() -> None:
    for spec in get_registry().methods.values():
        check_ranges(spec.config)


def test_declared_ranges_are_shown_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(["vanilla-nerf", "--help"], get_registry())
    help_text = " ".join(capsys.readouterr().out.replace("│", " ").split())
    for shown in [
        "--max-num-iterations INT Total number of training steps; a resumed run stops here too. (>= 1; default:",
        "(0: only at the end); always at the end and on interruption. (>= 0; default:",
        "--machine.seed INT",
        "(0 to 4294967295; default: 42)",
        "--optimizers.fields.optimizer.lr FLOAT Learning rate. (> 0; default: 0.0005)",
        "--pipeline.datamanager.dataparser.train-fraction FLOAT",
    ]:
        assert shown in help_text, shown


@pytest.mark.parametrize(
    ("main", "argv", "shown"),
    [
        (kit_eval.main, [], "--num-images {None}|INT Score only the first N images of the split, for a quick look; "
                            "default all. (>= 1; default: None)"),
        (render.main, ["orbit"], "(> 0 and < 180; default: None)"),
        (export.main, ["pointcloud"], "(0 to 1; default: 0.5)"),
        (process_data.main, ["images"], "(>= 0; default: 3)"),
        (download_data.main, ["blender"], "--size {None}|INT The archive's expected length in bytes, checked before "
                                          "and after downloading. (>= 1; default: None)"),
    ],
)  # fmt: skip
def test_commands_show_their_ranges_in_help(
    main: Callable[[list[str]], int], argv: list[str], shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    assert shown in " ".join(capsys.readouterr().out.replace("│", " ").split())


def test_flags_out_of_range_are_refused_when_parsed() -> None:
    args = ["vanilla-nerf", "--pipeline.model.coarse-sampler.num-samples", "0", "--machine.num-threads", "-2"]
    with pytest.raises(NerfkitError) as error:
        parse_args(args, get_registry())
    assert error.value.message == (
        "--pipeline.model.coarse-sampler.num-samples must be >= 1, got 0; --machine.num-threads must be >= 1, got -2"
    )


PLUGIN = '''
from dataclasses import dataclass

from nerfkit.configs.ranges import Fraction
from nerfkit.configs.model_components import BackgroundConfig
from nerfkit.model_components.backgrounds import ConstantBackground
from nerfkit.plugins.components import register_component


@register_component("dim")
@dataclass
class DimBackgroundConfig(BackgroundConfig):
    """A dim grey behind the scene (a test plug-in with a ranged field)."""

    level: Fraction = 0.25
    """Grey level."""

    def setup(self):
        return ConstantBackground((self.level,) * 3)
'''


@pytest.fixture
def ranged_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    """A component plug-in registering a `dim` background with a ranged field, loaded through NERFKIT_COMPONENTS."""
    (tmp_path / "dim_background_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv(components.ENV_VAR, "dim_background_plugin")
    components.load_component_plugins.cache_clear()
    components.load_component_plugins()
    yield sys.modules["dim_background_plugin"]
    components.load_component_plugins.cache_clear()
    sys.modules.pop("dim_background_plugin", None)


def test_a_plugin_parts_declared_range_is_shown_and_checked(
    ranged_plugin: types.ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    choice = "pipeline.model.background-color:dim"
    with pytest.raises(SystemExit):
        parse_args(["vanilla-nerf", choice, "--help"], get_registry())
    assert "--pipeline.model.background-color.level FLOAT Grey level. (0 to 1; default: 0.25)" in " ".join(
        capsys.readouterr().out.replace("│", " ").split()
    )
    with pytest.raises(NerfkitError, match=r"--pipeline.model.background-color.level must be 0 to 1, got 1.5"):
        parse_args(["vanilla-nerf", choice, "--pipeline.model.background-color.level", "1.5"], get_registry())
    config = vanilla_defaults()
    config.pipeline.model.background_color = ranged_plugin.DimBackgroundConfig(level=-0.5)
    with pytest.raises(NerfkitError, match=r"^x.yml: pipeline.model.background_color.level must be 0 to 1"):
        check_ranges(config, source="x.yml")
    assert declared_ranges(ranged_plugin.DimBackgroundConfig) == {"level": typing.get_args(Fraction)[1]}
