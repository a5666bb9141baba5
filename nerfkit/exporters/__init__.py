"""Exports of a trained run that other tools open: point clouds and meshes (PLY, OBJ) and cameras (JSON)."""

from __future__ import annotations

from collections.abc import Callable

Advance = Callable[[int], None]
"""Told how much more work is done, e.g. to move a progress bar."""
