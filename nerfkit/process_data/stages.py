"""One progress line per stage of processing, left on screen afterwards as a record of what took how long.

Stages whose amount of work is known show a bar and a count; COLMAP's steps that report nothing show a spinner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class Stages:
    """Use as `with Stages(console) as stages: with stages.stage("matching"): ...`."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            SpinnerColumn(finished_text="[green]done"),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[count]}"),
            TimeElapsedColumn(),
            console=console,
        )

    def __enter__(self) -> Stages:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    @contextmanager
    def stage(self, name: str, total: int | None = None) -> Iterator[Callable[[int], None]]:
        """A stage's line; the block calls the yielded function with each amount of work done (capped at `total`)."""
        task = self.progress.add_task(name, total=total, count="")
        done = 0

        def advance(count: int) -> None:
            nonlocal done
            if total is not None:
                done = min(done + count, total)
                self.progress.update(task, completed=done, count=f"{done}/{total}")

        advance(0)
        yield advance
        self.progress.update(task, total=total or 1, completed=total or 1)
