"""Which frames of a capture train and which evaluate: the format's own split, every N-th, a fraction, or a list."""

from __future__ import annotations

import math
from pathlib import Path

from nerfkit.configs.data import EvalMode, Split
from nerfkit.errors import NerfkitError


def interval_split(num_frames: int, split: Split, eval_interval: int) -> list[int]:
    """Every eval_interval-th frame from the first is held out, as LLFF and Mip-NeRF 360 results are reported."""
    if eval_interval < 1:
        raise NerfkitError(f"eval_interval is {eval_interval!r}.", "Set eval_interval to a whole number, 1 or more.")
    return [index for index in range(num_frames) if (index % eval_interval == 0) != (split == "train")]


def fraction_split(num_frames: int, split: Split, train_fraction: float) -> list[int]:
    """`train_fraction` of the frames, spread evenly over the sequence, train; the rest evaluate."""
    if not 0 < train_fraction <= 1:
        raise NerfkitError(f"train_fraction is {train_fraction!r}.", "Set train_fraction between 0 (excluded) and 1.")
    num_train = math.ceil(num_frames * train_fraction)
    train = {round(i * (num_frames - 1) / max(num_train - 1, 1)) for i in range(num_train)}
    return [index for index in range(num_frames) if (index in train) == (split == "train")]


def read_eval_list(path: Path, names: list[str]) -> set[int]:
    """Frames named in a text file of image names (one per line, file name or path relative to the dataset)."""
    if not path.is_file():
        raise NerfkitError(f"Eval list {path} (field eval_list) not found.", "Give a text file, one image per line.")
    by_name: dict[str, int] = {}
    for index, name in enumerate(names):
        by_name.setdefault(name, index)
        by_name.setdefault(Path(name).name, index)
    wanted = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    unknown = [name for name in wanted if name not in by_name]
    if unknown:
        raise NerfkitError(
            f"{path} names {unknown[0]!r}, which is not an image of the dataset ({len(unknown)} unknown in all).",
            "List image file names (or paths relative to the dataset folder), one per line.",
        )
    return {by_name[name] for name in wanted}


def split_indices(
    names: list[str],
    split: Split,
    mode: EvalMode,
    own_split: dict[Split, list[int]] | None,
    source: Path,
    eval_interval: int,
    train_fraction: float,
    eval_list: Path | None,
    split_file: str | None = None,
) -> list[int]:
    """Positions of `split`'s frames among `names` (the images, relative to the dataset folder); `source`, the
    dataset, is named when it lacks its own `split`, and so is the missing file when the format has one a split.

    Outside the format's own split there is one held-out set, used for both val and test, as in Nerfstudio.
    """
    if mode == "auto" and own_split is not None:
        if split not in own_split:
            missing = f"; there is no {split_file.format(split=split)}" if split_file else ""
            raise NerfkitError(
                f"{source} defines no {split} split (it has {', '.join(own_split)}){missing}.",
                "Choose another eval split, or set the dataparser's eval_mode to interval, fraction or list.",
            )
        return own_split[split]
    if mode == "all":
        return list(range(len(names)))
    if mode in ("auto", "interval"):
        return interval_split(len(names), split, eval_interval)
    if mode == "fraction":
        return fraction_split(len(names), split, train_fraction)
    if eval_list is None:
        raise NerfkitError("eval_mode is list but no eval_list is given.", "Pass the dataparser's eval_list file.")
    held_out = read_eval_list(eval_list, names)
    return [index for index in range(len(names)) if (index in held_out) != (split == "train")]
