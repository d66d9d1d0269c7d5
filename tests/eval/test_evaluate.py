"""Evaluating a prediction folder against a tiny hand-made dataset, through the library and the real CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from gansvr_ns.data.format import (
    FormatError,
    dataset_json,
    input_entry,
    orbit_pose,
    save_mask,
    save_rgb,
    view_entry,
    write_cameras,
    write_json,
)
from gansvr_ns.eval.evaluate import another_instance_baseline, evaluate_predictions, load_mesh
from gansvr_ns.eval.metrics import WORST_DISTANCE, MetricConfig, mesh_metrics

CONFIG = MetricConfig(num_samples=5000)
CLI = str(Path(sys.executable).parent / "gansvr-eval")

GROUND_TRUTH = {
    "box_a": lambda: trimesh.creation.box(extents=(0.8, 0.4, 0.3)),
    "box_b": lambda: trimesh.creation.box(extents=(0.5, 0.5, 0.5)),
    "ball": lambda: trimesh.creation.icosphere(subdivisions=3, radius=0.4),
}


def write_instance(root: Path, instance_id: str, mesh: trimesh.Trimesh) -> None:
    """One instance: input view, two 8x8 pseudo views with masks, cameras.json and mesh.ply."""
    folder = root / instance_id
    rgb, mask = np.full((8, 8, 3), 0.5), np.zeros((8, 8), dtype=bool)
    mask[2:6, 2:6] = True
    save_rgb(folder / "input.png", rgb)
    views = []
    for index, azimuth in enumerate((0.0, 90.0)):
        save_rgb(folder / f"views/{index:03d}.png", rgb)
        save_mask(folder / f"masks/{index:03d}.png", mask)
        views.append(view_entry(index, orbit_pose(azimuth, 15.0, 2.5), azimuth_deg=azimuth, elevation_deg=15.0))
    write_cameras(folder, input_entry(orbit_pose(30.0, 15.0, 2.5), azimuth_deg=30.0), views)
    mesh.export(folder / "mesh.ply")


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for instance_id, make in GROUND_TRUTH.items():
        write_instance(root, instance_id, make())
    splits = {"train": ["box_a"], "test": list(GROUND_TRUTH)}
    intrinsics = {"fx": 8.0, "fy": 8.0, "cx": 4.0, "cy": 4.0}
    write_json(root / "dataset.json", dataset_json("toy", "hand-made", (8, 8), intrinsics, splits, {}))
    return root


@pytest.fixture
def predictions(tmp_path: Path) -> Path:
    """box_a exact (.ply), box_b as a shifted copy (.obj), ball missing."""
    pred = tmp_path / "pred"
    pred.mkdir()
    GROUND_TRUTH["box_a"]().export(pred / "box_a.ply")
    GROUND_TRUTH["box_b"]().apply_translation([0.1, 0.0, 0.0]).export(pred / "box_b.obj")
    return pred


def test_evaluate_matches_predictions_and_counts_missing(dataset, predictions):
    result = evaluate_predictions(predictions, dataset, "test", CONFIG)
    assert (result["num_instances"], result["num_evaluated"], result["missing"]) == (3, 2, ["ball"])
    exact, shifted = result["per_instance"]["box_a"], result["per_instance"]["box_b"]
    assert exact["chamfer_l1"] == pytest.approx(0.0, abs=1e-9) and exact["iou"] == 1.0
    assert shifted["iou"] == pytest.approx(0.4 / 0.6, abs=0.05)  # unit-free overlap of boxes of side 0.5 shifted 0.1
    assert 0.0 < shifted["chamfer_l1"] < 0.2
    assert result["mean"]["iou"] == pytest.approx((exact["iou"] + shifted["iou"]) / 2)
    json.dumps(result, allow_nan=False)  # JSON-ready: raises on arrays, NaN or infinity


def test_empty_prediction_is_counted_not_fatal(dataset, predictions):
    trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)).export(predictions / "ball.ply")
    result = evaluate_predictions(predictions, dataset, "test", CONFIG)
    assert result["empty"] == ["ball"] and result["missing"] == []
    assert result["per_instance"]["ball"]["chamfer_l1"] == WORST_DISTANCE


@pytest.mark.parametrize("suffix", ["ply", "obj", "glb"])
def test_empty_mesh_as_reconstruct_writes_it_is_scored_empty(dataset, predictions, suffix):
    from gansvr_ns.model.mesh import save_mesh

    save_mesh(trimesh.Trimesh(), predictions / "ball", [suffix])
    assert len(load_mesh(predictions / f"ball.{suffix}").faces) == 0
    result = evaluate_predictions(predictions, dataset, "test", CONFIG)
    assert result["empty"] == ["ball"] and result["per_instance"]["ball"]["chamfer_l1"] == WORST_DISTANCE


def test_empty_obj_written_by_trimesh_reads_as_empty(tmp_path):
    path = tmp_path / "empty.obj"
    path.write_text(trimesh.Trimesh().export(file_type="obj"))  # a bare "v" and "f" line, unreadable to trimesh
    assert len(load_mesh(path).faces) == 0
    path.write_text("v 0 0 0\nv 1 0 0\nf 1 2 x\n")  # a face line that is broken, not absent: still an error
    with pytest.raises(FormatError, match="not a readable mesh"):
        load_mesh(path)


def test_bad_inputs_name_the_file(dataset, predictions):
    (dataset / "ball" / "mesh.ply").unlink()
    with pytest.raises(FormatError, match=r"ball/mesh\.ply: ground-truth mesh is missing"):
        evaluate_predictions(predictions, dataset, "test", CONFIG)
    (predictions / "box_a.glb").write_bytes(b"not a mesh")
    assert evaluate_predictions(predictions, dataset, "train", CONFIG)["num_evaluated"] >= 1  # .ply is preferred
    (predictions / "box_a.ply").unlink()
    with pytest.raises(FormatError, match=r"box_a\.glb: not a readable mesh"):
        evaluate_predictions(predictions, dataset, "train", CONFIG)
    for suffix in ("ply", "obj", "glb"):  # a non-finite vertex is refused, not dropped with its faces by trimesh
        broken = GROUND_TRUTH["box_a"]()
        vertices = broken.vertices.copy()
        vertices[::2] = np.nan
        trimesh.Trimesh(vertices, broken.faces, process=False).export(predictions / f"box_a.{suffix}")
        with pytest.raises(FormatError, match=rf"box_a\.{suffix}: mesh has non-finite vertex coordinates"):
            evaluate_predictions(predictions, dataset, "train", CONFIG)
        (predictions / f"box_a.{suffix}").unlink()
    trimesh.PointCloud(GROUND_TRUTH["box_a"]().vertices).export(predictions / "box_a.ply")
    with pytest.raises(FormatError, match=r"box_a\.ply: a point cloud \(8 points, no faces\), not a mesh"):
        evaluate_predictions(predictions, dataset, "train", CONFIG)
    (predictions.parent / "nothing").mkdir()
    with pytest.raises(FormatError, match="no <instance_id>"):
        evaluate_predictions(predictions.parent / "nothing", dataset, "train", CONFIG)


def test_baseline_is_the_mean_over_ordered_pairs(dataset, tmp_path):
    write_json(
        dataset / "dataset.json",
        {**json.loads((dataset / "dataset.json").read_text()), "splits": {"test": ["box_a", "ball"]}},
    )
    a, b = (load_mesh(dataset / name / "mesh.ply") for name in ("box_a", "ball"))
    expected = (mesh_metrics(a, b, CONFIG)["chamfer_l1"] + mesh_metrics(b, a, CONFIG)["chamfer_l1"]) / 2
    assert another_instance_baseline(dataset, "test", CONFIG) == pytest.approx(expected, rel=1e-9)
    assert expected > 0.05  # different shapes really differ


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "160"}
    )


def test_cli_writes_json_and_table(dataset, predictions):
    done = run_cli("--pred", str(predictions), "--data", str(dataset), "--baseline", "--metrics.num-samples", "5000")
    assert done.returncode == 0, done.stderr
    output = predictions / "eval_test.json"
    result = json.loads(output.read_text())
    expected_keys = {"pred_dir", "data", "split", "config", "num_instances", "num_evaluated", "missing", "empty"}
    assert expected_keys | {"per_instance", "mean", "another_instance_baseline"} == set(result)
    assert set(result["mean"]) == {"chamfer_l1", "accuracy", "completeness", "iou"} | {
        f"{name}@{tau}" for name in ("fscore", "precision", "recall") for tau in ("0.01", "0.05")
    }
    assert result["another_instance_baseline"] > result["mean"]["chamfer_l1"]
    lines = done.stdout.strip().splitlines()
    assert any(line.split("│")[1].strip() == "mean" for line in lines if line.count("│") > 2)
    assert "1 of 3 instances have no prediction" in done.stdout
    assert lines[-1] == f"Wrote metrics of 2 instances to {output}"


def test_cli_bad_input_is_one_line_and_exit_2(dataset, predictions, tmp_path):
    done = run_cli("--pred", str(predictions), "--data", str(tmp_path / "nowhere"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"gansvr-eval: error: {tmp_path / 'nowhere'}: dataset folder does not exist"
    assert not (predictions / "eval_test.json").exists()
    a_file = tmp_path / "a_file"
    a_file.write_text("kept")
    for output, message in ((a_file / "e.json", f"{a_file}: a file, so --output {a_file / 'e.json'} cannot be"),
                            (tmp_path, f"{tmp_path}: --output is a folder")):
        done = run_cli("--pred", str(predictions), "--data", str(dataset), "--output", str(output))
        assert done.returncode == 2 and done.stderr.strip().startswith(f"gansvr-eval: error: {message}")
        assert "Evaluating" not in done.stdout  # refused before the predictions were scored
    assert a_file.read_text() == "kept"
    for read in (predictions / "box_b.obj", dataset / "dataset.json", dataset / "ball" / "mesh.ply"):
        before = read.read_bytes()
        done = run_cli("--pred", str(predictions), "--data", str(dataset), "--output", str(read))
        assert done.returncode == 2 and "Evaluating" not in done.stdout
        assert done.stderr.strip() == f"gansvr-eval: error: {read}: a file the evaluation reads, which --output " \
                                      "would replace (choose another)"
        assert read.read_bytes() == before
    omitted = run_cli("--pred", str(predictions))  # tyro's own usage error
    assert omitted.returncode == 2 and "--data" in omitted.stderr


def test_cli_baseline_on_a_one_instance_split_fails_before_evaluating(dataset, predictions):
    done = run_cli("--pred", str(predictions), "--data", str(dataset), "--split", "train", "--baseline")
    assert done.returncode == 2
    reason = "split 'train' needs at least 2 instances for a baseline"
    assert done.stderr.strip() == f"gansvr-eval: error: {dataset / 'dataset.json'}: {reason}"
    assert "Evaluating" not in done.stdout  # refused before the predictions were scored
    assert not (predictions / "eval_train.json").exists()


def test_table_keeps_every_figure_whole_at_80_columns():
    import io

    from rich.console import Console

    from gansvr_ns.scripts.evaluate import _columns, results_table

    config = MetricConfig(fscore_taus=(0.01, 0.05))
    scores = {key: 0.123456 + i for i, key in enumerate(_columns(config))}
    results = {"split": "test", "num_instances": 2, "num_evaluated": 1, "missing": ["an_instance_with_a_long_id_2"],
               "empty": [], "per_instance": {"an_instance_with_a_long_id_1": scores}, "mean": scores,
               "another_instance_baseline": 0.0321}
    out = io.StringIO()
    Console(file=out, width=80).print(results_table(results, config))
    text = out.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text
    for i in range(len(scores)):
        assert text.count(f"{0.123456 + i:.4f}") == 2  # the instance's row and the mean
    assert "0.0321" in text
