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
    deeper = tmp_path / "resnet34.pth"  # its first two blocks per stage are ResNet-18's, the rest is left over
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), deeper)
    with pytest.raises(ValueError, match=r"resnet34.pth: not torchvision resnet18 weights \(unexpected \['layer1.2"):
        ImageEncoder(weights_path=deeper, norm="batch")


def test_a_bad_weights_file_ends_training_in_one_line(tmp_path):
    import subprocess
    import sys

    from gansvr_ns.data.datamanager import DataError
    from gansvr_ns.model.encoder import setup_encoder
    from gansvr_ns.model.instances import ImageConditionedModelConfig

    config = ImageConditionedModelConfig(latent_dim=8, encoder_input_size=32, encoder_weights=tmp_path / "missing.pth")
    with pytest.raises(DataError, match="gansvr: --pipeline.model.encoder-weights .*missing.pth: encoder weights"):
        setup_encoder(config)
    # through the model's setup, as ns-train builds it: one line on stderr, no traceback
    code = ("from pathlib import Path; from gansvr_ns.method_config import gansvr_config; "
            "c = gansvr_config().pipeline.model; c.encoder_weights = Path(r'%s'); "
            "c.setup(scene_box=None, num_train_data=1, metadata={})" % (tmp_path / "missing.pth"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("gansvr: --pipeline.model.encoder-weights")


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


def test_bfloat16_convolutions_give_float32_latents_close_to_the_float32_ones():
    torch.manual_seed(0)
    exact = ImageEncoder(latent_dim=16, input_size=32)
    fast = ImageEncoder(latent_dim=16, input_size=32, precision="bfloat16")
    fast.load_state_dict(exact.state_dict())
    images = torch.rand(4, 3, 32, 32)
    latents, reference = fast(images), exact(images)
    assert latents.dtype == torch.float32 and fast.head.weight.dtype == torch.float32
    assert not torch.equal(latents, reference)  # the convolutions did run in bf16
    assert (latents - reference).norm() < 0.05 * reference.norm()
    latents.square().sum().backward()
    first_conv = fast.backbone.conv1.weight
    assert first_conv.grad is not None and first_conv.grad.dtype == torch.float32 and first_conv.grad.abs().sum() > 0
