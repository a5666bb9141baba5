"""Replaceable components: a model's ray samplers, encodings, background and collider are chosen in its config.

Each kind of component has a base config class; every implementation subclasses it and registers under a short name
with `@register_component("name")`. A config field annotated `component_choice(Base)` offers every registered
implementation as a command-line choice, with its own flags, and config files name the choice with `type: name`.
Third-party implementations arrive through the `nerfkit.components` entry-point group (the entry point names a module
whose import registers them) or `NERFKIT_COMPONENTS="module,module"`; one that fails to import only warns.
"""

from __future__ import annotations

import importlib
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Annotated, Any, TypeVar, Union

import tyro
from rich.console import Console

from nerfkit.configs.config_types import config_type_name, register_config_type, registered_config_types
from nerfkit.errors import NerfkitError

ENTRY_POINT_GROUP = "nerfkit.components"
ENV_VAR = "NERFKIT_COMPONENTS"
ConfigClass = TypeVar("ConfigClass", bound=type)


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
                "its components are not offered"
            )
    return failures


def implementations(base: type) -> dict[str, type]:
    """Every registered implementation of a kind of component, plug-ins included."""
    load_component_plugins()
    return registered_config_types(base)


@dataclass(frozen=True)
class ComponentSlot:
    """What a config field holding a replaceable component accepts: a kind of component, the implementations of it
    that work there (the command line offers only those), and why the others do not (the start-up error says so)."""

    base: type
    """The kind of component: its implementations are the registered subclasses."""
    fits: Callable[[type], bool]
    """Whether an implementation works in this field."""
    why: str
    """Why an implementation that does not fit cannot work here."""

    def fitting(self) -> dict[str, type]:
        """Every registered implementation that works in this field, plug-ins included."""
        return {name: cls for name, cls in implementations(self.base).items() if self.fits(cls)}

    def check(self, where: str, cls: type) -> None:
        """A clear error when `cls`, chosen for the field at `where`, cannot work there, naming those that can."""
        if self.fits(cls):
            return
        raise NerfkitError(
            f"{where} cannot be {config_type_name(cls) or cls.__name__!r}: {self.why}",
            hint=f"choose one of: {', '.join(self.fitting()) or '(none registered)'}",
        )


def _choices(slot: ComponentSlot) -> Any:
    options = tuple(Annotated[cls, tyro.conf.subcommand(name)] for name, cls in slot.fitting().items())
    return Union[options]  # noqa: UP007 - built at run time from a tuple, which the | operator cannot do


def component_choice(base: type, fits: Callable[[type], bool] = lambda cls: True, why: str = "") -> Any:
    """The annotation of a replaceable component: typed as `base`, offered on the command line as each implementation
    that `fits` this field (`why` says why the others cannot work there).

    The choices are gathered when a command line is parsed, not when the config class is defined, so plug-ins
    loaded later still appear.
    """
    slot = ComponentSlot(base, fits, why)
    return Annotated[base, tyro.conf.arg(constructor_factory=lambda: _choices(slot)), slot]


@cache
def component_slots(cls: type) -> dict[str, ComponentSlot]:
    """The fields of a config class that hold replaceable components, with what each accepts."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {
        name: item
        for name, hint in hints.items()
        for item in getattr(hint, "__metadata__", ())
        if isinstance(item, ComponentSlot)
    }


def check_components(config: Any, where: str) -> None:
    """Refuses a config whose chosen components cannot work in their fields; `where` is its place in the tree."""
    for name, slot in component_slots(type(config)).items():
        slot.check(f"{where}.{name}", type(getattr(config, name)))
