"""The layers of nerfkit, as README's Architecture section draws them, hold in the code.

Every import statement in nerfkit/ is read (those inside functions too, which a lazy import would hide from an import
test), and the two bottom layers are also imported alone in a fresh interpreter, which catches what they pull in
through the modules they may use.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import nerfkit

PACKAGE = Path(nerfkit.__file__).parent

BELOW_KERNELS = ("nerfkit.kernels", "nerfkit.errors", "nerfkit.utils")
"""What kernels/ may import of nerfkit: the kernels layer is the bottom one."""


def imports_of(path: Path) -> set[str]:
    """The absolute module names a file imports, wherever in the file the import stands."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def module_imports(folder: str) -> dict[str, set[str]]:
    """Each file under nerfkit/<folder> (relative to the repository) and what it imports."""
    return {
        str(path.relative_to(PACKAGE.parent)): imports_of(path) for path in sorted((PACKAGE / folder).rglob("*.py"))
    }


def within(name: str, packages: tuple[str, ...]) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def above_kernels(name: str) -> bool:
    """A nerfkit module that kernels/ (and utils/, which it may use) must not import; the version is no layer."""
    return (
        within(name, ("nerfkit",))
        and name not in ("nerfkit", "nerfkit.__version__")
        and not within(name, BELOW_KERNELS)
    )


def offenders(folder: str, forbidden: Callable[[str], bool]) -> list[str]:
    return [
        f"{file} imports {name}"
        for file, names in module_imports(folder).items()
        for name in sorted(names)
        if forbidden(name)
    ]


def test_kernels_import_nothing_of_nerfkit_above_them() -> None:
    assert offenders("kernels", above_kernels) == []


def test_utils_stay_below_the_kernels() -> None:
    assert offenders("utils", above_kernels) == []


def test_configs_do_not_import_the_engine() -> None:
    assert offenders("configs", lambda name: within(name, ("nerfkit.engine",))) == []


def test_nerfkit_never_imports_the_methods() -> None:
    assert offenders(".", lambda name: within(name, ("methods", "nerfkit_methods"))) == []


ISOLATED_IMPORT = """
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    importlib.import_module(module.name)
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in ("nerfkit", "methods"))))
"""


@pytest.mark.parametrize(
    ("package", "allowed"),
    [
        ("nerfkit.kernels", ("nerfkit",) + BELOW_KERNELS),
        ("nerfkit.configs", ("nerfkit", "nerfkit.configs", "nerfkit.plugins") + BELOW_KERNELS),
    ],
)  # fmt: skip
def test_a_bottom_layer_imported_alone_loads_nothing_above_it(package: str, allowed: tuple[str, ...]) -> None:
    result = subprocess.run(
        [sys.executable, "-c", ISOLATED_IMPORT, package], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert [name for name in loaded if name != "nerfkit" and not within(name, allowed[1:])] == []


def test_the_viewer_knows_no_model_and_only_the_trainer_and_kit_viewer_start_it() -> None:
    """It renders through the model's public forward call: no model module but the base, no engine; and only the
    trainer (lazily, with --vis viewer) and kit-viewer import it."""
    assert (
        offenders(
            "viewer",
            lambda name: (
                within(name, ("nerfkit.engine", "nerfkit.scripts", "nerfkit.fields", "nerfkit.field_components"))
                or (within(name, ("nerfkit.models",)) and not within(name, ("nerfkit.models.base_model",)))
            ),
        )
        == []
    )
    importers = [
        path
        for folder in ("configs", "engine", "models", "pipelines", "data", "cameras", "kernels", "utils", "scripts")
        for path, names in module_imports(folder).items()
        if any(within(name, ("nerfkit.viewer",)) for name in names)
    ]
    assert importers == ["nerfkit/engine/trainer.py", "nerfkit/scripts/viewer.py"]
