"""Mesh extraction from an SDF: a coarse-to-fine grid and scikit-image's marching cubes."""

from __future__ import annotations

from typing import Callable, Tuple

import numpy as np
import torch
from skimage import measure
from torch import Tensor


def _evaluate(sdf_fn: Callable[[Tensor], Tensor], points: Tensor, chunk: int) -> Tensor:
    if len(points) == 0:
        return points[:, 0]
    return torch.cat([sdf_fn(points[i : i + chunk]) for i in range(0, len(points), chunk)])


@torch.no_grad()
def sdf_grid(sdf_fn: Callable[[Tensor], Tensor], resolution: int, bound: float = 1.0, coarse_factor: int = 4,
             chunk: int = 65536, device: torch.device | str = "cpu", margin: float = 2.0, levels: int = 1
             ) -> np.ndarray:
    """SDF sampled at resolution^3 points of [-bound, bound]^3, evaluating exactly only near the surface.

    `sdf_fn` maps points (num_points, 3) to their SDF values (num_points,); it is called on chunks of at most
    `chunk` points.

    A grid `coarse_factor` times coarser is evaluated first. A fine point is evaluated exactly when the coarse
    SDF around it is within `margin` coarse cell diagonals of zero (an SDF changes by at most the distance moved);
    elsewhere it takes the trilinearly upsampled coarse value, whose sign is right far from the surface. With
    `levels` > 1 the coarse grid is itself sampled this way, from one `coarse_factor` times coarser again.
    """
    return _grid(sdf_fn, resolution, bound, coarse_factor, chunk, device, margin, levels).cpu().numpy()


def _grid(sdf_fn: Callable[[Tensor], Tensor], resolution: int, bound: float, coarse_factor: int, chunk: int,
          device: torch.device | str, margin: float, levels: int) -> Tensor:
    """`sdf_grid` as a tensor on `device`; `levels` = 0 or `coarse_factor` <= 1 evaluate every point."""
    lin = torch.linspace(-bound, bound, resolution, device=device)
    coarse_res = max(2, (resolution - 1) // coarse_factor + 1)
    if levels < 1 or coarse_factor <= 1 or coarse_res < 8:
        grid = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), dim=-1).reshape(-1, 3)
        return _evaluate(sdf_fn, grid, chunk).reshape(resolution, resolution, resolution)
    coarse = _grid(sdf_fn, coarse_res, bound, coarse_factor, chunk, device, margin, levels - 1)[None, None]
    fine = torch.nn.functional.interpolate(coarse, size=(resolution,) * 3, mode="trilinear", align_corners=True)[0, 0]
    cell = 2.0 * bound / (coarse_res - 1)
    near = torch.nn.functional.max_pool3d((coarse.abs() < margin * cell * np.sqrt(3)).float(), 3, stride=1, padding=1)
    near = torch.nn.functional.interpolate(near, size=(resolution,) * 3, mode="nearest")[0, 0] > 0
    index = torch.nonzero(near)
    fine[near] = _evaluate(sdf_fn, lin[index], chunk)
    return fine


def marching_cubes(grid: np.ndarray, bound: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """Zero level set of a grid over [-bound, bound]^3 as (vertices [V, 3] in world units, faces [F, 3]).

    Returns empty arrays when the level set is empty (the SDF has one sign everywhere).
    """
    if not (grid.min() < 0.0 < grid.max()):
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64)
    spacing = 2.0 * bound / (grid.shape[0] - 1)
    vertices, faces, _, _ = measure.marching_cubes(grid, level=0.0, spacing=(spacing,) * 3)
    # With the SDF positive outside, skimage's winding already gives outward-facing normals.
    return (vertices - bound).astype(np.float32), faces.astype(np.int64)
