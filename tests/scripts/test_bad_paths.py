"""`scripts/benchmark.py` on bad paths: one line `benchmark.py: error: <file>: <what is wrong>` on stderr, exit code
2, no traceback, nothing left on disk, and before any long work (each case takes seconds; the subcommands that
train or fit first would take minutes to get to their bad path)."""

import shutil
import sys
from pathlib import Path

import pytest

from tests.conftest import make_ellipsoid_dataset
from tests.scripts.conftest import ROOT, run

SCRIPT = ROOT / "scripts" / "benchmark.py"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """A valid 6-instance dataset, outside the folder the commands run in."""
    return make_ellipsoid_dataset(tmp_path_factory.mktemp("bad-paths") / "ell", num_instances=6, views=4, size=24)


def files(folder: Path) -> set:
    return {path.relative_to(folder) for path in folder.rglob("*")}


def error_line(work: Path, *args) -> str:
    """Run the benchmark in `work` with `args`, check that it failed as bad input should (exit code 2, one error line
    last on stderr, no traceback, no new file in `work`, within a minute) and return the error line."""
    before = files(work)
    result = run(sys.executable, SCRIPT, *args, cwd=work, check=False, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    errors = [line for line in result.stderr.splitlines() if line.startswith("benchmark.py: error: ")]
    assert len(errors) == 1 and result.stderr.strip().splitlines()[-1] == errors[0], output
    assert files(work) == before
    return errors[0]


@pytest.mark.parametrize("command", ["inference", "pose-search", "uncertainty-flaws"])
def test_a_missing_run_config(tmp_path, command):
    line = error_line(tmp_path, command, "--load-config", "runs/nope/config.yml")
    assert line == "benchmark.py: error: runs/nope/config.yml: config file not found"


@pytest.mark.parametrize("command", ["quality", "hull-bound", "masks"])
def test_a_missing_dataset_starts_no_run(tmp_path, command):
    line = error_line(tmp_path, command, "--data", "nope", "--output-dir", "runs")
    assert line.startswith("benchmark.py: error: nope: dataset folder does not exist (and 'nope' is none of the "
                           "presets ")
    assert "gan-car" in line


def test_a_run_config_that_is_no_run(tmp_path):
    (tmp_path / "config.yml").write_text("just: text\n")
    line = error_line(tmp_path, "prior-bound", "--load-config", "config.yml", "--output-dir", "out")
    assert line == "benchmark.py: error: config.yml: a 'None' run, not a gansvr run"


def test_domain_checks_its_loaded_configs_before_training(tmp_path, data):
    # with the default budget, a late check would train four runs for many minutes first
    line = error_line(tmp_path, "domain", "--data", data, "--load-configs", "foo=nope.yml", "--output-dir", "out")
    assert line == "benchmark.py: error: nope.yml: config file not found"


def test_encoder_probe_checks_its_run_before_training(tmp_path, data):
    line = error_line(tmp_path, "encoder-probe", "--data", data, "--load-config", "nope.yml")
    assert line == "benchmark.py: error: nope.yml: config file not found"


def test_an_output_below_a_file_is_refused_before_the_work(tmp_path, data):
    (tmp_path / "afile").write_text("")
    line = error_line(tmp_path, "masks", "--data", data, "--output", "afile/x.json")
    assert line == f"benchmark.py: error: {tmp_path / 'afile'}: a file, so --output afile/x.json cannot be written " \
                   "below it"
    line = error_line(tmp_path, "hull-bound", "--data", data, "--output-dir", "afile/hulls")
    assert line.endswith("afile: a file, so --output-dir afile/hulls cannot be written below it")


def test_a_broken_dataset_is_one_line(tmp_path, data):
    broken = shutil.copytree(data, tmp_path / "broken")
    (broken / "ell_002" / "views" / "001.png").unlink()
    line = error_line(tmp_path, "throughput", "--data", "broken", "--steps", 1)
    assert line == "benchmark.py: error: broken/ell_002/views/001.png: file is missing"
