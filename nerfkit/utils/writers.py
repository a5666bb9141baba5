"""Where logged scalars and images go. The trainer owns one `Writers` object; there is no module-level state."""

from __future__ import annotations

import csv
import io
import netrc
import os
from pathlib import Path
from typing import Any

from jaxtyping import Float
from rich.console import Console
from torch import Tensor

from nerfkit.utils.files import write_bytes_atomically, write_error


class Writer:
    """One logging destination."""

    def write_scalars(self, scalars: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def write_images(self, images: dict[str, Float[Tensor, "height width 3"]], step: int) -> None:
        """Destinations that cannot show images ignore them."""

    def close(self) -> None:
        """Flushes and releases the destination."""


CSV_HEADER = "step,name,value\r\n"
"""csv's own line ending (RFC 4180), as every row has."""


def _row_step(line: str) -> int | None:
    """The step of a complete `step,name,value` row; None for the header and for a line cut short."""
    step, _, rest = line.partition(",")
    return int(step) if line.endswith("\n") and step.isdigit() and rest.count(",") >= 1 else None


def keep_rows_through(path: Path, last_step: int) -> None:
    """Drops the rows logged after `last_step` (a resumed run logs those steps again) and any row cut short, by
    rewriting the file atomically; a file that needs no change is left as it is."""
    if not path.exists():
        return
    lines = path.read_bytes().decode().splitlines(keepends=True)
    rows = [line for line in lines[1:] if (step := _row_step(line)) is not None and step <= last_step]
    if lines[:1] == [CSV_HEADER] and len(rows) == len(lines) - 1:
        return
    write_bytes_atomically(path, (CSV_HEADER + "".join(rows)).encode())


class CsvWriter(Writer):
    """`metrics.csv` in long form (step, name, value): plain, appendable on resume, and new names need no header.

    Each batch of rows is one unbuffered write, cut back to the previous end if it fails, so a full disk leaves no
    partial row and nothing left to flush at exit.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open for the whole run
        if self.file.tell() == 0:
            self._append(CSV_HEADER)

    def write_scalars(self, scalars: dict[str, float], step: int) -> None:
        text = io.StringIO()
        csv.writer(text).writerows([step, name, repr(float(value))] for name, value in scalars.items())
        self._append(text.getvalue())

    def _append(self, text: str) -> None:
        data = text.encode()
        end = self.file.tell()
        unwritten = memoryview(data)
        try:
            while unwritten:
                unwritten = unwritten[self.file.write(unwritten) :]
        except OSError as error:
            self.file.truncate(end)
            raise write_error(self.path, error, len(data)) from error

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
