"""Differentiable projection of occupancy grids along camera rays: silhouette, colour and depth, as pure functions.

Grid convention (shared by the whole `gansvr_ns.voxel` package): a grid `[batch, channels, R, R, R]` covers the
cube [-bound, bound]^3 and is indexed `[..., i, j, k]` along x, y, z; cell (i, j, k) has its centre at
x = -bound + (i + 1/2) * 2 bound / R (y from j, z from k). Values between cell centres are trilinear
interpolations; outside the cube the grid is empty (0).

Occupancy o in [0, 1] is read as "the fraction of one cell's length that stops light", so a ray section of
length delta through a region of occupancy o passes light with probability (1 - o)^(delta / v), v = 2 bound / R
the cell size. The silhouette is then independent of how densely the ray is sampled:

    alpha_i = 1 - (1 - o_i)^(delta_i / v),   silhouette = 1 - prod_i (1 - alpha_i) = sum_i w_i,
    w_i = alpha_i * prod_{j<i} (1 - alpha_j)

(with delta_i = v this is the per-cell ray-termination model of Tulsiani et al., CVPR 2017).
"""

from __future__ import annotations

from typing import Literal, Tuple

import torch
from jaxtyping import Float, Int
from torch import Tensor

from gansvr_ns.model.rendering import weights_from_alpha

SilhouetteMode = Literal["product", "max"]
OCCUPANCY_EPS = 1e-4
"""Occupancy is clamped to [0, 1 - eps] before log(1 - o), which keeps the gradient finite."""


def ray_box_interval(
    origins: Float[Tensor, "num_rays 3"], directions: Float[Tensor, "num_rays 3"], bound: float = 1.0
) -> Tuple[Float[Tensor, "num_rays 1"], Float[Tensor, "num_rays 1"]]:
    """(near, far) ray parameters where o + t d is inside [-bound, bound]^3 (slab test), with t >= 0.

    t_lo = max_axis min(t1, t2), t_hi = min_axis max(t1, t2), t1,2 = (+-bound - o) / d. A ray that misses the box
    gets near = far (an empty interval).
    """
    safe = torch.where(directions.abs() < 1e-9, torch.full_like(directions, 1e-9), directions)
    t1, t2 = (-bound - origins) / safe, (bound - origins) / safe
    near = torch.minimum(t1, t2).amax(dim=-1, keepdim=True).clamp_min(0.0)
    far = torch.maximum(t1, t2).amin(dim=-1, keepdim=True)
    return near, torch.maximum(far, near)


def ray_samples(
    origins: Float[Tensor, "num_rays 3"], directions: Float[Tensor, "num_rays 3"], num_samples: int,
    bound: float = 1.0,
) -> Tuple[Float[Tensor, "num_rays num_samples 3"], Float[Tensor, "num_rays num_samples 1"],
           Float[Tensor, "num_rays num_samples 1"]]:
    """(points, deltas, distances): the midpoints of `num_samples` equal sections of each ray's box interval.

    t_i = near + (i + 1/2) (far - near) / S; delta_i = (far - near) |d| / S is the section's world length and
    distance_i = t_i |d| the midpoint's distance from the origin.
    """
    near, far = ray_box_interval(origins, directions, bound)
    fractions = (torch.arange(num_samples, device=origins.device, dtype=origins.dtype) + 0.5) / num_samples
    t = near + (far - near) * fractions  # [num_rays, num_samples]
    points = origins[:, None, :] + t[..., None] * directions[:, None, :]
    norm = directions.norm(dim=-1, keepdim=True)
    deltas = ((far - near) * norm / num_samples).expand(-1, num_samples)
    return points, deltas[..., None], (t * norm)[..., None]


def sample_grid(
    grids: Float[Tensor, "batch channels res res res"], points: Float[Tensor, "num_rays num_samples 3"],
    grid_index: Int[Tensor, " num_rays"], bound: float = 1.0,
) -> Float[Tensor, "num_rays num_samples channels"]:
    """Trilinear values of grid `grid_index[r]` at the points of ray r (0 outside the cube).

    The grid's [i, j, k] axes are grid_sample's [D, H, W], whose normalised coordinates are (w, h, d) in [-1, 1]
    with -1 and 1 at the cube faces (align_corners=False), hence the (z, y, x) / bound order.
    """
    num_rays, num_samples, _ = points.shape
    out = points.new_zeros(num_rays, num_samples, grids.shape[1])
    coords = points.flip(-1) / bound
    for b in torch.unique(grid_index).tolist():
        rays = grid_index == b
        sampled = torch.nn.functional.grid_sample(
            grids[b : b + 1], coords[rays][None, None], mode="bilinear", padding_mode="zeros", align_corners=False
        )  # [1, channels, 1, rays, samples]
        out[rays] = sampled[0, :, 0].permute(1, 2, 0).to(out.dtype)
    return out


def occupancy_alpha(
    occupancy: Float[Tensor, "num_rays num_samples 1"], deltas: Float[Tensor, "num_rays num_samples 1"],
    cell_size: float,
) -> Float[Tensor, "num_rays num_samples 1"]:
    """alpha = 1 - (1 - o)^(delta / v) = 1 - exp(delta / v * log(1 - o)): opacity of a ray section (module doc)."""
    log_pass = torch.log1p(-occupancy.clamp(0.0, 1.0 - OCCUPANCY_EPS))
    return -torch.expm1(deltas / cell_size * log_pass)


def composite_occupancy(
    occupancy: Float[Tensor, "num_rays num_samples 1"], deltas: Float[Tensor, "num_rays num_samples 1"],
    cell_size: float, mode: SilhouetteMode = "product",
) -> Tuple[Float[Tensor, "num_rays num_samples 1"], Float[Tensor, "num_rays 1"]]:
    """(weights, silhouette) of rays through occupancy samples.

    weights w_i = alpha_i prod_{j<i} (1 - alpha_j) with alpha from `occupancy_alpha`; they weigh the colour and
    depth. silhouette: "product" = sum_i w_i = 1 - prod_i (1 - alpha_i) (any occupied section stops the ray);
    "max" = max_i o_i (the projection of Yan et al., NeurIPS 2016: the gradient reaches only the largest sample).
    """
    weights = weights_from_alpha(occupancy_alpha(occupancy, deltas, cell_size))
    if mode == "product":
        return weights, weights.sum(dim=1)
    if mode == "max":
        return weights, occupancy.amax(dim=1).clamp(0.0, 1.0)
    raise ValueError(f"unknown silhouette mode '{mode}', expected 'product' or 'max'")


def project_grids(
    grids: Float[Tensor, "batch channels res res res"], grid_index: Int[Tensor, " num_rays"],
    origins: Float[Tensor, "num_rays 3"], directions: Float[Tensor, "num_rays 3"], num_samples: int,
    bound: float = 1.0, mode: SilhouetteMode = "product",
) -> Tuple[Float[Tensor, "num_rays 1"], Float[Tensor, "num_rays num_samples 1"],
           Float[Tensor, "num_rays num_samples channels"], Float[Tensor, "num_rays num_samples 1"]]:
    """(silhouette, weights, values, distances) of rays through grids whose channel 0 is the occupancy.

    `values` are all channels sampled along each ray, so that sum_i w_i values_i composites any of them.
    """
    points, deltas, distances = ray_samples(origins, directions, num_samples, bound)
    values = sample_grid(grids, points, grid_index, bound)
    cell_size = 2.0 * bound / grids.shape[-1]
    weights, silhouette = composite_occupancy(values[..., :1], deltas, cell_size, mode)
    return silhouette, weights, values, distances
