"""The root of the config tree: a whole training run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import tyro

from nerfkit.configs.base_config import InstantiateConfig, LoggingConfig, MachineConfig, Target
from nerfkit.configs.data import Split
from nerfkit.configs.optimizers import ParamGroupConfig
from nerfkit.configs.pipelines import VanillaPipelineConfig
from nerfkit.configs.ranges import Count, NonNegativeInt, ranged
from nerfkit.configs.viewer import ViewerConfig

TIMESTAMP_PLACEHOLDER = "{timestamp}"
"""The default timestamp: replaced by the time the run starts."""


@dataclass
class TrainerConfig(InstantiateConfig):
    """A whole training run: where it writes, what it trains, and how long."""

    _target: Target = "nerfkit.engine.trainer:Trainer"
    method_name: Annotated[str, tyro.conf.Suppress] = "unnamed"
    """Registered name of the method (set by the registry)."""
    data: Path | None = None
    """Folder of the dataset (shorthand for --pipeline.datamanager.data)."""
    max_num_iterations: Count = 1_000_000
    """Total number of training steps; a resumed run stops here too."""
    output_dir: Path = Path("outputs")
    """Runs are written to output-dir/experiment-name/method-name/timestamp."""
    experiment_name: str | None = None
    """Name of the experiment folder (None: the dataset folder's name)."""
    vis: Literal[
        "tensorboard", "wandb", "tensorboard+wandb", "viewer", "viewer+tensorboard", "viewer+wandb", "none"
    ] = "tensorboard"
    """Where to log besides the console and metrics.csv; viewer serves the live web viewer (--viewer.*)."""
    mixed_precision: bool = False
    """Train in mixed precision (CUDA only; ignored on the CPU)."""
    steps_per_save: NonNegativeInt = 1000
    """Save a checkpoint every this many steps (0: only at the end); always at the end and on interruption."""
    keep_last_checkpoints: NonNegativeInt = 3
    """Checkpoints kept; older ones are deleted (0 keeps all)."""
    save_only_latest_checkpoint: bool = False
    """Keep only the newest checkpoint (same as --keep-last-checkpoints 1)."""
    steps_per_eval_batch: NonNegativeInt = 500
    """Log the loss on a batch of eval rays every this many steps (0: never)."""
    steps_per_eval_image: NonNegativeInt = 500
    """Render one eval image and log its PSNR and images every this many steps (0: never)."""
    steps_per_eval_all_images: NonNegativeInt = 25000
    """Render every eval image and log the mean metrics every this many steps (0: never)."""
    eval_when_finished: bool = False
    """When training ends, score every image of --eval-split-when-finished and write run/eval_SPLIT.json."""
    eval_split_when_finished: Split = "test"
    """Split that --eval-when-finished scores."""
    config: Path | None = None
    """Experiment YAML applied on the method's defaults (or --load-config's); other flags still override it."""
    load_config: Path | None = None
    """Take the defaults from this config.yml; other flags still override them."""
    resume: Path | None = None
    """Continue the run in this folder from its latest checkpoint, with its saved config."""
    load_dir: Path | None = None
    """Load model, optimizer and random state from this folder of checkpoints, and continue from its step."""
    load_step: ranged(int | None, min=0) = None
    """Step of the checkpoint in --load-dir to load (None: the latest)."""
    print_config: bool = False
    """Print the resolved config as YAML (a valid --config file) and exit."""
    timestamp: str = TIMESTAMP_PLACEHOLDER
    """Name of the run folder ({timestamp}: the start time)."""
    run_dir: Path | None = None
    """Write the run here instead of output-dir/experiment-name/method-name/timestamp."""
    relative_model_dir: str = "nerfkit_models"
    """Folder inside the run that holds the checkpoints."""
    pipeline: VanillaPipelineConfig = field(default_factory=VanillaPipelineConfig)
    """Data and model."""
    viewer: ViewerConfig = field(default_factory=ViewerConfig)
    """The live web viewer, with --vis viewer."""
    machine: MachineConfig = field(default_factory=MachineConfig)
    """Device and seed."""
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    """Logging frequency and wandb settings."""
    optimizers: dict[str, ParamGroupConfig] = field(default_factory=lambda: {"fields": ParamGroupConfig()})
    """Optimizer and learning-rate schedule per parameter group."""
    debug: bool = False
    """Show full tracebacks for errors (also: NERFKIT_DEBUG=1)."""

    def get_base_dir(self) -> Path:
        if self.run_dir is not None:
            return self.run_dir
        experiment = self.experiment_name or "unnamed"
        return self.output_dir / experiment / self.method_name / self.timestamp

    def get_checkpoint_dir(self) -> Path:
        return self.get_base_dir() / self.relative_model_dir
