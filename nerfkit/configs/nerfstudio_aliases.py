"""Nerfstudio's spellings on kit-train's command line, mapped onto nerfkit's, so an `ns-train` command line works
unchanged where nerfkit has the feature. Each alias used is reported once with nerfkit's own spelling.

Three kinds: flags renamed (nerfacto's `max-res`, `proposal-*`, ...), a replaceable part chosen with a flag and a
value (`--pipeline.model.background-color white`, a subcommand in nerfkit), and a dataparser subcommand with its
short flags (`nerfstudio-data --downscale-factor 4`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MODEL = "--pipeline.model."
DATAPARSER = "--pipeline.datamanager.dataparser."


def _bool_value(value: str) -> bool:
    return value.lower() in ("true", "1", "yes")


@dataclass(frozen=True)
class FlagAlias:
    """A Nerfstudio flag and the nerfkit flag it becomes; `convert` maps its value when the two differ."""

    nerfkit: str
    convert: Callable[[str], str] | None = None


FLAG_ALIASES: dict[str, FlagAlias] = {
    f"{MODEL}max-res": FlagAlias(f"{MODEL}max-resolution"),
    f"{MODEL}base-res": FlagAlias(f"{MODEL}base-resolution"),
    f"{MODEL}disable-scene-contraction": FlagAlias(
        f"{MODEL}scene-contraction", lambda value: "off" if _bool_value(value) else "l-inf"
    ),
    f"{MODEL}proposal-update-every": FlagAlias(f"{MODEL}sampler.update-every"),
    f"{MODEL}proposal-warmup": FlagAlias(f"{MODEL}sampler.warmup"),
    f"{MODEL}proposal-weights-anneal-slope": FlagAlias(f"{MODEL}sampler.weights-anneal-slope"),
    f"{MODEL}proposal-weights-anneal-max-num-iters": FlagAlias(f"{MODEL}sampler.weights-anneal-max-num-iters"),
    f"{MODEL}proposal-initial-sampler": FlagAlias(
        f"{MODEL}sampler.initial-sampler", lambda value: "lin-disp" if value == "piecewise" else value
    ),
    f"{MODEL}num-proposal-samples-per-ray": FlagAlias(f"{MODEL}sampler.num-proposal-samples-per-ray"),
    f"{MODEL}num-nerf-samples-per-ray": FlagAlias(f"{MODEL}sampler.num-nerf-samples-per-ray"),
}
"""Nerfstudio's nerfacto flags whose nerfkit field has another name or place."""

BOOLEAN_FLAGS = {f"{MODEL}disable-scene-contraction"}
"""Aliases of boolean flags: Nerfstudio writes `--flag True`, and a bare `--flag` means True."""
BOOLEAN_VALUES = {"true", "false", "1", "0", "yes", "no"}

DATAPARSER_SUBCOMMANDS = {"nerfstudio-data": "nerfstudio", "blender-data": "blender", "colmap": "colmap"}
"""Nerfstudio's dataparser subcommands and the format each fixes."""

DATAPARSER_FLAGS = {"--train-split-fraction": "train-fraction"}
"""Nerfstudio's dataparser flags whose nerfkit field has another name; the others keep theirs."""


def _is_value(argument: str) -> bool:
    return not argument.startswith("--")


def _component_choice(argument: str, value: str, is_component: Callable[[str], bool]) -> str | None:
    """`pipeline.model.background-color:white` for `--pipeline.model.background-color white`, when that is a part."""
    path = argument[2:]
    if not is_component(path):
        return None
    return f"{path}:{value.replace('_', '-')}"


def _dataparser_flags(arguments: list[str], start: int, fields: set[str]) -> tuple[list[str], int]:
    """The short flags after a dataparser subcommand, as nerfkit's full flags, up to the first that is not one."""
    translated, index = [], start
    while index < len(arguments) and arguments[index].startswith("--"):
        name = arguments[index][2:].split("=", 1)[0]
        field = DATAPARSER_FLAGS.get(f"--{name}", name)
        if field.replace("-", "_") not in fields:
            break
        translated.append(DATAPARSER + field + arguments[index][2 + len(name) :])
        index += 1
        while index < len(arguments) and _is_value(arguments[index]):
            translated.append(arguments[index])
            index += 1
    return translated, index


def translate(
    arguments: list[str], is_component: Callable[[str], bool], dataparser_fields: set[str]
) -> tuple[list[str], list[str]]:
    """kit-train's arguments (after the method) with Nerfstudio's spellings replaced, and a note for each kind used.

    `is_component(path)` says whether a dotted flag path (without the dashes) is a replaceable component of the
    method's config.
    """
    out: list[str] = []
    notes: dict[str, str] = {}
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        following = arguments[index + 1] if index + 1 < len(arguments) else None
        name, equals, inline = argument.partition("=")
        if argument in DATAPARSER_SUBCOMMANDS:
            fmt = DATAPARSER_SUBCOMMANDS[argument]
            flags, index = _dataparser_flags(arguments, index + 1, dataparser_fields)
            out += [f"{DATAPARSER}format", fmt, *flags]
            notes[argument] = f"{argument} [--flag ...] is {DATAPARSER}format {fmt} [{DATAPARSER}flag ...]"
            continue
        if name in FLAG_ALIASES:
            alias = FLAG_ALIASES[name]
            takes = (lambda value: value.lower() in BOOLEAN_VALUES) if name in BOOLEAN_FLAGS else _is_value
            has_value = bool(equals) or (following is not None and takes(following))
            if has_value or name in BOOLEAN_FLAGS:
                value = inline if equals else following if has_value else "True"
                out += [alias.nerfkit, alias.convert(value) if alias.convert else value]
                notes[name] = f"{name} is {alias.nerfkit}"
                index += 1 if equals or not has_value else 2
                continue
        value = inline if equals else following
        if argument.startswith("--") and value is not None and _is_value(value):
            choice = _component_choice(name, value, is_component)
            if choice is not None:
                out.append(choice)
                notes[name] = f"{name} VALUE is the part choice {name[2:]}:VALUE"
                index += 1 if equals else 2
                continue
        out.append(argument)
        index += 1
    return out, [f"note: Nerfstudio's {text}" for text in notes.values()]
