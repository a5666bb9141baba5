"""Random state in checkpoints: a run saves and restores its own GPU's CUDA stream, so a checkpoint resumes on a
machine that sees fewer GPUs, or other ones. CUDA's generators are stood in for by a fake with torch's behaviour."""

from __future__ import annotations

import pytest
import torch

from nerfkit.utils.rng import get_rng_state, set_rng_state


class FakeCudaGenerators:
    """One generator state per visible GPU; naming a GPU that is not there raises IndexError, as torch does."""

    def __init__(self, num_devices: int) -> None:
        self.states = [torch.full((16,), index, dtype=torch.uint8) for index in range(num_devices)]

    @staticmethod
    def _index(device: int | str | torch.device) -> int:
        if isinstance(device, int):
            return device
        device = torch.device(device)
        return device.index or 0

    def get_rng_state(self, device: int | str | torch.device = "cuda") -> torch.Tensor:
        return self.states[self._index(device)].clone()

    def set_rng_state(self, new_state: torch.Tensor, device: int | str | torch.device = "cuda") -> None:
        self.states[self._index(device)] = new_state.clone()

    def get_rng_state_all(self) -> list[torch.Tensor]:
        return [state.clone() for state in self.states]


@pytest.fixture
def one_gpu(monkeypatch: pytest.MonkeyPatch) -> FakeCudaGenerators:
    fake = FakeCudaGenerators(num_devices=1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for module in (torch.cuda, torch.cuda.random):
        for name in ("get_rng_state", "set_rng_state", "get_rng_state_all"):
            monkeypatch.setattr(module, name, getattr(fake, name))
    return fake


def saved_state(cuda: object) -> dict:
    state = get_rng_state()
    state["cuda"] = cuda
    return state


def test_a_checkpoint_naming_more_gpus_than_exist_resumes(one_gpu: FakeCudaGenerators) -> None:
    """Checkpoints written before this fix held every visible GPU's state; four of them, on a machine with one."""
    four_gpus = [torch.full((16,), 40 + index, dtype=torch.uint8) for index in range(4)]
    assert set_rng_state(saved_state(four_gpus), torch.device("cuda", 0)) is None
    assert torch.equal(one_gpu.states[0], four_gpus[0])


def test_a_gpu_index_that_the_checkpoint_lacks_is_reported(one_gpu: FakeCudaGenerators) -> None:
    one_gpu.states.extend(torch.zeros(16, dtype=torch.uint8) for _ in range(2))
    note = set_rng_state(saved_state([torch.ones(16, dtype=torch.uint8)] * 2), torch.device("cuda", 2))
    assert note is not None and "2 GPUs" in note and "cuda:2" in note
    assert torch.equal(one_gpu.states[2], torch.zeros(16, dtype=torch.uint8))


def test_only_the_runs_own_gpu_is_saved_and_it_restores_onto_another_index(one_gpu: FakeCudaGenerators) -> None:
    one_gpu.states.append(torch.full((16,), 9, dtype=torch.uint8))
    state = get_rng_state(torch.device("cuda", 1))
    assert torch.equal(state["cuda"], torch.full((16,), 9, dtype=torch.uint8))
    one_gpu.states[1] = torch.zeros(16, dtype=torch.uint8)
    assert set_rng_state(state, torch.device("cuda", 0)) is None  # e.g. resumed with CUDA_VISIBLE_DEVICES=1
    assert torch.equal(one_gpu.states[0], torch.full((16,), 9, dtype=torch.uint8))


def test_cpu_runs_save_no_cuda_state_and_say_when_one_cannot_be_restored(one_gpu: FakeCudaGenerators) -> None:
    assert "cuda" not in get_rng_state(torch.device("cpu"))
    note = set_rng_state(saved_state(torch.zeros(16, dtype=torch.uint8)), torch.device("cpu"))
    assert note is not None and "not on a GPU" in note
    note = set_rng_state(get_rng_state(torch.device("cpu")), torch.device("cuda", 0))
    assert note is not None and "no CUDA random state" in note
