"""Help screens and argument errors come without importing torch (about 1.2 s of every kit-train on a small CPU):
the config tree, the registry and every registered method load without it, and kit-train imports it only to train.

Each check runs in a fresh interpreter, since this test process has long imported torch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from nerfkit.plugins.registry import get_registry

CHECK = """
import contextlib, importlib, io, json, pkgutil, sys
import nerfkit.configs
from nerfkit.errors import NerfkitError
from nerfkit.scripts.train import main

for module in pkgutil.walk_packages(nerfkit.configs.__path__, "nerfkit.configs."):
    importlib.import_module(module.name)
outcomes = []
for argv in json.loads(sys.argv[1]):
    output = io.StringIO()
    try:
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            outcome = main(argv)
    except SystemExit as exit:
        outcome = f"exit {exit.code}"
    except NerfkitError as error:
        outcome = error.message
    outcomes.append([outcome, output.getvalue()])
print(json.dumps({"torch": "torch" in sys.modules, "outcomes": outcomes}))
"""


def run_without_torch(*commands: list[str]) -> list[tuple[object, str]]:
    """Each kit-train command line's outcome (exit code, error message or return value) and output, after asserting
    that neither they nor importing every module of the config tree loaded torch."""
    result = subprocess.run(
        [sys.executable, "-c", CHECK, json.dumps(commands)], capture_output=True, text=True, check=True, timeout=120
    )
    report = json.loads(result.stdout.splitlines()[-1])
    assert report["torch"] is False, "torch was imported"
    return [tuple(outcome) for outcome in report["outcomes"]]


def test_help_screens_of_kit_train_and_of_every_method_load_no_torch() -> None:
    methods = sorted(get_registry().methods)
    outcomes = run_without_torch(["--help"], *([method, "--help"] for method in methods))
    assert [code for code, _ in outcomes] == ["exit 0"] * (len(methods) + 1)
    assert all(method in outcomes[0][1] for method in methods)
    assert all("--max-num-iterations" in help_text for _, help_text in outcomes[1:])


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["instant-ngp", "--no-such-flag", "1"], "exit 2"),
        (["instant-nfp"], "unknown method 'instant-nfp'"),
        (["instant-ngp", "--data", "/no/such/folder"], "Dataset folder /no/such/folder (field data) does not exist."),
        (["instant-ngp", "--max-num-iterations", "0"], "--max-num-iterations must be >= 1, got 0"),
    ],
)
def test_argument_errors_come_before_torch_is_imported(argv: list[str], expected: str) -> None:
    [(outcome, _)] = run_without_torch(argv)
    assert outcome == expected
