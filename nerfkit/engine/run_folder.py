"""A run folder belongs to one process at a time.

Two kit-train processes on one folder would overwrite each other's checkpoints, config.yml and metrics.csv, so the
trainer holds an exclusive `flock` on `<run>/.lock` while it writes there. The kernel drops the lock when the process
ends, however it ends, so a `kill -9` never leaves a folder locked; the file holds the owner's pid, for the message a
second process gets, and is removed when the owner releases it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from nerfkit.errors import NerfkitError
from nerfkit.utils.files import write_error

LOCK_NAME = ".lock"


class RunFolderLock:
    """An exclusive lock on a run folder, held from `acquire` to `release` (or the end of the process)."""

    def __init__(self, path: Path, descriptor: int) -> None:
        self.path = path
        self.descriptor = descriptor

    @classmethod
    def acquire(cls, run_dir: Path) -> RunFolderLock:
        """Locks `run_dir` or, when another process holds it, raises a NerfkitError naming that process's pid."""
        path = run_dir / LOCK_NAME
        while True:
            try:
                descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            except OSError as error:
                raise write_error(path, error) from error
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = _read_owner(descriptor)
                os.close(descriptor)
                raise NerfkitError(
                    f"run folder {run_dir} is in use by another process ({owner})",
                    hint="wait for it to finish or stop it; to train separately, choose another --timestamp or "
                    "--run-dir",
                ) from None
            # A releasing owner removes the file after we opened it: then we hold a lock on a file no one else sees.
            if _is_current_file(descriptor, path):
                _write_owner(descriptor)
                return cls(path, descriptor)
            os.close(descriptor)

    def release(self) -> None:
        """Removes the file while still holding the lock, so the next process locks a fresh one."""
        self.path.unlink(missing_ok=True)
        os.close(self.descriptor)


def _is_current_file(descriptor: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    held = os.fstat(descriptor)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _write_owner(descriptor: int) -> None:
    try:
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    except OSError:
        pass  # the pid only makes another process's message clearer; a full disk must not stop the run here


def _read_owner(descriptor: int) -> str:
    text = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
    return f"pid {text}" if text.isdigit() else "its pid is not recorded"


def remove_stale_temporaries(folder: Path, patterns: tuple[str, ...]) -> None:
    """Deletes the temporary files (glob `patterns`) that a killed process left in `folder`: with the folder locked,
    no other process is writing them, and a half-written checkpoint would otherwise hold its disk space for good."""
    for pattern in patterns:
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)
