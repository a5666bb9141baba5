"""Writing files so that an interrupted or failed write never leaves a truncated file behind."""

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


def write_json(path: Path, data: dict[str, Any]) -> None:
    with atomic_output(path) as file:
        file.write((json.dumps(data, indent=2) + "\n").encode())
