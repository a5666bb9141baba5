"""Stopping on Ctrl-C or SIGTERM at the end of the current iteration, so the saved state is always consistent.

The first SIGINT or SIGTERM asks the loop to stop; it then saves and returns. A second Ctrl-C abandons a step or an
evaluation still computing (nothing half-updated is saved; the previous checkpoint stays the newest). No signal ever
interrupts a write: one that arrives during a checkpoint, a metrics row or the final save is recorded and reported
once the file is complete, because a write cut short leaves either no new checkpoint or a traceback from inside
torch's writer. SIGKILL remains the way to end a run at once; the temporary-file-and-rename saves make even that keep
the previous checkpoint.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType


@dataclass
class StopRequest:
    """Set by the signal handler; the training loop checks it between iterations."""

    signal_number: int | None = None
    """The signal that asked the run to stop (None: none yet)."""
    held: list[int] = field(default_factory=list)
    """Signals that came after it while a write was in progress, which no signal interrupts."""
    abandoned: bool = False
    """Whether a second Ctrl-C abandoned a step or evaluation, so nothing was saved on the way out."""
    interruptible: bool = False
    """Whether a second Ctrl-C may abandon what runs now (computing a step or an evaluation, never a write)."""

    @property
    def requested(self) -> bool:
        return self.signal_number is not None

    @contextmanager
    def computing(self) -> Iterator[None]:
        """Marks work that a second Ctrl-C may abandon: it writes nothing, so abandoning it loses no file."""
        self.interruptible = True
        try:
            yield
        finally:
            self.interruptible = False

    def held_names(self) -> str:
        return ", ".join(signal.Signals(number).name for number in self.held)


@contextmanager
def stop_on_signals(request: StopRequest) -> Iterator[StopRequest]:
    """Routes SIGINT and SIGTERM to `request` while the block runs (the main thread only: Python delivers signals
    there); the previous handlers come back afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handle(signal_number: int, frame: FrameType | None) -> None:
        if not request.requested:
            request.signal_number = signal_number
        elif signal_number == signal.SIGINT and request.interruptible:
            raise KeyboardInterrupt
        else:
            request.held.append(signal_number)

    previous = {number: signal.signal(number, handle) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
