"""`scripts/benchmark.py ablations`: the variant table parses into the configs it claims, the seed statistics and the
table are right, an interrupted run resumes without repeating finished pairs, and the real tiny run scores both
variants."""

import json
from pathlib import Path

import pytest
import tyro
import yaml

from tests.scripts.conftest import TINY_VARIANTS, load_script

benchmark = load_script("benchmark")

EXPECTED = {
    "full": lambda c: c.pipeline.model.uncertainty == "image" and c.pipeline.model.camera_optimizer.mode == "SO3xR3"
    and not c.pipeline.model.pose_network and c.pipeline.model.colour_uncertainty == "view"
    and c.pipeline.model.uncertainty_weighting == "relative",
    "no_uncertainty": lambda c: c.pipeline.model.uncertainty == "none",
    "no_pose_refinement": lambda c: c.pipeline.model.camera_optimizer.mode == "off",
    "pose_network": lambda c: c.pipeline.model.pose_network and c.pipeline.model.camera_optimizer.mode == "SO3xR3",
    "mean_latent": lambda c: c.pipeline.model.condition_mode == "mean_latent",
    "uncertainty_image": lambda c: c.pipeline.model.uncertainty == "image",
    "uncertainty_field": lambda c: c.pipeline.model.uncertainty == "field",
    "mask_uncertainty": lambda c: c.pipeline.model.mask_uncertainty == "view",
    "paper_colour_sigma": lambda c: c.pipeline.model.uncertainty == "image"
    and c.pipeline.model.colour_uncertainty == "pixel" and c.pipeline.model.uncertainty_weighting == "likelihood",
    "hypernetwork": lambda c: c.pipeline.model.sdf_field.architecture == "hypernetwork",
    "hypernetwork_equal_time": lambda c: c.pipeline.model.sdf_field.architecture == "hypernetwork",
}


def test_every_variant_parses_into_its_config(tmp_path):
    from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion

    from gansvr_ns.method_config import gansvr_config

    default = gansvr_config()
    assert set(benchmark.ABLATION_VARIANTS) == set(EXPECTED)
    common = benchmark.schedule_flags(60) + list(benchmark.ABLATION_PROFILES["quick"].train_flags)
    for variant in benchmark.ABLATION_VARIANTS:
        cmd = benchmark.ablation_command(variant, 3, tmp_path / "data", tmp_path / "runs", common)
        assert Path(cmd[0]).name == "ns-train" and cmd[1] == "gansvr"
        config = tyro.cli(AnnotatedBaseConfigUnion, args=cmd[1:])
        assert EXPECTED[variant](config), variant
        assert config.max_num_iterations == 60 and config.machine.seed == 3
        assert config.pipeline.datamanager.seed == 3 and config.pipeline.datamanager.rays_per_view == 32
        # the default schedules (steps, pose warm-up, NeuS annealing) compressed to 60 steps
        assert {opt["scheduler"].max_steps for opt in config.optimizers.values()} == {60}
        scale = 60 / default.max_num_iterations
        warmup = default.optimizers["camera_opt"]["scheduler"].warmup_steps
        assert warmup > 0 and config.optimizers["camera_opt"]["scheduler"].warmup_steps == round(warmup * scale)
        assert config.pipeline.model.cos_anneal_end == round(default.pipeline.model.cos_anneal_end * scale)
        searches = tuple(max(1, round(s * scale)) for s in default.pipeline.model.pose_search_steps)
        assert tuple(config.pipeline.model.pose_search_steps) == searches
        assert config.get_base_dir() / "config.yml" == benchmark.ablation_config_path(tmp_path / "runs", variant, 3)


def run_result(chamfer, iou, seconds, refined, rough=14.0):
    return {"chamfer": chamfer, "chamfer_ratio": chamfer / 0.5, "fscore": 1 - chamfer, "iou": iou,
            "train_seconds": seconds, "pose_rotation_error_deg": refined, "rough_pose_rotation_error_deg": rough}


def test_seed_statistics_and_table():
    seeds = {"0": run_result(0.2, 0.5, 60.0, None), "1": run_result(0.4, 0.7, 180.0, None)}
    summary = benchmark.summarise_seeds(seeds)
    # mean (0.2 + 0.4) / 2; sample std sqrt(((0.2 - 0.3)^2 + (0.4 - 0.3)^2) / (2 - 1)) = sqrt(0.02)
    assert summary["mean"]["chamfer"] == pytest.approx(0.3)
    assert summary["std"]["chamfer"] == pytest.approx(0.02**0.5)
    assert summary["mean"]["iou"] == pytest.approx(0.6) and summary["std"]["iou"] == pytest.approx(0.02**0.5)
    assert summary["mean"]["pose_rotation_error_deg"] is None and summary["std"]["pose_rotation_error_deg"] is None
    assert summary["mean"]["rough_pose_rotation_error_deg"] == pytest.approx(14.0)
    assert summary["std"]["rough_pose_rotation_error_deg"] == pytest.approx(0.0)
    single = {"0": run_result(0.1, 0.8, 120.0, 3.5)}
    result = {
        "another_instance_chamfer": 0.5,
        "variants": {
            "no_pose_refinement": {"flags": [], "seeds": seeds, **summary},
            "full": {"flags": [], "seeds": single, **benchmark.summarise_seeds(single)},
        },
    }
    table = benchmark.ablation_table(result).splitlines()
    assert table[0].startswith("| variant | seeds | Chamfer-L1 |")
    assert table[2] == ("| no_pose_refinement | 2 | 0.3000 ± 0.1414 | 0.60 ± 0.28 | 0.700 ± 0.141 | 0.600 ± 0.141 "
                        "| rough: 14.00 ± 0.00 | 2.0 ± 1.4 |")
    assert table[3] == "| full | 1 | 0.1000 | 0.20 | 0.900 | 0.800 | 3.50 | 2.0 |"
    assert table[4].startswith("| another instance | | 0.5000 | 1.00 |")


def test_resume_skips_finished_pairs(tmp_path):
    output = tmp_path / "ablations.json"
    settings = {"data": "d", "iterations": 10}
    calls = []

    def interrupted(variant, seed):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append((variant, seed))
        return run_result(0.1 * len(calls), 0.5, 1.0, 2.0)

    with pytest.raises(KeyboardInterrupt):
        benchmark.run_ablations(output, settings, ["full", "mean_latent"], [0, 1], interrupted)
    saved = json.loads(output.read_text())
    assert {v: sorted(e["seeds"]) for v, e in saved["variants"].items()} == {"full": ["0", "1"], "mean_latent": ["0"]}
    assert saved["variants"]["full"]["mean"]["chamfer"] == pytest.approx(0.15)

    resumed = []

    def finish(variant, seed):
        resumed.append((variant, seed))
        return run_result(0.4, 0.5, 1.0, 2.0)

    result = benchmark.run_ablations(output, settings, ["full", "mean_latent"], [0, 1], finish)
    assert resumed == [("mean_latent", 1)]
    assert result["variants"]["mean_latent"]["mean"]["chamfer"] == pytest.approx(0.35)
    assert json.loads(output.read_text()) == result
    assert benchmark.run_ablations(output, settings, ["full", "mean_latent"], [0, 1], finish) == result
    assert len(resumed) == 1

    with pytest.raises(SystemExit, match="other settings"):
        benchmark.run_ablations(output, {"data": "d", "iterations": 20}, ["full"], [0], finish)


def test_invocations_sharing_an_output_keep_each_others_runs(tmp_path):
    """A second invocation (other seeds) saves while the first is training: neither run is lost."""
    output, settings = tmp_path / "ablations.json", {"data": "d", "iterations": 10}

    def first(variant, seed):
        if variant == "full":  # the other invocation finishes both of its runs meanwhile
            benchmark.run_ablations(output, settings, ["full", "mean_latent"], [1],
                                    lambda v, s: run_result(0.3, 0.5, 1.0, 2.0))
        return run_result(0.1, 0.5, 1.0, 2.0)

    result = benchmark.run_ablations(output, settings, ["full", "mean_latent"], [0], first)
    assert {v: list(e["seeds"]) for v, e in result["variants"].items()} == {"full": ["0", "1"],
                                                                           "mean_latent": ["0", "1"]}
    assert result["variants"]["full"]["mean"]["chamfer"] == pytest.approx(0.2)
    assert json.loads(output.read_text()) == result


def test_resume_refuses_changed_variant_flags(tmp_path, monkeypatch):
    output = tmp_path / "ablations.json"
    benchmark.run_ablations(output, {}, ["mean_latent"], [0], lambda v, s: run_result(0.1, 0.5, 1.0, 2.0))
    monkeypatch.setitem(benchmark.ABLATION_VARIANTS, "mean_latent", ["--pipeline.model.latent-dim", "64"])
    with pytest.raises(SystemExit, match="'mean_latent' was run with flags"):
        benchmark.run_ablations(output, {}, ["mean_latent"], [0, 1], lambda v, s: run_result(0.1, 0.5, 1.0, 2.0))


def test_default_restating_variants_share_the_full_run():
    assert benchmark.flags_are_defaults(benchmark.ABLATION_VARIANTS["uncertainty_image"])
    assert benchmark.flags_are_defaults([])
    for variant in ("no_uncertainty", "no_pose_refinement", "pose_network", "mean_latent", "uncertainty_field",
                    "hypernetwork", "mask_uncertainty", "paper_colour_sigma"):
        assert not benchmark.flags_are_defaults(benchmark.ABLATION_VARIANTS[variant]), variant
    assert not benchmark.flags_are_defaults(["--pipeline.model.no-such-option", "1"])
    assert not benchmark.flags_are_defaults(["--max-num-iterations"])


def test_opt_in_variants_run_only_when_named():
    default = benchmark.Ablations().variants
    for variant in ("mask_uncertainty", "paper_colour_sigma"):
        assert variant in benchmark.OPT_IN_VARIANTS and variant not in default
    assert default == [v for v in benchmark.ABLATION_VARIANTS if v not in benchmark.OPT_IN_VARIANTS]
    assert {"full", "no_uncertainty", "no_pose_refinement", "mean_latent", "hypernetwork"} <= set(default)


def test_shared_and_equal_time_runs(tmp_path):
    output = tmp_path / "ablations.json"
    calls = []
    seconds = {"full": 300.0, "hypernetwork": 200.0}

    def run_one(variant, seed, time_scale=1.0):
        calls.append((variant, seed, time_scale))
        return run_result(0.1 + seed, 0.5, seconds.get(variant, 300.0) + seed, 2.0)

    variants = ["full", "uncertainty_image", "hypernetwork", "hypernetwork_equal_time"]
    result = benchmark.run_ablations(output, {}, variants, [0, 1], run_one)
    trained = [(v, s) for v, s, _ in calls]
    assert ("uncertainty_image", 0) not in trained and ("uncertainty_image", 1) not in trained
    for seed in (0, 1):
        shared = result["variants"]["uncertainty_image"]["seeds"][str(seed)]
        assert shared["same_run_as"] == "full"
        assert shared["chamfer"] == result["variants"]["full"]["seeds"][str(seed)]["chamfer"]
    scales = {s: scale for v, s, scale in calls if v == "hypernetwork_equal_time"}
    assert scales[0] == pytest.approx(300.0 / 200.0) and scales[1] == pytest.approx(301.0 / 201.0)
    assert all(scale == 1.0 for v, _, scale in calls if v != "hypernetwork_equal_time")

    with pytest.raises(SystemExit, match="needs the 'hypernetwork' run of seed 0"):
        benchmark.run_ablations(tmp_path / "other.json", {}, ["full", "hypernetwork_equal_time"], [0], run_one)


def test_dry_run_prints_commands_of_unfinished_pairs(tmp_path, capsys):
    output = tmp_path / "ablations.json"
    ablations = benchmark.Ablations(quick=True, output=output, data=tmp_path / "missing",
                                    variants=["full", "hypernetwork"], output_dir=tmp_path / "runs", dry_run=True)
    settings = {"data": str(tmp_path / "missing"), "iterations": 250,
                "common_flags": benchmark.schedule_flags(250) + ["--pipeline.datamanager.rays-per-view", "32"],
                "resolution": 64}
    benchmark.run_ablations(output, settings, ["full"], [0], lambda v, s: run_result(0.1, 0.5, 1.0, 2.0))
    commands = ablations.main()
    printed = capsys.readouterr().out
    assert list(commands) == ["hypernetwork-seed0"]
    assert "gansvr-generate procedural" in printed and "--pose-noise-deg 10" in printed
    assert "# full, seed 0: done" in printed
    assert "--pipeline.model.sdf-field.architecture hypernetwork" in printed


def test_tiny_ablation_run(ablation_run):
    work, data, output, stdout = ablation_run
    result = json.loads(output.read_text())
    assert list(result["variants"]) == TINY_VARIANTS
    assert result["another_instance_chamfer"] > 0
    for variant, entry in result["variants"].items():
        run = entry["seeds"]["0"]
        assert run["chamfer"] > 0 and 0 <= run["iou"] <= 1 and 0 <= run["fscore"] <= 1
        assert run["train_seconds"] > 0
        assert entry["mean"]["chamfer"] == run["chamfer"] and entry["std"]["chamfer"] is None
        assert run["rough_pose_rotation_error_deg"] > 1.0  # the set has 10 degrees of pose noise
        config = yaml.load(Path(run["config"]).read_text(), Loader=yaml.Loader)
        assert config.max_num_iterations == 4
        assert f"| {variant} | 1 |" in stdout
    off = result["variants"]["no_pose_refinement"]["seeds"]["0"]
    refined = result["variants"]["uncertainty_field"]["seeds"]["0"]
    assert off["pose_rotation_error_deg"] is None
    # 4 steps, with the default's pose search compressed to step 2: the refined poses are reported and moved. A shape
    # that has barely started gives the search no reason to stay, but it turns a view by at most about 26.5 deg
    # (yaw and pitch 15 + 2.5 + 1 deg each, roll 4 deg), and two steps of per-camera corrections add little
    moved = refined["pose_rotation_error_deg"] - refined["rough_pose_rotation_error_deg"]
    assert moved != 0.0 and abs(moved) < 27.0
    assert "| rough: " in stdout
