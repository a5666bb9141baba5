"""kit-eval on the shared tiny lego run: its figures are the ones training logged, its report and saved views are
complete, and each user error gives one message and an exit code without writing anything.

The shared run is read-only; every test that could write into a run folder works on a copy.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

import nerfkit
from nerfkit.engine.checkpoints import list_checkpoints
from nerfkit.engine.evaluation import lpips_metric
from nerfkit.models.base_model import Model
from nerfkit.scripts.eval import VIEW_KINDS, main
from nerfkit.utils.cli import run_cli

KIT_EVAL = Path(sys.executable).parent / "kit-eval"
VAL_IMAGES = ["r_5.png", "r_25.png", "r_45.png", "r_65.png", "r_85.png"]
"""The val split of the shared lego scene, in order."""
IMAGE_SIZE = (100, 100)
"""Lego at 1/8, as the shared run was trained."""
EXIT_USER_ERROR = 1
EXIT_BAD_FLAG = 2
"""tyro's exit code for flags it cannot parse."""
ALEXNET_URL = "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth"


def steps(run: Path) -> list[int]:
    return list(list_checkpoints(run / "nerfkit_models"))


def copy_run(run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run, tmp_path / "run"))


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` by content, to show that a failed command changed nothing."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def read_png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image, dtype=np.float64) / 255.0


def evaluate(output: Path, *argv: str) -> dict[str, Any]:
    """Runs kit-eval in-process, writing to `output`, and returns the report."""
    assert main([*argv, "--output-path", str(output)]) == 0
    return json.loads(output.read_text())


def logged(run: Path, name: str, step: int) -> float:
    """A scalar from the run's metrics.csv (rows: step, name, value)."""
    with open(run / "metrics.csv", newline="") as file:
        values = [
            float(row["value"]) for row in csv.DictReader(file) if row["name"] == name and int(row["step"]) == step
        ]
    assert len(values) == 1, f"{name} at step {step}: {values}"
    return values[0]


@pytest.fixture(scope="module")
def val_eval(tiny_lego_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """kit-eval of the latest checkpoint on the val split, saving the views: the report and the views folder."""
    out = tmp_path_factory.mktemp("val_eval")
    report = evaluate(
        out / "metrics.json",
        *("--load-config", str(tiny_lego_run / "config.yml"), "--split", "val"),
        *("--render-output-path", str(out / "views")),
    )
    return report, out / "views"


def test_val_psnr_equals_the_one_training_logged(tiny_lego_run: Path, val_eval: tuple[dict[str, Any], Path]) -> None:
    report, _ = val_eval
    last = steps(tiny_lego_run)[-1]
    assert report["checkpoint_step"] == last
    assert report["psnr"] == pytest.approx(logged(tiny_lego_run, "eval/all_images/psnr", last), abs=1e-4)


def test_report_fields(tiny_lego_run: Path, val_eval: tuple[dict[str, Any], Path]) -> None:
    report, _ = val_eval
    assert report["method"] == "vanilla-nerf"
    assert report["run"] == str(tiny_lego_run.absolute())
    assert report["split"] == "val"
    assert report["num_images"] == len(VAL_IMAGES) and report["images"] == VAL_IMAGES
    assert report["image_size"] == list(IMAGE_SIZE)
    for metric in ("psnr", "ssim"):
        assert len(report[f"{metric}_per_image"]) == len(VAL_IMAGES)
        assert report[metric] == pytest.approx(np.mean(report[f"{metric}_per_image"]), abs=1e-9)
    assert 0.0 < report["ssim"] <= 1.0
    assert report["seconds_per_image"] == pytest.approx(report["render_seconds"] / len(VAL_IMAGES))
    pixels = IMAGE_SIZE[0] * IMAGE_SIZE[1] * len(VAL_IMAGES)
    assert report["render_rays_per_sec"] == pytest.approx(pixels / report["render_seconds"])
    assert report["versions"] == {"nerfkit": nerfkit.__version__, "torch": torch.__version__}
    lpips_notes = [note for note in report["notes"] if note.startswith("LPIPS left out: ")]
    # LPIPS is either scored or explained in one line, never both.
    assert ("lpips" in report) != (len(lpips_notes) == 1)
    assert all("\n" not in note for note in report["notes"])


def test_render_output_path_saves_each_views_rendering_truth_and_depth(val_eval: tuple[dict[str, Any], Path]) -> None:
    report, views = val_eval
    names = [f"{index:04d}_{Path(image).stem}.png" for index, image in enumerate(VAL_IMAGES)]
    for kind in VIEW_KINDS:
        assert sorted(path.name for path in (views / kind).iterdir()) == names
        for name in names:
            with Image.open(views / kind / name) as image:
                assert image.size == IMAGE_SIZE and image.mode == "RGB"
    # The saved rendering and truth are the scored pair: their PSNR is the reported one, up to 8-bit rounding.
    for name, expected in zip(names, report["psnr_per_image"], strict=True):
        rgb, gt = read_png(views / "rgb" / name), read_png(views / "gt" / name)
        assert -10 * np.log10(np.mean((rgb - gt) ** 2)) == pytest.approx(expected, abs=0.02)


def test_test_split_by_default_next_to_and_equal_to_eval_when_finished(tiny_lego_run: Path, tmp_path: Path) -> None:
    run = copy_run(tiny_lego_run, tmp_path)
    finished = (run / "eval_test.json").read_bytes()
    assert main(["--load-config", str(run)]) == 0
    report = json.loads((run / f"eval_test_step-{steps(run)[-1]}.json").read_text())
    expected = json.loads(finished)
    assert report["split"] == "test" and report["num_images"] == expected["num_images"]
    for metric in ("psnr", "ssim"):
        assert report[metric] == pytest.approx(expected[metric], abs=1e-4)
    assert (run / "eval_test.json").read_bytes() == finished


def test_load_step_evaluates_that_checkpoint(
    tiny_lego_run: Path, val_eval: tuple[dict[str, Any], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = steps(tiny_lego_run)[0]
    output = tmp_path / "metrics.json"
    report = evaluate(
        output, "--load-config", str(tiny_lego_run), "--split", "val", "--load-step", str(first), "--num-images", "2"
    )
    assert report["checkpoint_step"] == first and report["num_images"] == 2
    assert report["psnr"] != pytest.approx(np.mean(val_eval[0]["psnr_per_image"][:2]), abs=1e-3)
    printed = capsys.readouterr().out.splitlines()
    summary = f"vanilla-nerf step {first}, val split: PSNR {report['psnr']:.2f} dB, SSIM {report['ssim']:.4f}"
    assert printed[1].startswith(summary)
    assert printed[-1] == f"written to {output}"


def test_data_may_point_at_another_folder_of_the_same_format(
    tiny_lego_run: Path, lego_dir: Path, val_eval: tuple[dict[str, Any], Path], tmp_path: Path
) -> None:
    report = evaluate(
        tmp_path / "metrics.json",
        *("--load-config", str(tiny_lego_run), "--split", "val", "--data", str(lego_dir), "--num-images", "1"),
    )
    assert report["data"] == str(lego_dir.absolute())
    assert report["psnr_per_image"] == pytest.approx(val_eval[0]["psnr_per_image"][:1], abs=1e-4)


def held_out_folder(lego_dir: Path, root: Path, splits: tuple[str, ...]) -> Path:
    """A folder holding only some of lego's split files, with their images linked in, as a held-out set ships."""
    for split in splits:
        (root / split).mkdir(parents=True)
        shutil.copy(lego_dir / f"transforms_{split}.json", root / f"transforms_{split}.json")
        for image in (lego_dir / split).iterdir():
            (root / split / image.name).symlink_to(image)
    return root


@pytest.mark.parametrize("splits", [("test",), ("train", "test")], ids=["test-only", "no-val"])
def test_data_may_be_a_held_out_folder_with_only_the_evaluated_split(
    tiny_lego_run: Path, lego_dir: Path, tmp_path: Path, splits: tuple[str, ...]
) -> None:
    """Refused before: detection needed transforms_train.json, and loading the run read the folder's val split."""
    held_out = held_out_folder(lego_dir, tmp_path / "held_out", splits)
    report = evaluate(
        tmp_path / "metrics.json",
        *("--load-config", str(tiny_lego_run), "--split", "test", "--data", str(held_out), "--num-images", "2"),
    )
    assert report["data"] == str(held_out.absolute())
    own = json.loads((tiny_lego_run / "eval_test.json").read_text())
    assert report["psnr_per_image"] == pytest.approx(own["psnr_per_image"][:2], abs=1e-4)


def test_rendering_is_chunked(
    tiny_lego_run: Path, val_eval: tuple[dict[str, Any], Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks: list[int] = []
    forward = Model.forward

    def counting_forward(self: Model, ray_bundle: Any) -> dict[str, torch.Tensor]:
        chunks.append(len(ray_bundle))
        return forward(self, ray_bundle)

    monkeypatch.setattr(Model, "forward", counting_forward)
    report = evaluate(
        tmp_path / "metrics.json",
        *("--load-config", str(tiny_lego_run), "--split", "val", "--num-images", "1"),
        *("--eval-num-rays-per-chunk", "999"),
    )
    assert max(chunks) == 999 and sum(chunks) == IMAGE_SIZE[0] * IMAGE_SIZE[1]
    assert report["psnr_per_image"] == pytest.approx(val_eval[0]["psnr_per_image"][:1], abs=1e-4)


def truncate_latest_checkpoint(run: Path) -> list[str]:
    latest = run / "nerfkit_models" / f"step-{steps(run)[-1]:09d}.ckpt"
    latest.write_bytes(latest.read_bytes()[:1000])
    return ["--load-config", str(run)]


def empty_checkpoint_folder(run: Path) -> list[str]:
    for checkpoint in (run / "nerfkit_models").iterdir():
        checkpoint.unlink()
    return ["--load-config", str(run / "config.yml")]


def remove_checkpoint_folder(run: Path) -> list[str]:
    shutil.rmtree(run / "nerfkit_models")
    return ["--load-config", str(run / "config.yml")]


def replace_config(text: str) -> Callable[[Path], list[str]]:
    def write(run: Path) -> list[str]:
        (run / "config.yml").write_text(text)
        return ["--load-config", str(run / "config.yml")]

    return write


def with_flags(*flags: str) -> Callable[[Path], list[str]]:
    return lambda run: ["--load-config", str(run), *flags]


def missing_run(run: Path) -> list[str]:
    return ["--load-config", str(run / "missing" / "config.yml")]


def output_is_the_run_folder(run: Path) -> list[str]:
    return ["--load-config", str(run), "--output-path", str(run)]


def output_under_a_file(run: Path) -> list[str]:
    (run / "notes.txt").write_text("")
    return ["--load-config", str(run), "--output-path", str(run / "notes.txt" / "metrics.json")]


FAILURES = {
    "missing-run": (missing_run, r"run config \S*missing/config\.yml not found"),
    "no-checkpoints": (empty_checkpoint_folder, r"nerfkit_models holds no checkpoints.*hint: .*kit-train --resume"),
    "no-checkpoint-folder": (
        remove_checkpoint_folder,
        r"nerfkit_models holds no checkpoints: the run stopped before its first save.*hint: .*kit-train --resume",
    ),
    "corrupt-checkpoint": (
        truncate_latest_checkpoint,
        r"step-000000030\.ckpt is truncated or corrupt.*--load-step 15",
    ),
    "malformed-yaml": (replace_config("method_name: [vanilla-nerf\n"), r"config\.yml is not valid YAML \(line 2"),
    "malformed-json": (
        replace_config('{"method_name": "vanilla-nerf", "config": [1, 2]'),
        r"config\.yml is not valid YAML",
    ),
    "json-not-a-run-config": (
        replace_config('{"method_name": "vanilla-nerf"}'),
        r"config\.yml is not a nerfkit run config",
    ),
    "unknown-step": (with_flags("--load-step", "7"), r"--load-step 7: no checkpoint.*available steps: 15, 30"),
    "missing-data": (with_flags("--data", "/nonexistent/lego"), r"Dataset folder /nonexistent/lego .*does not exist"),
    "no-images": (with_flags("--num-images", "0"), r"--num-images must be >= 1, got 0"),
    "bad-chunk": (with_flags("--eval-num-rays-per-chunk", "-5"), r"--eval-num-rays-per-chunk must be >= 1, got -5"),
    "negative-step": (with_flags("--load-step", "-1"), r"--load-step must be >= 0, got -1"),
    "output-is-a-folder": (output_is_the_run_folder, r"--output-path \S+ is a folder"),
    "output-under-a-file": (output_under_a_file, r"notes\.txt is not a folder"),
}
"""How each case breaks a copy of the run (returning the flags to pass), and the message expected."""


@pytest.mark.parametrize("case", list(FAILURES))
def test_user_errors_exit_1_with_one_message_and_write_nothing(
    case: str, tiny_lego_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    setup, message = FAILURES[case]
    run = copy_run(tiny_lego_run, tmp_path)
    argv = ["--split", "val", "--output-path", str(tmp_path / "out" / "metrics.json"), *setup(run)]
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, argv)
    assert exit_info.value.code == EXIT_USER_ERROR
    stderr = capsys.readouterr().err
    assert re.search(message, stderr, re.DOTALL), stderr
    assert stderr.startswith("error: ") and "Traceback" not in stderr
    assert snapshot(tmp_path) == before


def test_unknown_split_is_rejected_naming_the_choices(
    tiny_lego_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "metrics.json"
    with pytest.raises(SystemExit) as exit_info:
        run_cli(main, ["--load-config", str(tiny_lego_run), "--split", "validation", "--output-path", str(output)])
    assert exit_info.value.code == EXIT_BAD_FLAG
    stderr = " ".join(capsys.readouterr().err.replace("│", " ").split())
    assert "invalid choice 'validation' for argument '--split'" in stderr
    assert "('train', 'val', 'test')" in stderr
    assert not output.exists()


def test_console_script_reports_a_missing_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(KIT_EVAL), "--load-config", str(tmp_path / "nowhere"), "--output-path", str(tmp_path / "metrics.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == EXIT_USER_ERROR
    assert result.stderr.startswith(f"error: run config {tmp_path / 'nowhere'} not found\nhint: pass --load-config")
    assert "Traceback" not in result.stderr and not (tmp_path / "metrics.json").exists()


class FakeLPIPS(torch.nn.Module):
    """Stands in for `lpips.LPIPS`, recording how it is called: mean absolute difference as the distance."""

    instances: ClassVar[list[FakeLPIPS]] = []

    def __init__(self, net: str, verbose: bool) -> None:
        super().__init__()
        assert net == "alex"
        self.calls: list[tuple[tuple[int, ...], bool]] = []
        FakeLPIPS.instances.append(self)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, normalize: bool) -> torch.Tensor:
        self.calls.append((tuple(pred.shape), normalize))
        return (pred - target).abs().mean().reshape(1, 1, 1, 1)


@pytest.fixture
def fake_lpips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An importable `lpips` (and the torchvision it needs) and an empty torch hub; returns where the AlexNet
    weights would have to be."""
    models = types.ModuleType("torchvision.models")
    models.AlexNet_Weights = types.SimpleNamespace(IMAGENET1K_V1=types.SimpleNamespace(url=ALEXNET_URL))
    torchvision = types.ModuleType("torchvision")
    torchvision.models = models
    lpips = types.ModuleType("lpips")
    lpips.LPIPS = FakeLPIPS
    monkeypatch.setitem(sys.modules, "torchvision", torchvision)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    monkeypatch.setitem(sys.modules, "lpips", lpips)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(FakeLPIPS, "instances", [])
    return tmp_path / "torch" / "hub" / "checkpoints" / Path(ALEXNET_URL).name


def test_lpips_left_out_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lpips", None)
    metric, note = lpips_metric(torch.device("cpu"))
    assert metric is None and note == "LPIPS left out: the lpips package (with torchvision >= 0.13) is not installed"


def test_lpips_left_out_without_local_weights_and_nothing_fetched(fake_lpips: Path) -> None:
    metric, note = lpips_metric(torch.device("cpu"))
    assert metric is None and note is not None
    assert note.startswith("LPIPS left out: ") and str(fake_lpips) in note and "\n" not in note
    assert FakeLPIPS.instances == [] and not fake_lpips.exists()


def test_lpips_reported_when_its_weights_are_local(
    fake_lpips: Path, tiny_lego_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_lpips.parent.mkdir(parents=True)
    fake_lpips.write_bytes(b"")
    report = evaluate(
        tmp_path / "metrics.json", "--load-config", str(tiny_lego_run), "--split", "val", "--num-images", "1"
    )
    (network,) = FakeLPIPS.instances
    assert network.calls == [((1, 3, *IMAGE_SIZE), True)]
    assert report["lpips_per_image"] == [pytest.approx(report["lpips"])] and 0.0 < report["lpips"] < 1.0
    assert not any(note.startswith("LPIPS") for note in report["notes"])
    assert f"LPIPS {report['lpips']:.4f}" in capsys.readouterr().out
