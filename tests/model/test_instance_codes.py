"""Instance codes (auto-decoding): train rays render with a free code per train instance; the encoder regresses them."""

from pathlib import Path

import torch

from tests.conftest import adam_history, small_training_pipeline


def codes_pipeline(data: Path, encoder_render_fraction: float = 0.0):
    def configure(config):
        config.pipeline.model.instance_codes = True
        config.pipeline.model.encoder_render_fraction = encoder_render_fraction

    return small_training_pipeline(data, configure)


def test_train_rays_render_their_instance_codes_and_the_encoder_learns_to_predict_them(ellipsoids: Path):
    pipeline = codes_pipeline(ellipsoids)
    model, datamanager = pipeline.model, pipeline.datamanager
    assert model.instance_codes.num_embeddings == len(datamanager.train_data.inputs)
    assert "codes" in model.get_param_groups()

    _, losses, _ = pipeline.get_train_loss_dict(step=0)
    assert "code_regression" in losses and "latent_variance" not in losses
    ray_bundle, batch = datamanager.next_train(1)
    model.condition(batch["condition_images"], batch["instances"])
    codes = model.instance_codes(batch["instances"])
    torch.testing.assert_close(model._batch_latents, torch.nn.functional.layer_norm(codes, codes.shape[-1:]))

    # the rendering losses reach the drawn instances' codes and no other; the regression reaches the encoder only
    model.zero_grad()
    losses = model.get_loss_dict(model(ray_bundle), batch)
    losses["mask_loss"].backward(retain_graph=True)
    moved = model.instance_codes.weight.grad.abs().sum(dim=1) > 0
    drawn = torch.zeros_like(moved)
    drawn[batch["instances"]] = True
    assert torch.equal(moved, drawn)
    model.zero_grad()
    losses["code_regression"].backward()
    assert model.encoder.head.weight.grad.abs().sum() > 0
    assert model.instance_codes.weight.grad is None or model.instance_codes.weight.grad.abs().sum() == 0


def test_the_code_regression_pulls_the_encoder_onto_the_codes(ellipsoids: Path):
    pipeline = codes_pipeline(ellipsoids)
    model, datamanager = pipeline.model, pipeline.datamanager
    _, batch = datamanager.next_train(0)

    def loss():
        model.condition(batch["condition_images"], batch["instances"])
        return model.code_regression()

    history = adam_history(model.encoder.parameters(), loss, steps=40)
    assert history[-1] < 0.5 * history[0]


def test_reconstruction_and_eval_use_the_encoder(ellipsoids: Path):
    pipeline = codes_pipeline(ellipsoids, encoder_render_fraction=0.0)
    model, datamanager = pipeline.model, pipeline.datamanager
    _, batch = datamanager.next_train(0)
    with torch.no_grad():
        encoded = model.encode(batch["condition_images"])
        # no instances (eval batches, the viewer, gansvr-reconstruct): the encoder's latents
        model.condition(batch["condition_images"])
        torch.testing.assert_close(model._batch_latents, encoded)
        # in eval mode the codes are not used even with instances
        model.eval()
        model.condition(batch["condition_images"], batch["instances"])
        torch.testing.assert_close(model._batch_latents, encoded)
        model.train()
        # encoder_render_fraction 1: training batches render the encoder's latents too
        model.config.encoder_render_fraction = 1.0
        model.condition(batch["condition_images"], batch["instances"])
        torch.testing.assert_close(model._batch_latents, encoded)
