"""kit-train's user errors, end to end: the real console script on broken data, configs and checkpoints.

Each case must exit non-zero with a short message naming the file or field, print no traceback (unless --debug or
NERFKIT_DEBUG=1 asks for one), and leave every file already on disk byte-identical, creating no run folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from kit_flags import TINY_MODEL

from nerfkit.data.colmap_model import ColmapCamera, ColmapImage, ColmapModel, write_model

KIT_TRAIN = Path(sys.executable).parent / "kit-train"
MAX_OUTPUT_LINES = 15
EXIT_USER_ERROR = 1
TINY_RUN = [
    *TINY_MODEL,
    "--max-num-iterations", "2",
    "--vis", "none",
    "--steps-per-eval-image", "0",
    "--steps-per-eval-batch", "0",
    "--steps-per-eval-all-images", "0",
]  # fmt: skip
"""Flags that make a run take seconds on the CPU."""

SIZES = ((8, 6), (8, 6))
"""Width and height of each image of a tiny scene."""

KitTrain = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def kit_train(lego_cache_dir: Path) -> KitTrain:
    """Runs the installed console script in `cwd`, after the command `prefix` if any; the developer's NERFKIT_*
    settings do not leak in."""

    def run(args: Sequence[str], cwd: Path, prefix: Sequence[str] = (), **env: str) -> subprocess.CompletedProcess[str]:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("NERFKIT_")}
        environment.update(NERFKIT_CACHE_DIR=str(lego_cache_dir), **env)
        return subprocess.run(
            [*prefix, str(KIT_TRAIN), *args], cwd=cwd, env=environment, capture_output=True, text=True, timeout=300
        )

    return run


def train_args(data: Path, *extra: str) -> list[str]:
    return ["vanilla-nerf", "--data", str(data), *TINY_RUN, *extra]


def lego_args(lego: Path, *extra: str) -> list[str]:
    """Lego at 50x50 pixels (from the session's downscale cache after the first load)."""
    return train_args(lego, "--pipeline.datamanager.dataparser.downscale-factor", "16", *extra)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory, lego_dir: Path, kit_train: KitTrain) -> Path:
    """A finished two-step run on lego with checkpoints at steps 1 and 2; tests copy it, never change it."""
    cwd = tmp_path_factory.mktemp("trained")
    result = kit_train(lego_args(lego_dir, "--run-dir", "run", "--steps-per-save", "1"), cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    run_dir = cwd / "run"
    assert sorted(path.name for path in (run_dir / "nerfkit_models").iterdir()) == [
        "step-000000001.ckpt",
        "step-000000002.ckpt",
    ]
    return run_dir


def snapshot(folder: Path) -> dict[str, str]:
    """Every folder and file under `folder`, files by the hash of their bytes."""
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "/"
        for path in sorted(folder.rglob("*"))
    }


@dataclass
class Workspace:
    """The folder a failing command runs in (its cwd, so the default output folder is inside it too)."""

    root: Path
    write_split: Callable[..., Path]
    request: pytest.FixtureRequest

    def scene(self, sizes: Sequence[tuple[int, int]] = SIZES) -> Path:
        """A valid tiny Blender scene with train and val splits."""
        for split in ("train", "val"):
            scene = self.write_split(sizes=sizes, split=split)
        return scene

    def trained_run(self) -> Path:
        """The shared trained run (config.yml and checkpoints at steps 1 and 2): read it, never change it."""
        return self.request.getfixturevalue("trained_run")

    def run_copy(self) -> Path:
        return Path(shutil.copytree(self.trained_run(), self.root / "run"))

    def lego(self) -> Path:
        return self.request.getfixturevalue("lego_dir")


def colmap_without_images(ws: Workspace) -> list[str]:
    """A one-image COLMAP model whose images/ folder is missing (the data folder is not the working directory)."""
    data = ws.root / "capture"
    camera = ColmapCamera(1, "PINHOLE", 8, 6, np.array([9.0, 9.0, 4.0, 3.0]))
    image = ColmapImage(1, np.array([1.0, 0, 0, 0]), np.zeros(3), 1, "a.png", np.zeros((0, 2)), np.zeros(0, np.int64))
    write_model(ColmapModel({1: camera}, {1: image}, {}), data / "sparse" / "0", binary=True)
    return train_args(data)


@pytest.fixture
def workspace(tmp_path: Path, fake_blender: Callable[..., Path], request: pytest.FixtureRequest) -> Workspace:
    return Workspace(tmp_path, fake_blender, request)


def edit_json(path: Path, edit: Callable[[Any], object]) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def edit_yaml(path: Path, edit: Callable[[Any], object]) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


Arrange = Callable[[Workspace], list[str]]
"""Builds the broken input in the workspace and returns kit-train's arguments."""


def broken_scene(breaks: Callable[[Path], object], sizes: Sequence[tuple[int, int]] = SIZES) -> Arrange:
    """Trains on a tiny scene after `breaks` has damaged it."""

    def arrange(workspace: Workspace) -> list[str]:
        scene = workspace.scene(sizes)
        breaks(scene)
        return train_args(scene)

    return arrange


def resume_edited_run(edit: Callable[[Path], object]) -> Arrange:
    """Resumes a copy of the trained run after `edit` has changed it."""

    def arrange(workspace: Workspace) -> list[str]:
        run_dir = workspace.run_copy()
        edit(run_dir)
        return ["--resume", str(run_dir)]

    return arrange


def empty_folder(workspace: Workspace, name: str) -> Path:
    folder = workspace.root / name
    folder.mkdir()
    return folder


def truncated_newest_checkpoint(run_dir: Path) -> None:
    """The latest checkpoint's first half, saved as a newer step (as a crash mid-copy would leave it)."""
    models = run_dir / "nerfkit_models"
    newer = Path(shutil.copyfile(models / "step-000000002.ckpt", models / "step-000000003.ckpt"))
    truncate(newer)


def garbage_checkpoint(workspace: Workspace) -> list[str]:
    """Lego with --load-dir on the trained run's checkpoints plus a newest one that is not a checkpoint at all."""
    models = workspace.run_copy() / "nerfkit_models"
    (models / "step-000000999.ckpt").write_bytes(b"\x00 not a checkpoint \xff" * 200)
    return lego_args(workspace.lego(), "--load-dir", str(models))


def run_at_the_same_timestamp(workspace: Workspace) -> list[str]:
    """A new run whose --timestamp names the folder of an earlier run of the same experiment and method."""
    shutil.copytree(workspace.trained_run(), workspace.root / "outputs" / "lego" / "vanilla-nerf" / "2026-01-01_000000")
    return lego_args(workspace.lego(), "--timestamp", "2026-01-01_000000")


def load_config(write: Callable[[Workspace, Path], object]) -> Arrange:
    """--load-config of a file that `write` puts in the workspace."""

    def arrange(workspace: Workspace) -> list[str]:
        path = workspace.root / "experiment.yml"
        write(workspace, path)
        return ["--load-config", str(path), "--data", str(workspace.scene())]

    return arrange


def trained_config_with_optimizer(type_name: str) -> Callable[[Workspace, Path], object]:
    def write(workspace: Workspace, path: Path) -> None:
        shutil.copyfile(workspace.trained_run() / "config.yml", path)
        edit_yaml(path, lambda data: data["config"]["optimizers"]["fields"]["optimizer"].update(type=type_name))

    return write


def experiment(text: str, *flags: str) -> Arrange:
    """vanilla-nerf on the tiny scene with --config of an experiment file holding `text`."""

    def arrange(workspace: Workspace) -> list[str]:
        path = workspace.root / "experiment.yml"
        path.write_text(text)
        return train_args(workspace.scene(), "--config", str(path), *flags)

    return arrange


def unlink(relative: str) -> Callable[[Path], None]:
    return lambda folder: (folder / relative).unlink()


def edit_transforms(edit: Callable[[Any], object], split: str = "train") -> Callable[[Path], None]:
    return lambda scene: edit_json(scene / f"transforms_{split}.json", edit)


def with_depth_map(write: Callable[[Path], object]) -> Callable[[Path], None]:
    """Frame 0 of the train split names a depth map, which `write` then puts (or not) at that path."""

    def breaks(scene: Path) -> None:
        edit_transforms(lambda meta: meta["frames"][0].update(depth_file_path="./train/r_0_depth.npy"))(scene)
        write(scene / "train" / "r_0_depth.npy")

    return breaks


def truncated_depth_map(path: Path) -> None:
    np.save(path, np.ones((6, 8), dtype=np.float32))
    truncate(path)


def cut_in_half(path: Path) -> None:
    """The first half of a file's lines, as an interrupted copy leaves it: still valid YAML, but incomplete."""
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[: len(lines) // 2]))


def output_dir_is_a_file(workspace: Workspace) -> list[str]:
    (workspace.root / "outputs").write_text("not a folder\n")
    return train_args(workspace.scene(), "--output-dir", str(workspace.root / "outputs"))


CASES = [
    # --data
    pytest.param(lambda ws: train_args(ws.root / "nowhere"), ["nowhere", "does not exist"], id="data-not-found"),
    # transforms files
    pytest.param(broken_scene(unlink("transforms_train.json")), ["transforms_train.json"], id="transforms-missing"),
    pytest.param(
        broken_scene(lambda scene: (scene / "transforms_train.json").write_text('{"frames": [')),
        ["transforms_train.json", "JSON"],
        id="transforms-not-json",
    ),
    pytest.param(
        broken_scene(edit_transforms(lambda meta: meta.pop("frames"))),
        ["transforms_train.json", "frames"],
        id="no-frames",
    ),
    pytest.param(
        broken_scene(edit_transforms(lambda meta: meta.pop("camera_angle_x"))),
        ["transforms_train.json", "camera_angle_x"],
        id="no-camera-angle-x",
    ),
    pytest.param(
        broken_scene(edit_transforms(lambda meta: meta["frames"][0].pop("transform_matrix"))),
        ["transforms_train.json", "frames[0].transform_matrix"],
        id="no-transform-matrix",
    ),
    pytest.param(
        broken_scene(edit_transforms(lambda meta: meta["frames"][1]["transform_matrix"].pop())),
        ["transforms_train.json", "frames[1].transform_matrix"],
        id="transform-matrix-3x4",
    ),
    # images
    pytest.param(broken_scene(unlink("train/r_1.png")), ["r_1.png"], id="image-missing"),
    pytest.param(
        broken_scene(lambda scene: (scene / "train/r_1.png").write_bytes(b"not a png")),
        ["r_1.png"],
        id="image-not-an-image",
    ),
    pytest.param(broken_scene(lambda scene: truncate(scene / "train/r_1.png")), ["r_1.png"], id="image-truncated"),
    pytest.param(broken_scene(lambda scene: None, sizes=((8, 6), (6, 8))), ["r_1.png", "6x8"], id="image-sizes-differ"),
    # method, machine
    pytest.param(lambda ws: ["vanila-nerf", "--data", str(ws.scene())], ["vanilla-nerf"], id="unknown-method"),
    pytest.param(
        lambda ws: train_args(ws.scene(), "--machine.device-type", "cuda"),
        ["device-type cuda", "CUDA"],
        id="device-cuda-without-gpu",
    ),
    # dataset formats
    pytest.param(
        lambda ws: train_args(empty_folder(ws, "photos")),
        ["photos holds no dataset", "transforms.json", "sparse/0", "poses_bounds.npy", "kit-process-data"],
        id="data-of-no-known-format",
    ),
    pytest.param(
        colmap_without_images,
        ["1 of the 1 images", "capture/images/a.png", "images_path"],
        id="colmap-model-without-its-images",
    ),
    # --load-dir and checkpoints
    pytest.param(
        lambda ws: train_args(ws.scene(), "--load-dir", str(empty_folder(ws, "empty_models"))),
        ["empty_models", "no checkpoints"],
        id="load-dir-without-checkpoints",
    ),
    pytest.param(
        resume_edited_run(truncated_newest_checkpoint),
        ["step-000000003.ckpt", "--load-step 2"],
        id="resume-truncated-checkpoint",
    ),
    pytest.param(garbage_checkpoint, ["step-000000999.ckpt", "--load-step 2"], id="load-dir-garbage-checkpoint"),
    pytest.param(
        run_at_the_same_timestamp,
        ["2026-01-01_000000 already holds a run", "kit-train --resume"],
        id="new-run-over-an-earlier-one",
    ),
    # config files
    pytest.param(
        lambda ws: ["--resume", str(empty_folder(ws, "not_a_run"))],
        ["not_a_run", "config.yml"],
        id="resume-without-config",
    ),
    pytest.param(
        load_config(lambda ws, path: path.write_text("method_name: vanilla-nerf\nconfig: {pipeline: [\n")),
        ["experiment.yml", "YAML"],
        id="load-config-malformed-yaml",
    ),
    pytest.param(
        resume_edited_run(
            lambda run: edit_yaml(run / "config.yml", lambda data: data.update(method_name="vanila-nerf"))
        ),
        ["config.yml", "vanila-nerf"],
        id="config-unknown-method",
    ),
    pytest.param(
        load_config(trained_config_with_optimizer("adamw")),
        ["experiment.yml", "optimizers.fields.optimizer", "adamw"],
        id="config-unknown-optimizer-type",
    ),
    # experiment files (--config) and replaceable parts
    pytest.param(
        experiment("pipeline:\n  model:\n    coarse_samplr: {num_samples: 8}\n"),
        ["experiment.yml", "unknown key 'coarse_samplr'", "in pipeline.model", "coarse_sampler, fine_sampler"],
        id="experiment-unknown-key",
    ),
    pytest.param(
        experiment("max_num_iteratons: 5\n"),
        ["experiment.yml", "'max_num_iteratons'", "at the top level", "max_num_iterations"],
        id="experiment-unknown-top-level-key",
    ),
    pytest.param(
        experiment("pipeline:\n  model:\n    base_mlp_num_layers: eight\n"),
        ["experiment.yml", "pipeline.model.base_mlp_num_layers", "expects int", "eight"],
        id="experiment-wrong-type",
    ),
    pytest.param(
        experiment("pipeline:\n  model:\n    coarse_sampler: {type: stratified}\n"),
        ["experiment.yml", "pipeline.model.coarse_sampler", "'stratified'", "uniform, lin-disp, pdf"],
        id="experiment-unknown-part",
    ),
    pytest.param(
        experiment("method_name: nerfacto\nmax_num_iterations: 5\n"),
        ["experiment.yml", "'nerfacto'", "'vanilla-nerf'"],
        id="experiment-for-another-method",
    ),
    pytest.param(experiment("- 1\n- 2\n"), ["experiment.yml", "mapping"], id="experiment-not-a-mapping"),
    pytest.param(
        experiment("pipeline:\n  model:\n    coarse_sampler: pdf\n"),
        ["pipeline.model.coarse_sampler cannot be 'pdf'", "uniform, lin-disp"],
        id="experiment-incompatible-part",
    ),
    pytest.param(
        lambda ws: train_args(ws.root / "nowhere", "pipeline.model.coarse-sampler:pdf"),
        ["pipeline.model.coarse_sampler cannot be 'pdf'", "uniform, lin-disp"],
        id="incompatible-part-checked-before-data",
    ),
    pytest.param(
        lambda ws: ["instant-ngp", "pipeline.model.background-color:last-sample", "--data", str(ws.scene())],
        ["pipeline.model.background_color cannot be 'last-sample'", "packed samples", "white, black, random"],
        id="incompatible-background",
    ),
    # numbers outside their field's declared range (the last of a repeated flag counts)
    *(
        pytest.param(
            lambda ws, flag=flag, value=value: train_args(ws.scene(), flag, value),
            [f"{flag} must be {expected}, got {value}"],
            id=f"{flag[2:]}-{value}",
        )
        for flag, value, expected in [
            ("--max-num-iterations", "0", ">= 1"),
            ("--max-num-iterations", "-1", ">= 1"),
            ("--pipeline.datamanager.train-num-rays-per-batch", "0", ">= 1"),
            ("--pipeline.datamanager.train-num-rays-per-batch", "-5", ">= 1"),
            ("--steps-per-save", "-1", ">= 0"),
            ("--machine.seed", "99999999999999999999", "0 to 4294967295"),
            ("--optimizers.fields.optimizer.lr", "nan", "finite and > 0"),
        ]
    ),
    pytest.param(
        lambda ws: train_args(ws.scene(), "--pipeline.datamanager.dataparser.downscale-factor", "16"),
        ["--pipeline.datamanager.dataparser.downscale-factor 16", "smallest side is 6 pixels", "at most 6"],
        id="downscale-factor-larger-than-the-images",
    ),
    pytest.param(
        experiment("pipeline:\n  datamanager:\n    train_num_rays_per_batch: 0\n"),
        ["experiment.yml", "pipeline.datamanager.train_num_rays_per_batch must be >= 1, got 0"],
        id="experiment-value-out-of-range",
    ),
    pytest.param(
        resume_edited_run(
            lambda run: edit_yaml(run / "config.yml", lambda data: data["config"].update(steps_per_save=-5))
        ),
        ["config.yml", "steps_per_save must be >= 0, got -5"],
        id="config-value-out-of-range",
    ),
    pytest.param(
        resume_edited_run(lambda run: cut_in_half(run / "config.yml")),
        ["config.yml is incomplete", "optimizers", "debug"],
        id="resume-truncated-config",
    ),
    # output folder
    pytest.param(output_dir_is_a_file, ["--output-dir", "outputs is not a folder"], id="output-dir-is-a-file"),
    # depth maps that frames name
    pytest.param(
        broken_scene(with_depth_map(lambda path: None)),
        ["r_0_depth.npy", "frames[0].depth_file_path", "not found"],
        id="depth-map-missing",
    ),
    pytest.param(
        broken_scene(with_depth_map(truncated_depth_map)),
        ["r_0_depth.npy", "frames[0].depth_file_path", "cannot be read"],
        id="depth-map-truncated",
    ),
]


def assert_user_error(result: subprocess.CompletedProcess[str], names: Sequence[str]) -> None:
    """Exit 1 with a short message naming `names`, and no traceback."""
    output = result.stdout + result.stderr
    shown = f"\n--- output ---\n{output}"
    assert result.returncode == EXIT_USER_ERROR, f"exit code {result.returncode}{shown}"
    assert "Traceback" not in output, f"a traceback leaked{shown}"
    for name in names:
        assert name in output, f"{name!r} is not named{shown}"
    assert len(output.splitlines()) < MAX_OUTPUT_LINES, f"{len(output.splitlines())} lines of output{shown}"


@pytest.mark.parametrize(("arrange", "names"), CASES)
def test_user_error_is_short_and_leaves_files_intact(
    arrange: Arrange, names: list[str], workspace: Workspace, kit_train: KitTrain
) -> None:
    args = arrange(workspace)
    before = snapshot(workspace.root)
    result = kit_train(args, cwd=workspace.root)
    assert snapshot(workspace.root) == before, f"files changed or appeared:\n{result.stdout}{result.stderr}"
    assert_user_error(result, names)


def test_config_with_python_tag_runs_no_code(workspace: Workspace, kit_train: KitTrain) -> None:
    pwned = workspace.root / "pwned"
    run_dir = workspace.run_copy()
    (run_dir / "config.yml").write_text(
        f'method_name: vanilla-nerf\nconfig: !!python/object/apply:os.system ["echo pwned > {pwned}"]\n'
    )
    before = snapshot(workspace.root)
    result = kit_train(["--resume", str(run_dir)], cwd=workspace.root)
    assert not pwned.exists(), "loading config.yml ran code from it"
    assert snapshot(workspace.root) == before
    assert_user_error(result, ["config.yml", "python/object/apply"])


@pytest.mark.parametrize(
    ("flags", "env"), [pytest.param(["--debug"], {}, id="flag"), pytest.param([], {"NERFKIT_DEBUG": "1"}, id="env")]
)
def test_debug_shows_the_traceback(
    flags: list[str], env: dict[str, str], workspace: Workspace, kit_train: KitTrain
) -> None:
    result = kit_train([*train_args(workspace.root / "nowhere"), *flags], cwd=workspace.root, **env)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" in output and "NerfkitError" in output and "nowhere" in output, output
    assert snapshot(workspace.root) == {}, "a failed start created files"


WITHOUT_FILE_ACCESS_OVERRIDE = [
    "setpriv",
    "--inh-caps", "-dac_override,-dac_read_search",
    "--bounding-set", "-dac_override,-dac_read_search",
]  # fmt: skip
"""Runs a command as root without the capabilities that let root read and write whatever a file's mode says."""


@pytest.fixture(scope="module")
def as_plain_user() -> list[str]:
    """The prefix that makes kit-train meet file permissions as any user does: root (as tests often run, in CI and
    containers) would otherwise read and write everywhere. Skipped where setpriv cannot drop them, except in CI."""
    if os.geteuid() != 0:
        return []
    works = (
        shutil.which("setpriv") is not None
        and subprocess.run([*WITHOUT_FILE_ACCESS_OVERRIDE, "true"], capture_output=True).returncode == 0
    )
    if not works:
        if os.environ.get("CI"):
            pytest.fail("setpriv cannot drop CAP_DAC_OVERRIDE here; CI must run the permission cases")
        pytest.skip("setpriv cannot drop CAP_DAC_OVERRIDE here")
    return WITHOUT_FILE_ACCESS_OVERRIDE


def moved_into(workspace: Workspace, folder: str, path: Path) -> Path:
    return Path(shutil.move(path, empty_folder(workspace, folder) / path.name))


Locked = Callable[[Workspace], tuple[list[str], Path, int]]
"""Builds the input; returns kit-train's arguments and a folder to give the mode while kit-train runs."""

PERMISSION_CASES = [
    pytest.param(
        lambda ws: (train_args(ws.scene(), "--output-dir", str(empty_folder(ws, "locked"))), ws.root / "locked", 0o500),
        ["--output-dir", "locked is not writable"],
        id="output-dir-not-writable",
    ),
    pytest.param(
        lambda ws: (
            train_args(ws.scene(), "--output-dir", str(ws.root / "locked" / "runs")),
            ws.root / "locked",
            0o500,
        ),
        ["--output-dir", "locked is not writable"],
        id="output-dir-in-a-read-only-folder",
    ),
    pytest.param(
        lambda ws: (train_args(ws.scene()), ws.root / "scene", 0o000),
        ["scene (field data) cannot be read: permission denied"],
        id="data-not-readable",
    ),
    pytest.param(
        lambda ws: (train_args(moved_into(ws, "locked", ws.scene())), ws.root / "locked", 0o000),
        ["scene (field data) cannot be reached"],
        id="data-in-a-folder-that-denies-access",
    ),
]


@pytest.mark.parametrize(("arrange", "names"), PERMISSION_CASES)
def test_folders_without_permission_are_named(
    arrange: Locked, names: list[str], workspace: Workspace, kit_train: KitTrain, as_plain_user: list[str]
) -> None:
    args, folder, mode = arrange(workspace)
    folder.mkdir(exist_ok=True)
    before = snapshot(workspace.root)
    folder.chmod(mode)
    try:
        result = kit_train(args, cwd=workspace.root, prefix=as_plain_user)
    finally:
        folder.chmod(0o755)
    assert snapshot(workspace.root) == before, f"files changed or appeared:\n{result.stdout}{result.stderr}"
    assert_user_error(result, names)
