"""A run's `config.yml`: the method name, a schema version and the field values, nothing executable.

Loading rebuilds the config from the registered method's defaults plus the file's values. Fields that this version of
nerfkit no longer has (renamed or removed) are named in a warning and skipped, never an import error. Relative paths
in the file are relative to its folder, so a run folder can be moved or copied and still loads.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from nerfkit import __version__
from nerfkit.configs.serialization import SCHEMA_VERSION, apply_data, read_yaml, to_data, write_yaml
from nerfkit.errors import NerfkitError
from nerfkit.plugins.registry import Registry, get_registry

if TYPE_CHECKING:
    from nerfkit.engine.trainer import TrainerConfig

HEADER = "# nerfkit run config: plain values only. Reload with kit-train --load-config or --resume.\n"


def save_run_config(config: TrainerConfig, path: Path) -> None:
    data = {
        "schema_version": SCHEMA_VERSION,
        "nerfkit_version": __version__,
        "method_name": config.method_name,
        "config": to_data(config, relative_to=path.parent.absolute()),
    }
    write_yaml(data, path, header=HEADER)


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
    defaults = copy.deepcopy(registry.methods[method_name].config)
    config, unknown = apply_data(defaults, data["config"], source=str(path), relative_to=path.parent.absolute())
    if unknown:
        (console or Console(stderr=True)).print(
            f"[yellow]warning:[/yellow] {path}: skipped fields this nerfkit does not have (renamed or removed): "
            + ", ".join(unknown)
        )
    config.method_name = method_name
    return config
