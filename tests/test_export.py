"""kit-export and its library: point clouds, meshes and cameras that standard readers open, with known answers on an
analytic sphere, and user errors that exit 1 with a message and write nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import plyfile
import pytest
import torch
import trimesh
from jaxtyping import Float
from torch import Tensor, nn

from nerfkit.cameras.rays import RayBundle
from nerfkit.configs.models import InstantNGPModelConfig, ModelConfig, VanillaOccupancyModelConfig
from nerfkit.data.builtin_scene import split_cameras
from nerfkit.data.scene_box import SceneBox
from nerfkit.engine.run_loading import LoadedRun, load_run
from nerfkit.errors import NerfkitError
from nerfkit.exporters.files import write_obj, write_ply
from nerfkit.exporters.mesh import mesh_from_model, sample_density_grid, surface_at_level
from nerfkit.exporters.point_cloud import pixel_rays, point_cloud_from_cameras
from nerfkit.models.base_model import Model
from nerfkit.pipelines.base_pipeline import evaluating
from nerfkit.scripts.export import main
from nerfkit.utils.cli import run_cli

BOX = SceneBox.cube(1.5)
"""The scene box of lego and of the built-in scene."""
RADIUS = 0.5
"""Radius of the analytic sphere."""

Export = Callable[..., tuple[int, str, str]]


class AnalyticSphere(nn.Module):
    """A sphere at the origin that renders and answers queries in closed form, so exports have exact answers.

    Its density falls linearly with the distance from the centre and crosses 0 at RADIUS; its colour is the query
    direction mapped to [0, 1], which tells which direction an export asked from. Rays that hit it reach `opacity`
    and render red over a white background.
    """

    def __init__(self, opacity: float = 0.6) -> None:
        super().__init__()
        self.opacity = opacity
        self.register_buffer("_device_marker", torch.empty(0))

    @property
    def device(self) -> torch.device:
        return self._device_marker.device

    def forward(self, rays: RayBundle) -> dict[str, Tensor]:
        along = (rays.origins * rays.directions).sum(dim=-1, keepdim=True)
        discriminant = along**2 - (rays.origins**2).sum(dim=-1, keepdim=True) + RADIUS**2
        hit = discriminant > 0
        accumulation = hit * self.opacity
        background = torch.ones_like(rays.origins)
        red = torch.tensor([1.0, 0.0, 0.0])
        return {
            "rgb": accumulation * red + (1.0 - accumulation) * background,
            "depth": torch.where(hit, -along - discriminant.clamp_min(0).sqrt(), 6.0),
            "accumulation": accumulation,
            "background": background,
        }

    def query_density(self, positions: Float[Tensor, "num 3"]) -> Float[Tensor, "num 1"]:
        return 10.0 * (RADIUS - positions.norm(dim=-1, keepdim=True))

    def query_colour(self, positions: Float[Tensor, "num 3"], directions: Float[Tensor, "num 3"]) -> Tensor:
        return (directions + 1.0) / 2.0


@pytest.fixture
def export(capsys: pytest.CaptureFixture[str]) -> Export:
    """Runs kit-export in this process as its console script does: `export(*argv)` -> (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exit_info:
            run_cli(main, list(argv))
        captured = capsys.readouterr()
        return exit_info.value.code, captured.out, captured.err

    return run


@pytest.fixture(scope="module")
def loaded_run(tiny_lego_run: Path) -> LoadedRun:
    return load_run(tiny_lego_run, device_type="cpu")


def assert_inside_box(points: Float[np.ndarray, "num 3"]) -> None:
    aabb = BOX.aabb.numpy()
    assert len(points) > 0
    assert ((points >= aabb[0] - 1e-5) & (points <= aabb[1] + 1e-5)).all()


def test_point_cloud_of_a_sphere_lies_on_it_with_its_own_colour() -> None:
    cloud = point_cloud_from_cameras(
        AnalyticSphere(opacity=0.6),
        split_cameras("train", image_size=16),
        BOX,
        num_points=500,
        accumulation_threshold=0.5,
        num_rays_per_batch=1000,
    )
    assert len(cloud) == 500
    np.testing.assert_allclose(np.linalg.norm(cloud.positions, axis=-1), RADIUS, atol=1e-5)
    # The white background that shows through the 60 % opaque sphere is taken out again.
    np.testing.assert_allclose(cloud.colours, np.tile([1.0, 0.0, 0.0], (500, 1)), atol=1e-5)


def test_point_cloud_keeps_every_passing_pixel_once_when_fewer_than_asked() -> None:
    cameras = split_cameras("val", image_size=16)
    settings = {"num_points": 10**6, "accumulation_threshold": 0.5, "num_rays_per_batch": 300}
    cloud = point_cloud_from_cameras(AnalyticSphere(), cameras, BOX, **settings)
    every_pixel = pixel_rays(cameras, torch.arange(len(cameras) * 16 * 16))
    assert len(cloud) == int((AnalyticSphere()(every_pixel)["accumulation"] > 0).sum()) > 0
    assert len(np.unique(cloud.positions, axis=0)) == len(cloud)
    too_faint = point_cloud_from_cameras(AnalyticSphere(opacity=0.4), cameras, BOX, **settings)
    assert len(too_faint) == 0


def test_mesh_of_a_sphere_lies_on_it_faces_outwards_and_is_coloured_head_on() -> None:
    resolution = 33
    mesh = mesh_from_model(AnalyticSphere(), BOX, resolution=resolution, level=0.0, num_points_per_batch=5000)
    cell = 3.0 / (resolution - 1)
    radii = np.linalg.norm(mesh.vertices, axis=-1)
    assert np.abs(radii - RADIUS).max() < cell
    outward = mesh.vertices / radii[:, None]
    assert (np.sum(mesh.normals * outward, axis=-1) > 0.9).all()
    triangles = trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)
    assert triangles.is_watertight
    assert (np.sum(triangles.face_normals * triangles.triangles_center, axis=-1) > 0).all()
    # Colour is queried along the inward normal: a view looking straight at the surface.
    np.testing.assert_allclose(mesh.colours, (1.0 - mesh.normals) / 2.0, atol=1e-5)


def test_density_grid_is_sampled_at_the_box_corners_in_numpy_order() -> None:
    def x_only(positions: Tensor) -> Tensor:
        return positions[:, :1]

    advanced: list[int] = []
    grid = sample_density_grid(x_only, BOX.aabb, 5, num_points_per_batch=7, advance=advanced.append)
    assert grid.shape == (5, 5, 5) and sum(advanced) == 125
    np.testing.assert_allclose(grid[:, 2, 3], np.linspace(-1.5, 1.5, 5))
    assert np.ptp(grid[1]) == 0


@pytest.mark.parametrize("level", [-1e3, 1e3])
def test_a_level_no_density_crosses_is_an_error(level: float) -> None:
    grid = np.linspace(0.0, 1.0, 8).reshape(2, 2, 2)
    with pytest.raises(NerfkitError, match="no surface at level .* ranges from 0 to 1"):
        surface_at_level(grid, BOX.aabb.numpy(), level)


def test_ply_and_obj_writers_round_trip(tmp_path: Path) -> None:
    positions = np.random.default_rng(0).uniform(-1, 1, (6, 3)).astype(np.float32)
    colours = np.linspace(0.0, 1.0, 18).reshape(6, 3)
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    for ascii in (False, True):
        write_ply(tmp_path / "points.ply", positions, colours, ascii=ascii)
        vertex = plyfile.PlyData.read(tmp_path / "points.ply")["vertex"]
        np.testing.assert_array_equal(np.stack([vertex[axis] for axis in "xyz"], axis=-1), positions)
        np.testing.assert_array_equal(
            np.stack([vertex[name] for name in ("red", "green", "blue")], axis=-1), np.round(colours * 255)
        )
        write_ply(tmp_path / "mesh.ply", positions, colours, faces, ascii=ascii)
        assert trimesh.load(tmp_path / "mesh.ply", process=False).faces.tolist() == faces.tolist()
    write_obj(tmp_path / "mesh.obj", positions, colours, faces)
    obj = trimesh.load(tmp_path / "mesh.obj", process=False)
    assert obj.faces.tolist() == faces.tolist()
    np.testing.assert_allclose(obj.vertices, positions, atol=1e-6)
    np.testing.assert_array_equal(obj.visual.vertex_colors[:, :3], np.round(colours * 255))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["mesh.obj", "mesh.ply", "points.ply"]


def tiny_ngp() -> Model:
    config = InstantNGPModelConfig(
        num_levels=2, log2_hashmap_size=8, max_resolution=32, hidden_dim=16, hidden_dim_color=16, near_plane=2.0
    )
    return config.setup(scene_box=BOX, num_train_data=1, far_plane=6.0)


def tiny_nerf_occupancy() -> Model:
    config = VanillaOccupancyModelConfig(
        base_mlp_num_layers=2, base_mlp_layer_width=16, head_mlp_layer_width=8, skip_connections=()
    )
    return config.setup(scene_box=BOX, num_train_data=1, near_plane=2.0, far_plane=6.0)


def test_models_answer_density_and_colour_queries_as_their_rendering_field(loaded_run: LoadedRun) -> None:
    positions = torch.rand(50, 3) * 4.0 - 2.0
    directions = torch.nn.functional.normalize(torch.randn(50, 3), dim=-1)
    vanilla, occupancy, ngp = loaded_run.pipeline.model, tiny_nerf_occupancy(), tiny_ngp()
    expected = {
        vanilla: vanilla.field_fine.query(positions, directions),
        occupancy: occupancy.field.query(positions, directions),
        ngp: ngp.field(positions, directions),
    }
    for model, (density, colour) in expected.items():
        with evaluating(model):
            torch.testing.assert_close(model.query_density(positions), density)
            torch.testing.assert_close(model.query_colour(positions, directions), colour)
    outside = (positions.abs() > 1.5).any(dim=-1)
    assert (ngp.query_density(positions)[outside] == 0).all() and (ngp.query_density(positions)[~outside] > 0).all()


def test_a_model_without_queries_says_it_cannot_be_meshed() -> None:
    model = Model(ModelConfig(), BOX, num_train_data=1)
    with pytest.raises(NerfkitError, match="cannot be queried at arbitrary points"):
        model.query_density(torch.zeros(1, 3))


@pytest.mark.parametrize("ascii", [False, True])
def test_pointcloud_command_writes_a_ply_with_the_requested_points(
    tiny_lego_run: Path, tmp_path: Path, export: Export, ascii: bool
) -> None:
    output = tmp_path / "points.ply"
    code, out, _ = export(
        "pointcloud", "--load-config", str(tiny_lego_run), "--output-path", str(output), "--device-type", "cpu",
        "--num-points", "300", "--accumulation-threshold", "0.05", "--num-rays-per-batch", "512",
        *(["--ascii"] if ascii else []),
    )  # fmt: skip
    assert code == 0 and f"wrote a point cloud of 300 points to {output}" in out
    ply = plyfile.PlyData.read(output)
    assert ply.text == ascii
    vertex = ply["vertex"]
    assert vertex.count == 300
    assert_inside_box(np.stack([vertex[axis] for axis in "xyz"], axis=-1))
    assert all(vertex[name].dtype == np.uint8 for name in ("red", "green", "blue"))


def midpoint_density(loaded_run: LoadedRun, resolution: int) -> float:
    """A level the barely trained run's density surely crosses (it has no real surface yet)."""
    with evaluating(loaded_run.pipeline.model):
        grid = sample_density_grid(loaded_run.pipeline.model.query_density, BOX.aabb, resolution, 4096)
    return float(grid.min() + grid.max()) / 2


@pytest.mark.parametrize("file_format", ["ply", "obj"])
def test_mesh_command_writes_a_mesh_inside_the_box(
    tiny_lego_run: Path, loaded_run: LoadedRun, tmp_path: Path, export: Export, file_format: str
) -> None:
    output = tmp_path / f"lego.{file_format}"
    level = midpoint_density(loaded_run, 12)
    code, out, _ = export(
        "mesh", "--load-config", str(tiny_lego_run), "--output-path", str(output), "--device-type", "cpu",
        "--resolution", "12", "--level", str(level), "--format", file_format,
    )  # fmt: skip
    assert code == 0 and f"to {output}" in out
    mesh = trimesh.load(output, process=False)
    assert len(mesh.faces) > 0 and len(mesh.vertices) == len(mesh.visual.vertex_colors)
    assert_inside_box(mesh.vertices)


def test_cameras_command_round_trips_the_training_cameras(
    tiny_lego_run: Path, loaded_run: LoadedRun, tmp_path: Path, export: Export
) -> None:
    run_copy = tmp_path / "run"
    shutil.copytree(tiny_lego_run, run_copy)
    code, out, _ = export("cameras", "--load-config", str(run_copy / "config.yml"))
    output = run_copy / "exports" / "cameras.json"
    assert code == 0 and f"to {output}" in out
    exported = json.loads(output.read_text())
    datamanager = loaded_run.pipeline.datamanager
    cameras = datamanager.train_cameras
    frames = exported["cameras"]
    assert [frame["file_path"] for frame in frames] == [
        str(name) for name in datamanager.train_dataparser_outputs.image_filenames
    ]
    matrices = torch.tensor([frame["camera_to_world"] for frame in frames])
    torch.testing.assert_close(matrices[:, :3], cameras.camera_to_worlds)
    torch.testing.assert_close(matrices[:, 3], torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(len(frames), 4))
    for name in ("fx", "fy", "cx", "cy", "width", "height"):
        torch.testing.assert_close(torch.tensor([frame[name] for frame in frames]), getattr(cameras, name))
    assert all(frame["camera_model"] == "PINHOLE" and frame["distortion_params"] == [0.0] * 6 for frame in frames)
    assert exported["scene_box"] == {"min": [-1.5] * 3, "max": [1.5] * 3}


@pytest.mark.parametrize(("command", "suffix"), [("pointcloud", ".ply"), ("mesh", ".obj"), ("cameras", ".json")])
def test_a_missing_run_is_named(tmp_path: Path, export: Export, command: str, suffix: str) -> None:
    missing = tmp_path / "no_such_run"
    arguments = ["--load-config", str(missing), "--output-path", str(tmp_path / f"out{suffix}")]
    code, _, err = export(command, *arguments, *(["--format", "obj"] if command == "mesh" else []))
    assert code == 1 and f"run config {missing} not found" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


BAD_ARGUMENTS = [
    (["pointcloud", "--num-points", "0"], "--num-points must be >= 1, got 0"),
    (["pointcloud", "--num-points", "-5"], "--num-points must be >= 1, got -5"),
    (["pointcloud", "--num-rays-per-batch", "0"], "--num-rays-per-batch must be >= 1, got 0"),
    (["pointcloud", "--accumulation-threshold", "1.5"], "--accumulation-threshold must be 0 to 1, got 1.5"),
    (["pointcloud", "--seed", "-1"], "--seed must be 0 to 4294967295, got -1"),
    (["mesh", "--resolution", "1"], "--resolution must be >= 2, got 1"),
    (["mesh", "--num-points-per-batch", "0"], "--num-points-per-batch must be >= 1, got 0"),
    (["mesh", "--level", "nan"], "--level must be finite, got nan"),
    (["mesh", "--format", "obj", "--output-path", "out.ply"], "--output-path out.ply: this export is written as .obj"),
    (["cameras", "--output-path", "out.txt"], "--output-path out.txt: this export is written as .json"),
]


@pytest.mark.parametrize(("arguments", "message"), BAD_ARGUMENTS)
def test_bad_arguments_fail_before_loading(
    tmp_path: Path, export: Export, monkeypatch: pytest.MonkeyPatch, arguments: list[str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    # The run does not exist: the arguments must be refused before anything looks for it.
    code, _, err = export(*arguments, "--load-config", "no_such_run")
    assert code == 1 and message in err and "not found" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_level_no_density_crosses_leaves_the_output_alone(
    tiny_lego_run: Path, tmp_path: Path, export: Export
) -> None:
    output = tmp_path / "mesh.ply"
    output.write_text("an earlier export")
    code, _, err = export(
        "mesh", "--load-config", str(tiny_lego_run), "--output-path", str(output), "--device-type", "cpu",
        "--resolution", "8", "--level", "1e9",
    )  # fmt: skip
    assert code == 1 and "no surface at level 1e+09" in err and "--level" in err
    assert output.read_text() == "an earlier export" and list(tmp_path.iterdir()) == [output]


def test_console_script_reports_a_missing_run(tmp_path: Path) -> None:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("NERFKIT_")}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "kit-export"), "mesh", "--load-config", str(tmp_path / "nope")],
        capture_output=True, text=True, env=environment, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and f"{tmp_path / 'nope'}" in result.stderr and "Traceback" not in result.stderr


def test_cameras_in_dataset_coordinates_undo_the_dataparser_transform(
    tiny_lego_run: Path, lego_dir: Path, tmp_path: Path, export: Export
) -> None:
    """A run whose dataparser re-oriented, centred and scaled lego exports the poses of lego's own transforms file."""
    run_copy = tmp_path / "run"
    shutil.copytree(tiny_lego_run, run_copy)
    config_path = run_copy / "config.yml"
    settings = "        orientation_method: pca\n        center_method: focus\n        scale_method: cameras\n"
    text = config_path.read_text()
    for name in ("orientation_method", "center_method", "scale_method"):
        text = text.replace(f"        {name}: auto\n", "")
    config_path.write_text(text.replace("        scale_factor:", settings + "        scale_factor:", 1))
    code, _, err = export("cameras", "--load-config", str(config_path), "--coordinates", "dataset")
    assert code == 0, err
    exported = json.loads((run_copy / "exports" / "cameras.json").read_text())
    assert exported["coordinates"] == "dataset" and exported["dataparser_transform"]["scale"] != 1.0
    originals = {
        str(lego_dir / f"{frame['file_path']}.png"): frame["transform_matrix"]
        for frame in json.loads((lego_dir / "transforms_train.json").read_text())["frames"]
    }
    for frame in exported["cameras"]:
        np.testing.assert_allclose(frame["camera_to_world"], originals[frame["file_path"]], atol=1e-5)
