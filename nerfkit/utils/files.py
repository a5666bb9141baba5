"""Writing files: folders checked before the work whose output they receive, and writes that an interruption or
failure never leaves truncated."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from nerfkit.errors import NerfkitError


@contextmanager
def atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """A binary file that appears at `path` only once the block has written it completely (or keeps the old one)."""
    staging = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with staging.open("wb") as file:
            yield file
        os.replace(staging, path)
    except OSError as error:
        raise NerfkitError(
            f"cannot write {path}: {error}", hint="check the folder's permissions and free space"
        ) from error
    finally:
        staging.unlink(missing_ok=True)


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
    with atomic_output(path) as file:
        file.write((json.dumps(data, indent=2) + "\n").encode())
