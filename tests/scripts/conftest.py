"""A tiny ablation run through the real command lines, shared by the ablation and figure tests (about a minute and a
half on 2 CPU cores): `scripts/benchmark.py ablations` generates a 6-instance procedural set with `gansvr-generate`,
trains two variants for 4 steps with `ns-train gansvr` and scores them."""

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.conftest import run  # noqa: F401 (the scripts' tests import it from here)

ROOT = Path(__file__).resolve().parents[2]
TINY_DATA = "--num-instances 6 --views 4 --resolution 32 --mesh-resolution 32 --split-fractions 0.5 0.17 0.33"
TINY_TRAIN = (
    "--pipeline.model.num-samples 8 --pipeline.model.num-samples-importance 8 --pipeline.datamanager.rays-per-view 16"
    " --pipeline.model.sdf-field.use-hash-grid False --logging.steps-per-log 1 --steps-per-eval-batch 2"
)
TINY_VARIANTS = ["no_pose_refinement", "uncertainty_field"]
"""One run with the image uncertainty head and no pose refinement, one with the uncertainty field and refinement."""


def load_script(name: str):
    """Import `scripts/<name>.py` as a module."""
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module



@pytest.fixture(scope="session")
def ablation_run(tmp_path_factory):
    """(work folder, dataset, results JSON, the command's stdout) of the tiny two-variant ablation."""
    work = tmp_path_factory.mktemp("ablation")
    data, output = work / "tiny-car", work / "ablations.json"
    result = run(sys.executable, ROOT / "scripts" / "benchmark.py", "ablations", "--data", data,
                 f"--generate-args={TINY_DATA}", "--variants", *TINY_VARIANTS, "--seeds", 0, "--iterations", 4,
                 f"--train-args={TINY_TRAIN}", "--resolution", 32, "--output", output, "--output-dir", work / "runs",
                 cwd=work)
    return work, data, output, result.stdout
