"""A first guess of the category's shape from the pseudo views alone: the average visual hull.

Each instance's visual hull is carved on a coarse grid from its masks under the rough poses (a point is kept when
it projects inside the mask of at least `keep` of the views, which tolerates pose noise and mask flaws). The
hulls are averaged over instances. `mean_hull_sdf` turns the points inside at least half of the hulls into a
signed distance grid; `silhouette_axes` gives the ellipsoid with the same second moments about the origin (the
object centre): a_d = sqrt(5 E[x_d^2]) for a solid ellipsoid. Only 2D data and rough poses are used, never a 3D
ground truth.
"""

from __future__ import annotations

from typing import Optional

import torch
from jaxtyping import Bool, Float
from nerfstudio.cameras.cameras import Cameras
from torch import Tensor


def project_inside(
    points: Float[Tensor, "num_points 3"], cameras: Cameras, masks: Bool[Tensor, "num_views height width"]
) -> Bool[Tensor, "num_views num_points"]:
    """Whether each point projects inside each view's mask (OpenGL cameras: they look down their -z axis)."""
    c2w = cameras.camera_to_worlds  # [V, 3, 4]
    local = torch.einsum("vji,vpj->vpi", c2w[:, :3, :3], points[None] - c2w[:, None, :3, 3])
    depth = -local[..., 2]
    height, width = masks.shape[1:]
    u = cameras.fx * local[..., 0] / depth.clamp_min(1e-6) + cameras.cx
    v = -cameras.fy * local[..., 1] / depth.clamp_min(1e-6) + cameras.cy
    col, row = u.floor().long(), v.floor().long()
    visible = (depth > 0) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    views = torch.arange(len(masks))[:, None].expand_as(col)
    inside = masks[views, row.clamp(0, height - 1), col.clamp(0, width - 1)]
    return inside & visible


def carve(
    points: Float[Tensor, "num_points 3"], cameras: Cameras, masks: Bool[Tensor, "num_views height width"],
    keep: float, chunk: int = 8,
) -> Bool[Tensor, " num_points"]:
    """Whether each point projects inside the masks of at least a fraction `keep` of the views: the same as
    `project_inside(...).float().mean(0) >= keep`, but views are read `chunk` at a time and a point is dropped as
    soon as it has missed more views than `keep` allows (most of the box misses the object early)."""
    num_views = len(masks)
    slack = num_views * (1.0 - keep) + 1e-6
    misses = torch.zeros(len(points))
    active = torch.arange(len(points))
    for start in range(0, num_views, chunk):
        if len(active) == 0:
            break
        inside = project_inside(points[active], cameras[start : start + chunk], masks[start : start + chunk])
        misses[active] += (~inside).sum(dim=0).float()
        active = active[misses[active] <= slack]
    result = torch.zeros(len(points), dtype=torch.bool)
    result[active] = (num_views - misses[active]) / num_views >= keep
    return result


def grid_points(resolution: int) -> Float[Tensor, "num_points 3"]:
    """Cell centres of a resolution^3 grid over [-1, 1]^3, x slowest (the layout of `trilinear`'s grids)."""
    axis = (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution * 2.0 - 1.0
    return torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)


def mean_hull(
    cameras: Cameras, masks: Bool[Tensor, "num_cameras height width"], instance_cameras: list, resolution: int,
    keep: float, max_instances: int,
) -> Float[Tensor, " num_points"]:
    """Fraction of the (up to `max_instances`) instances whose visual hull holds each grid point."""
    points = grid_points(resolution)
    occupancy = torch.zeros(len(points))
    used = 0
    for cams in instance_cameras[:max_instances]:
        if len(cams) == 0:
            continue
        occupancy += carve(points, cameras[cams], masks[cams], keep).float()
        used += 1
    if used == 0 or occupancy.sum() == 0:
        raise ValueError("the masks carve away every point: no visual hull to start the shape from")
    return occupancy / used


def instance_hull_sdfs(
    cameras: Cameras, masks: Bool[Tensor, "num_cameras height width"], instance_cameras: list,
    resolution: int = 32, keep: float = 0.95,
) -> Float[Tensor, "num_instances resolution resolution resolution"]:
    """Each instance's own visual hull (from its masks under the rough poses) as a signed distance grid, negative
    inside; NaN for an instance without views or whose masks carve away every point."""
    points = grid_points(resolution)
    grids = torch.full((len(instance_cameras), resolution, resolution, resolution), float("nan"))
    for k, cams in enumerate(instance_cameras):
        if len(cams) == 0:
            continue
        inside = carve(points, cameras[cams], masks[cams], keep)
        if inside.any():
            grids[k] = sdf_grid(inside.reshape(resolution, resolution, resolution))
    return grids


def sdf_grid(inside: Bool[Tensor, "res res res"]) -> Float[Tensor, "res res res"]:
    """Signed distance (negative inside, in [-1, 1]^3 units) of a cell-centred occupancy grid over [-1, 1]^3."""
    from scipy.ndimage import distance_transform_edt

    occupied = inside.numpy()
    cell = 2.0 / inside.shape[0]
    return torch.from_numpy((distance_transform_edt(~occupied) - distance_transform_edt(occupied)) * cell).float()


def mean_hull_sdf(
    cameras: Cameras, masks: Bool[Tensor, "num_cameras height width"], instance_cameras: list,
    resolution: int = 48, keep: float = 0.95, max_instances: int = 32,
) -> Float[Tensor, "resolution resolution resolution"]:
    """Signed distance (negative inside) to the points inside at least half of the instances' visual hulls."""
    inside = mean_hull(cameras, masks, instance_cameras, resolution, keep, max_instances) >= 0.5
    return sdf_grid(inside.reshape(resolution, resolution, resolution))


def trilinear(grid: Float[Tensor, "res res res"], positions: Float[Tensor, "*batch 3"]) -> Float[Tensor, "*batch 1"]:
    """Trilinear interpolation of a cell-centred grid over [-1, 1]^3 (clamped at its border), built from
    differentiable elementwise operations so that gradients of any order reach `positions`."""
    return trilinear_instances(grid.reshape(1, -1), positions)


def trilinear_instances(
    grids: Float[Tensor, "instances cells"], positions: Float[Tensor, "*batch 3"], rows: Optional[Tensor] = None
) -> Float[Tensor, "*batch 1"]:
    """`trilinear` with one flattened res^3 grid per instance: each point reads the grid of its row `rows`
    (integer, broadcast against `positions[..., 0]`, e.g. one row per ray for all its samples); without `rows`
    every point reads the first grid. The grids are never copied per point. Twice differentiable in `positions`
    and differentiable in `grids`."""
    if grids.dim() != 2:
        raise ValueError(f"grids must be (instances, res^3), got {tuple(grids.shape)}")
    cells = grids.shape[-1]
    res = round(cells ** (1.0 / 3.0))
    shape = positions.shape[:-1] if rows is None else torch.broadcast_shapes(positions.shape[:-1], rows.shape)
    # coordinates first, (3, N): every operation below runs along the points, on contiguous rows
    points = positions.expand(*shape, 3).reshape(-1, 3).T.contiguous()
    index = ((points + 1.0) * (res / 2.0) - 0.5).clamp(0.0, res - 1.0)
    base = index.detach().floor().clamp(max=res - 2)
    fx, fy, fz = (index - base).unbind(0)
    i, j, k = base.long().unbind(0)
    cell = (i * res + j) * res + k
    if rows is not None:
        cell = cell + rows.expand(shape).reshape(-1) * cells
    # the 8 corners in one read, x slowest: (2, 4, N). index_select's gradient is an index_add, several times faster
    # here than the index_put of indexing; one read instead of eight keeps the operation count (and its
    # first and second derivatives') small
    step = torch.arange(2, device=cell.device)
    corners = ((step[:, None, None] * res + step[None, :, None]) * res + step).reshape(8, 1)
    values = grids.reshape(-1).index_select(0, (cell + corners).reshape(-1))
    low, high = values.view(2, 4, -1).unbind(0)
    low, high = (low + (high - low) * fx).view(2, 2, -1).unbind(0)  # interpolated along x; (y, z) remain
    low, high = (low + (high - low) * fy).unbind(0)  # along y; z remains
    return (low + (high - low) * fz).reshape(*shape, 1)


def silhouette_axes(
    cameras: Cameras,
    masks: Bool[Tensor, "num_cameras height width"],
    instance_cameras: list,
    resolution: int = 32,
    keep: float = 0.9,
    max_instances: int = 32,
) -> Float[Tensor, "3"]:
    """Semi-axes (x, y, z) of the ellipsoid matching the average visual hull of up to `max_instances` instances."""
    points = grid_points(resolution)
    occupancy = mean_hull(cameras, masks, instance_cameras, resolution, keep, max_instances)
    weights = occupancy / occupancy.sum()
    second_moments = (weights[:, None] * points**2).sum(dim=0)
    return torch.sqrt(5.0 * second_moments).clamp(0.05, 0.95)
