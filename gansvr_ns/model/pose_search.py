"""Pose search: re-estimate each train view's orbit error from its mask and the model's current shape.

A per-camera correction of nerfstudio's `CameraOptimizer` learns only from the few batches that draw its camera
(about five in a default run on a 512-car set), so gradient refinement moves the rough poses by a degree or two
of their ~10. A search needs no gradient: the current shape of an instance (from the encoder's latent of its input
image) is voxelised once, and for every view of the instance a grid of small rotations about the object centre is
tried; the one whose projected silhouette overlaps the view's mask best (IoU) wins. Yaw, pitch and roll are taken
about the camera's own axes through the origin, so no "up" direction of the world is assumed.

Only 2D data is read: the masks, the rough poses and the model. True poses are never used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Tuple

import torch
from jaxtyping import Bool, Float
from nerfstudio.cameras.lie_groups import exp_map_SO3xR3
from nerfstudio.utils import poses as pose_utils
from torch import Tensor
from torch.nn import functional as F

from gansvr_ns.model.extract import sdf_grid


@dataclass(frozen=True)
class SearchStage:
    """One stage of the search: every combination of the offsets (degrees) around the stage's start."""

    yaw: Tuple[float, ...]
    pitch: Tuple[float, ...]
    roll: Tuple[float, ...]

    @property
    def offsets(self) -> Float[Tensor, "num 3"]:
        grid = torch.meshgrid(*(torch.tensor(a, dtype=torch.float32) for a in (self.yaw, self.pitch, self.roll)),
                              indexing="ij")
        return torch.deg2rad(torch.stack([g.reshape(-1) for g in grid], dim=-1))


def _span(half: float, step: float) -> Tuple[float, ...]:
    count = int(round(half / step))
    return tuple(step * i for i in range(-count, count + 1))


def default_stages(span_deg: float = 15.0) -> Tuple[SearchStage, ...]:
    """Coarse yaw x pitch (5 deg steps over +-span), then roll (+-4 deg), then yaw x pitch at 2.5 and 1 deg steps:
    72 silhouettes per view at the default span."""
    return (
        SearchStage(_span(span_deg, 5.0), _span(span_deg, 5.0), (0.0,)),
        SearchStage((0.0,), (0.0,), _span(4.0, 2.0)),
        SearchStage(_span(2.5, 2.5), _span(2.5, 2.5), (0.0,)),
        SearchStage(_span(1.0, 1.0), _span(1.0, 1.0), (0.0,)),
    )


def axis_rotations(axes: Float[Tensor, "num 3"], angles: Float[Tensor, " num"]) -> Float[Tensor, "num 3 3"]:
    """Rotations by `angles` (radians) about unit `axes` (nerfstudio's SO(3) exponential map)."""
    return exp_map_SO3xR3(torch.cat([torch.zeros_like(axes), axes * angles[:, None]], dim=-1))[:, :, :3]


def orbit_rotations(c2w: Float[Tensor, "num 3 4"], angles: Float[Tensor, "num 3"]) -> Float[Tensor, "num 3 3"]:
    """World-frame rotations about the origin: yaw about each camera's up axis, pitch about its right axis, roll
    about its viewing axis (angles in radians, in that order)."""
    rotation = c2w[:, :3, :3]
    yaw = axis_rotations(rotation[:, :, 1], angles[:, 0])
    pitch = axis_rotations(rotation[:, :, 0], angles[:, 1])
    roll = axis_rotations(rotation[:, :, 2], angles[:, 2])
    return yaw @ pitch @ roll


@torch.no_grad()
def interior_points(sdf_fn: Callable[[Tensor], Tensor], resolution: int, bound: float = 1.0, shell: float = 1.5,
                    chunk: int = 65536) -> Tuple[Float[Tensor, "num 3"], float]:
    """Grid points inside the surface (SDF < 0) within `shell` grid cells of it, and the grid's cell size. A
    closed shell projects to the whole silhouette, and it is far smaller than the solid."""
    return shell_points(surface_grid(sdf_fn, resolution, bound, chunk), bound, shell)


def surface_grid(sdf_fn: Callable[[Tensor], Tensor], resolution: int, bound: float = 1.0,
                 chunk: int = 65536) -> Float[Tensor, "resolution resolution resolution"]:
    """The SDF on a resolution^3 grid over [-bound, bound]^3, exact within a cell or so of the surface."""
    # grids twice and four times as coarse first: `sdf_grid` evaluates every point near the surface exactly, the
    # shell included, here within one coarse diagonal of zero (mesh extraction's two). On all 460 train cars of a
    # default `gan-car` run this gives the same points as the whole 64^3 grid, in 52 ms per car (79 ms from one
    # coarser grid and two diagonals; 248 ms for the whole grid)
    return torch.from_numpy(sdf_grid(lambda x: sdf_fn(x).reshape(-1), resolution, bound, coarse_factor=2, chunk=chunk,
                                     margin=1.0, levels=2))


def shell_points(sdf: Float[Tensor, "res res res"], bound: float = 1.0,
                 shell: float = 1.5) -> Tuple[Float[Tensor, "num 3"], float]:
    """The points of an SDF grid over [-bound, bound]^3 inside the surface within `shell` cells of it, and the
    grid's cell size."""
    resolution = sdf.shape[0]
    cell = 2.0 * bound / (resolution - 1)
    index = torch.nonzero((sdf < 0.0) & (sdf > -shell * cell))
    return torch.linspace(-bound, bound, resolution)[index], cell


def splat_silhouettes(
    points: Float[Tensor, "num_points 3"],
    c2w: Float[Tensor, "num 3 4"],
    intrinsics: Float[Tensor, "num 4"],
    size: Tuple[int, int],
    cell: float,
) -> Float[Tensor, "num height width"]:
    """Silhouettes of a point set seen by OpenGL-convention cameras (x right, y up, looking down -z; intrinsics
    fx, fy, cx, cy in pixels). Each point marks its pixel, and a morphological closing as wide as a grid cell's
    footprint fills the gaps between neighbouring points."""
    height, width = size
    rotation, origin = c2w[:, :3, :3], c2w[:, :3, 3]
    # A camera sees p at R^T (p - o) = (x, y, z), depth d = -z, pixel (cx + fx x / d, cy - fy y / d): the rows
    # (fx x + cx d, -fy y + cy d, d) are linear in p, so one batched product projects every point of every view
    fx, fy, cx, cy = (intrinsics[:, i, None] for i in range(4))
    to_camera = rotation.transpose(1, 2)
    rows = torch.stack([fx * to_camera[:, 0] - cx * to_camera[:, 2], -fy * to_camera[:, 1] - cy * to_camera[:, 2],
                        -to_camera[:, 2]], dim=1)
    uvd = torch.baddbmm(-(rows @ origin[:, :, None]), rows, points.T.expand(len(c2w), 3, -1))
    depth = uvd[:, 2]
    col = (uvd[:, 0] / depth).floor_()
    row = (uvd[:, 1] / depth).floor_()
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height) & (depth > 0)
    # points outside the image all mark one spare pixel past the end, so that only ones are written to the image
    pixel = torch.where(inside, row.mul_(width).add_(col), height * width).long()
    flat = torch.zeros(len(c2w), height * width + 1, dtype=torch.bool, device=points.device)
    flat.scatter_(1, pixel, True)
    image = flat[:, :-1].reshape(-1, height, width)
    footprint = float((intrinsics[:, :2].max() * cell / origin.norm(dim=-1).min().clamp_min(1e-6)).item())
    radius = max(1, math.ceil(footprint / 2.0))
    closed = ~dilate(~dilate(image, radius), radius)  # dilation, then erosion: fills the gaps between points
    return closed.to(points.dtype)


def dilate(image: Bool[Tensor, "num height width"], radius: int) -> Bool[Tensor, "num height width"]:
    """Binary dilation by a (2 radius + 1)^2 square, as a row pass then a column pass of shifted ORs; beyond the
    border counts as empty. `~dilate(~image)` is the erosion that counts beyond the border as full."""
    height, width = image.shape[-2:]
    padded = F.pad(image, (radius, radius))
    rows = padded[..., :width].clone()
    for shift in range(1, 2 * radius + 1):
        rows |= padded[..., shift : shift + width]
    padded = F.pad(rows, (0, 0, radius, radius))
    out = padded[..., :height, :].clone()
    for shift in range(1, 2 * radius + 1):
        out |= padded[..., shift : shift + height, :]
    return out


def shrink_masks(
    masks: Float[Tensor, "num height width"], intrinsics: Float[Tensor, "num 4"], max_size: int
) -> Tuple[Float[Tensor, "num height2 width2"], Float[Tensor, "num 4"]]:
    """Masks area-resized so that their longer side is at most `max_size` (a pixel of the result is in the mask when
    at least half of what it covers is), with the intrinsics (fx, fy, cx, cy in pixels) of the smaller images. The
    search compares silhouettes of grid points pixel by pixel, so images much finer than its grid only cost time and
    leave gaps between the points' pixels. Masks at most `max_size` already, or any masks when `max_size` is 0, are
    returned as they are."""
    height, width = masks.shape[-2:]
    scale = max_size / max(height, width)
    if max_size <= 0 or scale >= 1.0:
        return masks, intrinsics
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    small = F.interpolate(masks.float()[:, None], size=size, mode="area")[:, 0] >= 0.5
    factors = torch.tensor([size[1] / width, size[0] / height, size[1] / width, size[0] / height],
                           dtype=intrinsics.dtype, device=intrinsics.device)
    return small.to(masks.dtype), intrinsics * factors


def mask_iou(silhouettes: Float[Tensor, "num height width"], mask: Float[Tensor, "*num height width"]) -> Tensor:
    """Intersection over union of binary silhouettes with a mask (or one mask each)."""
    inter = (silhouettes * mask).sum(dim=(1, 2))
    union = (silhouettes + mask).clamp_max(1.0).sum(dim=(1, 2))
    return inter / union.clamp_min(1.0)


@torch.no_grad()
def search_views(
    points: Float[Tensor, "num_points 3"],
    cell: float,
    c2w: Float[Tensor, "num_views 3 4"],
    masks: Float[Tensor, "num_views height width"],
    intrinsics: Float[Tensor, "num_views 4"],
    stages: Tuple[SearchStage, ...],
    prior: float = 0.0,
) -> Tuple[Float[Tensor, "num_views 3 3"], Float[Tensor, " num_views"]]:
    """For each view, the rotation C about the origin (applied as C @ pose) that best aligns the points' silhouette
    with the view's mask, and that silhouette's IoU. A candidate scores its IoU minus `prior` times (its angle in
    degrees / 10)^2, so that among near-equal fits the smaller turn wins. Stages refine around the previous stage's
    best angles. The zero rotation is always among the candidates and pays no penalty, so the result never overlaps
    the mask worse than the start."""
    num_views = len(c2w)
    best = torch.zeros(num_views, 3)
    best_iou = torch.zeros(num_views)
    best_score = torch.full((num_views,), -float("inf"))
    masks = masks.float()
    for stage in stages:
        offsets = stage.offsets
        angles = (best[:, None] + offsets[None]).reshape(-1, 3)
        poses = c2w.repeat_interleave(len(offsets), dim=0)
        moved = pose_utils.multiply(F.pad(orbit_rotations(poses, angles), (0, 1)), poses)
        sil = splat_silhouettes(points, moved, intrinsics.repeat_interleave(len(offsets), dim=0), masks.shape[1:],
                                cell)
        iou = mask_iou(sil, masks.repeat_interleave(len(offsets), dim=0)).reshape(num_views, len(offsets))
        score = iou - prior * torch.rad2deg(angles).square().sum(dim=-1).reshape(num_views, len(offsets)) / 100.0
        top, index = score.max(dim=1)
        better = top > best_score
        best = torch.where(better[:, None], angles.reshape(num_views, len(offsets), 3)[torch.arange(num_views), index],
                           best)
        best_iou = torch.where(better, iou[torch.arange(num_views), index], best_iou)
        best_score = torch.where(better, top, best_score)
    return orbit_rotations(c2w, best), best_iou
