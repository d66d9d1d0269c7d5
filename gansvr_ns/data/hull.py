"""A first guess of the category's shape from the pseudo views alone: the semi-axes of the average visual hull.

Each instance's visual hull is carved on a coarse grid from its masks under the rough poses (a point is kept when
it projects inside the mask of at least `keep` of the views, which tolerates pose noise and mask flaws). The
hulls are averaged over instances, and the ellipsoid with the same second moments about the origin (the object
centre) gives the semi-axes: a_d = sqrt(5 E[x_d^2]) for a solid ellipsoid. Only 2D data and rough poses are
used, never a 3D ground truth.
"""

from __future__ import annotations

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


def silhouette_axes(
    cameras: Cameras,
    masks: Bool[Tensor, "num_cameras height width"],
    instance_cameras: list,
    resolution: int = 32,
    keep: float = 0.9,
    max_instances: int = 32,
) -> Float[Tensor, "3"]:
    """Semi-axes (x, y, z) of the ellipsoid matching the average visual hull of up to `max_instances` instances."""
    axis = (torch.arange(resolution, dtype=torch.float32) + 0.5) / resolution * 2.0 - 1.0
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)
    occupancy = torch.zeros(len(points))
    used = 0
    for cams in instance_cameras[:max_instances]:
        if len(cams) == 0:
            continue
        inside = project_inside(points, cameras[cams], masks[cams])
        occupancy += (inside.float().mean(dim=0) >= keep).float()
        used += 1
    if used == 0 or occupancy.sum() == 0:
        raise ValueError("the masks carve away every point: no visual hull to start the shape from")
    weights = occupancy / occupancy.sum()
    second_moments = (weights[:, None] * points**2).sum(dim=0)
    return torch.sqrt(5.0 * second_moments).clamp(0.05, 0.95)
