"""`scripts/benchmark.py hull-bound`: the test instances' own visual hulls, scored like reconstructions."""

import json

import pytest

from tests.conftest import make_ellipsoid_dataset
from tests.scripts.conftest import load_script

benchmark = load_script("benchmark")


def test_hulls_of_ellipsoids_beat_another_instance(tmp_path, capsys):
    data = make_ellipsoid_dataset(tmp_path / "ellipsoids", num_instances=16, views=12, size=32)
    test_ids = json.loads((data / "dataset.json").read_text())["splits"]["test"]
    assert len(test_ids) >= 2
    result = benchmark.HullBound(data=data, resolution=32, keep=[1.0, 0.9], output_dir=tmp_path / "hulls").main()
    assert set(result["hulls"]) == {"rough poses, keep 1", "rough poses, keep 0.9", "true poses, keep 1",
                                    "true poses, keep 0.9"}
    for name, scores in result["hulls"].items():
        # a visual hull over-approximates an ellipsoid only a little; another ellipsoid is much further off
        assert scores["chamfer_ratio"] < 0.8 and scores["iou"] > 0.5, name
    # the fixture's rough poses are its true ones
    assert result["hulls"]["rough poses, keep 1"]["chamfer_l1"] == pytest.approx(
        result["hulls"]["true poses, keep 1"]["chamfer_l1"])
    assert {p.stem for p in (tmp_path / "hulls" / "true-keep1").glob("*.ply")} == set(test_ids)
    assert json.loads((tmp_path / "hulls" / "hull_bound.json").read_text())["hulls"].keys() == result["hulls"].keys()
    assert "| true poses, keep 1 |" in capsys.readouterr().out
