"""Geometry terms of the model: the silhouette on the SDF's zero level set (what the model feeds it, its weight, its
alpha schedule) and the smoothness of the surface normals."""

from pathlib import Path

import pytest
import torch
from nerfstudio.engine.callbacks import TrainingCallbackAttributes, TrainingCallbackLocation

from gansvr_ns.model import losses
from gansvr_ns.model.gansvr_model import geometric_ramp
from tests.conftest import small_training_pipeline


def with_term(mult: float):
    def configure(config):
        config.pipeline.model.sdf_silhouette_mult = mult
        config.pipeline.model.sdf_silhouette_alpha = (50.0, 800.0)
        config.pipeline.model.sdf_silhouette_ramp_steps = 100

    return configure


def training_losses(pipeline):
    model = pipeline.model
    bundle, batch = pipeline.datamanager.next_train(0)
    model.condition(batch["condition_images"], batch.get("instances"))
    model.prepare_views(batch)
    rendered = []
    sample = model.sample_with_geometry
    model.sample_with_geometry = lambda *args: rendered.append(sample(*args)) or rendered[-1]
    outputs = model(bundle)
    return outputs, model.get_loss_dict(outputs, batch), batch, rendered[0][1]


def test_the_term_reads_each_rays_smallest_rendered_sdf_and_reaches_the_field(ellipsoids: Path):
    pipeline = small_training_pipeline(ellipsoids, with_term(2.0))
    outputs, loss_dict, batch, geometry = training_losses(pipeline)
    torch.testing.assert_close(outputs["min_sdf"], geometry[..., :1].min(dim=1).values)
    expected = 2.0 * losses.sdf_silhouette(outputs["min_sdf"], batch["mask"], 50.0)
    torch.testing.assert_close(loss_dict["sdf_silhouette_loss"], expected)
    pipeline.model.zero_grad()
    loss_dict["sdf_silhouette_loss"].backward()
    assert pipeline.model.field.output.weight.grad.abs().sum() > 0


def test_the_term_is_off_by_default(ellipsoids: Path):
    _, loss_dict, _, _ = training_losses(small_training_pipeline(ellipsoids))
    assert "sdf_silhouette_loss" not in loss_dict and "mask_loss" in loss_dict


@pytest.mark.parametrize("step, alpha", [(0, 50.0), (50, 200.0), (100, 800.0), (400, 800.0)])
def test_alpha_rises_geometrically_over_the_ramp(ellipsoids: Path, step: int, alpha: float):
    pipeline = small_training_pipeline(ellipsoids, with_term(1.0))
    attrs = TrainingCallbackAttributes(optimizers=None, grad_scaler=None, pipeline=pipeline, trainer=None)
    for callback in pipeline.model.get_training_callbacks(attrs):
        callback.run_callback_at_location(step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
    assert pipeline.model.sdf_silhouette_alpha == pytest.approx(alpha)
    assert geometric_ramp((50.0, 800.0), step, 100) == pytest.approx(alpha)
    assert geometric_ramp((0.0, 800.0), step, 100) == 0.0


def test_normal_smoothness_compares_the_surface_normal_with_a_nearby_one_and_reaches_the_field(ellipsoids: Path):
    def configure(config):
        config.pipeline.model.normal_smoothness_mult = 0.5

    pipeline = small_training_pipeline(ellipsoids, configure)
    outputs, loss_dict, batch, geometry = training_losses(pipeline)
    here, nearby = outputs["surface_normals"], outputs["nearby_normals"]
    torch.testing.assert_close(here.norm(dim=-1), torch.ones(len(here)))
    torch.testing.assert_close(nearby.norm(dim=-1), torch.ones(len(here)))
    assert 0 < (here - nearby).norm(dim=-1).mean() < 1.0  # a small offset moves the normal, not by much
    expected = 0.5 * losses.normal_smoothness(here, nearby, outputs["accumulation"])
    torch.testing.assert_close(loss_dict["normal_smoothness_loss"], expected)
    pipeline.model.zero_grad()
    loss_dict["normal_smoothness_loss"].backward()
    assert pipeline.model.field.layers[0].weight.grad.abs().sum() > 0
