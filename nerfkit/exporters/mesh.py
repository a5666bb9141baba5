"""Meshes from a model's density: sample it on a grid filling the scene box, take the surface where it crosses a
level (marching cubes), and colour each vertex from the field."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from jaxtyping import Float, Int
from skimage.measure import marching_cubes
from torch import Tensor

from nerfkit.data.scene_box import SceneBox
from nerfkit.errors import NerfkitError
from nerfkit.exporters import Advance
from nerfkit.models.base_model import Model
from nerfkit.pipelines.base_pipeline import evaluating

DensityFn = Callable[[Float[Tensor, "num_points 3"]], Float[Tensor, "num_points 1"]]
ColourFn = Callable[[Float[Tensor, "num_points 3"], Float[Tensor, "num_points 3"]], Float[Tensor, "num_points 3"]]


@dataclass
class Mesh:
    """A triangle mesh in world coordinates whose faces wind counter-clockwise seen from outside."""

    vertices: Float[np.ndarray, "num_vertices 3"]
    faces: Int[np.ndarray, "num_faces 3"]
    normals: Float[np.ndarray, "num_vertices 3"]
    """Unit normals pointing out of the matter, towards lower density."""
    colours: Float[np.ndarray, "num_vertices 3"] | None = None
    """Colours in [0, 1], once coloured."""


def grid_points(
    aabb: Float[Tensor, "2 3"], resolution: int, flat_indices: Int[Tensor, " num_points"]
) -> Float[Tensor, "num_points 3"]:
    """Points of a `resolution`^3 grid whose corners are the box's, numbered x-major (as numpy lays out [x, y, z])."""
    steps = torch.linspace(0.0, 1.0, resolution, device=aabb.device)
    cells = torch.stack(
        [flat_indices // resolution**2, flat_indices // resolution % resolution, flat_indices % resolution], dim=-1
    )
    return aabb[0] + steps[cells] * (aabb[1] - aabb[0])


def sample_density_grid(
    density_fn: DensityFn,
    aabb: Float[Tensor, "2 3"],
    resolution: int,
    num_points_per_batch: int,
    advance: Advance = lambda _: None,
) -> Float[np.ndarray, "resolution resolution resolution"]:
    """The density at every grid point, queried in batches so memory stays bounded whatever the resolution."""
    num_points = resolution**3
    densities = torch.empty(num_points)
    for start in range(0, num_points, num_points_per_batch):
        indices = torch.arange(start, min(start + num_points_per_batch, num_points), device=aabb.device)
        densities[start : start + len(indices)] = density_fn(grid_points(aabb, resolution, indices))[:, 0].float().cpu()
        advance(len(indices))
    return densities.reshape(resolution, resolution, resolution).numpy()


def surface_at_level(
    grid: Float[np.ndarray, "resolution resolution resolution"], aabb: Float[np.ndarray, "2 3"], level: float
) -> Mesh:
    """The surface where the density crosses `level`, uncoloured; a level no density crosses is a user error rather
    than an empty file."""
    lowest, highest = float(grid.min()), float(grid.max())
    if not lowest < level < highest:
        raise NerfkitError(
            f"no surface at level {level:g}: the density in the scene box ranges from {lowest:.4g} to {highest:.4g}",
            hint="choose a --level inside that range (higher keeps only denser matter)",
        )
    spacing = (aabb[1] - aabb[0]) / (grid.shape[0] - 1)
    vertices, faces, normals, _ = marching_cubes(grid, level, spacing=tuple(spacing), allow_degenerate=False)
    # scikit-image's normals point to lower values, out of the matter, but its triangles wind the other way round.
    return Mesh(vertices + aabb[0], np.ascontiguousarray(faces[:, ::-1]), normals)


def vertex_colours(
    colour_fn: ColourFn, mesh: Mesh, num_points_per_batch: int, device: torch.device
) -> Float[np.ndarray, "num_vertices 3"]:
    """Each vertex's colour as seen head-on from outside: along the inward normal.

    One direction per vertex rather than an average over many: it is the view that sees the surface most directly,
    and an average would blend in directions from which the surface is hidden or seen at grazing angles.
    """
    vertices = torch.as_tensor(mesh.vertices, dtype=torch.float32)
    directions = -torch.nn.functional.normalize(torch.as_tensor(mesh.normals, dtype=torch.float32), dim=-1)
    colours = []
    for start in range(0, len(vertices), num_points_per_batch):
        batch = slice(start, start + num_points_per_batch)
        colours.append(colour_fn(vertices[batch].to(device), directions[batch].to(device)).float().cpu())
    return torch.cat(colours).numpy()


def mesh_from_model(
    model: Model,
    scene_box: SceneBox,
    *,
    resolution: int,
    level: float,
    num_points_per_batch: int,
    advance: Advance = lambda _: None,
) -> Mesh:
    """The model's surface at density `level` inside the scene box, coloured; `advance` is told of grid points done."""
    aabb = scene_box.aabb.to(model.device)
    with evaluating(model):
        grid = sample_density_grid(model.query_density, aabb, resolution, num_points_per_batch, advance)
        mesh = surface_at_level(grid, aabb.cpu().numpy(), level)
        return replace(mesh, colours=vertex_colours(model.query_colour, mesh, num_points_per_batch, model.device))
