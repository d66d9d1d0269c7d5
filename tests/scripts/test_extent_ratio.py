"""`scripts/benchmark.py quality` reports how the size of the reconstructions compares with their ground truth."""

import json

import trimesh

from tests.conftest import make_ellipsoid_dataset
from tests.scripts.conftest import load_script

benchmark = load_script("benchmark")


def test_extent_ratio_is_the_mean_size_per_axis_over_ground_truth(tmp_path):
    data = make_ellipsoid_dataset(tmp_path / "ellipsoids", num_instances=16, views=4, size=24)
    ids = json.loads((data / "dataset.json").read_text())["splits"]["test"]
    pred = tmp_path / "pred"
    pred.mkdir()
    for k, instance in enumerate(ids):
        mesh = trimesh.load(data / instance / "mesh.ply", process=False)
        mesh.apply_scale([1.0, 1.2 if k == 0 else 1.1, 0.9])  # one fatter than the rest, all flatter
        mesh.apply_translation([0.3, 0.0, 0.0])  # position does not matter
        mesh.export(pred / f"{instance}.ply")
    x, y, z = benchmark.extent_ratios(pred, data, ids)
    assert abs(x - 1.0) < 1e-6 and abs(z - 0.9) < 1e-6
    assert abs(y - (1.2 + 1.1 * (len(ids) - 1)) / len(ids)) < 1e-6
    (pred / f"{ids[-1]}.ply").unlink()
    assert benchmark.extent_ratios(pred, data, ids) is None
