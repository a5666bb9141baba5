"""Configs to plain YAML data and back, onto a registered method's defaults.

A file holds field values only: no Python tags, no class paths. Loading starts from the method's default config and
applies the file's values, checking each against the field's declared type, so that a file can only set values and
choose among registered config types, never run code. The same merge serves a run's config.yml, `--load-config`
and `--resume`.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from nerfkit.configs.config_types import config_type_name, lookup_config_type, registered_config_types
from nerfkit.errors import NerfkitError
from nerfkit.plugins.components import load_component_plugins
from nerfkit.utils.files import write_bytes_atomically

SCHEMA_VERSION = 1
"""Bumped when a change to the config tree needs more than the ignore-unknown-fields rule to load old files."""

TYPE_KEY = "type"
"""Key that names the registered config type in a slot with several implementations."""


def to_data(value: Any, relative_to: Path | None = None) -> Any:
    """Plain YAML-safe data for a config; paths inside `relative_to` are written relative to it."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data: dict[str, Any] = {}
        name = config_type_name(type(value))
        if name is not None:
            data[TYPE_KEY] = name
        for field in dataclasses.fields(value):
            if not field.name.startswith("_"):
                data[field.name] = to_data(getattr(value, field.name), relative_to)
        return data
    if isinstance(value, dict):
        return {str(key): to_data(item, relative_to) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_data(item, relative_to) for item in value]
    if isinstance(value, Path):
        if relative_to is not None and value.is_absolute() and value.is_relative_to(relative_to):
            return value.relative_to(relative_to).as_posix() or "."
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot write a {type(value).__name__} into a config file: {value!r}")


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def with_absolute_paths(value: Any) -> Any:
    """A copy of a config with every relative path made absolute, so a saved run never depends on the cwd."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        updates = {f.name: with_absolute_paths(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
        return dataclasses.replace(value, **updates)
    if isinstance(value, dict):
        return {key: with_absolute_paths(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(with_absolute_paths(item) for item in value)
    if isinstance(value, Path):
        return value.absolute()
    return value


class _Merge:
    """Applies file data onto a default config; fields this nerfkit does not know are collected, or with `strict`
    an error naming the closest valid keys."""

    def __init__(self, source: str, relative_to: Path | None, strict: bool) -> None:
        self.source = source
        self.relative_to = relative_to
        self.strict = strict
        self.unknown: list[str] = []

    def error(self, where: str, message: str, hint: str | None = None) -> NerfkitError:
        return NerfkitError(f"{self.source}: field {where or '(top level)'} {message}", hint)

    def apply(self, default: Any, data: Any, declared: Any, where: str) -> Any:
        origin, args = typing.get_origin(declared), typing.get_args(declared)
        if declared is Any:
            return data
        if origin in (Union, types.UnionType):
            if data is None:
                if type(None) in args:
                    return None
                raise self.error(where, "may not be empty")
            options = [arg for arg in args if arg is not type(None)]
            if default is not None and any(self._fits(default, option) for option in options):
                fitting = next(option for option in options if self._fits(default, option))
                return self.apply(default, data, fitting, where)
            return self._apply_first_fitting(data, options, where)
        if dataclasses.is_dataclass(declared):
            return self._apply_dataclass(default, data, declared, where)
        if origin is dict:
            return self._apply_dict(default, data, args[1] if args else Any, where)
        if origin in (tuple, list):
            if not isinstance(data, list):
                raise self.error(where, f"expects a list, got {data!r}")
            item_type = args[0] if args else Any
            items = [self.apply(None, item, item_type, f"{where}[{i}]") for i, item in enumerate(data)]
            return tuple(items) if origin is tuple else items
        if origin is Literal:
            if data not in args:
                raise self.error(where, f"must be one of {list(args)}, got {data!r}")
            return data
        return self._apply_scalar(data, declared, where)

    def _fits(self, value: Any, option: Any) -> bool:
        target = typing.get_origin(option) or option
        return isinstance(target, type) and isinstance(value, target)

    def _apply_first_fitting(self, data: Any, options: list[Any], where: str) -> Any:
        errors = []
        for option in options:
            try:
                return self.apply(None, data, option, where)
            except NerfkitError as error:
                errors.append(error)
        raise errors[0]

    def _apply_scalar(self, data: Any, declared: Any, where: str) -> Any:
        if declared is Path:
            if not isinstance(data, str):
                raise self.error(where, f"expects a path, got {data!r}")
            path = Path(data)
            return self.relative_to / path if self.relative_to is not None and not path.is_absolute() else path
        if declared is float and isinstance(data, int) and not isinstance(data, bool):
            return float(data)
        if declared in (bool, int, float, str) and type(data) is not declared:
            raise self.error(where, f"expects {declared.__name__}, got {data!r}")
        return data

    def _apply_dataclass(self, default: Any, data: Any, declared: type, where: str) -> Any:
        if isinstance(data, str) and registered_config_types(declared):
            data = {TYPE_KEY: data}  # `sampler: pdf` is short for `sampler: {type: pdf}`
        if not isinstance(data, dict):
            raise self.error(where, f"expects a mapping of fields, got {data!r}")
        data = dict(data)
        type_name = data.pop(TYPE_KEY, None)
        cls = type(default) if default is not None else declared
        if type_name is not None and type_name != config_type_name(cls):
            load_component_plugins()
            cls = lookup_config_type(type_name, declared, f"{self.source}: field {where}")
        if type(default) is not cls:
            default = cls()
        hints = typing.get_type_hints(cls)
        known = [f.name for f in dataclasses.fields(cls) if not f.name.startswith("_")]
        updates = {}
        for key, value in data.items():
            path = _join(where, key)
            if key not in known:
                closest = difflib.get_close_matches(str(key), known, n=3, cutoff=0.5)
                if self.strict:
                    place = f"in {where}" if where else "at the top level"
                    listing = ", ".join(closest) if closest else ", ".join(known)
                    raise NerfkitError(
                        f"{self.source}: unknown key {key!r} {place}",
                        hint=f"{'closest valid keys' if closest else 'valid keys'} there: {listing}",
                    )
                self.unknown.append(path + (f" (closest: {closest[0]})" if closest else ""))
                continue
            updates[key] = self.apply(getattr(default, key), value, hints[key], path)
        return dataclasses.replace(default, **updates)

    def _apply_dict(self, default: Any, data: Any, value_type: Any, where: str) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise self.error(where, f"expects a mapping, got {data!r}")
        merged = dict(default or {})
        for key, value in data.items():
            merged[key] = self.apply(merged.get(key), value, value_type, _join(where, key))
        return merged


def apply_data(
    default: Any, data: dict[str, Any], source: str, relative_to: Path | None = None, strict: bool = False
) -> tuple[Any, list[str]]:
    """`default` with the file's values applied, and the fields of the file that were not recognised (with
    `strict`, an unrecognised field is an error instead)."""
    merge = _Merge(source, relative_to, strict)
    return merge.apply(default, data, type(default), ""), merge.unknown


def read_yaml(path: Path) -> Any:
    """Safe-loads a YAML file; Python tags and other non-data constructs are rejected with the file's name."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NerfkitError(f"config file not found: {path}", hint="check the path") from None
    except OSError as error:
        raise NerfkitError(f"cannot read config file {path}: {error.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        if isinstance(error, yaml.constructor.ConstructorError):
            raise NerfkitError(
                f"{path}{where}: {error.problem}",
                hint="config files hold plain values only; Python object tags are never loaded",
            ) from None
        raise NerfkitError(f"{path} is not valid YAML{where}: {error.problem}", hint="fix the file") from None
    except yaml.YAMLError as error:
        raise NerfkitError(f"{path} is not valid YAML: {error}", hint="fix the file") from None


def write_yaml(data: dict[str, Any], path: Path, header: str = "") -> None:
    """Writes atomically, so an interrupted write never leaves a truncated file behind."""
    text = header + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)
    write_bytes_atomically(path, text.encode())
