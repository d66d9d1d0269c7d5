"""`scripts/benchmark.py supervision-bound`: the method trained on a few instances and scored on those."""

import json

import pytest

from gansvr_ns.data import format as fmt
from tests.scripts.conftest import TINY_TRAIN, load_script

benchmark = load_script("benchmark")


def test_instances_are_taken_in_turn_from_each_subtype():
    ids = ["a1", "a2", "a3", "b1", "c1", "c2"]
    subtypes = {i: i[0] for i in ids}
    assert benchmark.spread_over_subtypes(ids, subtypes, 4) == ["a1", "b1", "c1", "a2"]
    assert benchmark.spread_over_subtypes(ids, subtypes, 10) == ["a1", "b1", "c1", "a2", "c2", "a3"]
    # without a subtype for every instance, the first ones
    assert benchmark.spread_over_subtypes(ids, {"a1": "a"}, 3) == ["a1", "a2", "a3"]


def test_the_cut_dataset_links_the_instances_and_keeps_the_held_out_splits(ablation_run, tmp_path):
    _, data, _, _ = ablation_run
    info = json.loads((data / "dataset.json").read_text())
    keep = info["splits"]["train"][:2]
    subset = benchmark.write_subset(data, keep, tmp_path / "cut")
    cut = fmt.read_dataset(subset)
    assert cut.instances("train") == keep
    assert cut.instances("test") == info["splits"]["test"] and cut.instances("val") == info["splits"]["val"]
    assert (subset / keep[0]).resolve() == (data / keep[0]).resolve()
    assert info == json.loads((data / "dataset.json").read_text())  # the source is left as it was
    # writing it again over itself is harmless
    assert fmt.read_dataset(benchmark.write_subset(data, keep, tmp_path / "cut")).instances("train") == keep


def test_a_run_on_two_instances_is_scored_on_them(ablation_run, tmp_path, capsys):
    _, data, _, _ = ablation_run
    out = tmp_path / "bound"
    result = benchmark.SupervisionBound(data=data, instances=2, train_args=f"--max-num-iterations 3 {TINY_TRAIN}",
                                        resolution=32, output_dir=out).main()
    assert len(result["instances"]) == 2 and set(result["per_instance"]) == set(result["instances"])
    assert {p.stem for p in (out / "meshes").glob("*.ply")} == set(result["instances"])
    assert result["scores"]["chamfer_ratio"] > 0 and result["train_seconds"] > 0
    assert json.loads((out / "supervision_bound.json").read_text())["instances"] == result["instances"]
    assert "its 2 train instances, from their own input images" in capsys.readouterr().out


def test_no_instances_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(SystemExit, match="--instances must be at least 1"):
        benchmark.SupervisionBound(data=tmp_path / "absent", instances=0, output_dir=tmp_path / "bound").main()
    assert not (tmp_path / "bound").exists() and not (tmp_path / "absent").exists()
