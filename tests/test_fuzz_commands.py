"""Bad input to every command, as a careless user gives it: one row per case, each run as a subprocess of the
installed console script.

Every row asserts the same bar: a non-zero exit (2 for a flag the parser rejects, 1 for everything else), no
traceback, a message that names the file or flag, and every file that existed before byte-identical after (and
nothing new). Permission rows run without root's file-access override, since root would bypass `chmod`. The cases
of kit-train's data, config and checkpoint errors that tests/test_cli_errors.py covers are not repeated here.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from kit_flags import TINY_MODEL
from PIL import Image

BIN = Path(sys.executable).parent
UNPRIVILEGED = ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]
"""Runs a command as root without the capabilities that let root read and write any file."""
PWNED = "pwned"
"""The file a hostile input would create if loading it ran code."""


class Evil:
    """Pickled into a checkpoint: unpickling it would run a shell command."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.target}",)


@dataclass
class Bench:
    """The folder a command runs in, and what the rows build there."""

    root: Path
    request: pytest.FixtureRequest

    def path(self, name: str) -> Path:
        return self.root / name

    def lego(self) -> Path:
        return self.request.getfixturevalue("lego_dir")

    def run(self) -> Path:
        """A copy of the session's tiny trained run (checkpoints at steps 10 and 20)."""
        return Path(shutil.copytree(self.request.getfixturevalue("tiny_lego_run"), self.root / "run"))

    def latest_checkpoint(self, run: Path) -> Path:
        return sorted((run / "nerfkit_models").iterdir())[-1]

    def scene(self, size: tuple[int, int] = (8, 6)) -> Path:
        """A valid tiny Blender scene with train and val splits."""
        scene = self.root / "scene"
        for split in ("train", "val"):
            (scene / split).mkdir(parents=True, exist_ok=True)
            frames = []
            for index in range(2):
                pixels = np.random.default_rng(index).integers(0, 256, (size[1], size[0], 4), dtype=np.uint8)
                Image.fromarray(pixels).save(scene / split / f"r_{index}.png")
                pose = np.eye(4)
                pose[2, 3] = 4.0 + index
                frames.append({"file_path": f"./{split}/r_{index}", "transform_matrix": pose.tolist()})
            meta = {"camera_angle_x": 0.7, "frames": frames}
            (scene / f"transforms_{split}.json").write_text(json.dumps(meta))
        return scene

    def photos(self, count: int) -> Path:
        folder = self.root / "photos"
        folder.mkdir()
        for index in range(count):
            Image.fromarray(np.full((24, 32, 3), index * 40, dtype=np.uint8)).save(folder / f"p{index}.png")
        return folder

    def text(self, name: str, content: str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)
        return path


Arrange = Callable[[Bench], list[str]]


@dataclass(frozen=True)
class Case:
    """One bad input: the command, how to build the input (returning the arguments), and what the output names."""

    command: str
    arrange: Arrange
    names: tuple[str, ...]
    exit_code: int = 1
    unprivileged: bool = False


TINY_TRAIN = [*TINY_MODEL, "--max-num-iterations", "2", "--vis", "none", "--steps-per-eval-batch", "0",
              "--steps-per-eval-image", "0", "--steps-per-eval-all-images", "0"]  # fmt: skip


def train(*flags: str) -> Arrange:
    """vanilla-nerf on a tiny valid scene, with `flags` added."""
    return lambda bench: ["vanilla-nerf", "--data", str(bench.scene()), *TINY_TRAIN, *flags]


def on_scene(breaks: Callable[[Path], object], *flags: str) -> Arrange:
    def arrange(bench: Bench) -> list[str]:
        scene = bench.scene()
        breaks(scene)
        return ["vanilla-nerf", "--data", str(scene), *TINY_TRAIN, *flags]

    return arrange


def edit_transforms(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def apply(scene: Path) -> None:
        path = scene / "transforms_train.json"
        meta = json.loads(path.read_text())
        edit(meta)
        path.write_text(json.dumps(meta, allow_nan=True))

    return apply


def hostile_experiment(tag: str) -> Arrange:
    """An experiment file whose YAML tag would run code (or import a module) if YAML's unsafe loader read it."""

    def arrange(bench: Bench) -> list[str]:
        path = bench.text("experiment.yml", f"max_num_iterations: {tag}\n")
        return ["vanilla-nerf", "--data", str(bench.scene()), *TINY_TRAIN, "--config", str(path)]

    return arrange


def run_with_checkpoint(write: Callable[[Path], object], command: list[str]) -> Arrange:
    """A copy of the trained run whose latest checkpoint `write` replaces; `command` then uses the run."""

    def arrange(bench: Bench) -> list[str]:
        run = bench.run()
        write(bench.latest_checkpoint(run))
        return [arg.replace("{run}", str(run)) for arg in command]

    return arrange


def truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def pickled_code(path: Path) -> None:
    torch.save({"step": 20, "pipeline": Evil(path.parent.parent.parent / PWNED)}, path)


def with_run(*command: str) -> Arrange:
    def arrange(bench: Bench) -> list[str]:
        run = bench.run()
        return [arg.replace("{run}", str(run)).replace("{root}", str(bench.root)) for arg in command]

    return arrange


def camera_path(content: object) -> Arrange:
    def arrange(bench: Bench) -> list[str]:
        run = bench.run()
        text = content if isinstance(content, str) else json.dumps(content, allow_nan=True)
        path = bench.text("path.json", text)
        return ["camera-path", "--load-config", str(run), "--camera-path-filename", str(path),
                "--output-path", str(bench.path("frames"))]  # fmt: skip

    return arrange


def keyframe(matrix: list[float]) -> dict[str, object]:
    return {"camera_to_world": matrix, "fov": 50.0, "aspect": 1.0}


EYE = [float(value) for value in np.eye(4).flatten()]
CAMERA_PATH = {"render_height": 20, "render_width": 20, "seconds": 1.0, "fps": 2, "camera_path": []}


def broken_config(text: str) -> Arrange:
    def arrange(bench: Bench) -> list[str]:
        run = bench.run()
        (run / "config.yml").write_text(text)
        return ["--load-config", str(run)]

    return arrange


def corrupt_photo(bench: Bench) -> list[str]:
    photos = bench.photos(3)
    (photos / "p9.png").write_text("not a png")
    return ["images", "--data", str(photos), "--output-dir", str(bench.path("out"))]


def unreadable_data(bench: Bench) -> list[str]:
    scene = bench.scene()
    (scene / "train" / "r_0.png").chmod(0o000)
    return ["vanilla-nerf", "--data", str(scene), *TINY_TRAIN]


def read_only_output(bench: Bench) -> list[str]:
    output = bench.path("outputs")
    output.mkdir()
    output.chmod(0o555)
    return ["vanilla-nerf", "--data", str(bench.scene()), *TINY_TRAIN, "--output-dir", str(output)]


def mirror(bench: Bench, archive: bytes | None) -> Path:
    """The local download mirror (NERFKIT_DOWNLOAD_MIRROR), holding `archive` as blender's zip when given."""
    folder = bench.path("mirror")
    folder.mkdir()
    if archive is not None:
        (folder / "nerf_synthetic.zip").write_bytes(archive)
    return folder


CASES: dict[str, Case] = {
    # kit-train: flags and values
    "train-unknown-flag": Case("kit-train", train("--max-num-iteratons", "3"), ("--max-num-iteratons",), 2),
    "train-unknown-method": Case("kit-train", lambda b: ["instant-npg", "--data", "x"], ("instant-npg",)),
    "train-iterations-negative": Case("kit-train", train("--max-num-iterations", "-1"), ("--max-num-iterations",)),
    "train-iterations-zero": Case("kit-train", train("--max-num-iterations", "0"), ("--max-num-iterations",)),
    "train-rays-zero": Case(
        "kit-train",
        train("--pipeline.datamanager.train-num-rays-per-batch", "0"),
        ("--pipeline.datamanager.train-num-rays-per-batch",),
    ),
    "train-rays-negative": Case(
        "kit-train",
        train("--pipeline.datamanager.train-num-rays-per-batch", "-5"),
        ("--pipeline.datamanager.train-num-rays-per-batch",),
    ),
    "train-seed-huge": Case("kit-train", train("--machine.seed", str(2**70)), ("--machine.seed",)),
    "train-lr-nan": Case("kit-train", train("--optimizers.fields.optimizer.lr", "nan"), ("lr",)),
    "train-lr-negative": Case("kit-train", train("--optimizers.fields.optimizer.lr", "-1e-3"), ("lr",)),
    "train-steps-per-save-negative": Case("kit-train", train("--steps-per-save", "-3"), ("--steps-per-save",)),
    "train-downscale-too-large": Case(
        "kit-train",
        train("--pipeline.datamanager.dataparser.downscale-factor", "64"),
        ("downscale",),
    ),
    "train-output-dir-is-a-file": Case(
        "kit-train",
        lambda b: [*train()(b), "--output-dir", str(b.text("outputs", "a file"))],
        ("outputs",),
    ),
    "train-load-dir-is-a-file": Case(
        "kit-train", lambda b: [*train()(b), "--load-dir", str(b.text("models", "x"))], ("models",)
    ),
    "train-resume-is-a-file": Case("kit-train", lambda b: ["--resume", str(b.text("run.txt", "x"))], ("run.txt",)),
    # kit-train: data
    "train-nan-in-pose": Case(
        "kit-train",
        on_scene(edit_transforms(lambda meta: meta["frames"][0]["transform_matrix"][0].__setitem__(3, float("nan")))),
        ("transforms_train.json", "frames[0].transform_matrix"),
    ),
    "train-inf-in-pose": Case(
        "kit-train",
        on_scene(edit_transforms(lambda meta: meta["frames"][1]["transform_matrix"][2].__setitem__(3, float("inf")))),
        ("transforms_train.json", "frames[1].transform_matrix"),
    ),
    "train-nan-field-of-view": Case(
        "kit-train",
        on_scene(edit_transforms(lambda meta: meta.update(camera_angle_x=float("nan")))),
        ("camera_angle_x",),
    ),
    "train-empty-transforms": Case(
        "kit-train",
        on_scene(lambda scene: (scene / "transforms_train.json").write_text("")),
        ("transforms_train.json",),
    ),
    "train-frames-not-a-list": Case(
        "kit-train", on_scene(edit_transforms(lambda meta: meta.update(frames={"a": 1}))), ("frames",)
    ),
    "train-no-frames": Case("kit-train", on_scene(edit_transforms(lambda meta: meta.update(frames=[]))), ("frames",)),
    "train-image-is-a-folder": Case(
        "kit-train",
        on_scene(lambda scene: ((scene / "train/r_1.png").unlink(), (scene / "train/r_1.png").mkdir())),
        ("r_1.png",),
    ),
    "train-data-is-a-file": Case(
        "kit-train", lambda b: ["vanilla-nerf", "--data", str(b.text("data.txt", "x"))], ("data.txt",)
    ),
    # kit-train: hostile config files (nothing may run, nothing may be imported)
    **{
        f"train-yaml-{name}": Case("kit-train", hostile_experiment(tag), ("experiment.yml",))
        for name, tag in {
            "apply": f'!!python/object/apply:os.system ["touch {PWNED}"]',
            "new": f'!!python/object/new:os.system ["touch {PWNED}"]',
            "name": "!!python/name:os.system",
            "module": "!!python/module:os",
            "object": "!!python/object:os.PathLike {}",
        }.items()
    },
    "train-yaml-anchor-bomb": Case(
        "kit-train",
        lambda b: [
            *train()(b),
            "--config",
            str(b.text("experiment.yml", "a: &a [x, x]\nb: &b [*a, *a]\nc: &c [*b, *b]\nmax_num_iterations: *c\n")),
        ],
        ("experiment.yml",),
    ),
    # kit-train: checkpoints
    "train-resume-zero-byte-checkpoint": Case(
        "kit-train", run_with_checkpoint(lambda path: path.write_bytes(b""), ["--resume", "{run}"]), ("step-0000000",)
    ),
    "train-resume-random-checkpoint": Case(
        "kit-train",
        run_with_checkpoint(lambda path: path.write_bytes(os.urandom(4096)), ["--resume", "{run}"]),
        ("step-0000000",),
    ),
    "train-resume-pickled-code": Case(
        "kit-train", run_with_checkpoint(pickled_code, ["--resume", "{run}"]), ("step-0000000", "not loaded")
    ),
    "train-resume-wrong-shapes": Case(
        "kit-train",
        with_run("--resume", "{run}", "--pipeline.model.base-mlp-layer-width", "8"),
        ("does not fit this model", "in the checkpoint"),
    ),
    # kit-train: permissions
    "train-data-unreadable": Case("kit-train", unreadable_data, ("r_0.png",), unprivileged=True),
    "train-output-dir-read-only": Case("kit-train", read_only_output, ("outputs",), unprivileged=True),
    # kit-eval
    "eval-missing-run": Case("kit-eval", lambda b: ["--load-config", str(b.path("nowhere"))], ("nowhere",)),
    "eval-config-not-yaml": Case("kit-eval", broken_config("config: [unclosed\n"), ("config.yml",)),
    "eval-config-python-tag": Case(
        "kit-eval", broken_config(f'method_name: !!python/object/apply:os.system ["touch {PWNED}"]\n'), ("config.yml",)
    ),
    "eval-truncated-checkpoint": Case(
        "kit-eval", run_with_checkpoint(truncated, ["--load-config", "{run}"]), ("step-0000000", "truncated")
    ),
    "eval-pickled-code": Case(
        "kit-eval", run_with_checkpoint(pickled_code, ["--load-config", "{run}"]), ("step-0000000", "not loaded")
    ),
    "eval-load-step-missing": Case("kit-eval", with_run("--load-config", "{run}", "--load-step", "7"), ("7",)),
    "eval-num-images-zero": Case(
        "kit-eval", with_run("--load-config", "{run}", "--num-images", "0"), ("--num-images must be >= 1, got 0",)
    ),
    "eval-num-rays-per-chunk-zero": Case(
        "kit-eval",
        with_run("--load-config", "{run}", "--eval-num-rays-per-chunk", "0"),
        ("--eval-num-rays-per-chunk must be >= 1, got 0",),
    ),
    "eval-data-of-no-format": Case(
        "kit-eval",
        lambda b: ["--load-config", str(b.run()), "--data", str(b.text("empty/.keep", "").parent)],
        ("empty", "holds no dataset"),
    ),
    "eval-data-without-the-split": Case(
        "kit-eval",
        lambda b: ["--load-config", str(b.run()), "--split", "test", "--data", str(b.scene())],
        ("transforms_test.json",),
    ),
    "eval-unknown-split": Case("kit-eval", with_run("--load-config", "{run}", "--split", "holdout"), ("--split",), 2),
    "eval-output-under-a-file": Case(
        "kit-eval",
        lambda b: ["--load-config", str(b.run()), "--output-path", str(b.text("notes.txt", "x") / "m.json")],
        ("notes.txt",),
    ),
    # kit-render
    "render-missing-run": Case(
        "kit-render", lambda b: ["orbit", "--load-config", str(b.path("nowhere"))], ("nowhere",)
    ),
    "render-camera-path-missing": Case(
        "kit-render",
        with_run("camera-path", "--load-config", "{run}", "--camera-path-filename", "{root}/nope.json"),
        ("nope.json",),
    ),
    "render-camera-path-not-json": Case("kit-render", camera_path("{not json"), ("path.json",)),
    "render-camera-path-not-an-object": Case("kit-render", camera_path([1, 2, 3]), ("path.json",)),
    "render-camera-path-empty": Case("kit-render", camera_path(CAMERA_PATH), ("path.json",)),
    "render-camera-path-nan": Case(
        "kit-render",
        camera_path({**CAMERA_PATH, "camera_path": [keyframe([float("nan")] * 16)] * 2}),
        ("path.json",),
    ),
    "render-camera-path-short-matrix": Case(
        "kit-render", camera_path({**CAMERA_PATH, "camera_path": [keyframe(EYE[:12])] * 2}), ("path.json",)
    ),
    "render-downscale-zero": Case(
        "kit-render",
        with_run("orbit", "--load-config", "{run}", "--downscale-factor", "0"),
        ("--downscale-factor must be > 0, got 0.0",),
    ),
    "render-fps-nan": Case(
        "kit-render",
        with_run("orbit", "--load-config", "{run}", "--fps", "nan"),
        ("--fps must be finite and > 0, got nan",),
    ),
    "render-unknown-path-kind": Case("kit-render", with_run("spiral", "--load-config", "{run}"), ("spiral",), 2),
    # kit-export
    "export-missing-run": Case(
        "kit-export", lambda b: ["pointcloud", "--load-config", str(b.path("nowhere"))], ("nowhere",)
    ),
    "export-no-subcommand": Case("kit-export", lambda b: [], ("pointcloud",), 2),
    "export-num-points-zero": Case(
        "kit-export",
        with_run("pointcloud", "--load-config", "{run}", "--num-points", "0"),
        ("--num-points must be >= 1, got 0",),
    ),
    "export-mesh-resolution-negative": Case(
        "kit-export",
        with_run("mesh", "--load-config", "{run}", "--resolution", "-4"),
        ("--resolution must be >= 2, got -4",),
    ),
    "export-accumulation-threshold-above-1": Case(
        "kit-export",
        with_run("pointcloud", "--load-config", "{run}", "--accumulation-threshold", "1.5"),
        ("--accumulation-threshold must be 0 to 1, got 1.5",),
    ),
    "export-cameras-truncated-checkpoint": Case(
        "kit-export", run_with_checkpoint(truncated, ["cameras", "--load-config", "{run}"]), ("step-0000000",)
    ),
    "export-output-under-a-file": Case(
        "kit-export",
        lambda b: ["cameras", "--load-config", str(b.run()), "--output-path", str(b.text("f.txt", "x") / "c.json")],
        ("f.txt",),
    ),
    # kit-process-data
    "process-missing-folder": Case(
        "kit-process-data",
        lambda b: ["images", "--data", str(b.path("nowhere")), "--output-dir", str(b.path("out"))],
        ("nowhere",),
    ),
    "process-no-images": Case(
        "kit-process-data",
        lambda b: ["images", "--data", str(b.photos(0)), "--output-dir", str(b.path("out"))],
        ("photos",),
    ),
    "process-one-image": Case(
        "kit-process-data",
        lambda b: ["images", "--data", str(b.photos(1)), "--output-dir", str(b.path("out"))],
        ("1 image",),
    ),
    "process-corrupt-image": Case("kit-process-data", corrupt_photo, ("p9.png",)),
    "process-video-missing": Case(
        "kit-process-data",
        lambda b: ["video", "--data", str(b.path("clip.mp4")), "--output-dir", str(b.path("out"))],
        ("clip.mp4",),
    ),
    "process-video-not-a-video": Case(
        "kit-process-data",
        lambda b: ["video", "--data", str(b.text("clip.mp4", "hello")), "--output-dir", str(b.path("out"))],
        ("clip.mp4",),
    ),
    "process-skip-colmap-without-model": Case(
        "kit-process-data",
        lambda b: ["images", "--data", str(b.photos(3)), "--output-dir", str(b.path("out")), "--skip-colmap"],
        ("--skip-colmap",),
    ),
    "process-num-downscales-negative": Case(
        "kit-process-data",
        lambda b: ["images", "--data", str(b.photos(3)), "--output-dir", str(b.path("out")), "--num-downscales", "-1"],
        ("--num-downscales must be >= 0, got -1",),
    ),
    "process-output-is-a-file": Case(
        "kit-process-data",
        lambda b: ["images", "--data", str(b.photos(3)), "--output-dir", str(b.text("out", "a file"))],
        ("out",),
    ),
    # kit-download-data (offline: a local mirror)
    "download-unknown-scene": Case(
        "kit-download-data",
        lambda b: ["blender", "--scene", "legoo", "--output-dir", str(b.path("data"))],
        ("legoo",),
        2,
    ),
    "download-unknown-dataset": Case("kit-download-data", lambda b: ["shapenet"], ("shapenet",), 2),
    "download-archive-missing": Case(
        "kit-download-data",
        lambda b: ["blender", "--scene", "lego", "--output-dir", str(b.path("data"))] if mirror(b, None) else [],
        ("nerf_synthetic.zip",),
    ),
    "download-archive-corrupt": Case(
        "kit-download-data",
        lambda b: (
            ["blender", "--scene", "lego", "--output-dir", str(b.path("data"))] if mirror(b, b"PK\x03\x04 torn") else []
        ),
        ("nerf_synthetic.zip",),
    ),
    "download-output-is-a-file": Case(
        "kit-download-data",
        lambda b: ["blender", "--scene", "lego", "--output-dir", str(b.text("data", "a file"))],
        ("data",),
    ),
    # kit-doctor
    "doctor-unknown-flag": Case("kit-doctor", lambda b: ["--verbose"], ("--verbose",), 2),
}


def snapshot(folder: Path) -> dict[str, str]:
    """Every folder and file under `folder`, files by the hash of their bytes (unreadable ones by their mode)."""
    found = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        try:
            found[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "/"
        except PermissionError:
            found[key] = f"mode {path.stat().st_mode:o}"
    return found


def environment(lego_cache_dir: Path, bench: Bench) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("NERFKIT_")}
    env.update(NERFKIT_CACHE_DIR=str(lego_cache_dir), COLUMNS="120")
    env["NERFKIT_DOWNLOAD_MIRROR"] = bench.path("mirror").as_uri()
    return env


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_gets_one_message_and_changes_nothing(
    name: str, tmp_path: Path, request: pytest.FixtureRequest, lego_cache_dir: Path
) -> None:
    case = CASES[name]
    if case.unprivileged and shutil.which("setpriv") is None:
        pytest.skip("setpriv is needed to drop root's file-access override")
    bench = Bench(tmp_path, request)
    args = case.arrange(bench)
    before = snapshot(tmp_path)
    prefix = UNPRIVILEGED if case.unprivileged else []
    result = subprocess.run(
        [*prefix, str(BIN / case.command), *args],
        cwd=tmp_path,
        env=environment(lego_cache_dir, bench),
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    shown = f"\n--- {case.command} {' '.join(args)}\n{output}"
    assert result.returncode == case.exit_code, f"exit code {result.returncode}{shown}"
    assert "Traceback" not in output, f"a traceback leaked{shown}"
    for text in case.names:
        assert text in output, f"{text!r} is not named{shown}"
    assert not (tmp_path / PWNED).exists(), f"loading the input ran code{shown}"
    assert snapshot(tmp_path) == before, f"files changed or appeared{shown}"


def test_there_is_a_row_for_every_command() -> None:
    commands = {case.command for case in CASES.values()}
    assert commands == {"kit-train", "kit-eval", "kit-render", "kit-export", "kit-process-data", "kit-download-data",
                        "kit-doctor"}  # fmt: skip
    assert len(CASES) >= 60
