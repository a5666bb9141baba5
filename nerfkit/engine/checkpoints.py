"""Checkpoint files: one naming rule, atomic writes, safe loads, and pruning of old steps.

A checkpoint is a plain dict of tensors and Python scalars, loaded with `torch.load(weights_only=True)`, so opening
one never runs code from the file.
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from nerfkit import __version__
from nerfkit.errors import NerfkitError
from nerfkit.utils.files import written_atomically

_NAME = re.compile(r"^step-(\d{9})\.ckpt$")


def checkpoint_path(model_dir: Path, step: int) -> Path:
    return model_dir / f"step-{step:09d}.ckpt"


def checkpoint_step(path: Path) -> int | None:
    """The step a checkpoint file holds, from its name; None for files that are not checkpoints."""
    match = _NAME.match(path.name)
    return int(match.group(1)) if match else None


def list_checkpoints(model_dir: Path) -> dict[int, Path]:
    """Checkpoints in a folder by step, oldest first."""
    if not model_dir.is_dir():
        return {}
    found = {checkpoint_step(path): path for path in model_dir.iterdir()}
    return {step: found[step] for step in sorted(step for step in found if step is not None)}


def find_checkpoint(load_dir: Path, load_step: int | None = None, named_by: str = "--load-dir") -> Path:
    """The checkpoint to load: `load_step`'s, or the latest. `named_by` says in messages where the folder came from."""
    if not load_dir.is_dir():
        raise NerfkitError(
            f"{named_by} {load_dir} is not a folder",
            hint="pass the run's nerfkit_models folder, or use --resume with the run folder",
        )
    checkpoints = list_checkpoints(load_dir)
    if not checkpoints:
        raise NerfkitError(
            f"{named_by} {load_dir} holds no checkpoints (files named step-<9 digits>.ckpt)",
            hint="check the path; a run writes its checkpoints into <run>/nerfkit_models",
        )
    if load_step is None:
        return checkpoints[max(checkpoints)]
    if load_step not in checkpoints:
        raise NerfkitError(
            f"--load-step {load_step}: no checkpoint for that step in {load_dir}",
            hint=f"available steps: {', '.join(map(str, checkpoints))}",
        )
    return checkpoints[load_step]


def state_bytes(value: object) -> int:
    """Bytes of the tensors in a (nested) state dict."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, dict):
        return sum(state_bytes(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(state_bytes(item) for item in value)
    return 0


def expected_size(state: dict[str, Any], model_dir: Path) -> int:
    """Bytes the checkpoint of `state` will take: the newest checkpoint's size (a run's checkpoints hardly differ),
    or its tensors' bytes, which leave out the archive's own few percent."""
    checkpoints = list_checkpoints(model_dir)
    newest = checkpoints[max(checkpoints)].stat().st_size if checkpoints else 0
    return max(newest, state_bytes(state))


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Writes to a temporary file and renames it, so a crash mid-write never leaves a truncated checkpoint; a write
    that fails (a full disk) removes its temporary file and says how much space the checkpoint needs."""
    with written_atomically(path, expected_size(state, path.parent)) as temporary, open(temporary, "wb") as file:
        torch.save(state, file)
        file.flush()
        os.fsync(file.fileno())


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Loads safely (tensors and plain values only); a truncated or corrupt file names itself and what to do."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise NerfkitError(f"checkpoint not found: {path}") from None
    except Exception as error:  # noqa: BLE001 - torch raises many types for damaged archives
        older = [step for step in list_checkpoints(path.parent) if step != checkpoint_step(path)]
        hint = f"resume from an earlier one with --load-step {max(older)}" if older else "start the run again"
        # torch's own text for these cases suggests weights_only=False, which would run code from the file.
        if zipfile.is_zipfile(path) and "weights only load failed" in str(error).lower():
            problem = "holds objects other than tensors and plain values, so it is not loaded"
        else:
            problem = "is truncated or corrupt"
        raise NerfkitError(f"checkpoint {path} {problem}", hint=f"move it aside and {hint}") from None
    if not isinstance(state, dict) or "step" not in state or "pipeline" not in state:
        raise NerfkitError(f"{path} is not a nerfkit checkpoint (no step and pipeline state)")
    return state


def prune_checkpoints(model_dir: Path, keep: int) -> None:
    """Deletes all but the newest `keep` checkpoints (keep <= 0 keeps everything)."""
    if keep <= 0:
        return
    checkpoints = list_checkpoints(model_dir)
    for step in list(checkpoints)[:-keep]:
        checkpoints[step].unlink(missing_ok=True)


def describe_key_mismatch(missing: list[str], unexpected: list[str], limit: int = 10) -> str:
    """A readable summary of the state-dict keys that did not line up."""

    def listing(title: str, keys: list[str]) -> str:
        shown = "\n".join(f"    {key}" for key in keys[:limit])
        more = f"\n    ... and {len(keys) - limit} more" if len(keys) > limit else ""
        return f"  {title} ({len(keys)}):\n{shown}{more}"

    parts = [listing("missing from the checkpoint", missing)] if missing else []
    parts += [listing("in the checkpoint but not in the model", unexpected)] if unexpected else []
    return "\n".join(parts)


def describe_shape_mismatch(mismatched: dict[str, tuple[torch.Size, torch.Size]], limit: int = 10) -> str:
    """The tensors whose shapes differ, checkpoint against model."""
    lines = [
        f"    {key}: {tuple(saved)} in the checkpoint, {tuple(expected)} in the model"
        for key, (saved, expected) in list(mismatched.items())[:limit]
    ]
    more = [f"    ... and {len(mismatched) - limit} more"] if len(mismatched) > limit else []
    return "\n".join([f"  different shapes ({len(mismatched)}):", *lines, *more])


def load_pipeline_state(pipeline: torch.nn.Module, state: dict[str, Any], path: Path) -> None:
    """Loads a checkpoint's weights; a mismatch lists the keys or shapes, since it means the config (or the nerfkit
    version) differs from training's."""
    expected = pipeline.state_dict()
    saved = state["pipeline"]
    mismatched = {
        key: (value.shape, expected[key].shape)
        for key, value in saved.items()
        if key in expected and isinstance(value, torch.Tensor) and value.shape != expected[key].shape
    }
    result = pipeline.load_state_dict(saved, strict=False) if not mismatched else None
    if mismatched or result.missing_keys or result.unexpected_keys:
        details = describe_shape_mismatch(mismatched) if mismatched else ""
        details = details or describe_key_mismatch(result.missing_keys, result.unexpected_keys)
        hint = "load it with the config it was trained with (kit-train --resume <run folder>)"
        written_by = state.get("nerfkit_version")
        if written_by is not None and written_by != __version__:
            hint += f"; it was written by nerfkit {written_by} and this is {__version__}, whose models may differ"
        raise NerfkitError(f"checkpoint {path} does not fit this model:\n{details}", hint=hint)
