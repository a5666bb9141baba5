"""The README's first screen stays true: its test command is the one CI runs, its main job is a valid command."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from nerfkit.plugins.registry import get_registry
from nerfkit.scripts.train import parse_args

ROOT = Path(__file__).resolve().parents[1]


def first_screen_commands() -> list[str]:
    """The commands of the README's first code block, one per line, without comments."""
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert block, "the README opens with a bash block"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_the_main_job_and_the_tests() -> None:
    main_job, tests = first_screen_commands()
    assert "kit-train" in main_job and "--data" not in main_job, "the main job trains on the built-in scene"
    assert "pytest" in tests


def test_readme_test_command_is_the_one_ci_runs() -> None:
    test_command = first_screen_commands()[1].split("&&")[-1].strip()
    ci_commands = [line.strip() for line in (ROOT / ".ci/run").read_text().splitlines() if "pytest" in line]
    assert ci_commands[-1] == test_command


def test_readme_main_job_parses() -> None:
    kit_train = first_screen_commands()[0].split("&&")[-1].strip()
    argv = shlex.split(kit_train)
    assert argv[0] == "kit-train"
    config = parse_args(argv[1:], get_registry())
    assert config.data is None and config.eval_when_finished
