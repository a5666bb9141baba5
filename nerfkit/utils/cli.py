"""What every command-line entry point shares: user errors become one short message and a non-zero exit."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from rich.console import Console

from nerfkit.errors import NerfkitError

EXIT_USER_ERROR = 1


def debug_requested(argv: Sequence[str]) -> bool:
    return "--debug" in argv or os.environ.get("NERFKIT_DEBUG", "").lower() in ("1", "true", "yes")


def flag_value(argv: Sequence[str], flag: str) -> str | None:
    """The value of `--flag VALUE` or `--flag=VALUE` in raw arguments, before tyro parses them (the last one given,
    as for every flag)."""
    value = None
    for index, argument in enumerate(argv):
        if argument == flag and index + 1 < len(argv):
            value = argv[index + 1]
        elif argument.startswith(flag + "="):
            value = argument.split("=", 1)[1]
    return value


def run_cli(main: Callable[[list[str]], int], argv: Sequence[str] | None = None) -> None:
    """Runs `main` and exits with its code; a NerfkitError prints without a traceback unless debugging."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        code = main(argv)
    except NerfkitError as error:
        if debug_requested(argv):
            raise
        console = Console(stderr=True, highlight=False, soft_wrap=True)
        console.print(f"[bold red]error:[/bold red] {error.message}", markup=True)
        if error.hint:
            console.print(f"[bold]hint:[/bold] {error.hint}")
        code = EXIT_USER_ERROR
    sys.exit(code)
