"""The exports' file formats: PLY (binary or ASCII), OBJ with vertex colours, and JSON.

Every file is written through a temporary file beside it, so a failed or interrupted export leaves nothing at the
output path (or the previous file, whole), never a truncated file that a viewer would half-read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from jaxtyping import Float, Int, UInt8
from numpy.lib.recfunctions import unstructured_to_structured

from nerfkit.utils.files import atomic_output

PLY_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1")])
"""A coloured vertex as PLY stores it; the property names are the ones viewers recognise as colour."""

PLY_TRIANGLE = np.dtype([("count", "u1"), ("vertex_indices", "<i4", (3,))])
"""A face as PLY stores it: the vertex count (always 3), then the indices."""

FLOAT_FORMAT = "%.9g"
"""Enough digits for a float32 to read back exactly."""


def colour_bytes(colours: Float[np.ndarray, "num 3"]) -> UInt8[np.ndarray, "num 3"]:
    """Colours in [0, 1] as the 8-bit values PLY viewers expect."""
    return np.round(np.clip(colours, 0.0, 1.0) * 255.0).astype(np.uint8)


def ply_header(num_vertices: int, num_faces: int, ascii: bool) -> bytes:
    encoding = "ascii" if ascii else "binary_little_endian"
    lines = ["ply", f"format {encoding} 1.0", "comment written by nerfkit", f"element vertex {num_vertices}"]
    lines += [f"property float {axis}" for axis in "xyz"] + [f"property uchar {name}" for name in PLY_VERTEX.names[3:]]
    if num_faces:
        lines += [f"element face {num_faces}", "property list uchar int vertex_indices"]
    return ("\n".join([*lines, "end_header"]) + "\n").encode("ascii")


def write_ply(
    path: Path,
    positions: Float[np.ndarray, "num_vertices 3"],
    colours: Float[np.ndarray, "num_vertices 3"],
    faces: Int[np.ndarray, "num_faces 3"] | None = None,
    *,
    ascii: bool = False,
) -> None:
    """A coloured point cloud, or a mesh when `faces` are given; ASCII is larger but readable by eye."""
    faces = np.empty((0, 3), dtype=np.int32) if faces is None else faces
    vertex_rows = np.hstack([positions, colour_bytes(colours)])
    face_rows = np.hstack([np.full((len(faces), 1), 3), faces])
    with atomic_output(path) as file:
        file.write(ply_header(len(positions), len(faces), ascii))
        if ascii:
            np.savetxt(file, vertex_rows, fmt=[FLOAT_FORMAT] * 3 + ["%d"] * 3)
            np.savetxt(file, face_rows, fmt="%d")
        else:
            file.write(unstructured_to_structured(vertex_rows, dtype=PLY_VERTEX).tobytes())
            file.write(unstructured_to_structured(face_rows, dtype=PLY_TRIANGLE).tobytes())


def write_obj(
    path: Path,
    positions: Float[np.ndarray, "num_vertices 3"],
    colours: Float[np.ndarray, "num_vertices 3"],
    faces: Int[np.ndarray, "num_faces 3"],
) -> None:
    """A mesh as OBJ with the common `v x y z r g b` extension for vertex colours (in [0, 1]); faces count from 1."""
    with atomic_output(path) as file:
        file.write(b"# written by nerfkit\n")
        np.savetxt(file, np.hstack([positions, np.clip(colours, 0.0, 1.0)]), fmt="v " + " ".join([FLOAT_FORMAT] * 6))
        np.savetxt(file, faces + 1, fmt="f %d %d %d")
