"""`scripts/benchmark.py architecture-bound`: the SDF field fitted to the train split's ground-truth shapes."""

import json
from pathlib import Path

import torch

from tests.scripts.conftest import load_script
from tests.scripts.test_prior_bound import two_subtype_dataset

benchmark = load_script("benchmark")

FITTED = "the architecture fitted to the shapes"
SMALL = dict(instances_per_step=4, points_per_instance=512, points=2000, resolution=32)


def test_shape_samples_are_labelled_by_the_mesh(tmp_path):
    data, info, subtypes = two_subtype_dataset(tmp_path / "ellipsoids")
    instance = next(i for i in info["splits"]["train"] if subtypes[i] == "long")
    points, inside = benchmark.shape_samples(data / instance / "mesh.ply", 1000, 0.02, seed=0)
    assert points.shape == (1000, 3) and inside.shape == (1000,)
    # the long ellipsoid has semi-axes (0.8, 0.3, 0.3): inside exactly where the ellipsoid's equation is below 1
    radius = (points / torch.tensor([0.8, 0.3, 0.3])).norm(dim=-1)
    clear = (radius - 1.0).abs() > 0.05  # the icosphere's facets stand off the true surface by less than this
    assert torch.equal(inside[clear].bool(), radius[clear] < 1.0)
    # half of them near the surface, about half of those inside; the ellipsoid fills 4% of the box, so few of the
    # uniform half are: about 0.27 in all, where uniform points alone would give 0.04
    assert 0.2 < float(inside.mean()) < 0.35


def test_the_fit_learns_both_shapes(tmp_path, capsys):
    data, _, _ = two_subtype_dataset(tmp_path / "ellipsoids")
    before = benchmark.ArchitectureBound(data=data, steps=0, max_instances=4, output_dir=tmp_path / "none",
                                         **SMALL).main()
    after = benchmark.ArchitectureBound(data=data, steps=300, max_instances=4, output_dir=tmp_path / "fit",
                                        **SMALL).main()
    start, fitted = before["rows"][FITTED], after["rows"][FITTED]
    # untrained, every shape is the starting sphere; fitted, each latent holds its own ellipsoid
    assert start["iou"] < 0.5 < 0.8 < fitted["iou"]
    assert fitted["chamfer_ratio"] < 0.3 < start["chamfer_ratio"]
    assert after["final_loss"] < 0.5 * after["first_loss"]  # the means of the first and the last 50 steps
    assert {p.stem for p in (tmp_path / "fit" / "fitted").glob("*.ply")} == set(
        json.loads((data / "dataset.json").read_text())["splits"]["train"][:4])
    assert json.loads((tmp_path / "fit" / "architecture_bound.json").read_text())["steps"] == 300
    assert f"| {FITTED} |" in capsys.readouterr().out


def test_a_runs_field_settings_and_reconstructions(ablation_run, tmp_path):
    _, data, output, _ = ablation_run
    config = Path(json.loads(output.read_text())["variants"]["no_pose_refinement"]["seeds"]["0"]["config"])
    result = benchmark.ArchitectureBound(data=data, load_config=config, steps=5, output_dir=tmp_path / "bound",
                                         **SMALL).main()
    train = json.loads((data / "dataset.json").read_text())["splits"]["train"]
    assert list(result["rows"]) == [FITTED, "the run's reconstructions from their input images"]
    for folder in ("fitted", "run"):
        assert {p.stem for p in (tmp_path / "bound" / folder).glob("*.ply")} == set(train)
    assert result["config"] == str(config)
