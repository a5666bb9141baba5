"""Wall-clock timing of GPU work: CUDA runs asynchronously, so a clock read before it finishes times only the launch."""

from __future__ import annotations

import torch


def synchronize(device: torch.device) -> None:
    """Waits for the device's queued work, so the next clock reading includes it (a no-op off CUDA)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
