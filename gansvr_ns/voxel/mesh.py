"""From a decoded occupancy grid to a vertex-coloured mesh: marching cubes on the trilinear occupancy."""

from __future__ import annotations

import numpy as np
import torch
import trimesh
from jaxtyping import Float
from torch import Tensor

from gansvr_ns.model.extract import marching_cubes
from gansvr_ns.voxel.projection import sample_grid


def lattice_points(resolution: int, bound: float = 1.0, device: torch.device | str = "cpu") -> Tensor:
    """(resolution^3, 3) points of the lattice linspace(-bound, bound, resolution)^3, x slowest (ij order)."""
    lin = torch.linspace(-bound, bound, resolution, device=device)
    return torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), dim=-1).reshape(-1, 3)


def sample_points(grid: Float[Tensor, "channels res res res"], points: Float[Tensor, "num_points 3"],
                  bound: float = 1.0, chunk: int = 262144) -> Float[Tensor, "num_points channels"]:
    """Trilinear values of one grid at arbitrary points (0 outside the cube), in chunks."""
    rows = []
    for start in range(0, len(points), chunk):
        part = points[start : start + chunk][None]
        rows.append(sample_grid(grid[None], part, torch.zeros(1, dtype=torch.long, device=grid.device), bound)[0])
    return torch.cat(rows) if rows else points.new_zeros(0, grid.shape[0])


@torch.no_grad()
def grid_to_mesh(grid: Float[Tensor, "4 res res res"], resolution: int = 128, level: float = 0.5,
                 bound: float = 1.0) -> trimesh.Trimesh:
    """Iso-surface occupancy = `level` of a decoded grid (channel 0 occupancy, 1-3 colour, all in [0, 1]).

    The occupancy is resampled trilinearly on a resolution^3 lattice over [-bound, bound]^3 and handed to
    marching cubes as f = level - occupancy (negative inside, the SDF sign convention of `extract`). The outer
    shell of the lattice is set to empty so every mesh is closed. Vertex colours are the colour channels at the
    vertices. No surface (the grid is nowhere above `level`) gives an empty mesh.
    """
    points = lattice_points(resolution, bound, grid.device)
    occupancy = sample_points(grid[:1], points, bound)[:, 0].reshape(resolution, resolution, resolution)
    field = (level - occupancy).cpu().numpy()
    field[[0, -1], :, :] = level
    field[:, [0, -1], :] = level
    field[:, :, [0, -1]] = level
    vertices, faces = marching_cubes(field, bound)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    if len(vertices):
        colors = sample_points(grid[1:], torch.from_numpy(vertices).to(grid.device), bound).clamp(0.0, 1.0)
        rgb = (colors * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
        mesh.visual.vertex_colors = np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)
    return mesh


@torch.no_grad()
def reconstruct_mesh(model, image: Float[Tensor, "1 3 height width"], resolution: int = 128) -> trimesh.Trimesh:
    """Encode `image` with a gansvr-voxel model, decode its grid and extract the mesh (the model's selection
    becomes this image's)."""
    model.select_condition(image)
    return grid_to_mesh(model.selected_grid[0], resolution, model.mesh_level())
