"""`scripts/benchmark.py uncertainty-flaws` on the tiny ablation's runs: sigma per flaw kind of the generator's
labels, and a clear error for a run without the image uncertainty head."""

import json
import sys

from tests.scripts.conftest import ROOT, run


def test_sigma_per_flaw_kind_counts_every_labelled_view(ablation_run):
    work, data, _, _ = ablation_run
    config = work / "runs" / "no_pose_refinement-seed0" / "gansvr" / "run" / "config.yml"
    output = work / "uncertainty_flaws.json"
    result = run(sys.executable, ROOT / "scripts" / "benchmark.py", "uncertainty-flaws", "--load-config", config,
                 "--output", output, cwd=work)
    saved = json.loads(output.read_text())
    expected = {}
    for instance in json.loads((data / "dataset.json").read_text())["splits"]["train"]:
        for view in json.loads((data / instance / "cameras.json").read_text())["views"]:
            for kind in view.get("flaws") or ["clean"]:
                expected[kind] = expected.get(kind, 0) + 1
    assert {k: v["views"] for k, v in saved["kinds"].items()} == expected
    assert "clean" in expected and len(expected) >= 2
    assert all(v["mean_sigma_in_mask"] >= 0.02 for v in saved["kinds"].values())  # sigma_min
    assert "| clean |" in result.stdout


def test_a_run_without_the_image_head_is_refused(ablation_run):
    work, _, _, _ = ablation_run
    config = work / "runs" / "uncertainty_field-seed0" / "gansvr" / "run" / "config.yml"
    result = run(sys.executable, ROOT / "scripts" / "benchmark.py", "uncertainty-flaws", "--load-config", config,
                 cwd=work, check=False)
    assert result.returncode != 0
    assert "no image uncertainty head" in result.stderr
