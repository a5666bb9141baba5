"""The training loop: steps, scheduled evaluation, logging and checkpoints."""

from __future__ import annotations

import functools
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from rich.progress import Progress
from torch import Tensor

from nerfkit import __version__
from nerfkit.configs.serialization import to_data
from nerfkit.configs.trainer import TrainerConfig
from nerfkit.data.dataparsers.base_dataparser import DATAPARSER_TRANSFORMS
from nerfkit.engine.callbacks import TrainingCallbackAttributes, TrainingCallbackLocation
from nerfkit.engine.checkpoints import (
    checkpoint_path,
    find_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_pipeline_state,
    prune_checkpoints,
    save_checkpoint,
)
from nerfkit.engine.distributed import any_rank, data_parallel, gather_objects, mean_over_ranks
from nerfkit.engine.evaluation import evaluate_dataset, evaluation_report, load_split
from nerfkit.engine.interrupts import StopRequest, stop_on_signals
from nerfkit.engine.kernel_loading import prepare_backends
from nerfkit.engine.optimizers import Optimizers
from nerfkit.engine.run_config import prepare_run_config, save_run_config, with_builtin_scene_if_no_data
from nerfkit.engine.run_folder import RunFolderLock, remove_stale_temporaries
from nerfkit.errors import NerfkitError
from nerfkit.utils.files import write_json
from nerfkit.utils.progress import training_progress
from nerfkit.utils.rng import get_rng_state, seed_everything, set_rng_state
from nerfkit.utils.timing import synchronize
from nerfkit.utils.writers import CsvWriter, TensorboardWriter, WandbWriter, Writer, Writers, keep_rows_through

if TYPE_CHECKING:
    from nerfkit.viewer.viewer import Viewer

RUN_CONFIG = "config.yml"
METRICS = "metrics.csv"
RUN_TEMPORARIES = (f".{RUN_CONFIG}*.tmp", f".{METRICS}*.tmp", f".{DATAPARSER_TRANSFORMS}*.tmp")
"""Temporary files of the run folder's own files that a killed process may leave (not kit-eval's, which may be
writing beside a running trainer)."""
CHECKPOINT_TEMPORARIES = (".step-*.ckpt*.tmp",)
"""Temporary checkpoint files that a killed process may leave in the checkpoint folder."""


def resolve_device(device_type: str, local_rank: int) -> torch.device:
    if device_type == "auto":
        device_type = "cuda" if torch.cuda.is_available() else "cpu"
    if device_type == "cuda":
        if not torch.cuda.is_available():
            raise NerfkitError(
                "--machine.device-type cuda, but torch sees no CUDA device",
                hint="use --machine.device-type auto or cpu, or install a CUDA build of torch",
            )
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _every(step: int, period: int) -> bool:
    return period > 0 and step % period == 0


class Trainer:
    """Builds the pipeline and optimizers from a config and trains to `max_num_iterations`."""

    def __init__(
        self,
        config: TrainerConfig,
        local_rank: int = 0,
        world_size: int = 1,
        console: Console | None = None,
        rank: int = 0,
    ) -> None:
        self.local_rank = local_rank
        self.world_size = world_size
        self.rank = rank
        self.is_main = rank == 0
        self.console = console or Console(quiet=not self.is_main)
        self.config = prepare_run_config(with_builtin_scene_if_no_data(config, self.console))
        self.device = resolve_device(config.machine.device_type, local_rank)
        self.mixed_precision = config.mixed_precision and self.device.type == "cuda"
        self.run_dir = self.config.get_base_dir()
        self.model_dir = self.config.get_checkpoint_dir()
        self.start_step = 0
        self.step = 0
        self.last_saved_step: int | None = None
        self.writers: Writer = Writers([])
        self.stop = StopRequest()
        self.run_lock: RunFolderLock | None = None
        self.viewer: Viewer | None = None

    def setup(self) -> None:
        """Builds everything and loads the checkpoint before writing anything, so bad input leaves no files.

        The run folder is locked before anything is read from it when it exists (a resume), else before the first
        write; a failed start releases it."""
        if self.is_main and self.run_dir.is_dir():
            self.claim_run_folder()
        try:
            self.build()
            if self.is_main:
                self.write_run_files()
                if "viewer" in self.config.vis:
                    self.start_viewer()
        except BaseException:
            self.release_run_folder()
            raise

    def start_viewer(self) -> None:
        """The live viewer, on rank 0 only; it renders between steps (see viewer/viewer.py)."""
        from nerfkit.viewer.viewer import ViewedRun, Viewer

        run = ViewedRun.of(self.pipeline, self.run_dir, self.start_step)
        self.viewer = Viewer(self.config.viewer, self.pipeline.model, run, self.console, training=True)
        self.viewer.announce()

    def build(self) -> None:
        """Pipeline, optimizers, grad scaler and callbacks, with the checkpoint to continue from loaded."""
        config = self.config
        self.backends = prepare_backends(config.machine.kernels, self.device, self.console)
        self.console.print(f"kernels: {self.backends.describe()}")
        self.pipeline = config.pipeline.setup(
            device=self.device,
            backends=self.backends,
            mixed_precision=self.mixed_precision,
        )
        dataparser_outputs = self.pipeline.datamanager.train_dataparser_outputs
        self.console.print(f"dataset: {config.data}, format {dataparser_outputs.format_description}", soft_wrap=True)
        self.optimizers = Optimizers(config.optimizers, self.pipeline.get_param_groups())
        self.grad_scaler = torch.amp.GradScaler(self.device.type, enabled=self.mixed_precision)
        self.callbacks = self.pipeline.get_training_callbacks(
            TrainingCallbackAttributes(optimizers=self.optimizers, pipeline=self.pipeline)
        )
        if config.resume is not None and not list_checkpoints(config.load_dir):
            self.console.print(f"no checkpoint in {config.load_dir} yet: training the run from step 0", soft_wrap=True)
        elif config.load_dir is not None:
            self.load_checkpoint(find_checkpoint(config.load_dir, config.load_step))
        self.train_module: torch.nn.Module = self.pipeline
        if self.world_size > 1:
            self.train_module = data_parallel(self.pipeline, self.device, self.optimizers.parameters)

    def write_run_files(self) -> None:
        """config.yml, the dataparser's transform, and metrics.csv without the rows of steps about to be trained
        again (they were logged after the checkpoint this run continues from)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.run_lock is None:
            self.claim_run_folder()
        save_run_config(self.config, self.run_dir / RUN_CONFIG)
        transforms = self.pipeline.datamanager.train_dataparser_outputs.transforms_record()
        write_json(self.run_dir / DATAPARSER_TRANSFORMS, transforms)
        keep_rows_through(self.run_dir / METRICS, self.start_step)
        self.writers = self._build_writers()
        self.console.print(f"run folder: {self.run_dir}", soft_wrap=True)

    def continues_in_place(self) -> bool:
        """Whether this run continues the one in its folder: --resume, or --load-dir of the folder's checkpoints."""
        load_dir = self.config.load_dir
        return load_dir is not None and load_dir.resolve() == self.model_dir.resolve()

    def claim_run_folder(self) -> None:
        """Locks the run folder for this process, refuses one that holds another run (a reused --timestamp), and
        removes the temporary files a killed process left there."""
        self.run_lock = RunFolderLock.acquire(self.run_dir)
        if (self.run_dir / RUN_CONFIG).exists() and not self.continues_in_place():
            self.release_run_folder()
            raise NerfkitError(
                f"run folder {self.run_dir} already holds a run (its {RUN_CONFIG})",
                hint=f"continue it with kit-train --resume {self.run_dir}, or start a new run with another "
                "--timestamp or --run-dir",
            )
        remove_stale_temporaries(self.run_dir, RUN_TEMPORARIES)
        remove_stale_temporaries(self.model_dir, CHECKPOINT_TEMPORARIES)

    def release_run_folder(self) -> None:
        if self.run_lock is not None:
            self.run_lock.release()
            self.run_lock = None

    def _build_writers(self) -> Writers:
        config = self.config
        writers: list[Writer] = [CsvWriter(self.run_dir / METRICS)]
        if "tensorboard" in config.vis:
            writers.append(TensorboardWriter(self.run_dir))
        if "wandb" in config.vis:
            writers.append(
                WandbWriter(
                    run_dir=self.run_dir,
                    config=to_data(config),
                    project=config.logging.wandb_project,
                    entity=config.logging.wandb_entity,
                    name=config.logging.wandb_name
                    or f"{config.experiment_name}/{config.method_name}/{config.timestamp}",
                    tags=config.logging.wandb_tags,
                    console=self.console,
                )
            )
        return Writers(writers)

    def train(self) -> StopRequest:
        """Trains from the loaded step to `max_num_iterations`; returns the signals that stopped it early, if any.
        The run folder is released at the end, however training ends."""
        self.step = self.start_step
        ended = False
        try:
            if self.start_step >= self.config.max_num_iterations:
                self.console.print(
                    f"already at step {self.start_step} of {self.config.max_num_iterations}: nothing to train"
                )
            else:
                self.train_and_save()
                if self.config.eval_when_finished and not self.stop_requested() and self.is_main:
                    self.evaluate_when_finished()
            self.writers.close()
            ended = True
        finally:
            self.release_run_folder()
            if self.viewer is not None:
                self.close_viewer(keep_open=ended and self.config.viewer.keep_open and not self.stop.requested)
        return self.stop

    def close_viewer(self, keep_open: bool) -> None:
        """Closes the viewer, after serving it until Ctrl-C when `keep_open` (--viewer.keep-open, a run that ended
        normally)."""
        assert self.viewer is not None
        if keep_open:
            self.viewer.finished(self.step)
            self.console.print(f"training finished; the viewer stays at {self.viewer.url} until Ctrl-C")
            self.viewer.serve()
        self.viewer.close()

    def train_and_save(self) -> None:
        """The loop, then the last step's checkpoint, with the signal handlers installed throughout, so no signal
        interrupts the final save (engine/interrupts.py); a second Ctrl-C during a step leaves without saving."""
        with stop_on_signals(self.stop), training_progress(self.console) as progress:
            try:
                self.train_loop(progress)
            except KeyboardInterrupt:
                self.stop.abandoned = True
            if not self.stop.abandoned and self.last_saved_step != self.step:
                self.save_checkpoint(self.step)

    def train_loop(self, progress: Progress) -> None:
        config = self.config
        first_step = self.start_step + 1
        step_times: deque[float] = deque(maxlen=config.logging.max_buffer_size)
        step_rays: deque[int] = deque(maxlen=config.logging.max_buffer_size)
        task = progress.add_task(
            "train", total=config.max_num_iterations, completed=self.start_step, loss="-", rays_per_sec="-"
        )
        for step in range(first_step, config.max_num_iterations + 1):
            step_rays.append(self.pipeline.train_num_rays())
            start = time.perf_counter()
            with self.stop.computing():
                loss, loss_dict, metrics_dict = self.train_iteration(step)
                synchronize(self.device)
            step_times.append(time.perf_counter() - start)
            self.step = step
            rays_per_sec = sum(step_rays) * self.world_size / sum(step_times)  # every rank's rays
            progress.update(task, completed=step, loss=f"{loss:.4g}", rays_per_sec=f"{rays_per_sec:,.0f}")
            if self.viewer is not None:
                # Rendering changes no training state, so signals during it just ask the loop to stop.
                self.viewer.after_step(step, loss, rays_per_sec, step_times[-1])
                self.viewer.wait_while_paused(step, lambda: self.stop.requested)
            if _every(step, config.logging.steps_per_log) or step == first_step:
                train_scalars = {
                    "train/loss": loss,
                    **{f"train/{name}": float(value.detach()) for name, value in loss_dict.items()},
                    **{f"train/{name}": float(value.detach()) for name, value in metrics_dict.items()},
                }
                self.writers.write_scalars(
                    {
                        **self.mean_over_ranks(train_scalars),
                        **{f"learning_rate/{name}": lr for name, lr in self.optimizers.learning_rates().items()},
                        "timing/train_rays_per_sec": rays_per_sec,
                        "timing/step_seconds": step_times[-1],
                    },
                    step,
                )
            self.eval_iteration(step)
            if _every(step, config.steps_per_save):
                self.save_checkpoint(step)
            if self.stop_requested():
                break

    def evaluate_when_finished(self) -> Path:
        """Scores the final model (the last checkpoint's weights) on a whole split and writes run/eval_SPLIT.json."""
        split = self.config.eval_split_when_finished
        self.console.print(f"evaluating step {self.step} on the {split} split ...")
        dataset = load_split(self.pipeline.datamanager, split)
        scores = evaluate_dataset(self.pipeline.model, dataset)
        report = evaluation_report(
            scores, method=self.config.method_name, run_dir=self.run_dir, step=self.step, split=split
        )
        path = self.run_dir / f"eval_{split}.json"
        write_json(path, report)
        self.writers.write_scalars(
            {f"eval_{split}/psnr": scores["psnr"], f"eval_{split}/ssim": scores["ssim"]}, self.step
        )
        self.console.print(
            f"{split}: PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.4f} over {scores['num_images']} images "
            f"({scores['seconds_per_image']:.2f} s per image); written to {path}",
            soft_wrap=True,
        )
        return path

    def train_iteration(self, step: int) -> tuple[float, dict[str, Tensor], dict[str, Tensor]]:
        """One optimisation step, with the callbacks around it."""
        for callback in self.callbacks:
            callback.run_callback_at_location(step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        self.optimizers.zero_grad_all()
        # No autocast here: under mixed precision the model runs its field networks alone in half precision.
        _, loss_dict, metrics_dict = self.train_module(step)
        loss = functools.reduce(torch.add, loss_dict.values())
        self.grad_scaler.scale(loss).backward()
        self.optimizers.optimizer_step_all(self.grad_scaler)
        self.grad_scaler.update()
        self.optimizers.scheduler_step_all()
        for callback in self.callbacks:
            callback.run_callback_at_location(step, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)
        return float(loss.detach()), loss_dict, metrics_dict

    def eval_iteration(self, step: int) -> None:
        """Scheduled evaluation; it runs whichever loggers are on and never draws from the training RNG."""
        config = self.config
        if not self.is_main:
            return
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if _every(step, config.steps_per_eval_batch):
                with self.stop.computing():
                    _, loss_dict, metrics_dict = self.pipeline.get_eval_loss_dict(step)
                scalars = {**loss_dict, **metrics_dict}
                self.writers.write_scalars({f"eval/{name}": float(value) for name, value in scalars.items()}, step)
            if _every(step, config.steps_per_eval_image):
                with self.stop.computing():
                    metrics, images = self.pipeline.get_eval_image_metrics_and_images(step)
                self.writers.write_scalars({f"eval/image/{name}": value for name, value in metrics.items()}, step)
                self.writers.write_images({f"eval/{name}": image for name, image in images.items()}, step)
            if _every(step, config.steps_per_eval_all_images):
                with self.stop.computing():
                    metrics = self.pipeline.get_average_eval_image_metrics(step)
                self.writers.write_scalars({f"eval/all_images/{name}": value for name, value in metrics.items()}, step)
                summary = ", ".join(f"{name} {value:.4g}" for name, value in metrics.items())
                self.console.print(f"step {step}: all eval images: {summary}")

    def mean_over_ranks(self, scalars: dict[str, float]) -> dict[str, float]:
        """Losses and metrics of the whole batch, all ranks' rays, rather than of rank 0's share."""
        if self.world_size == 1:
            return scalars
        return dict(zip(scalars, mean_over_ranks(list(scalars.values()), self.device), strict=True))

    def stop_requested(self) -> bool:
        """Whether any rank got a stop signal: all ranks must leave the loop at the same step."""
        if self.world_size == 1:
            return self.stop.requested
        return any_rank(self.stop.requested, self.device)

    def checkpoint_state(self, step: int) -> dict[str, Any]:
        """The unwrapped pipeline's weights (single-process keys, so a checkpoint loads whatever the world size) and
        rank 0's random state, plus every rank's in a distributed run (gathering is a collective: all ranks call it)."""
        state = {
            "step": step,
            "nerfkit_version": __version__,
            "pipeline": self.pipeline.state_dict(),
            "optimizers": self.optimizers.state_dict(),
            "grad_scaler": self.grad_scaler.state_dict(),
            "rng": get_rng_state(self.device),
        }
        if self.world_size > 1:
            state["rng_per_rank"] = gather_objects(state["rng"])
        return state

    def save_checkpoint(self, step: int) -> None:
        state = self.checkpoint_state(step)
        if self.is_main:
            save_checkpoint(state, checkpoint_path(self.model_dir, step))
            keep = 1 if self.config.save_only_latest_checkpoint else self.config.keep_last_checkpoints
            prune_checkpoints(self.model_dir, keep)
        self.last_saved_step = step

    def load_checkpoint(self, path: Path) -> None:
        """Restores weights, optimizer and scheduler state, grad scaler and random state; training goes on after."""
        state = load_checkpoint(path)
        load_pipeline_state(self.pipeline, state, path)
        try:
            self.optimizers.load_state_dict(state["optimizers"])
        except (KeyError, ValueError) as error:
            raise NerfkitError(
                f"checkpoint {path}: its optimizer state does not fit this run's optimizers ({error})",
                hint="use the same --optimizers settings as the run that wrote it",
            ) from None
        if state["grad_scaler"] and self.mixed_precision:
            self.grad_scaler.load_state_dict(state["grad_scaler"])
        self.start_step = self.last_saved_step = state["step"]
        self.restore_rng(state)
        self.console.print(f"loaded {path} (step {self.start_step})")

    def restore_rng(self, state: dict[str, Any]) -> None:
        """Each rank continues its own random stream when the world size is the one that saved; otherwise streams
        cannot continue, and each rank reseeds from seed, rank and step (still reproducible)."""
        saved = state.get("rng_per_rank", [state["rng"]])
        if len(saved) == self.world_size:
            note = set_rng_state(saved[self.rank], self.device)
            if note is not None:
                self.console.print(note)
            return
        seed_everything(self.config.machine.seed + self.rank + self.start_step)
        self.console.print(
            f"the checkpoint was saved by {len(saved)} processes and this run has {self.world_size}: "
            "random streams are reseeded from --machine.seed, rank and step instead of continued"
        )
