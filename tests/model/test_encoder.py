"""The image encoder: per-image latents, and local ImageNet weights loaded without any download."""

import pytest
import torch
import torchvision

from gansvr_ns.model.encoder import ImageEncoder


def test_group_norm_latents_do_not_depend_on_the_rest_of_the_batch():
    torch.manual_seed(0)
    encoder = ImageEncoder(latent_dim=16, input_size=32).train()
    images = torch.rand(4, 3, 32, 32)
    alone = encoder(images[:1])
    together = encoder(images)[:1]
    assert torch.allclose(alone, together, atol=1e-5)
    encoder.eval()
    assert torch.allclose(encoder(images[:1]), alone, atol=1e-5)  # no train/eval difference either


@pytest.mark.parametrize("norm", ["group", "batch"])
def test_imagenet_style_weights_load_from_a_local_file(tmp_path, norm):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    with torch.no_grad():
        reference.conv1.weight.normal_()
        reference.bn1.weight.uniform_(0.5, 2.0)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    encoder = ImageEncoder(latent_dim=8, input_size=32, weights_path=path, norm=norm)
    assert torch.equal(encoder.backbone.conv1.weight, reference.conv1.weight)
    assert torch.equal(encoder.backbone.bn1.weight, reference.bn1.weight)


def test_missing_or_foreign_weight_files_are_named_in_the_error(tmp_path):
    with pytest.raises(ValueError, match="missing.pth: encoder weights file not found"):
        ImageEncoder(weights_path=tmp_path / "missing.pth")
    foreign = tmp_path / "foreign.pth"
    torch.save({"layer.weight": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match="foreign.pth: not torchvision resnet18 weights"):
        ImageEncoder(weights_path=foreign)
    garbage = tmp_path / "garbage.pth"
    garbage.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth: not a torch state dict"):
        ImageEncoder(weights_path=garbage)


def test_large_images_are_reduced_with_an_antialiasing_filter():
    from gansvr_ns.model.encoder import reduce_large

    generator = torch.Generator().manual_seed(0)
    small = torch.rand(1, 3, 128, 100, generator=generator)
    assert reduce_large(small, 64) is small  # up to twice the encoder's size: as it is
    noise = torch.rand(1, 3, 512, 384, generator=generator)
    reduced = reduce_large(noise, 64)
    assert reduced.shape == (1, 3, 128, 128)
    # each reduced pixel averages 4 x 3 noise pixels or more: the noise's spread falls by sqrt(12) or more, where
    # reading single pixels would keep it
    assert reduced.std() < noise.std() / 3
    torch.testing.assert_close(reduced.mean(), noise.mean(), atol=0.01, rtol=0)
