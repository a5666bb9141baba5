"""The method registry: every method, built-in or third-party, arrives through the same entry points.

Sources, in order: the `nerfkit.method_configs` entry-point group (nerfkit's own methods are registered there in its
pyproject, exactly as a plug-in's would be), then `NERFKIT_METHOD_CONFIGS="name=module:attribute,..."` for methods
that are not packaged. A plug-in that fails to load is reported by name and the others still work.
"""

from __future__ import annotations

import difflib
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from rich.console import Console

from nerfkit.errors import NerfkitError

if TYPE_CHECKING:
    from nerfkit.configs.trainer import TrainerConfig

ENTRY_POINT_GROUP = "nerfkit.method_configs"
ENV_VAR = "NERFKIT_METHOD_CONFIGS"


@dataclass
class MethodSpecification:
    """What a plug-in exports: a method's full default config and a one-line description for `--help`."""

    config: TrainerConfig
    """Default config of the method; its `method_name` is the name it is registered under."""
    description: str
    """One line shown in `kit-train --help`."""


@dataclass
class Registry:
    """The methods found, and the plug-ins that could not be loaded."""

    methods: dict[str, MethodSpecification]
    """Method name to its specification."""
    failures: dict[str, str]
    """Name of a plug-in that failed to load to the reason."""

    def get(self, name: str) -> MethodSpecification:
        if name in self.methods:
            return self.methods[name]
        closest = difflib.get_close_matches(name, list(self.methods), n=1)
        suggestion = f"did you mean {closest[0]!r}? " if closest else ""
        if name in self.failures:
            raise NerfkitError(f"method {name!r} failed to load: {self.failures[name]}")
        raise NerfkitError(
            f"unknown method {name!r}",
            hint=f"{suggestion}known methods: {', '.join(sorted(self.methods)) or '(none)'}",
        )


def _load_spec(name: str, load: Callable[[], object], source: str) -> MethodSpecification:
    try:
        spec = load()
    except Exception as error:  # noqa: BLE001 - any failure in third-party code must only disable that plug-in
        raise NerfkitError(f"{source} {name!r} could not be loaded: {type(error).__name__}: {error}") from error
    if not isinstance(spec, MethodSpecification):
        raise NerfkitError(f"{source} {name!r} gives a {type(spec).__name__!r}, not a MethodSpecification")
    return spec


def _env_sources(value: str) -> list[tuple[str, str]]:
    sources = []
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, target = item.partition("=")
        if not sep or ":" not in target:
            raise NerfkitError(
                f"{ENV_VAR} entry {item!r} is not of the form name=module:attribute",
                hint=f"e.g. {ENV_VAR}='my-method=my_package.config:my_method'",
            )
        sources.append((name.strip(), target.strip()))
    return sources


def _import_attribute(target: str) -> object:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def discover_methods(console: Console | None = None) -> Registry:
    """Loads every registered method; warnings about broken plug-ins go to `console` (stderr by default)."""
    console = console or Console(stderr=True)
    candidates = [(ep.name, ep.load, "plug-in") for ep in entry_points(group=ENTRY_POINT_GROUP)]
    candidates += [
        (name, lambda target=target: _import_attribute(target), f"{ENV_VAR} method")
        for name, target in _env_sources(os.environ.get(ENV_VAR, ""))
    ]
    methods: dict[str, MethodSpecification] = {}
    origins: dict[str, str] = {}
    failures: dict[str, str] = {}
    for name, load, source in candidates:
        if name in methods:
            raise NerfkitError(
                f"method name {name!r} is registered twice ({origins[name]} and {source})",
                hint="uninstall one of the plug-ins or rename the method",
            )
        try:
            spec = _load_spec(name, load, source)
        except NerfkitError as error:
            failures[name] = error.message
            console.print(f"[yellow]warning:[/yellow] {error.message}; the other methods still work")
            continue
        spec.config.method_name = name
        methods[name] = spec
        origins[name] = source
    return Registry(methods=methods, failures=failures)


@cache
def get_registry() -> Registry:
    """The registry of this process, discovered once."""
    return discover_methods()
