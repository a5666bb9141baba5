"""One training run from a parsed config: the trainer built on each rank, trained, and its ending reported."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from rich.console import Console

from nerfkit.configs.serialization import to_data
from nerfkit.configs.trainer import TrainerConfig
from nerfkit.engine.distributed import SINGLE_PROCESS, Rank, Worker, launch, torchrun_rank
from nerfkit.engine.interrupts import StopRequest
from nerfkit.engine.run_config import prepare_run_config, with_builtin_scene_if_no_data
from nerfkit.engine.trainer import Trainer, resolve_device
from nerfkit.errors import NerfkitError
from nerfkit.utils.cpu_memory import keep_freed_memory
from nerfkit.utils.files import check_writable_folder
from nerfkit.utils.rng import seed_everything


def setup_trainer(config: TrainerConfig, console: Console | None = None, rank: Rank = SINGLE_PROCESS) -> Trainer:
    """Threads, seed (offset by the rank, so ranks draw different rays), memory policy, then the trainer with
    everything built and any checkpoint loaded."""
    if config.machine.num_threads is not None:
        torch.set_num_threads(config.machine.num_threads)
    seed_everything(config.machine.seed + rank.rank)
    trainer = config.setup(
        local_rank=rank.local_rank,
        world_size=rank.world_size,
        rank=rank.rank,
        console=console or Console(quiet=not rank.is_main),
    )
    if config.machine.keep_freed_memory and trainer.device.type == "cpu":
        keep_freed_memory()
    trainer.setup()
    return trainer


def train(config: TrainerConfig, console: Console | None = None, rank: Rank = SINGLE_PROCESS) -> int:
    """Trains one run, or this process's rank of it; returns the exit code. Only rank 0 prints."""
    console = console or Console(quiet=not rank.is_main)
    trainer = setup_trainer(config, console, rank)
    console.rule(f"{trainer.config.method_name} config")
    console.print(yaml.safe_dump(to_data(trainer.config), sort_keys=False), highlight=False, markup=False)
    try:
        stop = trainer.train()
    except NerfkitError as error:
        hint = "; ".join(part for part in (error.hint, resume_hint(trainer)) if part)
        raise NerfkitError(error.message, hint=hint) from error
    if stop.requested:
        console.print(stop_report(trainer, stop), soft_wrap=True)
        return 128 + stop.signal_number
    console.print(f"finished at step {trainer.step}; run folder: {trainer.run_dir}", soft_wrap=True)
    return 0


def resume_hint(trainer: Trainer) -> str:
    """How to continue, and from which checkpoint."""
    saved = trainer.last_saved_step
    since = "step 0 (no checkpoint was saved)" if saved is None else f"its checkpoint of step {saved}"
    return f"continue from {since} with: kit-train --resume {trainer.run_dir}"


def stop_report(trainer: Trainer, stop: StopRequest) -> str:
    """What a signal did to the run: where it stopped, what was saved, and how to continue."""
    if stop.abandoned:
        stopped = f"interrupted again after step {trainer.step}: the step in progress is not saved"
    else:
        stopped = f"stopped at step {trainer.step}; checkpoint saved in {trainer.model_dir}"
    held = f" (then {stop.held_names()}: held until the files were written)" if stop.held else ""
    return f"{stopped}{held}\n{resume_hint(trainer)}"


def train_rank(rank: Rank, config: TrainerConfig) -> int:
    """What each process of a distributed run executes (a module-level function, so spawned processes can run it)."""
    return train(config, rank=rank)


def run_folder_flag(config: TrainerConfig) -> tuple[str, Path]:
    """The flag, with its value, that decides where the run is written, for errors about that folder."""
    candidates = (("--resume", config.resume), ("--run-dir", config.run_dir), ("--output-dir", config.output_dir))
    return next((flag, value) for flag, value in candidates if value is not None)


def launch_training(config: TrainerConfig, debug: bool = False, worker: Worker = train_rank) -> int:
    """Runs worker(rank, config) in this process, or in one process per device (--machine.num-devices), or as a
    torchrun rank.

    The run folder is fixed here, before any process starts, so that every rank agrees on it (its timestamp), and
    the chosen components and the run folder are checked here, so a bad choice is one error rather than one per rank."""
    config.pipeline.model.check_components("pipeline.model")
    quiet = (torchrun_rank() or SINGLE_PROCESS).rank != 0
    flag, value = run_folder_flag(config)
    config = prepare_run_config(with_builtin_scene_if_no_data(config, Console(quiet=quiet)))
    check_writable_folder(config.run_dir, flag, value)
    device = resolve_device(config.machine.device_type, 0)
    return launch(worker, config.machine, device, config, checkpoint_dir=config.get_checkpoint_dir(), debug=debug)
