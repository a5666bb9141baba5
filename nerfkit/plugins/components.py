"""Replaceable parts: a model's ray samplers, encodings, background and collider are chosen in its config.

Each kind of part has a base config class; every implementation subclasses it and registers under a short name with
`@register_component("name")`. A config field annotated `component_choice(Base)` offers every registered
implementation as a command-line choice, with its own flags, and config files name the choice with `type: name`.
Third-party implementations arrive through the `nerfkit.components` entry-point group (the entry point names a module
whose import registers them) or `NERFKIT_COMPONENTS="module,module"`; one that fails to import only warns.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Annotated, Any, TypeVar, Union

import tyro
from rich.console import Console

from nerfkit.configs.config_types import config_type_name, register_config_type, registered_config_types
from nerfkit.data.scene_box import SceneBox
from nerfkit.errors import NerfkitError
from nerfkit.kernels.backends import Backends

ENTRY_POINT_GROUP = "nerfkit.components"
ENV_VAR = "NERFKIT_COMPONENTS"
ConfigClass = TypeVar("ConfigClass", bound=type)


@dataclass(frozen=True)
class PartContext:
    """The run-time values a model hands to every part it builds; each implementation takes what it needs."""

    scene_box: SceneBox
    """Box holding the scene (hash grids normalise positions by it, the AABB collider clips rays to it)."""
    near_plane: float
    """Where sampling starts along each ray."""
    far_plane: float
    """Where sampling ends along each ray."""
    backends: Backends = field(default_factory=Backends)
    """Backend of each accelerated operation."""


def register_component(name: str) -> Callable[[ConfigClass], ConfigClass]:
    """Class decorator for an implementation's config; `name` is its choice on the command line and in files."""
    return register_config_type(name)


@cache
def load_component_plugins() -> dict[str, str]:
    """Imports every component plug-in once; returns the ones that failed, with the reason (also printed)."""
    sources = [(ep.name, ep.load) for ep in entry_points(group=ENTRY_POINT_GROUP)]
    modules = filter(None, (part.strip() for part in os.environ.get(ENV_VAR, "").split(",")))
    sources += [(module, lambda module=module: importlib.import_module(module)) for module in modules]
    failures = {}
    for name, load in sources:
        try:
            load()
        except Exception as error:  # noqa: BLE001 - a broken plug-in must only disable itself
            failures[name] = f"{type(error).__name__}: {error}"
            Console(stderr=True).print(
                f"[yellow]warning:[/yellow] component plug-in {name!r} could not be loaded ({failures[name]}); "
                "its parts are not offered"
            )
    return failures


def implementations(base: type) -> dict[str, type]:
    """Every registered implementation of a kind of part, plug-ins included."""
    load_component_plugins()
    return registered_config_types(base)


def _choices(base: type) -> Any:
    options = tuple(Annotated[cls, tyro.conf.subcommand(name)] for name, cls in implementations(base).items())
    return Union[options]  # noqa: UP007 - built at run time from a tuple, which the | operator cannot do


def component_choice(base: type) -> Any:
    """The annotation of a replaceable part: typed as `base`, offered on the command line as each implementation.

    The choices are gathered when a command line is parsed, not when the config class is defined, so plug-ins
    loaded later still appear.
    """
    return Annotated[base, tyro.conf.arg(constructor_factory=lambda: _choices(base))]


def check_component(slot: str, value: Any, base: type, compatible: Callable[[type], bool], why: str) -> None:
    """A clear start-up error when the part chosen for `slot` (its place in the config) cannot work there, naming
    the registered parts that can."""
    if compatible(type(value)):
        return
    fitting = [name for name, cls in implementations(base).items() if compatible(cls)]
    raise NerfkitError(
        f"{slot} cannot be {config_type_name(type(value)) or type(value).__name__!r}: {why}",
        hint=f"choose one of: {', '.join(fitting) or '(none registered)'}",
    )
