"""Property: a randomly damaged transforms.json or config.yml gives nerfkit's one-line error or loads, and never any
other exception (which would reach the user as a traceback)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from nerfkit.configs.trainer import TrainerConfig
from nerfkit.data.dataparsers.blender_dataparser import read_blender_capture
from nerfkit.data.dataparsers.nerfstudio_dataparser import read_nerfstudio_capture
from nerfkit.engine.run_config import load_run_config
from nerfkit.errors import NerfkitError
from nerfkit.plugins.registry import get_registry

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=10,
)
"""Any value JSON or YAML can hold, NaN, infinities and huge integers included."""

PROFILE = settings(
    max_examples=80, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
"""Fixed examples, so CI never fails on a draw it has not seen before; 800 random examples per test found nothing
more after the two fixes (a list as method_name or as a part's type)."""


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every position in a nested JSON value (the root included)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def damaged(draw: st.DrawFn, document: Any) -> Any:
    """`document` with up to three positions deleted or replaced by arbitrary values."""
    document = json.loads(json.dumps(document))
    for _ in range(draw(st.integers(1, 3))):
        paths = [path for path in _paths(document) if path]
        if not paths:
            break
        *parent_path, key = draw(st.sampled_from(paths))
        parent = document
        for step in parent_path:
            parent = parent[step]
        if draw(st.booleans()):
            del parent[key]
        else:
            parent[key] = draw(JSON_VALUES)
    return document


def _pose(z: float) -> list[list[float]]:
    return [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, z], [0.0, 0.0, 0.0, 1.0]]


NERFSTUDIO = {
    "camera_model": "OPENCV",
    "fl_x": 8.0, "fl_y": 8.0, "cx": 4.0, "cy": 3.0, "w": 8, "h": 6, "k1": 0.01, "k2": 0.0, "p1": 0.0, "p2": 0.0,
    "frames": [
        {"file_path": f"images/frame_{index}.png", "transform_matrix": _pose(4.0 + index)} for index in range(2)
    ],
}  # fmt: skip
BLENDER = {
    "camera_angle_x": 0.7,
    "frames": [{"file_path": f"./train/r_{index}", "transform_matrix": _pose(4.0 + index)} for index in range(2)],
}


def _images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.fromarray(np.zeros((6, 8, 3), dtype=np.uint8)).save(folder / name)


def _loads_or_says_why(read: Any, *args: Any) -> None:
    try:
        read(*args)
    except NerfkitError:
        pass


@dataclass(frozen=True)
class TransformsFormat:
    """A format's transforms file, the images its valid document names, and its reader."""

    document: dict[str, Any]
    file_name: str
    image_folder: str
    image_names: tuple[str, ...]
    read: Callable[[Path], object]


FORMATS = {
    "nerfstudio": TransformsFormat(
        NERFSTUDIO, "transforms.json", "images", ("frame_0.png", "frame_1.png"), read_nerfstudio_capture
    ),
    "blender": TransformsFormat(
        BLENDER, "transforms_train.json", "train", ("r_0.png", "r_1.png"), read_blender_capture
    ),
}


@PROFILE
@given(name=st.sampled_from(sorted(FORMATS)), data=st.data())
def test_a_damaged_transforms_json(name: str, data: st.DataObject) -> None:
    dataset_format = FORMATS[name]
    document = data.draw(damaged(dataset_format.document))
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _images(root / dataset_format.image_folder, list(dataset_format.image_names))
        (root / dataset_format.file_name).write_text(json.dumps(document))
        _loads_or_says_why(dataset_format.read, root)


@PROFILE
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda raw: raw.decode("latin-1")))
def test_arbitrary_text_as_transforms_json(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "transforms.json").write_text(text, encoding="utf-8", errors="surrogateescape")
        _loads_or_says_why(read_nerfstudio_capture, root)


def _saved_config(method: str) -> dict[str, Any]:
    from nerfkit.engine.run_config import save_run_config

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yml"
        config: TrainerConfig = get_registry().methods[method].config
        save_run_config(config, path)
        return yaml.safe_load(path.read_text())


SAVED = {method: _saved_config(method) for method in ("instant-ngp", "nerfacto")}


@PROFILE
@given(method=st.sampled_from(sorted(SAVED)), data=st.data())
def test_a_damaged_config_yml(method: str, data: st.DataObject) -> None:
    document = data.draw(damaged(SAVED[method]))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yml"
        path.write_text(yaml.safe_dump(document))
        _loads_or_says_why(load_run_config, path)


@PROFILE
@given(method=st.sampled_from(sorted(SAVED)), cut=st.floats(0.0, 1.0))
def test_a_truncated_config_yml(method: str, cut: float) -> None:
    text = yaml.safe_dump(SAVED[method])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.yml"
        path.write_text(text[: int(len(text) * cut)])
        _loads_or_says_why(load_run_config, path)
