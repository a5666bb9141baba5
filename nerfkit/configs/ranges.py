"""Declared ranges of numeric config fields, so nonsense (0 rays per batch, a NaN learning rate) stops at start-up.

A field declares its range in its annotation, `steps: ranged(int, min=1) = 100`: the range is shown in --help next to
the default, and `check_ranges` walks a whole config tree (nested configs, dicts of optimizer groups, components chosen
from plug-ins) and refuses every value outside its field's range in one error naming the flags or file keys. Types
without a range are not checked; a ranged float must also be finite.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

import tyro

from nerfkit.errors import NerfkitError


@dataclass(frozen=True)
class Range:
    """Bounds of a numeric field, each optional: at least `min`, above `above`, at most `max`, below `below`. NaN
    and infinities never fit."""

    min: float | None = None
    max: float | None = None
    above: float | None = None
    below: float | None = None

    def describe(self) -> str:
        """The range as --help and errors show it: '>= 1', '> 0', '0 to 1', '> 0 and < 180', 'finite'."""
        if self.min is not None and self.max is not None:
            return f"{self.min} to {self.max}"
        bounds = [
            f"{sign} {bound}"
            for sign, bound in ((">=", self.min), (">", self.above), ("<=", self.max), ("<", self.below))
            if bound is not None
        ]
        return " and ".join(bounds) or "finite"

    def admits(self, value: Any) -> bool:
        if value is None:
            return True
        if isinstance(value, (tuple, list)):
            return all(self.admits(item) for item in value)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return False
        return (
            (self.min is None or value >= self.min)
            and (self.above is None or value > self.above)
            and (self.max is None or value <= self.max)
            and (self.below is None or value < self.below)
        )

    def help_hint(self, default: str) -> str:
        """What tyro prints after the field's help, instead of its plain '(default: ...)'."""
        return f"({self.describe()}; default: {default})"


def ranged(
    kind: Any,
    *,
    min: float | None = None,
    max: float | None = None,
    above: float | None = None,
    below: float | None = None,
) -> Any:
    """The annotation of a numeric field (int, float, either or None, or a tuple of them: each item is checked) with
    its declared range."""
    bounds = Range(min, max, above, below)
    return Annotated[kind, bounds, tyro.conf.arg(help_behavior_hint=bounds.help_hint)]


Count = ranged(int, min=1)
"""How many of something that must exist: steps, rays, samples, layers."""
NonNegativeInt = ranged(int, min=0)
"""A count or index that may be 0."""
Positive = ranged(float, above=0)
"""A finite float above 0: learning rates, distances, scales."""
NonNegative = ranged(float, min=0)
"""A finite float of at least 0: loss weights, penalties, thresholds."""
Fraction = ranged(float, min=0, max=1)
"""A share or probability."""
Finite = ranged(float)
"""Any finite float."""


@cache
def declared_ranges(cls: type) -> dict[str, Range]:
    """The range declared on each field of a config class, by field name."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return {
        field.name: item
        for field in dataclasses.fields(cls)
        for item in getattr(hints[field.name], "__metadata__", ())
        if isinstance(item, Range)
    }


def out_of_range(config: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Range, Any]]:
    """Every (path, range, value) of the config tree whose value lies outside its field's declared range."""
    if isinstance(config, dict):
        for key, item in config.items():
            yield from out_of_range(item, (*path, str(key)))
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        ranges = declared_ranges(type(config))
        for field in dataclasses.fields(config):
            value = getattr(config, field.name)
            bounds = ranges.get(field.name)
            if bounds is not None and not bounds.admits(value):
                yield (*path, field.name), bounds, value
            yield from out_of_range(value, (*path, field.name))


def flag_name(path: tuple[str, ...]) -> str:
    """The command-line flag of a field: --pipeline.datamanager.train-num-rays-per-batch."""
    return "--" + ".".join(path).replace("_", "-")


def _requirement(bounds: Range, value: Any) -> str:
    """What the value must be; said in full for NaN and infinities, which the range alone does not rule out."""
    if isinstance(value, float) and not math.isfinite(value) and bounds.describe() != "finite":
        return f"finite and {bounds.describe()}"
    return bounds.describe()


def check_ranges(config: Any, source: str | None = None) -> None:
    """Refuses a config with values outside their declared ranges, naming each flag (or, with `source`, the file
    and each key) with its range and value."""
    problems = [
        f"{flag_name(path) if source is None else '.'.join(path)} must be {_requirement(bounds, value)}, got {value!r}"
        for path, bounds, value in out_of_range(config)
    ]
    if not problems:
        return
    if source is None:
        raise NerfkitError("; ".join(problems), hint="--help shows each flag's range")
    raise NerfkitError(f"{source}: " + "; ".join(problems), hint=f"fix the value in {source}")
