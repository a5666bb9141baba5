"""Hooks that run before or after each training iteration; models register their own (e.g. grid updates)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum, auto
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nerfkit.engine.optimizers import Optimizers
    from nerfkit.pipelines.base_pipeline import VanillaPipeline


class TrainingCallbackLocation(Enum):
    """Where in the iteration a callback runs."""

    BEFORE_TRAIN_ITERATION = auto()
    AFTER_TRAIN_ITERATION = auto()


@dataclass
class TrainingCallbackAttributes:
    """What a component may need to build its callbacks."""

    optimizers: Optimizers | None
    pipeline: VanillaPipeline | None


class TrainingCallback:
    """Calls `func(*args, step=step, **kwargs)` at a location, every N steps or at listed steps."""

    def __init__(
        self,
        where_to_run: list[TrainingCallbackLocation],
        func: Callable[..., Any],
        update_every_num_iters: int | None = None,
        iters: tuple[int, ...] | None = None,
        args: list[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
    ) -> None:
        if update_every_num_iters is not None and iters is not None:
            raise ValueError("give update_every_num_iters or iters, not both")
        self.where_to_run = where_to_run
        self.func = func
        self.update_every_num_iters = update_every_num_iters
        self.iters = iters
        self.args = args or []
        self.kwargs = kwargs or {}

    def run_callback(self, step: int) -> None:
        if self.update_every_num_iters is not None:
            if step % self.update_every_num_iters == 0:
                self.func(*self.args, **self.kwargs, step=step)
        elif self.iters is not None:
            if step in self.iters:
                self.func(*self.args, **self.kwargs, step=step)
        else:
            self.func(*self.args, **self.kwargs, step=step)

    def run_callback_at_location(self, step: int, location: TrainingCallbackLocation) -> None:
        if location in self.where_to_run:
            self.run_callback(step=step)
