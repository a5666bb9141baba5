"""Stable names for configs that stand in a slot with several implementations (e.g. Adam or RAdam).

A saved config records the name, not the Python class, so a moved or renamed class never breaks an old run, and
loading a file can only ever build one of the registered config classes. A name is unique within a family of configs
(classes with a common base below the generic config classes), so a sampler and a background could share a name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from nerfkit.configs.base_config import InstantiateConfig, PrintableConfig
from nerfkit.errors import NerfkitError

_CONFIG_TYPES: list[type] = []
ConfigClass = TypeVar("ConfigClass", bound=type)


def register_config_type(name: str) -> Callable[[ConfigClass], ConfigClass]:
    """Class decorator giving a config class its stable name in config files."""

    def register(cls: ConfigClass) -> ConfigClass:
        for other in _CONFIG_TYPES:
            if other is not cls and config_type_name(other) == name and _same_family(cls, other):
                raise NerfkitError(f"config type name {name!r} is registered twice ({other} and {cls})")
        cls.config_type_name = name
        if cls not in _CONFIG_TYPES:
            _CONFIG_TYPES.append(cls)
        return cls

    return register


def _same_family(first: type, second: type) -> bool:
    generic = {object, PrintableConfig, InstantiateConfig}
    return bool(set(first.__mro__) & set(second.__mro__) - generic)


def config_type_name(cls: type) -> str | None:
    """The registered name of a config class, or None for classes that fill a fixed slot."""
    return cls.__dict__.get("config_type_name")


def registered_config_types(base: type) -> dict[str, type]:
    """Name to class of every registered config that fits a slot declared as `base`, in registration order."""
    return {config_type_name(cls): cls for cls in _CONFIG_TYPES if issubclass(cls, base)}


def lookup_config_type(name: str, base: type, where: str) -> type:
    """The registered class called `name`, which must fit a slot declared as `base`."""
    candidates = registered_config_types(base)
    if not isinstance(name, str) or name not in candidates:
        raise NerfkitError(
            f"{where}: unknown type {name!r}",
            hint=f"use one of: {', '.join(candidates) or '(none registered)'}",
        )
    return candidates[name]
