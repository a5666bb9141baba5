"""The output folder: what kit-process-data may replace in it, and a work folder so that a failed run leaves an
earlier output whole.

Frames and COLMAP's files are made in <output-dir>/.kit-process-data and moved into place only once structure from
motion has succeeded; the earlier transforms.json, point cloud and image pyramid go just before, as they describe the
earlier images. Anything else in the folder is never touched.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from nerfkit.errors import NerfkitError
from nerfkit.process_data.colmap_to_nerfstudio import PLY_NAME, TRANSFORMS_NAME

WORK_NAME = ".kit-process-data"
PYRAMID_PATTERN = re.compile(r"images_\d+")
OWN_ENTRY = re.compile(
    rf"images|colmap|{PYRAMID_PATTERN.pattern}|{re.escape(TRANSFORMS_NAME)}|{re.escape(PLY_NAME)}"
    rf"|{re.escape(WORK_NAME)}|\..+\.tmp"
)
"""Names kit-process-data writes (temporary ones included), so a folder holding only these is an earlier output."""


def check_output_dir(output_dir: Path, overwrite: bool) -> None:
    """Refuses a folder holding files of someone else's unless --overwrite, before any work is done."""
    if not output_dir.exists():
        return
    if not output_dir.is_dir():
        raise NerfkitError(f"--output-dir {output_dir} is a file.", "Choose a folder for the dataset.")
    foreign = sorted(entry.name for entry in output_dir.iterdir() if not OWN_ENTRY.fullmatch(entry.name))
    if foreign and not overwrite:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise NerfkitError(
            f"--output-dir {output_dir} already holds files that kit-process-data did not write ({shown}).",
            "Choose a new or empty folder, or add --overwrite to write into it anyway: kit-process-data replaces only "
            "its own images/, images_N/, colmap/, transforms.json and sparse_pc.ply.",
        )


@contextmanager
def work_folder(output_dir: Path) -> Iterator[Path]:
    """An empty <output-dir>/.kit-process-data, removed afterwards whether or not the work succeeded; an output folder
    made for it is removed too when the work fails, so a failed run leaves nothing behind."""
    made = not output_dir.exists()
    work = output_dir / WORK_NAME
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        if made and not any(output_dir.iterdir()):
            output_dir.rmdir()
        raise
    shutil.rmtree(work, ignore_errors=True)


def pyramid_levels(output_dir: Path) -> list[Path]:
    return sorted(path for path in output_dir.iterdir() if path.is_dir() and PYRAMID_PATTERN.fullmatch(path.name))


def remove_entry(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def install(work: Path, output_dir: Path, names: Sequence[str]) -> None:
    """Moves the named entries of `work` into `output_dir`, after removing the earlier output they invalidate."""
    for stale in [output_dir / TRANSFORMS_NAME, output_dir / PLY_NAME, *pyramid_levels(output_dir)]:
        remove_entry(stale)
    for name in names:
        remove_entry(output_dir / name)
        (work / name).rename(output_dir / name)
