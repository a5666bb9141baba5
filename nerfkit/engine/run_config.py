"""A run's config as its run folder keeps it: one dataset, a fixed run folder, and `config.yml` (the method name, a
schema version and the field values, nothing executable).

Loading rebuilds the config from the registered method's defaults plus the file's values. Fields that this version of
nerfkit no longer has (renamed or removed) are named in a warning and skipped, never an import error; a file that lacks
fields every run writes is refused, and so are values outside their field's declared range. Relative paths
in the file are relative to its folder, so a run folder can be moved or copied and still loads.
"""

from __future__ import annotations

import copy
import dataclasses
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from nerfkit import __version__
from nerfkit.configs.ranges import check_ranges
from nerfkit.configs.serialization import (
    SCHEMA_VERSION,
    apply_data,
    read_yaml,
    to_data,
    with_absolute_paths,
    write_yaml,
)
from nerfkit.configs.trainer import TIMESTAMP_PLACEHOLDER
from nerfkit.errors import NerfkitError
from nerfkit.plugins.registry import Registry, get_registry

if TYPE_CHECKING:
    from nerfkit.configs.trainer import TrainerConfig

HEADER = "# nerfkit run config: plain values only. Reload with kit-train --load-config or --resume.\n"

SAVED_FIELDS = (
    "method_name", "data", "output_dir", "experiment_name", "timestamp", "run_dir", "relative_model_dir", "vis",
    "machine", "logging", "pipeline", "optimizers", "max_num_iterations", "steps_per_save", "keep_last_checkpoints",
    "save_only_latest_checkpoint", "steps_per_eval_batch", "steps_per_eval_image", "steps_per_eval_all_images",
    "mixed_precision", "load_dir", "load_step", "load_config", "resume", "debug",
)  # fmt: skip
"""Top-level config fields that every config.yml of schema version 1 holds (fields added since may be missing). A
file without one of them was cut short or edited by hand: filling the gap from the method's defaults would silently
build another model, so it is refused. `debug`, the last field written, keeps any truncation detectable."""
SAVED_PIPELINE_SECTIONS = ("datamanager", "model")
"""Sections of `pipeline` that every saved config holds."""


def save_run_config(config: TrainerConfig, path: Path) -> None:
    data = {
        "schema_version": SCHEMA_VERSION,
        "nerfkit_version": __version__,
        "method_name": config.method_name,
        "config": to_data(config, relative_to=path.parent.absolute()),
    }
    write_yaml(data, path, header=HEADER)


def check_complete(config: dict[str, Any], path: Path) -> None:
    """Refuses a saved config that lacks fields every saved run has, naming them."""
    missing = [key for key in SAVED_FIELDS if key not in config]
    pipeline = config.get("pipeline")
    if isinstance(pipeline, dict):
        missing += [f"pipeline.{key}" for key in SAVED_PIPELINE_SECTIONS if key not in pipeline]
    if missing:
        raise NerfkitError(
            f"{path} is incomplete: it lacks {', '.join(missing)} (cut short, or edited by hand)",
            hint="restore it from a copy; a partial config is meant for --config, which completes it on purpose",
        )


def load_run_config(path: Path, registry: Registry | None = None, console: Console | None = None) -> TrainerConfig:
    """The saved config on top of its method's current defaults."""
    registry = registry or get_registry()
    data = read_yaml(path)
    if not isinstance(data, dict) or not isinstance(data.get("config"), dict) or "method_name" not in data:
        raise NerfkitError(
            f"{path} is not a nerfkit run config (it needs method_name and config)",
            hint="pass the config.yml written in a run folder",
        )
    version = data.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise NerfkitError(
            f"{path}: schema_version {version!r} is not one this nerfkit ({__version__}) reads",
            hint=f"it reads schema versions up to {SCHEMA_VERSION}; upgrade nerfkit to load newer runs",
        )
    method_name = data["method_name"]
    if not isinstance(method_name, str) or method_name not in registry.methods:
        raise NerfkitError(
            f"{path} was written by method {method_name!r}, which is not registered here",
            hint="install the plug-in that provides it (kit-train --help lists the methods found)",
        )
    check_complete(data["config"], path)
    defaults = copy.deepcopy(registry.methods[method_name].config)
    config, unknown = apply_data(defaults, data["config"], source=str(path), relative_to=path.parent.absolute())
    check_ranges(config, source=str(path))
    if unknown:
        (console or Console(stderr=True)).print(
            f"[yellow]warning:[/yellow] {path}: skipped fields this nerfkit does not have (renamed or removed): "
            + ", ".join(unknown)
        )
    config.method_name = method_name
    return config


def dataset_folder(config: TrainerConfig) -> Path | None:
    """The dataset the run trains on: --data, else the datamanager's, else the dataparser's (None: none given)."""
    datamanager = config.pipeline.datamanager
    return config.data or datamanager.data or datamanager.dataparser.data


def with_builtin_scene_if_no_data(config: TrainerConfig, console: Console) -> TrainerConfig:
    """A run given no dataset trains on the built-in scene, and says so, so that a first run needs no download."""
    if dataset_folder(config) is not None:
        return config
    from nerfkit.data.builtin_scene import builtin_scene_dir

    scene = builtin_scene_dir(config.pipeline.datamanager.cache_dir)
    console.print(
        f"no --data given: training on nerfkit's built-in scene ({scene}).\n"
        "Pass --data PATH to train on your own dataset; kit-download-data fetches the standard ones.",
        soft_wrap=True,
    )
    return dataclasses.replace(config, data=scene)


def prepare_run_config(config: TrainerConfig) -> TrainerConfig:
    """The config as the run will save it: one data path, names and run folder fixed, every path absolute."""
    datamanager = config.pipeline.datamanager
    data = dataset_folder(config)
    if data is None:
        raise NerfkitError("No dataset folder is set.", "Pass --data PATH.")
    data = data.absolute()
    timestamp = config.timestamp
    if timestamp == TIMESTAMP_PLACEHOLDER:
        timestamp = datetime.now().strftime("%Y-%m-%d_%H%M%S")
    datamanager = dataclasses.replace(
        datamanager, data=data, dataparser=dataclasses.replace(datamanager.dataparser, data=data)
    )
    prepared = dataclasses.replace(
        config,
        data=data,
        experiment_name=config.experiment_name or data.name or "unnamed",
        timestamp=timestamp,
        pipeline=dataclasses.replace(config.pipeline, datamanager=datamanager),
    )
    return with_absolute_paths(dataclasses.replace(prepared, run_dir=prepared.get_base_dir()))
