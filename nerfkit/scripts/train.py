"""kit-train: train a registered method.

kit-train vanilla-nerf --data data/lego --max-num-iterations 300
kit-train vanilla-nerf --config experiment.yml --data data/lego
kit-train vanilla-nerf pipeline.model.coarse-sampler:lin-disp --data data/lego --print-config
kit-train --resume outputs/lego/vanilla-nerf/2026-01-01_120000 --max-num-iterations 600
"""

from __future__ import annotations

import copy
import dataclasses
import re
import sys
from pathlib import Path

import tyro
import yaml

from nerfkit.configs.nerfstudio_aliases import translate as translate_nerfstudio
from nerfkit.configs.ranges import check_ranges
from nerfkit.configs.serialization import apply_data, read_yaml, to_data
from nerfkit.configs.trainer import TIMESTAMP_PLACEHOLDER, TrainerConfig
from nerfkit.engine.run_config import dataset_folder, load_run_config
from nerfkit.errors import NerfkitError
from nerfkit.plugins.components import component_slots, implementations
from nerfkit.plugins.registry import Registry, get_registry
from nerfkit.utils.cli import debug_requested, flag_value, run_cli
from nerfkit.utils.files import check_data_folder


def _config_from_file(argv: list[str], registry: Registry) -> TrainerConfig | None:
    """The saved config named by --resume or --load-config, ready to serve as the defaults for the flags."""
    resume, load_config = flag_value(argv, "--resume"), flag_value(argv, "--load-config")
    if resume is not None and load_config is not None:
        raise NerfkitError(
            "--resume and --load-config cannot be used together", hint="--resume already loads the config"
        )
    if resume is not None:
        run_dir = Path(resume).absolute()
        if not (run_dir / "config.yml").is_file():
            raise NerfkitError(
                f"--resume {resume}: no config.yml in that folder",
                hint="pass a run folder, e.g. outputs/<experiment>/<method>/<timestamp>",
            )
        config = load_run_config(run_dir / "config.yml", registry)
        return dataclasses.replace(
            config,
            run_dir=run_dir,
            load_dir=run_dir / config.relative_model_dir,
            load_step=None,
            load_config=None,
            resume=run_dir,
        )
    if load_config is not None:
        # A new run with the same settings: fresh folder and timestamp, no weights.
        config = load_run_config(Path(load_config), registry)
        return dataclasses.replace(
            config,
            run_dir=None,
            timestamp=TIMESTAMP_PLACEHOLDER,
            load_dir=None,
            load_step=None,
            resume=None,
            load_config=Path(load_config).absolute(),
        )
    return None


def _with_experiment_file(
    path: Path, method: str | None, base: TrainerConfig | None, registry: Registry
) -> TrainerConfig:
    """An experiment YAML (any subset of the config tree, or a run's config.yml) applied on `base`, or on the
    method's defaults; every key must exist and every value fit its field's type."""
    data = read_yaml(path)
    if isinstance(data, dict) and "schema_version" in data and isinstance(data.get("config"), dict):
        data = {**data["config"], "method_name": data.get("method_name")}
    if not isinstance(data, dict):
        raise NerfkitError(
            f"{path}: an experiment file is a mapping of config fields",
            hint="start from the output of kit-train METHOD --print-config",
        )
    named = data.pop("method_name", None)
    method = method or (base.method_name if base is not None else None) or named
    if method is None:
        raise NerfkitError(f"{path} does not name a method", hint="name it: kit-train METHOD --config FILE")
    if named is not None and named != method:
        raise NerfkitError(
            f"{path} is for method {named!r}, not {method!r}",
            hint=f"use kit-train {named}, or remove method_name from the file",
        )
    base = base if base is not None else copy.deepcopy(registry.get(method).config)
    config, _ = apply_data(base, data, source=str(path), strict=True)
    check_ranges(config, source=str(path))
    config.method_name = method
    return config


USAGE = """\
kit-train METHOD [flags]: train a method; kit-train METHOD --help lists its flags and components.

kit-train --resume RUN_FOLDER [flags]: continue a run with its saved config, from its latest checkpoint.

kit-train --config FILE [flags]: train with a config file, a run's config.yml or an experiment file naming its method.

kit-train --load-config RUN/config.yml [flags]: start a new run with a finished run's settings.

Flags override what the files set."""
"""What `kit-train --help` says above the list of methods."""

COMPONENT_CHOICE = re.compile(r"^([a-z0-9_-]+(?:\.[a-z0-9_-]+)*):[A-Za-z0-9_.-]+$")
"""A replaceable component's choice on the command line, e.g. pipeline.model.coarse-sampler:lin-disp."""


_MISSING = object()


def _field_at(config: TrainerConfig, path: str) -> object:
    """The value at a dotted command-line path (dashes for underscores), or _MISSING."""
    value: object = config
    for name in path.replace("-", "_").split("."):
        if isinstance(value, dict):
            value = value.get(name, _MISSING)
        elif dataclasses.is_dataclass(value) and not name.startswith("_"):
            value = getattr(value, name, _MISSING)
        else:
            return _MISSING
    return value


def _is_component(config: TrainerConfig, path: str) -> bool:
    return dataclasses.is_dataclass(_field_at(config, path))


def _takes_a_value(config: TrainerConfig, argument: str) -> bool:
    """Whether a command-line flag consumes the next argument (booleans are bare flags: --x, --no-x)."""
    if not argument.startswith("--") or "=" in argument:
        return False
    path = argument[2:]
    head, _, last = path.rpartition(".")
    negated = f"{head}.{last[3:]}" if head else last[3:]
    if last.startswith("no-") and isinstance(_field_at(config, negated), bool):
        return False
    return not isinstance(_field_at(config, path), bool)


def _last_of_each_flag(arguments: list[str]) -> list[str]:
    """Flags with their values, where a repeated flag keeps only its last occurrence (a later override wins), as tyro
    refuses a flag seen again after it has chosen a default component."""
    groups: dict[str, list[str]] = {}
    for argument in arguments:
        if argument.startswith("--"):
            name = argument.split("=", 1)[0]
            groups.pop(name, None)
            groups[name] = [argument]
        elif groups:
            next(reversed(groups.values())).append(argument)
        else:
            groups[argument] = [argument]
    return [argument for group in groups.values() for argument in group]


def _component_choices(argv: list[str], config: TrainerConfig) -> set[int]:
    """Positions of the component choices in the arguments; an argument in a flag's value position stays a value."""
    return {
        index
        for index, arg in enumerate(argv[1:], start=1)
        if (match := COMPONENT_CHOICE.match(arg))
        and dataclasses.is_dataclass(_field_at(config, match.group(1)))
        and not _takes_a_value(config, argv[index - 1])
    }


def checked_component_choices(argv: list[str], config: TrainerConfig) -> list[str]:
    """The arguments without choices of a field's only fitting component (tyro offers no choice there); a registered
    component chosen for a field it cannot work in gets the start-up check's message, naming the components that can,
    rather than tyro's unknown choice: the command line offers each field only the components that fit it."""
    redundant = set()
    for index in _component_choices(argv, config):
        path, name = argv[index].rsplit(":", 1)
        path = path.replace("-", "_")
        head, _, field_name = path.rpartition(".")
        slot = component_slots(type(_field_at(config, head))).get(field_name)
        chosen = implementations(slot.base).get(name) if slot is not None else None
        if chosen is not None:
            slot.check(path, chosen)
            if list(slot.fitting().values()) == [chosen]:
                redundant.add(index)
    return [argument for index, argument in enumerate(argv) if index not in redundant]


def normalise_arguments(argv: list[str], config: TrainerConfig) -> list[str]:
    """The method, every component choice (in order), then the flags, each once with its last value.

    tyro reads a flag of the default component as choosing it, so a later choice of another component would conflict;
    moving choices first lets them go anywhere on the command line.
    """
    choices = _component_choices(argv, config)
    rest = [arg for index, arg in enumerate(argv) if index > 0 and index not in choices]
    return [argv[0], *(argv[index] for index in sorted(choices)), *_last_of_each_flag(rest)]


def nerfstudio_spellings(arguments: list[str], config: TrainerConfig) -> list[str]:
    """The arguments with Nerfstudio's spellings in nerfkit's, each kind used noted once on stderr."""
    dataparser = config.pipeline.datamanager.dataparser
    fields = {field.name for field in dataclasses.fields(dataparser)}
    translated, notes = translate_nerfstudio(arguments, lambda path: _is_component(config, path), fields)
    for note in notes:
        print(note, file=sys.stderr)
    return translated


def parse_args(argv: list[str], registry: Registry) -> TrainerConfig:
    """Method subcommand, then flags in any order. Defaults come from the method, then --resume or --load-config,
    then --config; the command line applies on top."""
    defaults = {name: spec.config for name, spec in registry.methods.items()}
    method = argv[0] if argv and not argv[0].startswith("-") else None
    if method is not None and method not in defaults:
        registry.get(method)
    loaded = _config_from_file(argv, registry)
    if loaded is not None and method is not None and method != loaded.method_name:
        raise NerfkitError(
            f"the saved config is for method {loaded.method_name!r}, not {method!r}",
            hint=f"drop the method name, or use kit-train {loaded.method_name}",
        )
    experiment = flag_value(argv, "--config")
    if experiment is not None:
        loaded = _with_experiment_file(Path(experiment), method, loaded, registry)
    if loaded is not None:
        if method is None:
            method, argv = loaded.method_name, [loaded.method_name, *argv]
        defaults[method] = loaded
    if not defaults:
        raise NerfkitError("no methods are registered", hint="reinstall nerfkit: pip install -e .")
    if method is not None:
        argv = checked_component_choices([method, *nerfstudio_spellings(argv[1:], defaults[method])], defaults[method])
        argv = normalise_arguments(argv, defaults[method])
    descriptions = {name: spec.description for name, spec in registry.methods.items()}
    subcommands = tyro.extras.subcommand_type_from_defaults(defaults, descriptions)
    config = tyro.cli(
        subcommands, args=argv, prog="kit-train", description=USAGE, config=(tyro.conf.CascadeSubcommandArgs,)
    )
    check_ranges(config)
    return config


def config_as_yaml(config: TrainerConfig) -> str:
    """The resolved config as an experiment file, valid for --config."""
    data = to_data(dataclasses.replace(config, print_config=False))
    header = f"# kit-train {config.method_name} --config FILE; remove any field to keep the method's default.\n"
    return header + yaml.safe_dump(data, sort_keys=False, width=120)


def main(argv: list[str]) -> int:
    config = parse_args(argv, get_registry())
    if config.print_config:
        print(config_as_yaml(config), end="")
        return 0
    if (data := dataset_folder(config)) is not None:
        check_data_folder(data)
    # Imported only now: torch and the training code load in seconds, which help screens and argument errors skip.
    from nerfkit.engine.training_run import launch_training

    return launch_training(config, debug=config.debug or debug_requested(argv))


def entrypoint() -> None:
    run_cli(main)


if __name__ == "__main__":
    entrypoint()
