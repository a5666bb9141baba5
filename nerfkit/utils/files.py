"""Writing files: folders checked before the work whose output they receive, and writes that an interruption or
failure never leaves truncated.

A failed write (a full disk, a file size limit, a read-only folder) is one `NerfkitError` naming the file and, when
space ran out, how much the write needed and how much is free; the partial temporary file is removed, so the disk is
not left fuller than before.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from nerfkit.errors import NerfkitError

OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)


def temporary_path(path: Path) -> Path:
    """`.NAME.PID.tmp` beside `path`: hidden, and never shared by two processes writing the same file."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def format_bytes(size: int) -> str:
    """A byte count for people: 512 bytes, 3.4 KiB, 1.2 MiB, 2.0 GiB."""
    if size < 1024:
        return f"{size} bytes"
    value, unit = size / 1024, "KiB"
    for larger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{value:.1f} {unit}"


def os_error_in(error: BaseException) -> OSError | None:
    """The OSError behind `error`: itself, or one it was raised while handling. torch's writer turns a full disk into
    RuntimeError('unexpected pos ...'), raised while the OSError(ENOSPC) of the write is being handled."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, OSError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def free_space(folder: Path) -> int | None:
    """Bytes free to this user on the disk holding `folder` (or its nearest existing parent)."""
    existing = next((path for path in (folder, *folder.parents) if path.exists()), None)
    return None if existing is None else shutil.disk_usage(existing).free


def write_error(path: Path, error: OSError, needed_bytes: int | None = None) -> NerfkitError:
    """One message for a write that failed: which file, why, and for lack of space, how much it needs and is free."""
    reason = error.strerror or str(error)
    if error.errno in OUT_OF_SPACE:
        free = free_space(path.parent)
        sizes = [f"it needs about {format_bytes(needed_bytes)}"] if needed_bytes is not None else []
        sizes += [f"{format_bytes(free)} free there"] if free is not None else []
        details = f" ({'; '.join(sizes)})" if sizes else ""
        return NerfkitError(
            f"cannot write {path}: {reason}{details}",
            hint="free some space on that disk; files written before are intact",
        )
    if error.errno == errno.EFBIG:
        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        limit_text = "" if limit == resource.RLIM_INFINITY else f" (this process may write {format_bytes(limit)})"
        return NerfkitError(
            f"cannot write {path}: {reason}{limit_text}",
            hint="raise the file size limit (ulimit -f) or the filesystem's, then run again",
        )
    return NerfkitError(f"cannot write {path}: {reason}", hint="check the folder's permissions and free space")


@contextmanager
def written_atomically(path: Path, needed_bytes: int | None = None) -> Iterator[Path]:
    """Yields a temporary path to write; it becomes `path` when the block ends and is removed if the block fails.

    An OSError, or torch's RuntimeError over one, becomes `write_error`; `needed_bytes` is the size being written, for
    the message when space runs out.
    """
    temporary = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield temporary
        os.replace(temporary, path)
    except (OSError, RuntimeError) as error:
        cause = os_error_in(error)
        if cause is None:
            raise
        temporary.unlink(missing_ok=True)  # before measuring the free space, which it takes
        raise write_error(path, cause, needed_bytes) from error
    finally:
        temporary.unlink(missing_ok=True)


@contextmanager
def atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """A binary file that appears at `path` only once the block has written it completely (or keeps the old one)."""
    with written_atomically(path) as temporary, temporary.open("wb") as file:
        yield file


def write_bytes_atomically(path: Path, data: bytes) -> None:
    with written_atomically(path, len(data)) as temporary:
        temporary.write_bytes(data)


def check_writable_folder(folder: Path, flag: str, value: Path) -> None:
    """The folder, or the nearest one on its way that exists (the rest is created), must be a folder this user can
    write in; checked before the work whose output it receives."""
    absolute = folder.absolute()
    try:
        existing = next(path for path in (absolute, *absolute.parents) if path.exists())
    except PermissionError:
        raise NerfkitError(
            f"{flag} {value}: a folder on the way to {absolute} denies access",
            hint="choose a folder you can write to",
        ) from None
    if not existing.is_dir():
        raise NerfkitError(f"{flag} {value}: {existing} is not a folder", hint="choose a path inside a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise NerfkitError(f"{flag} {value}: {existing} is not writable", hint="choose a folder you can write to")


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_bytes_atomically(path, (json.dumps(data, indent=2) + "\n").encode())


def folder_problem(data: Path) -> tuple[str, str] | None:
    """What keeps `data` from being read as a dataset folder, and what to do; None when it can be."""
    point = "Point --data at the dataset folder."
    readable = "Give your user read access to it (chmod), or point --data at a copy you can read."
    try:
        if not data.is_dir():
            return ("is not a directory" if data.exists() else "does not exist"), point
    except PermissionError:
        return "cannot be reached: a folder on its path denies access", readable
    if not os.access(data, os.R_OK | os.X_OK):
        return "cannot be read: permission denied", readable
    return None


def check_data_folder(data: Path | None) -> Path:
    """The dataset folder from the config's `data` field, which must be an existing directory this user can read."""
    if data is None:
        raise NerfkitError("No dataset folder is set (field data).", "Point --data at the dataset folder.")
    problem = folder_problem(data)
    if problem is not None:
        raise NerfkitError(f"Dataset folder {data} (field data) {problem[0]}.", problem[1])
    return data
