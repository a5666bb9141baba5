"""config.yml: exact round trip, plain data only, old and foreign files handled with clear messages."""

from __future__ import annotations

import copy
import dataclasses
import re
import shutil
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from nerfkit.configs.optimizers import RAdamOptimizerConfig
from nerfkit.configs.serialization import SCHEMA_VERSION
from nerfkit.configs.trainer import TrainerConfig
from nerfkit.engine.run_config import load_run_config, prepare_run_config, save_run_config
from nerfkit.errors import NerfkitError
from nerfkit.plugins.registry import get_registry


def _vanilla() -> TrainerConfig:
    return copy.deepcopy(get_registry().get("vanilla-nerf").config)


def _saved_run(tmp_path: Path, config: TrainerConfig | None = None) -> tuple[TrainerConfig, Path]:
    config = prepare_run_config(
        dataclasses.replace(config or _vanilla(), data=Path("/data/lego"), run_dir=tmp_path / "run")
    )
    config.run_dir.mkdir(parents=True)
    save_run_config(config, config.run_dir / "config.yml")
    return config, config.run_dir / "config.yml"


def _edit(path: Path, edit: callable) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))


def test_round_trip_is_exact(tmp_path: Path) -> None:
    config = _vanilla()
    config.max_num_iterations = 1234
    config.logging.wandb_tags = ("a", "b")
    config.pipeline.model.skip_connections = (2, 5)
    config.optimizers["fields"].optimizer = RAdamOptimizerConfig(lr=1e-3, weight_decay=0.25)
    config.optimizers["fields"].scheduler.lr_final = 1.234567890123e-7
    config.load_dir = tmp_path / "run" / "nerfkit_models"
    saved, path = _saved_run(tmp_path, config)
    assert load_run_config(path) == saved


def test_file_is_plain_data_with_schema_and_method(tmp_path: Path) -> None:
    _, path = _saved_run(tmp_path)
    text = path.read_text()
    assert "!!" not in text and "nerfkit." not in text
    data = yaml.safe_load(text)
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["method_name"] == "vanilla-nerf"
    assert data["config"]["optimizers"]["fields"]["optimizer"]["type"] == "adam"
    # Paths inside the run are stored relative to it; others absolute.
    assert data["config"]["run_dir"] == "."
    assert data["config"]["data"] == "/data/lego"


def test_moved_run_folder_still_loads(tmp_path: Path) -> None:
    saved, path = _saved_run(tmp_path)
    moved = tmp_path / "elsewhere" / "copy"
    shutil.copytree(path.parent, moved)
    loaded = load_run_config(moved / "config.yml")
    assert loaded.get_base_dir() == moved
    assert loaded.get_checkpoint_dir() == moved / "nerfkit_models"
    assert dataclasses.replace(loaded, run_dir=saved.run_dir) == saved


@pytest.mark.parametrize(
    "payload",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
        "!!python/name:os.system",
    ],
)
def test_unsafe_yaml_tags_are_rejected_and_never_run(tmp_path: Path, payload: str) -> None:
    _, path = _saved_run(tmp_path)
    marker = tmp_path / "pwned"
    text = path.read_text().replace(
        "max_num_iterations: 200000", f"max_num_iterations: {payload.format(marker=marker)}"
    )
    path.write_text(text)
    with pytest.raises(NerfkitError, match=r"config\.yml \(line \d+, column \d+\)") as error:
        load_run_config(path)
    assert "plain values" in error.value.hint
    assert not marker.exists()


def test_unknown_type_is_rejected_naming_field_and_choices(tmp_path: Path) -> None:
    _, path = _saved_run(tmp_path)
    _edit(path, lambda data: data["config"]["optimizers"]["fields"]["optimizer"].update(type="sgd-magic"))
    with pytest.raises(NerfkitError, match="optimizers.fields.optimizer: unknown type 'sgd-magic'") as error:
        load_run_config(path)
    assert "adam" in error.value.hint and "radam" in error.value.hint


def test_type_must_fit_the_slot(tmp_path: Path) -> None:
    _, path = _saved_run(tmp_path)
    _edit(path, lambda data: data["config"]["optimizers"]["fields"]["optimizer"].update(type="exponential-decay"))
    with pytest.raises(NerfkitError, match="unknown type 'exponential-decay'"):
        load_run_config(path)


def test_switching_registered_type_builds_that_class(tmp_path: Path) -> None:
    _, path = _saved_run(tmp_path)
    _edit(path, lambda data: data["config"]["optimizers"]["fields"]["optimizer"].update(type="radam", lr=0.01))
    optimizer = load_run_config(path).optimizers["fields"].optimizer
    assert type(optimizer) is RAdamOptimizerConfig and optimizer.lr == 0.01


def test_renamed_or_removed_fields_load_with_a_warning_naming_each(tmp_path: Path) -> None:
    saved, path = _saved_run(tmp_path)

    def rename(data: dict) -> None:
        model = data["config"]["pipeline"]["model"]
        model["base_mlp_num_layer"] = model.pop("base_mlp_num_layers")
        data["config"]["old_option"] = 3

    _edit(path, rename)
    console = Console(record=True, width=400)
    loaded = load_run_config(path, console=console)
    output = console.export_text()
    assert "pipeline.model.base_mlp_num_layer (closest: base_mlp_num_layers)" in output
    assert "old_option" in output
    assert loaded.pipeline.model.base_mlp_num_layers == saved.pipeline.model.base_mlp_num_layers


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["config"].update(max_num_iterations="many"), "max_num_iterations expects int, got 'many'"),
        (lambda d: d["config"].update(vis="tensorbored"), "vis must be one of"),
        (lambda d: d["config"]["machine"].update(seed=1.5), "machine.seed expects int"),
        (lambda d: d["config"].update(pipeline=[1, 2]), "pipeline expects a mapping"),
        (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), "schema_version"),
        (lambda d: d.update(method_name="not-installed"), "method 'not-installed', which is not registered"),
        (lambda d: d.pop("config"), "is not a nerfkit run config"),
    ],
)
def test_bad_values_name_the_field(tmp_path: Path, edit: callable, message: str) -> None:
    _, path = _saved_run(tmp_path)
    _edit(path, edit)
    with pytest.raises(NerfkitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_run_config(path)


def test_malformed_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text("config: {unclosed: [1, 2\n")
    with pytest.raises(NerfkitError, match=r"config\.yml is not valid YAML"):
        load_run_config(path)


def test_every_cut_short_config_is_refused_naming_what_it_lacks(tmp_path: Path) -> None:
    """However an interrupted copy cuts config.yml at a line, what still parses lacks a field every run writes
    (the last one, debug, is a plain value), so it is never silently completed from the method's defaults."""
    _, path = _saved_run(tmp_path)
    lines = path.read_text().splitlines(keepends=True)
    cut = tmp_path / "config.yml"
    still_parse = 0
    for end in range(len(lines) - 1, 0, -1):
        cut.write_text("".join(lines[:end]))
        try:
            data = yaml.safe_load(cut.read_text())
        except yaml.YAMLError:
            continue
        if not isinstance(data, dict) or not isinstance(data.get("config"), dict):
            continue
        still_parse += 1
        with pytest.raises(NerfkitError, match=r"config\.yml is incomplete: it lacks .*debug"):
            load_run_config(cut)
    assert still_parse > len(lines) // 2


@pytest.mark.parametrize(
    ("edit", "missing"),
    [
        (lambda d: d["config"].pop("optimizers"), "it lacks optimizers (cut short"),
        (lambda d: d["config"]["pipeline"].pop("model"), "it lacks pipeline.model (cut short"),
        (lambda d: [d["config"].pop(key) for key in ("machine", "max_num_iterations")], "machine, max_num_iterations"),
    ],
)
def test_a_config_without_a_section_every_run_has_is_refused(tmp_path: Path, edit: callable, missing: str) -> None:
    _, path = _saved_run(tmp_path)
    _edit(path, edit)
    with pytest.raises(NerfkitError, match=re.escape(missing)) as error:
        load_run_config(path)
    assert "--config" in error.value.hint


def test_a_value_out_of_its_range_names_the_file_and_key(tmp_path: Path) -> None:
    _, path = _saved_run(tmp_path)
    _edit(path, lambda d: d["config"]["pipeline"]["datamanager"].update(train_num_rays_per_batch=0))
    with pytest.raises(NerfkitError, match=r"config\.yml: pipeline.datamanager.train_num_rays_per_batch must be >= 1"):
        load_run_config(path)
