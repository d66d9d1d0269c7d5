"""The latent contrast term: InfoNCE between the latents of two images of each drawn instance."""

from pathlib import Path

import torch

from gansvr_ns.model import losses
from tests.conftest import small_training_pipeline


def test_contrast_term_scores_the_two_images_of_each_instance_and_trains_the_encoder(ellipsoids: Path):
    def configure(config):
        config.pipeline.datamanager.instances_per_batch = 3
        config.pipeline.model.latent_contrast_mult = 0.5

    pipeline = small_training_pipeline(ellipsoids, configure)
    model, datamanager = pipeline.model, pipeline.datamanager
    ray_bundle, batch = datamanager.next_train(0)
    expected = 0.5 * losses.info_nce(model.encode(batch["condition_images"]),
                                     model.encode(batch["consistency_images"]), 0.1)
    # encoded apart (conditioned without the second images) or in one pass with them: the same term
    for second in (None, batch["consistency_images"]):
        model.condition(batch["condition_images"], batch["instances"], second)
        assert (model._second_latents is None) == (second is None)
        loss_dict = model.get_loss_dict(model(ray_bundle), batch)
        torch.testing.assert_close(loss_dict["latent_contrast"], expected)
    model.zero_grad()
    loss_dict["latent_contrast"].backward()
    assert model.encoder.head.weight.grad.abs().sum() > 0

    def turn_off(config):
        config.pipeline.model.latent_contrast_mult = 0.0

    off = small_training_pipeline(ellipsoids, turn_off)
    ray_bundle, batch = off.datamanager.next_train(0)
    off.model.condition(batch["condition_images"], batch["instances"], batch["consistency_images"])
    assert off.model._second_latents is None  # no term needs them: not encoded
    assert "latent_contrast" not in off.model.get_loss_dict(off.model(ray_bundle), batch)


def test_second_images_without_gradient_give_the_same_term_and_the_first_images_gradient(ellipsoids: Path):
    def configure(config):
        config.pipeline.datamanager.instances_per_batch = 3
        config.pipeline.model.latent_contrast_mult = 0.5
        config.pipeline.model.second_image_gradient = False

    pipeline = small_training_pipeline(ellipsoids, configure)
    model, datamanager = pipeline.model, pipeline.datamanager
    ray_bundle, batch = datamanager.next_train(0)
    model.condition(batch["condition_images"], batch["instances"], batch["consistency_images"])
    assert not model._second_latents.requires_grad
    term = model.get_loss_dict(model(ray_bundle), batch)["latent_contrast"]
    model.zero_grad()
    term.backward()
    got = model.encoder.head.weight.grad.clone()
    model.condition(batch["condition_images"], batch["instances"])  # without them: encoded by the loss, alike
    model.zero_grad()
    model.get_loss_dict(model(ray_bundle), batch)["latent_contrast"].backward()
    torch.testing.assert_close(model.encoder.head.weight.grad, got)

    model.zero_grad()
    target = model.encode(batch["consistency_images"]).detach()
    expected = 0.5 * losses.info_nce(model.encode(batch["condition_images"]), target, 0.1)
    torch.testing.assert_close(term, expected)
    expected.backward()
    torch.testing.assert_close(got, model.encoder.head.weight.grad)
    model.zero_grad()
    (0.5 * losses.info_nce(model.encode(batch["condition_images"]), model.encode(batch["consistency_images"]), 0.1)
     ).backward()
    assert not torch.allclose(got, model.encoder.head.weight.grad)  # with both branches the gradient differs
