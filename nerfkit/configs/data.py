"""Where the rays come from: the datamanager's and dataparsers' configs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from nerfkit.configs.base_config import InstantiateConfig, Target
from nerfkit.configs.ranges import Count, Fraction, Positive, ranged

Split = Literal["train", "val", "test"]
"""A dataset split."""
EvalMode = Literal["auto", "interval", "fraction", "list", "all"]
"""How the eval images are chosen: the dataset's own split, else every n-th; or by interval, fraction, list, or all."""
ColmapReader = Literal["auto", "pycolmap", "nerfkit"]
"""Which reader parses a COLMAP model."""


@dataclass
class ColmapOptions:
    """Where a COLMAP dataset keeps its model and images, and which reader parses the model.

    The folders are strings, not Paths: a run makes every Path in its config absolute against the working directory,
    and these are relative to --data."""

    model_path: str | None = None
    """Folder of the model, relative to --data (None: the first of sparse/0, sparse, colmap/sparse/0, --data itself)."""
    images_path: str = "images"
    """Folder of the images the model names, relative to --data."""
    reader: ColmapReader = "auto"
    """Model reader: COLMAP's pycolmap (also checks the files agree), nerfkit's own, or auto: pycolmap if installed."""
    load_3d_points: bool = True
    """Keep the model's sparse 3D points and colours in the capture (e.g. to initialise or supervise a model)."""


@dataclass
class LLFFOptions:
    """Where an LLFF dataset keeps its images (a string relative to --data, like the COLMAP options' folders)."""

    images_path: str = "images"
    """Folder of the images, relative to --data; sorted by name, they match the rows of poses_bounds.npy."""


@dataclass
class DataParserConfig(InstantiateConfig):
    """Base config of a dataparser."""

    _target: Target = "nerfkit.data.dataparsers.base_dataparser:DataParser"
    data: Path | None = None
    """Folder of the dataset."""


@dataclass
class SceneDataParserConfig(DataParserConfig):
    """Any supported dataset (Blender, Nerfstudio, COLMAP, LLFF): the format is detected from --data, or named."""

    _target: Target = "nerfkit.data.dataparsers.scene_dataparser:SceneDataParser"
    """The class that `setup()` builds."""
    data: Path | None = None
    """Folder of the dataset (None: the built-in scene)."""
    format: Literal["auto", "blender", "nerfstudio", "colmap", "llff"] = "auto"
    """Dataset format; auto detects it from the files in --data and logs which it found."""
    downscale_factor: Count = 1
    """Divide image width and height by this factor; an images_<factor> folder is used when it exists."""
    orientation_method: Literal["auto", "up", "pca", "none"] = "auto"
    """Rotate the scene so +z is up: mean camera up, or least spread of the cameras (auto: none for Blender, up)."""
    center_method: Literal["auto", "poses", "focus", "none"] = "auto"
    """Origin at the mean camera position, or the point the cameras look at (auto: none for Blender, poses)."""
    scale_method: Literal["auto", "cameras", "none"] = "auto"
    """Scale so every camera lies in [-1, 1]^3 (auto: none for Blender, cameras)."""
    scale_factor: Positive = 1.0
    """Extra factor on the scene's scale, after scale_method."""
    scene_scale: ranged(float | None, above=0) = None
    """Half-size of the cube scene box (None: 1.5 for Blender, 1 for other formats)."""
    near_plane: ranged(float | None, min=0) = None
    """Distance from the camera where the scene starts (None: the format's, 2 for Blender, 0.05 otherwise)."""
    far_plane: ranged(float | None, above=0) = None
    """Distance from the camera where the scene ends (None: the format's, 6 for Blender, past the scene box)."""
    eval_mode: EvalMode = "auto"
    """Eval split: the dataset's own, else every eval_interval-th image; or interval, fraction, list, all."""
    eval_interval: Count = 8
    """With eval_mode interval: every eval_interval-th image (from the first, in name order) evaluates."""
    train_fraction: Fraction = 0.9
    """With eval_mode fraction: this share of the images, spread evenly, trains; the rest evaluate."""
    eval_list: Path | None = None
    """With eval_mode list: text file naming the eval images, one per line; the others train."""
    colmap: ColmapOptions = field(default_factory=ColmapOptions)
    """Options for COLMAP datasets."""
    llff: LLFFOptions = field(default_factory=LLFFOptions)
    """Options for LLFF datasets."""


@dataclass
class VanillaDataManagerConfig(InstantiateConfig):
    """Random pixels from all training images per batch; whole images for evaluation."""

    _target: Target = "nerfkit.data.datamanagers.vanilla_datamanager:VanillaDataManager"
    """The class that `setup()` builds."""
    data: Path | None = None
    """Folder of the dataset; overrides the dataparser's."""
    dataparser: SceneDataParserConfig = field(default_factory=SceneDataParserConfig)
    """Reads the dataset's files, in whichever supported format they are."""
    train_num_rays_per_batch: Count = 1024
    """Rays per training batch."""
    eval_num_rays_per_batch: Count = 1024
    """Rays per evaluation batch."""
    eval_split: Literal["val", "test"] = "val"
    """Split used for evaluation."""
    cache_dir: Path | None = None
    """Folder for downscaled images; None uses $NERFKIT_CACHE_DIR, else ~/.cache/nerfkit."""
