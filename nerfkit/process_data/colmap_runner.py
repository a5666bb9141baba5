"""Structure from motion with COLMAP: feature extraction, matching and incremental mapping, through pycolmap (COLMAP's
Python bindings, the default) or a `colmap` program, behind one small interface.

The program's flags changed over the years, so they are chosen from the version it reports: COLMAP 3.13 moved
`use_gpu` and `max_image_size` from the SiftExtraction/SiftMatching groups to FeatureExtraction/FeatureMatching and
rejects the old names. Every image shares one camera (`single_camera`), which suits one device taking a scene and
makes its intrinsics far better constrained than per-image ones.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from nerfkit.data.colmap_model import ColmapModel, model_format, read_model
from nerfkit.errors import NerfkitError

MatchingMethod = Literal["exhaustive", "sequential", "vocab_tree"]
SfmTool = Literal["pycolmap", "colmap-binary"]
CameraType = Literal["perspective", "fisheye", "pinhole"]
COLMAP_CAMERA_MODELS: dict[str, str] = {"perspective": "OPENCV", "fisheye": "OPENCV_FISHEYE", "pinhole": "PINHOLE"}
"""COLMAP's camera model for each --camera-type; all three have a Nerfstudio equivalent of the same name."""
FEATURE_GROUPS_SINCE = (3, 13)
"""The first COLMAP version whose flags are --FeatureExtraction.* / --FeatureMatching.* (colmap/colmap#3465)."""
RANDOM_SEED = 0
"""Seeds pycolmap's RANSAC and mapper, so reruns on the same images agree (closely: threads still vary the order)."""
OUTPUT_LINES_KEPT = 15
"""Lines of a failed program's output shown in the error."""
INSTALL_HINT = (
    "Install COLMAP's Python bindings with `pip install pycolmap` (or `pip install nerfkit[colmap]`), or install the "
    "COLMAP program (`apt-get install colmap`) and add --sfm-tool colmap-binary."
)


@dataclass(frozen=True)
class SfmSettings:
    """What the user chose about structure from motion."""

    camera_model: str
    """COLMAP's camera model name, e.g. OPENCV."""
    matching_method: MatchingMethod
    use_gpu: bool
    max_image_size: int
    """Images are downscaled to at most this size for feature extraction only; keypoints are scaled back."""
    vocab_tree_path: Path | None
    verbose: bool
    """Show COLMAP's own log."""


class SfmBackend(ABC):
    """The three COLMAP steps; each writes into COLMAP's database or model folder."""

    counts_registrations: ClassVar[bool] = False
    """Whether `map` reports each registered image, so mapping can show a count."""

    def __init__(self, settings: SfmSettings) -> None:
        self.settings = settings

    @abstractmethod
    def extract_features(self, database: Path, images: Path) -> None:
        """Adds every image in `images` to a new `database` with its SIFT features."""

    @abstractmethod
    def match(self, database: Path) -> None:
        """Matches features between image pairs chosen by the matching method, and verifies them geometrically."""

    @abstractmethod
    def map(self, database: Path, images: Path, sparse: Path, advance: Callable[[int], None]) -> None:
        """Writes one model per connected group of images to sparse/0, sparse/1, ...; `advance` counts images
        registered, where the backend can tell."""


def import_pycolmap() -> Any:
    try:
        import pycolmap
    except ImportError as error:
        found = shutil.which("colmap")
        also = f" A COLMAP program was found at {found}: add --sfm-tool colmap-binary to use it." if found else ""
        raise NerfkitError("pycolmap, COLMAP's Python bindings, is not installed.", INSTALL_HINT + also) from error
    return pycolmap


class PycolmapBackend(SfmBackend):
    """COLMAP in-process through pycolmap; its log is silenced below errors unless verbose."""

    counts_registrations: ClassVar[bool] = True

    def __init__(self, settings: SfmSettings) -> None:
        super().__init__(settings)
        self.pycolmap = import_pycolmap()
        if settings.use_gpu and not self.pycolmap.has_cuda:
            raise NerfkitError(
                "--gpu was given but this pycolmap was built without CUDA.",
                "Install the CUDA build (`pip install pycolmap-cuda12`, Linux) in place of pycolmap, or drop --gpu.",
            )
        self.device = self.pycolmap.Device.cuda if settings.use_gpu else self.pycolmap.Device.cpu

    @contextmanager
    def _logging(self) -> Iterator[None]:
        """COLMAP's log on stderr only: by default glog also leaves log files in the temporary folder."""
        logging = self.pycolmap.logging
        previous = logging.minloglevel, logging.logtostderr
        logging.minloglevel = logging.INFO if self.settings.verbose else logging.ERROR
        logging.logtostderr = True
        try:
            yield
        finally:
            logging.minloglevel, logging.logtostderr = previous

    def extract_features(self, database: Path, images: Path) -> None:
        pycolmap = self.pycolmap
        with self._logging():
            pycolmap.extract_features(
                database,
                images,
                camera_mode=pycolmap.CameraMode.SINGLE,
                reader_options=pycolmap.ImageReaderOptions(camera_model=self.settings.camera_model),
                extraction_options=pycolmap.FeatureExtractionOptions(max_image_size=self.settings.max_image_size),
                device=self.device,
            )

    def match(self, database: Path) -> None:
        pycolmap = self.pycolmap
        verification = pycolmap.TwoViewGeometryOptions()
        verification.ransac.random_seed = RANDOM_SEED
        common = {"verification_options": verification, "device": self.device}
        method = self.settings.matching_method
        with self._logging():
            if method == "exhaustive":
                pycolmap.match_exhaustive(database, **common)
            elif method == "sequential":
                pycolmap.match_sequential(database, **common)
            else:
                pairing = pycolmap.VocabTreePairingOptions(vocab_tree_path=str(self.settings.vocab_tree_path))
                pycolmap.match_vocabtree(database, pairing_options=pairing, **common)

    def map(self, database: Path, images: Path, sparse: Path, advance: Callable[[int], None]) -> None:
        with self._logging():
            self.pycolmap.incremental_mapping(
                database,
                images,
                sparse,
                self.pycolmap.IncrementalPipelineOptions(random_seed=RANDOM_SEED),
                initial_image_pair_callback=lambda: advance(2),
                next_image_callback=lambda: advance(1),
            )


def parse_colmap_version(text: str) -> tuple[int, int] | None:
    """(major, minor) from COLMAP's banner, e.g. 'COLMAP 3.8 -- Structure-from-Motion ...' or 'COLMAP 3.13.0.dev0'."""
    match = re.search(r"COLMAP (\d+)\.(\d+)", text)
    return (int(match.group(1)), int(match.group(2))) if match else None


def option_groups(version: tuple[int, int]) -> tuple[str, str]:
    """The flag groups holding use_gpu and max_image_size, for feature extraction and for matching."""
    if version >= FEATURE_GROUPS_SINCE:
        return "FeatureExtraction", "FeatureMatching"
    return "SiftExtraction", "SiftMatching"


def _flag(value: bool) -> str:
    return "1" if value else "0"


def feature_extractor_args(version: tuple[int, int], settings: SfmSettings, database: Path, images: Path) -> list[str]:
    extraction, _ = option_groups(version)
    return [
        "feature_extractor",
        "--database_path", str(database),
        "--image_path", str(images),
        "--ImageReader.single_camera", "1",
        "--ImageReader.camera_model", settings.camera_model,
        f"--{extraction}.use_gpu", _flag(settings.use_gpu),
        f"--{extraction}.max_image_size", str(settings.max_image_size),
    ]  # fmt: skip


def matcher_args(version: tuple[int, int], settings: SfmSettings, database: Path) -> list[str]:
    _, matching = option_groups(version)
    args = [
        f"{settings.matching_method}_matcher",
        "--database_path", str(database),
        f"--{matching}.use_gpu", _flag(settings.use_gpu),
    ]  # fmt: skip
    if settings.matching_method == "vocab_tree":
        args += ["--VocabTreeMatching.vocab_tree_path", str(settings.vocab_tree_path)]
    return args


def mapper_args(database: Path, images: Path, sparse: Path) -> list[str]:
    return ["mapper", "--database_path", str(database), "--image_path", str(images), "--output_path", str(sparse)]


class BinaryBackend(SfmBackend):
    """A `colmap` program run as a subprocess; its output is kept for errors, or streamed when verbose."""

    def __init__(self, settings: SfmSettings, colmap_cmd: str) -> None:
        super().__init__(settings)
        executable = shutil.which(colmap_cmd)
        if executable is None:
            raise NerfkitError(
                f"The COLMAP program {colmap_cmd!r} (--colmap-cmd) was not found.",
                "Install it (`apt-get install colmap`) or give its path with --colmap-cmd; or drop --sfm-tool "
                "colmap-binary to use pycolmap (`pip install pycolmap`).",
            )
        self.executable = executable
        self.version = self._version()

    def _version(self) -> tuple[int, int]:
        """Read from `colmap -h`, or `colmap version` for builds whose help lacks the banner."""
        for command in ("-h", "version"):
            result = subprocess.run([self.executable, command], capture_output=True, text=True, check=False)
            version = parse_colmap_version(result.stdout + result.stderr)
            if version is not None:
                return version
        raise NerfkitError(
            f"{self.executable} did not say which COLMAP version it is (in `colmap -h` or `colmap version`).",
            "Check that --colmap-cmd names the COLMAP program.",
        )

    def _run(self, args: list[str]) -> None:
        last_lines: deque[str] = deque(maxlen=OUTPUT_LINES_KEPT)
        command = [self.executable, *args]
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as colmap:
            assert colmap.stdout is not None
            for line in colmap.stdout:
                last_lines.append(line)
                if self.settings.verbose:
                    print(line, end="")
        if colmap.returncode != 0:
            raise NerfkitError(
                f"`colmap {args[0]}` failed (exit code {colmap.returncode}); its last output:\n{''.join(last_lines)}",
                "--verbose shows COLMAP's whole output.",
            )

    def extract_features(self, database: Path, images: Path) -> None:
        self._run(feature_extractor_args(self.version, self.settings, database, images))

    def match(self, database: Path) -> None:
        self._run(matcher_args(self.version, self.settings, database))

    def map(self, database: Path, images: Path, sparse: Path, advance: Callable[[int], None]) -> None:
        sparse.mkdir(parents=True, exist_ok=True)
        self._run(mapper_args(database, images, sparse))


def make_backend(tool: SfmTool, settings: SfmSettings, colmap_cmd: str) -> SfmBackend:
    """The chosen back-end, checked to be usable before any work starts."""
    if settings.matching_method == "vocab_tree" and settings.vocab_tree_path is None:
        raise NerfkitError(
            "--matching-method vocab_tree needs a vocabulary tree file.",
            "Download one from COLMAP's website (e.g. vocab_tree_flickr100K_words32K.bin) and give it with "
            "--vocab-tree-path, or use --matching-method exhaustive or sequential.",
        )
    return PycolmapBackend(settings) if tool == "pycolmap" else BinaryBackend(settings, colmap_cmd)


@dataclass(frozen=True)
class MapperResult:
    """The model kept from the mapper's output, and how many images each model it made holds."""

    model: ColmapModel
    sizes: list[int]
    """Registered images of every model, largest (the kept one) first."""


def keep_largest_model(sparse: Path, num_images: int, matching_method: MatchingMethod) -> MapperResult:
    """The model with the most registered images, renamed to sparse/0 if the mapper numbered it otherwise.

    The mapper starts a new model whenever it cannot extend the current one, so a capture with a weak link splits;
    the largest part is the most useful, and Nerfstudio's tools look for sparse/0."""
    folders = sorted(path for path in sparse.iterdir() if model_format(path) is not None) if sparse.is_dir() else []
    if not folders:
        raise NerfkitError(
            f"COLMAP's mapper made no model from the {num_images} images: no two of them matched well enough.",
            too_few_hint(matching_method),
        )
    models = {folder: read_model(folder) for folder in folders}
    largest = max(folders, key=lambda folder: len(models[folder].images))
    first = sparse / "0"
    if largest != first:
        swap = sparse / ".swap"
        if first.exists():
            first.rename(swap)
        largest.rename(first)
        if swap.exists():
            swap.rename(largest)
    sizes = sorted((len(model.images) for model in models.values()), reverse=True)
    return MapperResult(models[largest], sizes)


def too_few_hint(matching_method: MatchingMethod) -> str:
    """What usually helps when images do not register."""
    exhaustive = "" if matching_method == "exhaustive" else " Try --matching-method exhaustive (slower: every pair)."
    return (
        "Take images with more overlap between neighbouring views, and leave out blurry ones." + exhaustive + " "
        "--verbose shows COLMAP's log."
    )


def check_registered(registered: int, total: int, min_fraction: float, matching_method: MatchingMethod) -> None:
    if registered < min_fraction * total:
        raise NerfkitError(
            f"COLMAP registered only {registered} of {total} images, fewer than --min-registered-fraction "
            f"{min_fraction:g} of them.",
            too_few_hint(matching_method) + " A lower --min-registered-fraction accepts the partial model.",
        )
