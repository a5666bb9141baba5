"""Where logged scalars and images go. The trainer owns one `Writers` object; there is no module-level state."""

from __future__ import annotations

import csv
import netrc
import os
from pathlib import Path
from typing import Any

from jaxtyping import Float
from rich.console import Console
from torch import Tensor


class Writer:
    """One logging destination."""

    def write_scalars(self, scalars: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def write_images(self, images: dict[str, Float[Tensor, "height width 3"]], step: int) -> None:
        """Destinations that cannot show images ignore them."""

    def close(self) -> None:
        """Flushes and releases the destination."""


class CsvWriter(Writer):
    """`metrics.csv` in long form (step, name, value): plain, appendable on resume, and new names need no header."""

    def __init__(self, path: Path) -> None:
        is_new = not path.exists()
        self.file = open(path, "a", newline="")  # noqa: SIM115 - kept open for the whole run
        self.writer = csv.writer(self.file)
        if is_new:
            self.writer.writerow(["step", "name", "value"])

    def write_scalars(self, scalars: dict[str, float], step: int) -> None:
        self.writer.writerows([step, name, repr(float(value))] for name, value in scalars.items())
        self.file.flush()

    def close(self) -> None:
        self.file.close()


class TensorboardWriter(Writer):
    """Event files in the run folder: `tensorboard --logdir outputs`."""

    def __init__(self, log_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir))

    def write_scalars(self, scalars: dict[str, float], step: int) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, step)

    def write_images(self, images: dict[str, Float[Tensor, "height width 3"]], step: int) -> None:
        for name, image in images.items():
            self.writer.add_image(name, image.detach().clamp(0, 1).cpu(), step, dataformats="HWC")

    def close(self) -> None:
        self.writer.close()


def wandb_has_credentials() -> bool:
    """Whether wandb could log online: an API key in the environment or a login in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


class WandbWriter(Writer):
    """A wandb run whose config is the full nerfkit config, so runs can be filtered by any field.

    With no credentials it logs offline into the run folder instead of failing, and says how to sync later.
    """

    def __init__(
        self,
        run_dir: Path,
        config: dict[str, Any],
        project: str,
        entity: str | None,
        name: str,
        tags: tuple[str, ...],
        console: Console,
    ) -> None:
        import wandb

        mode = os.environ.get("WANDB_MODE") or ("online" if wandb_has_credentials() else "offline")
        self.run = wandb.init(
            project=project,
            entity=entity,
            name=name,
            tags=list(tags),
            config=config,
            dir=str(run_dir),
            mode=mode,
            reinit="finish_previous",
        )
        if mode == "offline":
            console.print(
                f"wandb: no credentials found, logging offline to {self.run.dir}. "
                f"Sync it later with: wandb sync {Path(self.run.dir).parent}"
            )

    def write_scalars(self, scalars: dict[str, float], step: int) -> None:
        self.run.log(dict(scalars), step=step)

    def write_images(self, images: dict[str, Float[Tensor, "height width 3"]], step: int) -> None:
        import wandb

        self.run.log(
            {name: wandb.Image(image.detach().clamp(0, 1).cpu().numpy()) for name, image in images.items()}, step=step
        )

    def close(self) -> None:
        self.run.finish()


class Writers(Writer):
    """Sends everything to each destination."""

    def __init__(self, writers: list[Writer]) -> None:
        self.writers = writers

    def write_scalars(self, scalars: dict[str, float], step: int) -> None:
        for writer in self.writers:
            writer.write_scalars(scalars, step)

    def write_images(self, images: dict[str, Float[Tensor, "height width 3"]], step: int) -> None:
        for writer in self.writers:
            writer.write_images(images, step)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
