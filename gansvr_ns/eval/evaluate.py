"""Evaluate a folder of predicted meshes against the ground-truth meshes of a dataset split.

Predictions are matched by name: `<pred_dir>/<instance_id>.ply` (or `.obj`, `.glb`) is compared with
`<data>/<instance_id>/mesh.ply`. A split instance without a prediction is counted as missing and left
out of the means (the result says how many and which); a prediction file that cannot be read, or a
split instance without a ground-truth mesh, is a `FormatError` naming the file.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import trimesh
from rich.progress import track

from gansvr_ns.data.format import FormatError, read_dataset, read_instance
from gansvr_ns.eval.metrics import (
    MetricConfig,
    chamfer_l1,
    is_empty,
    mesh_metrics,
    normalisation,
    sample_surface,
    surface_distances,
)

PREDICTION_SUFFIXES = (".ply", ".obj", ".glb")
"""File types accepted as predictions, `<instance_id><suffix>`."""


def load_mesh(path: Path) -> trimesh.Trimesh:
    """Read a mesh file as one triangle mesh (a scene's meshes are merged); an unreadable file is a FormatError."""
    if not path.is_file():
        raise FormatError(path, "mesh file is missing")
    try:
        # as stored first: processing drops the faces of non-finite vertices, which would score what is left
        raw = trimesh.load(path, force="mesh", process=False)
    except Exception as err:  # trimesh's loaders raise many unrelated types for a malformed file
        if path.suffix.lower() == ".obj" and not obj_has_faces(path):
            return trimesh.Trimesh()  # how trimesh wrote an empty mesh: a bare "v" and "f" line
        raise FormatError(path, f"not a readable mesh ({err.__class__.__name__}: {err})") from None
    if not isinstance(raw, trimesh.Trimesh):
        raise FormatError(path, f"not a triangle mesh (read as {raw.__class__.__name__})")
    if not np.all(np.isfinite(raw.vertices)):
        raise FormatError(path, "mesh has non-finite vertex coordinates")
    if len(raw.faces) == 0:  # an empty mesh, or a point cloud, which `force="mesh"` reads as one
        points = trimesh.load(path, process=False)
        if isinstance(points, trimesh.PointCloud) and len(points.vertices) > 0:
            raise FormatError(path, f"a point cloud ({len(points.vertices)} points, no faces), not a mesh")
    return trimesh.Trimesh(raw.vertices, raw.faces)  # processed (vertices merged) as trimesh.load would


def obj_has_faces(path: Path) -> bool:
    """Whether an OBJ file has a face line with at least one vertex index."""
    with path.open("rb") as f:
        return any(fields[:1] == [b"f"] and len(fields) > 1 for fields in map(bytes.split, f))


def find_prediction(pred_dir: Path, instance_id: str) -> Optional[Path]:
    """The prediction file of an instance, None when there is none.

    `gansvr-reconstruct` may write one mesh in several formats; the first of PREDICTION_SUFFIXES is scored.
    """
    found = [pred_dir / f"{instance_id}{suffix}" for suffix in PREDICTION_SUFFIXES]
    found = [path for path in found if path.is_file()]
    return found[0] if found else None


def load_ground_truth(data: Path, split: str) -> Dict[str, trimesh.Trimesh]:
    """Ground-truth meshes of a split, by instance id; a missing or empty `mesh.ply` is a FormatError."""
    info = read_dataset(data)
    meshes = {}
    for instance_id in info.instances(split):
        record = read_instance(info, instance_id, check_images=False)
        if record.mesh_path is None:
            raise FormatError(record.folder / "mesh.ply", "ground-truth mesh is missing")
        mesh = load_mesh(record.mesh_path)
        if is_empty(mesh):
            raise FormatError(record.mesh_path, "ground-truth mesh has no faces")
        meshes[instance_id] = mesh
    return meshes


def mean_metrics(per_instance: Dict[str, Dict[str, float]]) -> Dict[str, float]:
    """Mean of every metric over the instances (keys of the first instance)."""
    rows = list(per_instance.values())
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]} if rows else {}


def evaluate_predictions(
    pred_dir: Path,
    data: Path,
    split: str = "test",
    config: MetricConfig = MetricConfig(),
    progress: bool = False,
) -> Dict:
    """Metrics of every prediction of a split, and their means.

    Returns a JSON-ready dict: `pred_dir`, `data`, `split`, `config`, `num_instances`, `num_evaluated`,
    `missing` (ids without a prediction), `empty` (ids whose prediction has no faces; they get the
    worst-case values of `metrics.py`), `per_instance` {id: {metric: value}} and `mean` {metric: value}
    over the evaluated instances. No prediction at all is an error (most likely the wrong folder).
    """
    pred_dir, data = Path(pred_dir), Path(data)
    if not pred_dir.is_dir():
        raise FormatError(pred_dir, "prediction folder does not exist")
    gt_meshes = load_ground_truth(data, split)
    predictions = {instance_id: find_prediction(pred_dir, instance_id) for instance_id in gt_meshes}
    missing = [instance_id for instance_id, path in predictions.items() if path is None]
    if len(missing) == len(predictions):
        names = "/".join(PREDICTION_SUFFIXES)
        raise FormatError(pred_dir, f"no <instance_id>{names} for any of the {len(missing)} '{split}' instances")
    per_instance: Dict[str, Dict[str, float]] = {}
    empty: List[str] = []
    found = [(instance_id, path) for instance_id, path in predictions.items() if path is not None]
    for instance_id, path in track(found, description=f"Evaluating {split}", disable=not progress):
        pred = load_mesh(path)
        if is_empty(pred):
            empty.append(instance_id)
        try:
            per_instance[instance_id] = mesh_metrics(pred, gt_meshes[instance_id], config)
        except ValueError as err:  # a ground truth the metrics cannot use (e.g. it encloses no volume)
            raise FormatError(data / instance_id / "mesh.ply", str(err)) from None
    return {
        "pred_dir": str(pred_dir),
        "data": str(data),
        "split": split,
        "config": asdict(config),
        "num_instances": len(predictions),
        "num_evaluated": len(per_instance),
        "missing": missing,
        "empty": empty,
        "per_instance": per_instance,
        "mean": mean_metrics(per_instance),
    }


def another_instance_baseline(
    data: Path, split: str = "test", config: MetricConfig = MetricConfig(), progress: bool = False
) -> float:
    """Mean Chamfer-L1 obtained by answering instance i with the ground truth of another instance j.

    baseline = 1 / (n (n - 1)) * sum_{i != j} CD(pred = gt_j, ref = gt_i), each term normalised by the
    reference gt_i as in `mesh_metrics`. Since the normalisation is x' = (x - c_i) s_i, CD(gt_j, gt_i) =
    s_i * D_ij with D_ij the (symmetric) Chamfer-L1 in the original frame, so each unordered pair is
    measured once and contributes (s_i + s_j) D_ij. A reconstruction is only informative if it beats this.
    """
    meshes = load_ground_truth(Path(data), split)
    if len(meshes) < 2:
        raise FormatError(Path(data) / "dataset.json", f"split '{split}' needs at least 2 instances for a baseline")
    samples = [sample_surface(mesh, config.num_samples, config.seed) for mesh in meshes.values()]
    scales = [normalisation(mesh)[1] for mesh in meshes.values()]
    pairs = list(itertools.combinations(range(len(samples)), 2))
    total = 0.0
    for i, j in track(pairs, description="Another-instance baseline", disable=not progress):
        chamfer, _, _ = chamfer_l1(surface_distances(samples[j], samples[i]))
        total += (scales[i] + scales[j]) * chamfer
    return total / (2 * len(pairs))
