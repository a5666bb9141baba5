"""kit-export: turn a trained run into files other tools open.

Examples: `kit-export pointcloud --load-config outputs/lego/vanilla-nerf/<timestamp> --num-points 200000`,
`kit-export mesh --load-config <run folder> --resolution 256 --level 50 --format obj`,
`kit-export cameras --load-config <run folder>/config.yml`.

pointcloud renders the training pixels (in random order) and keeps one point per ray whose accumulation reaches
--accumulation-threshold, at the ray's expected depth, inside the scene box (or the --bounding-box-min/max box, as
the viewer's crop panel prints it): a binary PLY with red/green/blue.
mesh samples the density on a --resolution^3 grid filling that box, runs marching cubes at density --level and
colours each vertex as seen head-on from outside: a PLY or OBJ (with `v x y z r g b`). cameras writes the training
cameras (image, 4x4 camera-to-world, fx, fy, cx, cy, width, height) and the scene box as JSON.
Positions are in the run's normalised frame; --coordinates dataset maps them back to the dataset's own coordinates
(e.g. COLMAP's) with the transform the run saved in dataparser_transforms.json.

Without --output-path the file goes to <run folder>/exports/ as pointcloud.ply, mesh.ply or mesh.obj, cameras.json.
Arguments are checked before the run is loaded; a file appears only once complete, and nothing is written on error.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, ClassVar, Literal

import numpy as np
import torch
import tyro
from jaxtyping import Float
from rich.console import Console

from nerfkit.configs.ranges import Count, Finite, Fraction, check_ranges, ranged
from nerfkit.data.dataparsers.scene_normalisation import poses_to_capture_coordinates, to_capture_coordinates
from nerfkit.data.scene_box import SceneBox
from nerfkit.engine.run_loading import LoadedRun, load_run
from nerfkit.errors import NerfkitError
from nerfkit.exporters.cameras import cameras_to_json
from nerfkit.exporters.files import write_obj, write_ply
from nerfkit.exporters.mesh import mesh_from_model
from nerfkit.exporters.point_cloud import point_cloud_from_cameras
from nerfkit.utils.cli import run_cli
from nerfkit.utils.files import check_writable_folder, write_json
from nerfkit.utils.progress import work_progress


@dataclass
class ExportConfig(ABC):
    """What every export shares."""

    load_config: Path
    """The run's config.yml (or the run folder), as kit-train printed at the end of training."""
    output_path: Path | None = None
    """The file to write; default <run folder>/exports/pointcloud.ply, mesh.ply (or .obj) or cameras.json."""
    coordinates: Literal["nerfkit", "dataset"] = "nerfkit"
    """Positions in the run's normalised frame, or mapped back to the dataset's own (e.g. COLMAP's) coordinates."""
    debug: bool = False
    """Show the full traceback of errors (NERFKIT_DEBUG=1 does too)."""

    stem: ClassVar[str]
    """The default file's name, without its suffix."""

    @abstractmethod
    def suffix(self) -> str:
        """The file's suffix, which tells viewers its format."""

    def check(self) -> None:
        """Rejects an --output-path that could not be written, before anything is loaded."""
        if self.output_path is None:
            return
        if self.output_path.suffix.lower() != self.suffix():
            raise NerfkitError(
                f"--output-path {self.output_path}: this export is written as {self.suffix()}",
                hint=f"name a {self.suffix()} file",
            )
        if self.output_path.is_dir():
            raise NerfkitError(f"--output-path {self.output_path} is a folder", hint=f"name a {self.suffix()} file")
        check_writable_folder(self.output_path.parent, "--output-path", self.output_path)

    def load(self, console: Console) -> LoadedRun:
        # The cameras do not depend on the weights, so any checkpoint and the CPU do.
        return load_run(self.load_config, device_type="cpu", console=console)

    def output_points(self, run: LoadedRun, points: Float[np.ndarray, "num 3"]) -> Float[np.ndarray, "num 3"]:
        """`points` in the frame --coordinates asks for."""
        if self.coordinates == "nerfkit":
            return points
        outputs = run.pipeline.datamanager.train_dataparser_outputs
        transform = outputs.dataparser_transform.double().numpy()
        return to_capture_coordinates(points.astype(np.float64), transform, outputs.dataparser_scale)

    def output(self, run: LoadedRun) -> Path:
        return self.output_path or run.run_dir / "exports" / f"{self.stem}{self.suffix()}"

    @abstractmethod
    def export(self, run: LoadedRun, path: Path, console: Console) -> str:
        """Writes the export to `path`; returns what was written, in words."""


@dataclass
class ModelExport(ExportConfig):
    """What the exports that query the trained model share."""

    load_step: ranged(int | None, min=0) = None
    """Export this step's checkpoint instead of the latest one."""
    device_type: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to run the model; auto takes the GPU when torch sees one."""
    ascii: bool = False
    """Write PLY as text instead of binary: larger and slower to read, but readable by eye."""
    bounding_box_min: ranged(tuple[float, float, float] | None) = None
    """Export only what lies in this box (min corner; give --bounding-box-max too), e.g. the viewer's crop box."""
    bounding_box_max: ranged(tuple[float, float, float] | None) = None
    """The box's max corner (default: the scene box)."""

    def check(self) -> None:
        super().check()
        low, high = self.bounding_box_min, self.bounding_box_max
        if (low is None) != (high is None):
            raise NerfkitError(
                "--bounding-box-min and --bounding-box-max go together", hint="give both corners, or neither"
            )
        if low is not None and high is not None:
            wrong = [axis for axis, a, b in zip("xyz", low, high, strict=True) if not a < b]
            if wrong:
                raise NerfkitError(
                    f"--bounding-box-min {low} is not below --bounding-box-max {high} in {', '.join(wrong)} coordinate",
                    hint="each coordinate of the min corner must be below the max corner's",
                )

    def load(self, console: Console) -> LoadedRun:
        return load_run(self.load_config, load_step=self.load_step, device_type=self.device_type, console=console)

    def export_box(self, run: LoadedRun) -> SceneBox:
        """The box the export is limited to: --bounding-box-min/max, else the scene box."""
        if self.bounding_box_min is None or self.bounding_box_max is None:
            return run.pipeline.datamanager.train_dataparser_outputs.scene_box
        return SceneBox(aabb=torch.tensor([self.bounding_box_min, self.bounding_box_max], dtype=torch.float32))


@dataclass
class PointCloudExport(ModelExport):
    """A coloured point cloud (PLY) from rays through the training pixels."""

    num_points: Count = 1_000_000
    """Points to write: a random sample of those that pass; fewer when not that many pass."""
    accumulation_threshold: Fraction = 0.5
    """Keep only rays at least this opaque (accumulation in [0, 1]); lower keeps fainter matter and more floaters."""
    num_rays_per_batch: Count = 32768
    """Rays rendered at once; lower it if rendering runs out of memory."""
    seed: ranged(int, min=0, max=2**32 - 1) = 0
    """Seed of the random order of the pixels, hence of which points are kept."""

    stem: ClassVar[str] = "pointcloud"

    def suffix(self) -> str:
        return ".ply"

    def export(self, run: LoadedRun, path: Path, console: Console) -> str:
        datamanager = run.pipeline.datamanager
        box = self.export_box(run)
        if self.bounding_box_min is not None:
            # Matter outside a chosen box must not hide what is inside it from the cameras.
            run.pipeline.model.crop_box = box
        with work_progress(console) as progress:
            task = progress.add_task("points", total=self.num_points)
            cloud = point_cloud_from_cameras(
                run.pipeline.model,
                datamanager.train_cameras,
                box,
                num_points=self.num_points,
                accumulation_threshold=self.accumulation_threshold,
                num_rays_per_batch=self.num_rays_per_batch,
                seed=self.seed,
                advance=lambda count: progress.advance(task, count),
            )
        if len(cloud) == 0:
            raise NerfkitError(
                f"no ray reaches accumulation {self.accumulation_threshold:g} inside the export box",
                hint="lower --accumulation-threshold, or train the run longer",
            )
        write_ply(path, self.output_points(run, cloud.positions), cloud.colours, ascii=self.ascii)
        if len(cloud) < self.num_points:
            console.print(f"note: only {len(cloud):,} of the {self.num_points:,} points asked for pass the threshold")
        return f"a point cloud of {len(cloud):,} points"


@dataclass
class MeshExport(ModelExport):
    """A coloured triangle mesh (PLY or OBJ) of the surface where the density crosses a level."""

    resolution: ranged(int, min=2) = 256
    """Grid points along each side of the scene box; the cost grows with its cube."""
    level: Finite = 25.0
    """The density (per scene unit) of the surface: higher keeps only denser matter, lower wraps faint haze too."""
    format: Literal["ply", "obj"] = "ply"
    """File format: PLY (binary unless --ascii) or OBJ (text, with `v x y z r g b` vertex colours)."""
    num_points_per_batch: Count = 65536
    """Points whose density or colour is queried at once; lower it if querying runs out of memory."""

    stem: ClassVar[str] = "mesh"

    def suffix(self) -> str:
        return f".{self.format}"

    def export(self, run: LoadedRun, path: Path, console: Console) -> str:
        with work_progress(console) as progress:
            task = progress.add_task("density grid", total=self.resolution**3)
            mesh = mesh_from_model(
                run.pipeline.model,
                self.export_box(run),
                resolution=self.resolution,
                level=self.level,
                num_points_per_batch=self.num_points_per_batch,
                advance=lambda count: progress.advance(task, count),
            )
        vertices = self.output_points(run, mesh.vertices)
        if self.format == "obj":
            write_obj(path, vertices, mesh.colours, mesh.faces)
        else:
            write_ply(path, vertices, mesh.colours, mesh.faces, ascii=self.ascii)
        return f"a mesh of {len(mesh.vertices):,} vertices and {len(mesh.faces):,} triangles"


@dataclass
class CamerasExport(ExportConfig):
    """The training cameras and the scene box (JSON)."""

    stem: ClassVar[str] = "cameras"

    def suffix(self) -> str:
        return ".json"

    def export(self, run: LoadedRun, path: Path, console: Console) -> str:
        outputs = run.pipeline.datamanager.train_dataparser_outputs
        cameras = run.pipeline.datamanager.train_cameras
        if self.coordinates == "dataset":
            poses = cameras.camera_to_worlds.double().cpu().numpy()
            transform = outputs.dataparser_transform.double().numpy()
            back = poses_to_capture_coordinates(poses, transform, outputs.dataparser_scale)
            cameras = dataclasses.replace(cameras, camera_to_worlds=torch.from_numpy(back))
        record = cameras_to_json(cameras, outputs.image_filenames, outputs.scene_box)
        write_json(
            path, {**record, "coordinates": self.coordinates, "dataparser_transform": outputs.transforms_record()}
        )
        return f"{len(outputs.image_filenames)} training cameras"


Command = (
    Annotated[PointCloudExport, tyro.conf.subcommand("pointcloud")]
    | Annotated[MeshExport, tyro.conf.subcommand("mesh")]
    | Annotated[CamerasExport, tyro.conf.subcommand("cameras")]
)


def main(argv: list[str]) -> int:
    config = tyro.cli(Command, args=argv, prog="kit-export", description=__doc__)
    check_ranges(config)
    config.check()
    console = Console(highlight=False, markup=False, soft_wrap=True)
    run = config.load(Console(stderr=True))
    path = config.output(run)
    console.print(f"exporting {run.checkpoint} ...")
    written = config.export(run, path, console)
    console.print(f"wrote {written} to {path}")
    return 0


def entrypoint() -> None:
    run_cli(main)


if __name__ == "__main__":
    entrypoint()
