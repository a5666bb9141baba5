"""A checkpoint that does not fit the model is one message that names the keys or shapes, never a raw traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from nerfkit import __version__
from nerfkit.engine.checkpoints import load_pipeline_state
from nerfkit.errors import NerfkitError
from nerfkit.kernels.mlp import NetworkMLP


def pipeline(width: int) -> nn.Module:
    return nn.ModuleDict({"field": NetworkMLP(31, 3, width, 3)})


def test_a_shape_mismatch_names_the_tensors_and_shapes(tmp_path: Path) -> None:
    state = {"pipeline": pipeline(64).state_dict(), "nerfkit_version": __version__}
    with pytest.raises(NerfkitError) as raised:
        load_pipeline_state(pipeline(32), state, tmp_path / "step-000000010.ckpt")
    message = str(raised.value)
    assert "field.layers.1.weight: (64, 64) in the checkpoint, (32, 32) in the model" in message
    assert "different shapes (4)" in message and "step-000000010.ckpt" in message
    assert "written by" not in (raised.value.hint or "")


def test_a_checkpoint_from_another_version_says_so(tmp_path: Path) -> None:
    old = pipeline(64).state_dict() | {"field.layers.1.bias": torch.zeros(64)}  # 0.1's MLPs had hidden biases
    with pytest.raises(NerfkitError) as raised:
        load_pipeline_state(pipeline(64), {"pipeline": old, "nerfkit_version": "0.1.0"}, tmp_path / "old.ckpt")
    assert "field.layers.1.bias" in str(raised.value)
    assert f"written by nerfkit 0.1.0 and this is {__version__}" in (raised.value.hint or "")
