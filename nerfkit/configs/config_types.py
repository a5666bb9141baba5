"""Stable names for configs that stand in a slot with several implementations (e.g. Adam or RAdam).

A saved config records the name, not the Python class, so a moved or renamed class never breaks an old run, and
loading a file can only ever build one of the registered config classes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from nerfkit.errors import NerfkitError

_CONFIG_TYPES: dict[str, type] = {}
ConfigClass = TypeVar("ConfigClass", bound=type)


def register_config_type(name: str) -> Callable[[ConfigClass], ConfigClass]:
    """Class decorator giving a config class its stable name in config files."""

    def register(cls: ConfigClass) -> ConfigClass:
        if _CONFIG_TYPES.get(name, cls) is not cls:
            raise NerfkitError(f"config type name {name!r} is registered twice ({_CONFIG_TYPES[name]} and {cls})")
        _CONFIG_TYPES[name] = cls
        cls.config_type_name = name
        return cls

    return register


def config_type_name(cls: type) -> str | None:
    """The registered name of a config class, or None for classes that fill a fixed slot."""
    return cls.__dict__.get("config_type_name")


def lookup_config_type(name: str, base: type, where: str) -> type:
    """The registered class called `name`, which must fit a slot declared as `base`."""
    candidates = sorted(n for n, cls in _CONFIG_TYPES.items() if issubclass(cls, base))
    cls = _CONFIG_TYPES.get(name)
    if cls is None or not issubclass(cls, base):
        raise NerfkitError(
            f"{where}: unknown type {name!r}",
            hint=f"use one of: {', '.join(candidates) or '(none registered)'}",
        )
    return cls
