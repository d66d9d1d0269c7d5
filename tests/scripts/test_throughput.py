"""`scripts/benchmark.py throughput`: ns-train flags given to it reach the config it times."""

from tests.conftest import make_ellipsoid_dataset
from tests.scripts.conftest import load_script

benchmark = load_script("benchmark")


def test_train_args_change_the_timed_config(tmp_path):
    data = make_ellipsoid_dataset(tmp_path / "data", num_instances=6, views=4, size=24)
    small = "--pipeline.datamanager.rays-per-view 8 --pipeline.model.num-samples 8 --pipeline.model.pose-search-steps"
    narrow = benchmark.Throughput(data=data, steps=1,
                                  train_args=small + " --pipeline.model.sdf-field.hidden-dim 64").main()
    wide = benchmark.Throughput(data=data, steps=1,
                                train_args=small + " --pipeline.model.sdf-field.hidden-dim 128").main()
    assert wide["train_args"].endswith("--pipeline.model.sdf-field.hidden-dim 128")
    assert narrow["rays_per_step"] == wide["rays_per_step"] == 8 * 8 * 2
    # the MLP's matrix products grow with its width
    assert wide["mlp_flops_per_step"] > 1.5 * narrow["mlp_flops_per_step"]
    for result in (narrow, wide):
        assert 0 < result["mlp_fraction_of_gemm"] < result["fraction_of_gemm"]
    # bools take a value, as in ns-train: the pose network adds its CNN to the step
    posed = benchmark.Throughput(data=data, steps=1, train_args=small + " --pipeline.model.sdf-field.hidden-dim 64"
                                 " --pipeline.model.pose-network True").main()
    assert posed["flops_per_step"] > narrow["flops_per_step"]
