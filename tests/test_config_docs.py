"""Every config field carries the one-line docstring that tyro shows in --help."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import textwrap

import nerfkit_methods

import nerfkit
from nerfkit.configs.base_config import PrintableConfig


def config_classes() -> set[type]:
    for package in (nerfkit, nerfkit_methods):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)

    def subclasses(cls: type) -> set[type]:
        return {cls}.union(*(subclasses(sub) for sub in cls.__subclasses__()))

    return {cls for cls in subclasses(PrintableConfig) if cls.__module__.startswith(("nerfkit", "nerfkit_"))}


def undocumented_fields(cls: type) -> list[str]:
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    missing = []
    for statement, following in zip(body, body[1:] + [None], strict=True):
        if not isinstance(statement, ast.AnnAssign) or not isinstance(statement.target, ast.Name):
            continue
        name = statement.target.id
        documented = (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
            and "\n" not in following.value.value.strip()
        )
        if not name.startswith("_") and not documented:
            missing.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
    return missing


def test_config_classes_are_found() -> None:
    names = {cls.__name__ for cls in config_classes()}
    assert {"TrainerConfig", "VanillaModelConfig", "SceneDataParserConfig", "AdamOptimizerConfig"} <= names


def test_every_config_field_has_a_one_line_docstring() -> None:
    missing = [name for cls in config_classes() for name in undocumented_fields(cls)]
    assert not missing, "fields without a one-line docstring:\n" + "\n".join(sorted(missing))
