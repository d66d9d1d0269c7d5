"""`scripts/benchmark.py prior-bound`: every test instance answered with an average of the train shapes."""

import json
from pathlib import Path

import trimesh

from gansvr_ns.data import format as fmt
from tests.conftest import make_ellipsoid_dataset
from tests.scripts.conftest import load_script

benchmark = load_script("benchmark")

SHAPES = {"long": (0.8, 0.3, 0.3), "tall": (0.3, 0.3, 0.8)}


def two_subtype_dataset(out):
    """Ellipsoids whose meshes are one of two shapes, alternately, with the subtypes listed in dataset.json."""
    data = make_ellipsoid_dataset(out, num_instances=16, views=4, size=24)
    info = json.loads((data / "dataset.json").read_text())
    ids = sorted(i for split in info["splits"].values() for i in split)
    subtypes = {i: list(SHAPES)[k % 2] for k, i in enumerate(ids)}
    for i, name in subtypes.items():
        mesh = trimesh.creation.icosphere(subdivisions=3)
        mesh.apply_scale(SHAPES[name])
        mesh.export(data / i / "mesh.ply")
    info["generator"] = {"name": "test", "subtypes": subtypes}
    fmt.write_json(data / "dataset.json", info)
    return data, info, subtypes


def test_subtype_mean_recovers_shapes_the_mean_shape_misses(tmp_path, capsys):
    data, info, subtypes = two_subtype_dataset(tmp_path / "ellipsoids")
    assert {subtypes[i] for i in info["splits"]["test"]} <= {subtypes[i] for i in info["splits"]["train"]}
    result = benchmark.PriorBound(data=data, resolution=32, output_dir=tmp_path / "prior").main()
    mean, subtype = result["priors"]["mean train shape"], result["priors"]["mean train shape of its subtype"]
    # every shape of a subtype is the same ellipsoid: its mean is that ellipsoid, up to the 32^3 grid
    assert subtype["iou"] > 0.85 and subtype["chamfer_ratio"] < 0.1
    # the mean of a long and a tall ellipsoid is neither
    assert mean["iou"] < 0.7 and mean["chamfer_ratio"] > 3 * subtype["chamfer_ratio"]
    meshes = {p.stem for p in (tmp_path / "prior" / "mean").glob("*.ply")}
    assert meshes == set(info["splits"]["test"])
    assert json.loads((tmp_path / "prior" / "prior_bound.json").read_text())["priors"].keys() == result["priors"].keys()
    assert "| mean train shape of its subtype |" in capsys.readouterr().out


def test_without_subtypes_only_the_mean_shape_is_scored(tmp_path):
    data = make_ellipsoid_dataset(tmp_path / "ellipsoids", num_instances=16, views=4, size=24)
    result = benchmark.PriorBound(data=data, resolution=24, output_dir=tmp_path / "prior").main()
    assert list(result["priors"]) == ["mean train shape"]
    assert 0.0 < result["priors"]["mean train shape"]["iou"] <= 1.0


def test_averages_of_perfect_reconstructions_are_the_averages_of_the_truth(tmp_path, monkeypatch):
    data, info, _ = two_subtype_dataset(tmp_path / "ellipsoids")

    def ground_truth_as_reconstructions(config, data, ids, out, resolution):
        out.mkdir(parents=True, exist_ok=True)
        for i in ids:
            (out / f"{i}.ply").write_bytes((data / i / "mesh.ply").read_bytes())

    monkeypatch.setattr(benchmark, "reconstruct_split", ground_truth_as_reconstructions)
    monkeypatch.setattr(benchmark, "check_run_config", lambda config: None)  # no run: its reconstructions are faked
    result = benchmark.PriorBound(data=data, resolution=24, output_dir=tmp_path / "prior",
                                  load_config=tmp_path / "unused.yml").main()
    priors = result["priors"]
    assert list(priors) == list(benchmark.PRIOR_NAMES.values())
    for truth, recon in [("mean train shape", "mean of the run's train reconstructions"),
                         ("mean train shape of its subtype", "mean of the run's train reconstructions of its subtype")]:
        assert priors[recon]["chamfer_l1"] == priors[truth]["chamfer_l1"]
        assert priors[recon]["iou"] == priors[truth]["iou"]
    assert priors["mean of the run's train reconstructions of its subtype"]["chamfer_ratio"] < 0.1


def test_averages_of_a_trained_runs_reconstructions(ablation_run, tmp_path, capsys):
    _, data, output, _ = ablation_run
    config = Path(json.loads(output.read_text())["variants"]["no_pose_refinement"]["seeds"]["0"]["config"])
    out = tmp_path / "prior"
    result = benchmark.PriorBound(data=data, resolution=24, output_dir=out, load_config=config,
                                  reconstruction_resolution=32).main()
    train = json.loads((data / "dataset.json").read_text())["splits"]["train"]
    assert {p.stem for p in (out / "train-reconstructions").glob("*.ply")} == set(train)
    recon = result["priors"]["mean of the run's train reconstructions"]
    truth = result["priors"]["mean train shape"]
    # a 4-step run's shapes are nowhere near the truth, so their mean is not the truth's mean
    assert recon["chamfer_l1"] != truth["chamfer_l1"] and recon["chamfer_ratio"] > 0
    assert result["config"] == str(config)
    assert "| mean of the run's train reconstructions |" in capsys.readouterr().out
