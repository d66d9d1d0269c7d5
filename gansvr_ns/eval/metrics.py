"""Mesh metrics: Chamfer-L1, F-score and volumetric IoU of a predicted mesh against its ground truth.

Conventions (the same for every metric):

- Normalisation. Both meshes are in the canonical object frame already, so the prediction is never
  re-centred or re-scaled on its own. One similarity transform, taken from the ground truth only, is
  applied to both: x' = (x - c) * s with c the centre of the ground truth's axis-aligned bounding box
  and s = 1 / (longest side of that box). The normalised ground truth then has its longest side equal
  to 1 and lies in [-0.5, 0.5]^3. Distances below are in these units.
- Surface samples. Points are drawn uniformly by area from each surface, with a fixed seed, so a metric
  is a deterministic function of the two meshes and the config.
- F-score thresholds. tau = 0.01 follows Tatarchenko et al. (CVPR 2019, "What do single-view 3D
  reconstruction networks learn?"), who use 1% of the side of the reconstructed volume, and is the tightest
  threshold of Mesh R-CNN, which
  scales the ground truth's longest bounding-box side to 10 (our normalisation times 10) and reports
  F1 at 0.1 / 0.3 / 0.5. tau = 0.05 is Mesh R-CNN's loosest; it is the informative one for the coarse
  marching-cubes meshes of this project, where 0.01 is a third of a 32^3 voxel and also feels the spacing
  of the surface samples (about sqrt(area / num_samples), ~0.012 for a car-like shape and 20k samples).
- Empty prediction (no faces or zero area). Distances are undefined; the prediction gets the fixed
  worst-case values accuracy = completeness = Chamfer-L1 = sqrt(3) (the diagonal of the unit cube that
  holds the normalised ground truth, as in the Occupancy Networks evaluation), precision = recall =
  F-score = 0 and IoU = 0.

Shape names in the docstrings: `num_pred`, `num_gt` sampled points, `num_points` query points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, NamedTuple, Tuple

import numpy as np
import open3d as o3d
import trimesh
from scipy.spatial import cKDTree

WORST_DISTANCE = float(np.sqrt(3.0))
"""Accuracy, completeness and Chamfer-L1 given to an empty prediction (diagonal of the unit cube)."""


MIN_IOU_RESOLUTION = 4
"""The coarsest IoU grid accepted: with fewer cells per axis a whole object may fall between the cell centres."""


@dataclass(frozen=True)
class MetricConfig:
    """How the mesh metrics are computed."""

    num_samples: int = 20000
    """Surface points sampled (uniformly by area) from each mesh for Chamfer and F-score."""
    fscore_taus: Tuple[float, ...] = (0.01, 0.05)
    """F-score distance thresholds, in units of the ground truth's longest bounding-box side (why: module doc)."""
    iou_resolution: int = 32
    """Cells per axis of the grid on which volumetric IoU is evaluated."""
    occupancy_rays: int = 7
    """Rays per grid point in the inside test (odd: a majority vote of ray-parity tests)."""
    seed: int = 0
    """Seed of the surface sampling."""

    def __post_init__(self):
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be positive, got {self.num_samples}")
        if self.iou_resolution < MIN_IOU_RESOLUTION:
            raise ValueError(f"iou_resolution must be at least {MIN_IOU_RESOLUTION}, got {self.iou_resolution}")
        if self.occupancy_rays < 1 or self.occupancy_rays % 2 == 0:
            raise ValueError(f"occupancy_rays must be a positive odd number, got {self.occupancy_rays}")
        if any(tau <= 0 for tau in self.fscore_taus):
            raise ValueError(f"fscore_taus must be positive, got {self.fscore_taus}")


class SurfaceDistances(NamedTuple):
    """Nearest-neighbour distances between two sampled surfaces."""

    pred_to_gt: np.ndarray
    """(num_pred,) distance from each predicted sample to the nearest ground-truth sample."""
    gt_to_pred: np.ndarray
    """(num_gt,) distance from each ground-truth sample to the nearest predicted sample."""


def is_empty(mesh: trimesh.Trimesh) -> bool:
    """True when the mesh has no faces or zero surface area."""
    return len(mesh.faces) == 0 or not mesh.area > 0.0


def normalisation(gt: trimesh.Trimesh) -> Tuple[np.ndarray, float]:
    """Centre c (3,) and scale s of the transform x' = (x - c) * s that both meshes share.

    c = (bbox_min + bbox_max) / 2 and s = 1 / max(bbox_max - bbox_min), both of the ground truth.
    """
    if is_empty(gt):
        raise ValueError("ground-truth mesh is empty (no faces or zero area)")
    lo, hi = gt.bounds
    longest = float(np.max(hi - lo))
    return (lo + hi) / 2.0, 1.0 / longest


def normalise_points(points: np.ndarray, centre: np.ndarray, scale: float) -> np.ndarray:
    """Apply x' = (x - c) * s to (num_points, 3) points."""
    return (points - centre) * scale


def sample_surface(mesh: trimesh.Trimesh, num_samples: int, seed: int = 0) -> np.ndarray:
    """(num_samples, 3) points uniform by area on the mesh surface, deterministic for a seed.

    A face f is picked with probability area_f / sum(area); inside it the point a + u (b - a) + v (c - a)
    uses u, v ~ U(0, 1) reflected to u + v <= 1, which is uniform on the triangle.
    """
    if is_empty(mesh):
        raise ValueError("cannot sample an empty mesh")
    rng = np.random.default_rng(seed)
    cumulative = np.cumsum(mesh.area_faces)
    faces = np.searchsorted(cumulative, rng.random(num_samples) * cumulative[-1], side="right")
    faces = np.minimum(faces, len(cumulative) - 1)
    u, v = rng.random((2, num_samples))
    outside = u + v > 1.0
    u[outside], v[outside] = 1.0 - u[outside], 1.0 - v[outside]
    a, b, c = (mesh.triangles[faces, k] for k in range(3))
    return a + u[:, None] * (b - a) + v[:, None] * (c - a)


def _tree(points: np.ndarray) -> cKDTree:
    # A sliding-midpoint tree builds faster and answers far-away queries about twice as fast as the default.
    return cKDTree(points, balanced_tree=False, compact_nodes=False)


def surface_distances(pred_points: np.ndarray, gt_points: np.ndarray) -> SurfaceDistances:
    """Nearest-neighbour distances (Euclidean, via KD-trees) between (num_pred, 3) and (num_gt, 3) points."""
    pred_to_gt, _ = _tree(gt_points).query(pred_points, workers=-1)
    gt_to_pred, _ = _tree(pred_points).query(gt_points, workers=-1)
    return SurfaceDistances(pred_to_gt=pred_to_gt, gt_to_pred=gt_to_pred)


def chamfer_l1(distances: SurfaceDistances) -> Tuple[float, float, float]:
    """(Chamfer-L1, accuracy, completeness).

    accuracy = mean_{p in pred} min_{g in gt} |p - g|, completeness = mean_{g in gt} min_{p in pred} |p - g|,
    Chamfer-L1 = (accuracy + completeness) / 2.
    """
    accuracy = float(np.mean(distances.pred_to_gt))
    completeness = float(np.mean(distances.gt_to_pred))
    return (accuracy + completeness) / 2.0, accuracy, completeness


def fscore(distances: SurfaceDistances, tau: float) -> Tuple[float, float, float]:
    """(F-score, precision, recall) at threshold tau.

    precision P = fraction of predicted samples within tau of the ground truth, recall R = fraction of
    ground-truth samples within tau of the prediction, F = 2 P R / (P + R) (0 when P + R = 0).
    """
    precision = float(np.mean(distances.pred_to_gt < tau))
    recall = float(np.mean(distances.gt_to_pred < tau))
    total = precision + recall
    return (2.0 * precision * recall / total if total > 0 else 0.0), precision, recall


def ray_directions(num_rays: int) -> np.ndarray:
    """(num_rays, 3) unit directions spread evenly over the sphere (Fibonacci lattice).

    d_i = (r_i cos(phi_i), r_i sin(phi_i), z_i) with z_i = 1 - (2i + 1) / n, r_i = sqrt(1 - z_i^2) and
    phi_i = i * pi * (3 - sqrt(5)); none is axis-aligned, so rays rarely graze the edges of axis-aligned meshes.
    """
    i = np.arange(num_rays) + 0.5
    z = 1.0 - 2.0 * i / num_rays
    r = np.sqrt(1.0 - z * z)
    phi = (i - 0.5) * np.pi * (3.0 - np.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def occupancy(mesh: trimesh.Trimesh, points: np.ndarray, num_rays: int = 7) -> np.ndarray:
    """(num_points,) bool: is each (num_points, 3) point inside the mesh.

    For each of `num_rays` directions d, the ray x + t d (t > 0) is cast and its crossings with the surface
    are counted; an odd count is a vote for inside. The point is inside when most votes say so. On a
    watertight mesh every vote agrees; on a mesh with small holes (marching cubes output, say) only the rays
    that pass through a hole vote wrongly, and they are outvoted by rays in other directions.
    """
    if num_rays < 1 or num_rays % 2 == 0:
        raise ValueError(f"occupancy_rays must be a positive odd number, got {num_rays}")
    if len(mesh.faces) == 0:
        return np.zeros(len(points), dtype=bool)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(
        o3d.core.Tensor(np.ascontiguousarray(mesh.vertices, dtype=np.float32)),
        o3d.core.Tensor(np.ascontiguousarray(mesh.faces, dtype=np.uint32)),
    )
    origins = np.asarray(points, dtype=np.float32)
    votes = np.zeros(len(points), dtype=np.int64)
    for direction in ray_directions(num_rays).astype(np.float32):
        rays = np.concatenate([origins, np.broadcast_to(direction, origins.shape)], axis=1)
        votes += scene.count_intersections(o3d.core.Tensor(np.ascontiguousarray(rays))).numpy() % 2
    return 2 * votes > num_rays


def grid_points(lo: np.ndarray, hi: np.ndarray, resolution: int) -> np.ndarray:
    """(resolution^3, 3) cell centres of a regular grid over the box [lo, hi]: lo + (i + 1/2) (hi - lo) / res."""
    axes = [lo[k] + (np.arange(resolution) + 0.5) * (hi[k] - lo[k]) / resolution for k in range(3)]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def volumetric_iou(pred: trimesh.Trimesh, gt: trimesh.Trimesh, resolution: int = 32, num_rays: int = 7) -> float:
    """IoU = |inside(pred) & inside(gt)| / |inside(pred) | inside(gt)| over the cell centres of a grid.

    The grid has `resolution` cells per axis over the union of the two bounding boxes, so no part of either
    volume is cut off. IoU is invariant to a similarity transform applied to both meshes (the grid moves
    with them), so it needs no normalisation. An empty prediction gives 0, and so does one so far out or so large
    that the ground truth encloses no cell of the union's grid. A ground truth that encloses no cell of a grid over
    its own box (not watertight, or flatter than a cell) is an error: its IoU would mean nothing.
    """
    if len(pred.faces) == 0:
        return 0.0
    lo = np.minimum(pred.bounds[0], gt.bounds[0])
    hi = np.maximum(pred.bounds[1], gt.bounds[1])
    points = grid_points(lo, hi, resolution)
    inside_gt = occupancy(gt, points, num_rays)
    if not inside_gt.any():
        flat = np.ptp(gt.bounds, axis=0).min() <= 0
        if flat or not occupancy(gt, grid_points(*gt.bounds, resolution), num_rays).any():
            raise ValueError(f"ground-truth mesh encloses no cell of the {resolution}^3 IoU grid (is it watertight?)")
        return 0.0  # the prediction reaches so far beyond the ground truth that the grid's cells dwarf it
    inside_pred = occupancy(pred, points, num_rays)
    return float(np.sum(inside_pred & inside_gt) / np.sum(inside_pred | inside_gt))


def fscore_keys(tau: float) -> Tuple[str, str, str]:
    """Result keys of the F-score, precision and recall at tau, e.g. `fscore@0.01`."""
    return f"fscore@{tau:g}", f"precision@{tau:g}", f"recall@{tau:g}"


def worst_metrics(config: MetricConfig) -> Dict[str, float]:
    """The metrics of an empty prediction (see the module docstring)."""
    result = {"chamfer_l1": WORST_DISTANCE, "accuracy": WORST_DISTANCE, "completeness": WORST_DISTANCE}
    for tau in config.fscore_taus:
        result.update(dict.fromkeys(fscore_keys(tau), 0.0))
    result["iou"] = 0.0
    return result


def mesh_metrics(pred: trimesh.Trimesh, gt: trimesh.Trimesh, config: MetricConfig = MetricConfig()) -> Dict[str, float]:
    """All metrics of one prediction: chamfer_l1, accuracy, completeness, fscore@tau, precision@tau,
    recall@tau for each tau of the config, and iou. Distances are in normalised units (module docstring).

    Sampling commutes with the normalisation (a similarity scales every face area by the same factor), so
    samples are drawn in the original frame and then normalised.
    """
    centre, scale = normalisation(gt)
    if is_empty(pred):
        return worst_metrics(config)
    gt_points = normalise_points(sample_surface(gt, config.num_samples, config.seed), centre, scale)
    pred_points = normalise_points(sample_surface(pred, config.num_samples, config.seed), centre, scale)
    distances = surface_distances(pred_points, gt_points)
    chamfer, accuracy, completeness = chamfer_l1(distances)
    result = {"chamfer_l1": chamfer, "accuracy": accuracy, "completeness": completeness}
    for tau in config.fscore_taus:
        result.update(zip(fscore_keys(tau), fscore(distances, tau)))
    result["iou"] = volumetric_iou(pred, gt, config.iou_resolution, config.occupancy_rays)
    return result
