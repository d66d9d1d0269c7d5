"""`scripts/benchmark.py pose-search`: the pose search of a finished run, again at other settings, scored."""

import json
import math
from pathlib import Path

import torch
from nerfstudio.cameras.lie_groups import exp_map_SO3xR3

from gansvr_ns.data import format as fmt
from tests.scripts.conftest import load_script

benchmark = load_script("benchmark")


def test_pose_error_axes_names_the_camera_axis_a_pose_is_turned_about():
    true = torch.stack([torch.from_numpy(fmt.orbit_pose(azimuth, 20.0, 2.5)).float()[:3]
                        for azimuth in (0.0, 90.0, 200.0)])
    angle = math.radians(3.0)
    for column, name in enumerate(("pitch_rms_deg", "yaw_rms_deg", "roll_rms_deg")):
        axes = true[:, :3, column]  # each camera's right, up and backward axes in the world
        turn = exp_map_SO3xR3(torch.cat([torch.zeros_like(axes), axes * angle], dim=-1))[:, :3, :3]
        refined = true.clone()
        refined[:, :3, :3] = turn @ true[:, :3, :3]
        errors = benchmark.pose_error_axes(refined, true)
        assert abs(errors[name] - 3.0) < 1e-3 and abs(errors["mean_deg"] - 3.0) < 1e-3
        others = [v for k, v in errors.items() if k not in (name, "mean_deg")]
        assert max(others) < 1e-3


def test_pose_search_of_a_trained_run(ablation_run, tmp_path, capsys):
    _, _, output, _ = ablation_run
    config = Path(json.loads(output.read_text())["variants"]["uncertainty_field"]["seeds"]["0"]["config"])
    out = tmp_path / "pose_search.json"
    result = benchmark.PoseSearch(load_config=config, resolutions=[16, 24], priors=[0.0], image_sizes=[0, 8],
                                  output=out).main()
    assert [(r["resolution"], r["prior"], r["image_size"]) for r in result["runs"]] == [
        (16, 0.0, 0), (16, 0.0, 8), (24, 0.0, 0), (24, 0.0, 8)]
    for row in [result["start"], *result["runs"]]:
        assert all(math.isfinite(v) and v >= 0.0 for v in row.values() if isinstance(v, float))
    # each search starts from the run's own poses: equal settings give equal results
    again = benchmark.PoseSearch(load_config=config, resolutions=[16], priors=[0.0], image_sizes=[0], output=out).main()
    assert again["start"] == result["start"]
    assert again["runs"][0]["mean_deg"] == result["runs"][0]["mean_deg"]
    assert json.loads(out.read_text())["runs"][0]["resolution"] == 16
    printed = capsys.readouterr().out
    assert "| 24^3, prior 0, masks full |" in printed and "| 24^3, prior 0, masks 8 |" in printed
