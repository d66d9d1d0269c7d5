"""`scripts/benchmark.py domain`: the stand-in real photos are a flat folder the datamanager's real-image loader
accepts, the plan, resume and table are right on synthetic numbers, and a tiny real run (gansvr and
gansvr-voxel, each without and with alignment; 4 steps each through `ns-train`) scores every run with finite numbers
(about two minutes on 2 CPU cores)."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import tyro
import yaml

from tests.scripts.conftest import ROOT, TINY_DATA, load_script, run

benchmark = load_script("benchmark")

COMMON_TRAIN = ("--pipeline.model.num-samples 8 --pipeline.datamanager.rays-per-view 16 "
                "--pipeline.datamanager.instances-per-batch 2")
"""Flags both methods accept."""
METHOD_ARGS = ["gansvr=--pipeline.model.num-samples-importance 8",
               "gansvr-voxel=--pipeline.model.resolution 16 --pipeline.model.base-channels 32"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """6 procedural cars (3 train, 1 val, 2 test) at 32 x 32 pixels, generated with `gansvr-generate`."""
    data = tmp_path_factory.mktemp("domain-data") / "tiny-car"
    run(Path(sys.executable).parent / "gansvr-generate", "procedural", "--category", "car", "--out", data,
        *TINY_DATA.split(), "--no-progress", cwd=data.parent)
    return data


@pytest.fixture(scope="module")
def domain_run(tiny_data, tmp_path_factory):
    """(work folder, results JSON, the command's stdout) of the tiny four-run domain benchmark."""
    work = tmp_path_factory.mktemp("domain")
    output = work / "domain.json"
    result = run(sys.executable, ROOT / "scripts" / "benchmark.py", "domain", "--data", tiny_data, "--iterations", 4,
                 f"--train-args={COMMON_TRAIN}", "--method-args", *METHOD_ARGS, "--resolution", 32,
                 "--output-dir", work, "--output", output, cwd=work)
    return work, output, result.stdout


def test_real_images_are_a_flat_folder_the_datamanager_loads(tiny_data, tmp_path):
    from gansvr_ns.data.datamanager import GanSvrDataManagerConfig
    from gansvr_ns.data.format import load_rgb

    photos, inputs = benchmark.write_domain_inputs(tiny_data, tmp_path)
    splits = json.loads((tiny_data / "dataset.json").read_text())["splits"]
    folder = tmp_path / "real_images"
    assert sorted(p.name for p in folder.iterdir()) == [f"{i}.png" for i in splits["train"]]
    assert set(photos) == set(splits["train"]) and all(p.parent == folder for p in photos.values())
    for instance, path in photos.items():  # another renderer: not the instance's own input image
        assert np.abs(load_rgb(path) - load_rgb(tiny_data / instance / "input.png")).mean() > 0.05
    assert list(inputs) == list(benchmark.DOMAIN_INPUTS)
    assert inputs["test"] == {i: tiny_data / i / "input.png" for i in splits["test"]}
    assert set(inputs["other_renderer"]) == set(splits["test"])
    first = {p: p.read_bytes() for p in [*photos.values(), *inputs["other_renderer"].values()]}
    benchmark.write_domain_inputs(tiny_data, tmp_path)  # a resumed benchmark writes the same images
    assert all(p.read_bytes() == b for p, b in first.items())

    config = GanSvrDataManagerConfig(data=tiny_data, real_images=folder, instances_per_batch=2)
    datamanager = config.setup(device="cpu", test_mode="val")
    assert datamanager.real_images.shape == (3, 3, 32, 32)
    _, batch = datamanager.next_train(0)
    assert batch["real_images"].shape == (2, 3, 32, 32)
    assert any(torch.equal(batch["real_images"][0], image) for image in datamanager.real_images)


def test_schedule_flags_of_gansvr_voxel_parse_into_its_config():
    from nerfstudio.configs.method_configs import AnnotatedBaseConfigUnion

    assert benchmark.schedule_flags(40, benchmark.method_config("gansvr")) == benchmark.schedule_flags(40)
    flags = benchmark.schedule_flags(40, benchmark.method_config("gansvr-voxel"))
    assert "--pipeline.model.cos-anneal-end" not in flags  # the voxel model has no NeuS annealing
    config = tyro.cli(AnnotatedBaseConfigUnion, args=["gansvr-voxel", *flags])
    assert config.method_name == "gansvr-voxel" and config.max_num_iterations == 40
    assert set(config.optimizers) == {"encoder", "decoder", "camera_opt", "alignment"}
    assert {opt["scheduler"].max_steps for opt in config.optimizers.values()} == {40}


def test_plan_and_pairs():
    plan = benchmark.domain_plan(["gansvr"], {"gansvr-voxel": "a/config.yml", "old": "b/config.yml"})
    assert list(plan) == ["gansvr", "gansvr-aligned", "gansvr-voxel", "old"]
    assert plan["gansvr-aligned"] == {"method": "gansvr", "aligned": True, "config": None}
    assert plan["gansvr-voxel"] == {"method": "gansvr-voxel", "aligned": False, "config": "a/config.yml"}
    assert plan["old"]["config"] == "b/config.yml"
    assert list(benchmark.domain_plan(["gansvr-voxel"], {})) == ["gansvr-voxel", "gansvr-voxel-aligned"]
    assert benchmark.parse_pairs(["a=b=c", "gansvr=--x 1"], "--o") == {"a": "b=c", "gansvr": "--x 1"}
    with pytest.raises(SystemExit, match="--load-configs: expected NAME=VALUE, got 'gansvr'"):
        benchmark.parse_pairs(["gansvr"], "--load-configs")


def scores(chamfer, fscore, iou):
    """Metrics of one input set against an another-instance baseline of 0.5."""
    return {"chamfer_l1": chamfer, "chamfer_ratio": chamfer / 0.5, "fscore@0.05": fscore, "iou": iou}


def test_resume_scores_an_unscored_run_without_retraining():
    runs, obtained, saves = {}, [], []
    source = {"method": "gansvr", "flags": ["--max-num-iterations", "4"]}

    def obtain():
        obtained.append(1)
        return {"method": "gansvr", "config": "run/config.yml", "train_seconds": 12.0}

    def interrupted(config):
        raise KeyboardInterrupt

    def score(config):
        assert config == Path("run/config.yml")
        return {"test": scores(0.1, 0.8, 0.6), "other_renderer": scores(0.2, 0.5, 0.4)}

    with pytest.raises(KeyboardInterrupt):
        benchmark.resume_domain_run(runs, "gansvr", source, obtain, interrupted, lambda: saves.append(1))
    assert runs == {"gansvr": {"method": "gansvr", "config": "run/config.yml", "train_seconds": 12.0,
                               "source": source}}
    assert len(saves) == 1
    benchmark.resume_domain_run(runs, "gansvr", source, obtain, score, lambda: saves.append(1))
    assert len(obtained) == 1 and len(saves) == 2
    assert runs["gansvr"]["test"]["chamfer_l1"] == 0.1 and runs["gansvr"]["train_seconds"] == 12.0
    benchmark.resume_domain_run(runs, "gansvr", source, obtain, interrupted, lambda: saves.append(1))
    assert len(obtained) == 1 and len(saves) == 2  # scored before: neither trained nor scored again
    with pytest.raises(SystemExit, match="run 'gansvr' was saved from"):
        benchmark.resume_domain_run(runs, "gansvr", {"config": "other.yml"}, obtain, score, lambda: None)


def test_table():
    result = {
        "another_instance_chamfer": 0.5,
        "runs": {
            "gansvr": {"train_seconds": 90.0, "test": scores(0.1, 0.8, 0.6), "other_renderer": scores(0.25, 0.5, 0.4)},
            "loaded": {"train_seconds": None, "test": {**scores(0.3, 0.2, 0.1), "chamfer_ratio": None},
                       "other_renderer": scores(0.4, 0.1, 0.05)},
            "unscored": {"train_seconds": 30.0, "config": "x/config.yml"},
        },
    }
    lines = benchmark.domain_table(result).splitlines()
    assert lines[0] == ("| run | test Chamfer-L1 | test ratio | test F@0.05 | test IoU "
                        "| other Chamfer-L1 | other ratio | other F@0.05 | other IoU | train (min) |")
    assert lines[1] == "| --- " * 10 + "|"
    assert lines[2] == "| gansvr | 0.1000 | 0.20 | 0.800 | 0.600 | 0.2500 | 0.50 | 0.500 | 0.400 | 1.5 |"
    assert lines[3] == "| loaded | 0.3000 | n/a | 0.200 | 0.100 | 0.4000 | 0.80 | 0.100 | 0.050 | n/a |"
    assert lines[4] == "| another instance | 0.5000 | 1.00 | | | 0.5000 | 1.00 | | | |"
    assert "unscored" not in "\n".join(lines)


def test_tiny_domain_run(domain_run, tiny_data):
    work, output, stdout = domain_run
    result = json.loads(output.read_text())
    assert result["settings"] == {"data": str(tiny_data), "resolution": 32}
    assert list(result["runs"]) == list(benchmark.DOMAIN_RUNS)
    assert result["real_image_count"] == 3 and result["another_instance_chamfer"] > 0
    for name, entry in result["runs"].items():
        method, aligned = benchmark.DOMAIN_RUNS[name]
        assert entry["method"] == method and entry["train_seconds"] > 0
        for inputs in benchmark.DOMAIN_INPUTS:
            m = entry[inputs]
            assert all(math.isfinite(m[k]) for k in ("chamfer_l1", "chamfer_ratio", "fscore@0.05", "iou")), name
            assert m["chamfer_l1"] > 0 and 0 <= m["fscore@0.05"] <= 1 and 0 <= m["iou"] <= 1
            assert len(list((Path(entry["config"]).parent / "domain" / inputs).glob("*.ply"))) == 2
        config = yaml.load(Path(entry["config"]).read_text(), Loader=yaml.Loader)
        assert config.method_name == method and config.max_num_iterations == 4
        assert config.pipeline.datamanager.real_images == (work / "real_images" if aligned else None)
        checkpoint = next((Path(entry["config"]).parent / "nerfstudio_models").glob("*.ckpt"))
        weights = torch.load(checkpoint, map_location="cpu", weights_only=False)["pipeline"]
        assert any(".alignment." in key for key in weights) == aligned, name
        assert f"| {name} | " in stdout

    # resumed with an existing run loaded under a new name: the four runs are skipped, the loaded one is scored
    plain = result["runs"]["gansvr"]
    again = run(sys.executable, ROOT / "scripts" / "benchmark.py", "domain", "--data", tiny_data,
                "--iterations", 4, f"--train-args={COMMON_TRAIN}", "--method-args", *METHOD_ARGS, "--resolution", 32,
                "--output-dir", work, "--output", output, "--load-configs", f"reloaded={plain['config']}", cwd=work)
    assert again.stdout.count("scored before, skipped") == len(benchmark.DOMAIN_RUNS) == 4
    resumed = json.loads(output.read_text())
    assert list(resumed["runs"]) == [*benchmark.DOMAIN_RUNS, "reloaded"]
    assert {k: resumed["runs"][k] for k in benchmark.DOMAIN_RUNS} == result["runs"]
    reloaded = resumed["runs"]["reloaded"]
    assert reloaded["train_seconds"] is None and reloaded["source"] == {"config": plain["config"]}
    for inputs in benchmark.DOMAIN_INPUTS:  # the same run, reconstructed and scored again
        assert reloaded[inputs]["chamfer_l1"] == pytest.approx(plain[inputs]["chamfer_l1"])
    assert "| reloaded | " in again.stdout
