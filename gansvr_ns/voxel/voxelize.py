"""Ground-truth meshes -> occupancy grids, the targets of gansvr-voxel's 3D supervision.

The grid follows `projection`'s convention: R cells per axis over [-bound, bound]^3, indexed [i, j, k] along
x, y, z. A cell's value is the fraction of its volume inside the mesh, estimated from s^3 sub-cell centres:

    occ(i, j, k) = 1 / s^3 * sum_{sub-cells c of (i, j, k)} inside(centre(c))

with `inside` the ray-parity test of `gansvr_ns.eval.metrics.occupancy` (exact on a watertight mesh).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh

from gansvr_ns.data.format import FormatError
from gansvr_ns.eval.evaluate import load_mesh
from gansvr_ns.eval.metrics import grid_points, is_empty, occupancy


def voxelize_mesh(mesh: trimesh.Trimesh, resolution: int, bound: float = 1.0, supersample: int = 2,
                  num_rays: int = 1) -> np.ndarray:
    """(resolution, resolution, resolution) float32 fraction of each cell inside `mesh` (module docstring).

    `num_rays` odd rays vote per point: 1 is exact for the watertight meshes of the procedural source; more
    outvote stray crossings through holes of a non-watertight mesh.
    """
    if supersample < 1:
        raise ValueError(f"supersample must be >= 1, got {supersample}")
    fine = resolution * supersample
    corner = np.full(3, bound, dtype=np.float64)
    inside = occupancy(mesh, grid_points(-corner, corner, fine), num_rays)
    cells = inside.reshape(resolution, supersample, resolution, supersample, resolution, supersample)
    return cells.mean(axis=(1, 3, 5), dtype=np.float64).astype(np.float32)


def voxelize_file(path: Path, resolution: int, bound: float = 1.0, supersample: int = 2,
                  num_rays: int = 1) -> np.ndarray:
    """`voxelize_mesh` of a mesh file; an unreadable or empty mesh is a FormatError naming the file."""
    mesh = load_mesh(Path(path))
    if is_empty(mesh):
        raise FormatError(path, "ground-truth mesh has no faces")
    grid = voxelize_mesh(mesh, resolution, bound, supersample, num_rays)
    if not grid.any():
        raise FormatError(path, f"mesh encloses no cell of the {resolution}^3 grid over [-{bound}, {bound}]^3")
    return grid
