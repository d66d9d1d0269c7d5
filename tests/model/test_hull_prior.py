"""The hull prior: each drawn instance's SDF against its own visual hull, carved from its masks and rough poses."""

from pathlib import Path

import torch

from gansvr_ns.method_config import gansvr_config
from gansvr_ns.model.losses import truncated_sdf_l1
from tests.conftest import adam_history, small_training_pipeline


def test_truncated_sdf_l1_matches_only_the_band():
    target = torch.tensor([[-0.5], [0.05], [0.3]])
    pred = torch.tensor([[-0.2], [0.0], [0.9]])
    # clamped to 0.1: |-0.1 - -0.1| + |0 - 0.05| + |0.1 - 0.1| = 0.05, over 3 points
    torch.testing.assert_close(truncated_sdf_l1(pred, target, 0.1), torch.tensor(0.05 / 3))
    assert truncated_sdf_l1(-pred, target, 0.1) > 0.1  # a wrong sign costs the whole band


def hull_prior_pipeline(data: Path):
    def configure(config):
        config.pipeline.model.hull_prior_mult = 1.0

    return small_training_pipeline(data, configure)


def test_hull_prior_sees_the_drawn_instances_and_reaches_encoder_and_field(ellipsoids: Path):
    pipeline = hull_prior_pipeline(ellipsoids)
    datamanager, model = pipeline.datamanager, pipeline.model
    assert datamanager.instance_hulls.shape == (len(datamanager.train_data.inputs), 32, 32, 32)
    ray_bundle, batch = datamanager.next_train(0)
    torch.testing.assert_close(batch["instance_hulls"], datamanager.instance_hulls[batch["instances"]])
    model.condition(batch["condition_images"])
    loss = model.hull_prior(batch["instance_hulls"])
    assert torch.isfinite(loss) and loss > 0
    loss.backward()
    assert model.encoder.head.weight.grad.abs().sum() > 0
    assert model.field.output.weight.grad.abs().sum() > 0

    # an instance without a hull (NaN grid) is left out, not turned into a NaN loss
    hulls = batch["instance_hulls"].clone()
    hulls[0] = float("nan")
    model.condition(batch["condition_images"])
    assert torch.isfinite(model.hull_prior(hulls))
    model.condition(batch["condition_images"])
    assert model.hull_prior(torch.full_like(hulls, float("nan"))) == 0


def test_hull_prior_is_fitted_by_a_few_steps_and_is_in_the_loss_dict(ellipsoids: Path):
    pipeline = hull_prior_pipeline(ellipsoids)
    _, losses, _ = pipeline.get_train_loss_dict(step=0)
    assert "hull_prior_loss" in losses and torch.isfinite(losses["hull_prior_loss"])
    model, datamanager = pipeline.model, pipeline.datamanager
    _, batch = datamanager.next_train(1)

    def loss():
        model.condition(batch["condition_images"])
        torch.manual_seed(1)  # the same points every step
        return model.hull_prior(batch["instance_hulls"])

    history = adam_history(model.field.parameters(), loss, steps=60)
    assert history[-1] < 0.7 * history[0]


def test_without_the_prior_no_hulls_are_carved(ellipsoids: Path):
    config = gansvr_config()
    config.pipeline.datamanager.data = ellipsoids
    assert config.pipeline.model.hull_prior_mult == 0 and config.pipeline.datamanager.instance_hull_resolution > 0
    pipeline = config.pipeline.setup(device="cpu", test_mode="val")
    assert pipeline.datamanager.instance_hulls is None
    assert "instance_hulls" not in pipeline.datamanager.next_train(0)[1]
    assert config.pipeline.datamanager.instance_hull_resolution > 0  # the caller's config is left as it was
