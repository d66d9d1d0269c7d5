"""Differentiable projection of occupancy grids along camera rays: silhouette, colour and depth, as pure functions.

Grid convention (shared by the whole `gansvr_ns.voxel` package): a grid `[batch, channels, R, R, R]` covers the
cube [-bound, bound]^3 and is indexed `[..., i, j, k]` along x, y, z; cell (i, j, k) has its centre at
x = -bound + (i + 1/2) * 2 bound / R (y from j, z from k). Values between cell centres are trilinear
interpolations; outside the cube the grid is empty (0).

Occupancy o in [0, 1] is read as "the fraction of one cell's length that stops light", so a ray section of
length delta through a region of occupancy o passes light with probability (1 - o)^(delta / v), v = 2 bound / R
the cell size. The silhouette is then independent of how densely the ray is sampled:

    alpha_i = 1 - (1 - o_i)^(delta_i / v) = 1 - exp(-tau_i),   tau_i = -(delta_i / v) log(1 - o_i),
    silhouette = 1 - prod_i (1 - alpha_i) = 1 - exp(-sum_i tau_i) = sum_i w_i,   w_i = alpha_i prod_{j<i} (1 - alpha_j)

(with delta_i = v this is the per-cell ray-termination model of Tulsiani et al., CVPR 2017).
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Tuple

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


class Projection(NamedTuple):
    """Rays through occupancy grids (see `project_grids`)."""

    silhouette: Float[Tensor, "num_rays 1"]
    """Ray opacity: 1 - exp(-optical_depth) ("product") or the largest occupancy on the ray ("max")."""
    optical_depth: Float[Tensor, "num_rays 1"]
    """tau = sum_i tau_i along the ray."""
    weights: Float[Tensor, "num_rays num_samples 1"]
    """w_i = alpha_i prod_{j<i} (1 - alpha_j), for compositing colour and depth."""
    values: Float[Tensor, "num_rays num_samples channels"]
    """Every channel of the grid sampled along the ray."""
    distances: Float[Tensor, "num_rays num_samples 1"]
    """Distance of each sample from the ray origin."""


def section_depth(
    occupancy: Float[Tensor, "num_rays num_samples 1"], deltas: Float[Tensor, "num_rays num_samples 1"],
    cell_size: float,
) -> Float[Tensor, "num_rays num_samples 1"]:
    """Optical depth of each ray section, tau_i = -(delta_i / v) log(1 - o_i), so that 1 - alpha_i = exp(-tau_i)."""
    return -deltas / cell_size * torch.log1p(-occupancy.clamp(0.0, 1.0 - OCCUPANCY_EPS))


def composite_occupancy(
    occupancy: Float[Tensor, "num_rays num_samples 1"], deltas: Float[Tensor, "num_rays num_samples 1"],
    cell_size: float, mode: SilhouetteMode = "product",
) -> Tuple[Float[Tensor, "num_rays num_samples 1"], Float[Tensor, "num_rays 1"], Float[Tensor, "num_rays 1"]]:
    """(weights, silhouette, optical depth) of rays through occupancy samples.

    alpha_i = 1 - exp(-tau_i) with tau_i from `section_depth`; weights w_i = alpha_i prod_{j<i} (1 - alpha_j) weigh
    the colour and depth. silhouette: "product" = sum_i w_i = 1 - exp(-sum_i tau_i) (any occupied section stops
    the ray); "max" = max_i o_i (the projection of Yan et al., NeurIPS 2016: the gradient reaches only the largest
    sample).
    """
    tau = section_depth(occupancy, deltas, cell_size)
    weights = weights_from_alpha(-torch.expm1(-tau))
    depth = tau.sum(dim=1)
    if mode == "product":
        return weights, -torch.expm1(-depth), depth
    if mode == "max":
        return weights, occupancy.amax(dim=1).clamp(0.0, 1.0), depth
    raise ValueError(f"unknown silhouette mode '{mode}', expected 'product' or 'max'")


def depth_silhouette_bce(
    optical_depth: Float[Tensor, "num_rays 1"], mask: Float[Tensor, "num_rays 1"]
) -> Float[Tensor, ""]:
    """Binary cross-entropy between the product silhouette s = 1 - exp(-tau) and the mask m, from tau directly:

        -m log(s) - (1 - m) log(1 - s) = -m log(-expm1(-tau)) + (1 - m) tau.

    Exact and never saturated: a nearly empty ray inside the mask still pulls its cells up, with a gradient
    d/d logit_i ~ -o_i / sum_j o_j that stays bounded, where a clamped BCE on s would give none.
    """
    tau = optical_depth + 1e-20  # keeps log finite on a ray that misses the cube, and the gradient everywhere else
    return (-mask * torch.log(-torch.expm1(-tau)) + (1.0 - mask) * tau).mean()


def project_grids(
    grids: Float[Tensor, "batch channels res res res"], grid_index: Int[Tensor, " num_rays"],
    origins: Float[Tensor, "num_rays 3"], directions: Float[Tensor, "num_rays 3"], num_samples: int,
    bound: float = 1.0, mode: SilhouetteMode = "product",
) -> Projection:
    """Rays through grids whose channel 0 is the occupancy (see `Projection`); sum_i w_i values_i composites any
    channel."""
    points, deltas, distances = ray_samples(origins, directions, num_samples, bound)
    values = sample_grid(grids, points, grid_index, bound)
    cell_size = 2.0 * bound / grids.shape[-1]
    weights, silhouette, depth = composite_occupancy(values[..., :1], deltas, cell_size, mode)
    return Projection(silhouette, depth, weights, values, distances)
