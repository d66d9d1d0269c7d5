"""Real-image domain alignment: the adversarial loss, the autoencoder branch and bad real-image folders."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gansvr_ns.method_config import gansvr_config
from gansvr_ns.model.alignment import DomainAlignment, load_real_images, reverse_gradient


def test_gradient_reversal():
    x = torch.randn(5, 3, requires_grad=True)
    reverse_gradient(x, 0.5).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((5, 3), -0.5))


def test_discriminator_separates_toy_latents_and_the_encoder_gradient_confuses_it():
    torch.manual_seed(0)
    align = DomainAlignment(latent_dim=8, hidden=32)
    pseudo = torch.randn(64, 8) + 2.0
    real = torch.randn(64, 8) - 2.0
    start = align.adversarial_loss(pseudo, real).item()
    opt = torch.optim.Adam(align.discriminator.parameters(), lr=1e-2)
    for _ in range(100):
        opt.zero_grad()
        align.adversarial_loss(pseudo, real).backward()
        opt.step()
    trained = align.adversarial_loss(pseudo, real).item()
    assert trained < 0.1 < start  # D learnt to separate the domains (chance level is log 2 ~ 0.69)
    # One step of the latents along the gradient they receive (the encoder's side) makes D's loss grow.
    p, r = pseudo.clone().requires_grad_(True), real.clone().requires_grad_(True)
    align.adversarial_loss(p, r).backward()
    with torch.no_grad():
        moved = align.adversarial_loss(p - 5.0 * p.grad, r - 5.0 * r.grad).item()
    assert moved > trained


def test_decoder_reconstructs_at_its_resolution():
    align = DomainAlignment(latent_dim=16, image_size=32)
    assert align.decode(torch.randn(3, 16)).shape == (3, 3, 32, 32)
    loss = align.reconstruction_loss(torch.randn(2, 16), torch.rand(2, 3, 64, 64))
    assert loss.ndim == 0 and loss.item() > 0


def test_real_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match="real-image folder not found"):
        load_real_images(tmp_path / "nope", (16, 16))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match=r"empty: no images"):
        load_real_images(empty, (16, 16))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"a\.png: not a readable image"):
        load_real_images(broken, (16, 16))
    good = tmp_path / "good"
    good.mkdir()
    Image.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(good / "b.jpg")
    Image.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(good / "c.tif")
    (good / "._b.jpg").write_bytes(b"macOS metadata, not an image")  # a hidden file is skipped
    images = load_real_images(good, (16, 20))
    assert images.shape == (2, 3, 16, 20) and abs(images.mean().item() - 200 / 255) < 0.01


def test_training_step_with_real_images(ellipsoids: Path, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    for i in range(3):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(real / f"{i}.png")
    config = gansvr_config()
    config.pipeline.datamanager.data = ellipsoids
    config.pipeline.datamanager.real_images = real
    config.pipeline.datamanager.rays_per_view = 8
    config.pipeline.model.num_samples = config.pipeline.model.num_samples_importance = 8
    pipeline = config.pipeline.setup(device="cpu", test_mode="val")
    _, losses, _ = pipeline.get_train_loss_dict(step=0)
    assert {"alignment_loss", "autoencoder_loss"} <= set(losses)
    sum(losses.values()).backward()
    assert pipeline.model.alignment.discriminator[0].weight.grad.abs().sum() > 0
    assert "alignment" in pipeline.get_param_groups()


def test_with_instance_codes_the_alignment_reads_the_encoders_latents_not_the_codes(ellipsoids, tmp_path, monkeypatch):
    import gansvr_ns.model.gansvr_model as gansvr_model

    real = tmp_path / "real"
    real.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(real / "0.png")
    config = gansvr_config()
    config.pipeline.datamanager.data = ellipsoids
    config.pipeline.datamanager.real_images = real
    config.pipeline.datamanager.rays_per_view = 8
    config.pipeline.model.num_samples = config.pipeline.model.num_samples_importance = 8
    config.pipeline.model.instance_codes = True  # the rays are rendered with free codes, not the encoder's latents
    pipeline = config.pipeline.setup(device="cpu", test_mode="val")
    seen = []
    original = gansvr_model.alignment_losses
    monkeypatch.setattr(gansvr_model, "alignment_losses", lambda *args: seen.append(args[3]) or original(*args))
    pipeline.get_train_loss_dict(step=0)
    model = pipeline.model
    assert len(seen) == 1 and seen[0] is model._image_latents
    assert not torch.allclose(model._image_latents, model._batch_latents)
