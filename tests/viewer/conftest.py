"""One tiny gansvr run shared by the viewer and export tests (training it takes about a minute on 2 CPU cores)."""

import pytest

from tests.conftest import BIN, make_ellipsoid_dataset, run  # noqa: F401 (BIN and run are used by the viewer tests)


def tiny_run_flags(iterations: int = 6, vis: str = "tensorboard") -> list:
    """`ns-train gansvr` flags of a run that trains in seconds; without the hash grid the 512^3 export and the
    viewer's frames are several times faster."""
    return [
        "--max-num-iterations", iterations, "--steps-per-eval-batch", 100, "--steps-per-eval-image", 100,
        "--steps-per-save", iterations, "--machine.device-type", "cpu", "--vis", vis,
        "--pipeline.model.num-samples", 8, "--pipeline.model.num-samples-importance", 8,
        "--pipeline.datamanager.rays-per-view", 16, "--pipeline.model.sdf-field.use-hash-grid", False,
    ]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """(work folder, dataset folder, config.yml) of a 6-iteration gansvr run on 6 ellipsoids."""
    work = tmp_path_factory.mktemp("viewer_run")
    data = make_ellipsoid_dataset(work / "ellipsoids", num_instances=6, views=6, size=24)
    run(BIN / "ns-train", "gansvr", "--data", data, "--output-dir", work / "outputs", "--timestamp", "run",
        *tiny_run_flags(), cwd=work)
    config = work / "outputs" / "ellipsoids" / "gansvr" / "run" / "config.yml"
    assert config.is_file()
    return work, data, config
