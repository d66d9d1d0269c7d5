"""StyleGAN2 numerics (hand-computed cases) and rosinality-layout loading."""

import math

import pytest
import torch
import torch.nn.functional as F

from gansvr_ns.generators.stylegan2 import (
    CheckpointError,
    EqualLinear,
    ModulatedConv2d,
    StyleGan2Arch,
    crop_image,
    fused_leaky_relu,
    infer_arch,
    load_stylegan2,
    make_blur_kernel,
    modulated_conv2d,
    pixel_norm,
    save_stylegan2,
    truncate,
    upfirdn2d,
)
from tests.generators.conftest import NARROW_ARCH, random_generator

# ----------------------------------------------------------------------------------------------
# Pure functions against values computed by hand.


def test_blur_kernel_is_the_normalised_outer_product_of_1_3_3_1():
    kernel = make_blur_kernel()
    assert kernel.shape == (4, 4)
    assert kernel[0, 0].item() == pytest.approx(1 / 64)
    assert kernel[1, 2].item() == pytest.approx(9 / 64)
    assert kernel[0, 1].item() == pytest.approx(3 / 64)
    assert kernel.sum().item() == pytest.approx(1.0)
    assert make_blur_kernel(gain=4.0).sum().item() == pytest.approx(4.0)


def test_fir_upsampling_of_a_constant_by_hand():
    # 1-D: zero insertion of [1, 1] -> [1, 0, 1, 0], pad (2, 1) -> [0, 0, 1, 0, 1, 0, 0], correlate with
    # [1, 3, 3, 1] / 8 * 2 -> [3/4, 1, 1, 3/4]; the 2-D result is the outer product.
    out = upfirdn2d(torch.ones(1, 1, 2, 2), make_blur_kernel(gain=4.0), up=2, pad=(2, 1))
    edge = torch.tensor([0.75, 1.0, 1.0, 0.75])
    torch.testing.assert_close(out[0, 0], torch.outer(edge, edge))


def test_fir_blur_of_an_impulse_is_the_kernel():
    x = torch.zeros(1, 2, 4, 4)
    x[:, :, 0, 0] = 1.0
    out = upfirdn2d(x, make_blur_kernel(), pad=(3, 3))  # full correlation: 4 + 6 - 4 + 1 = 7
    assert out.shape == (1, 2, 7, 7)
    torch.testing.assert_close(out[0, 1, :4, :4], make_blur_kernel())


def test_modulation_and_demodulation_by_hand_1x1():
    # w = (1, 2), s = (3, 1.5): w' = (3, 3), d = 1 / sqrt(18); x = (2, 1): y = (6 + 3) / sqrt(18) = 3 / sqrt(2).
    x = torch.tensor([2.0, 1.0]).view(1, 2, 1, 1)
    weight = torch.tensor([1.0, 2.0]).view(1, 2, 1, 1)
    style = torch.tensor([[3.0, 1.5]])
    assert modulated_conv2d(x, weight, style).item() == pytest.approx(3 / math.sqrt(2), rel=1e-6)
    assert modulated_conv2d(x, weight, style, demodulate=False).item() == pytest.approx(9.0)


def test_modulation_and_demodulation_by_hand_3x3():
    # All-ones 3x3 kernel and input, style 2: sum of w'^2 = 9 * 4 = 36, d = 1/6. The centre sees 9 inputs:
    # 9 * 2 / 6 = 3; a corner sees 4 (zero padding): 4 * 2 / 6 = 4/3.
    out = modulated_conv2d(torch.ones(1, 1, 3, 3), torch.ones(1, 1, 3, 3), torch.tensor([[2.0]]))
    assert out[0, 0, 1, 1].item() == pytest.approx(3.0)
    assert out[0, 0, 0, 0].item() == pytest.approx(4 / 3)


def test_modulated_conv_equals_per_sample_modulated_weights():
    """conv(x * s, w) * d must equal the grouped convolution with w'_b = w * s_b * d_b, with and without upsampling."""
    torch.manual_seed(0)
    x, weight, style = torch.randn(3, 4, 5, 5), torch.randn(6, 4, 3, 3), torch.randn(3, 4)
    w_mod = weight[None] * style[:, None, :, None, None]
    w_mod = w_mod * torch.rsqrt(w_mod.pow(2).sum(dim=(2, 3, 4)) + 1e-8)[:, :, None, None, None]
    grouped = F.conv2d(x.reshape(1, 12, 5, 5), w_mod.reshape(18, 4, 3, 3), padding=1, groups=3).view(3, 6, 5, 5)
    torch.testing.assert_close(modulated_conv2d(x, weight, style), grouped, rtol=1e-5, atol=1e-5)
    transposed_w = w_mod.transpose(1, 2).reshape(12, 6, 3, 3)
    up = F.conv_transpose2d(x.reshape(1, 12, 5, 5), transposed_w, stride=2, groups=3).view(3, 6, 11, 11)
    torch.testing.assert_close(modulated_conv2d(x, weight, style, upsample=True), up, rtol=1e-5, atol=1e-5)


def test_modulated_conv_module_upsamples_to_twice_the_side():
    conv = ModulatedConv2d(4, 5, 3, style_dim=8, upsample=True)
    assert conv(torch.randn(2, 4, 6, 6), torch.randn(2, 8)).shape == (2, 5, 12, 12)


def test_fused_leaky_relu_pixel_norm_and_equalised_linear_by_hand():
    out = fused_leaky_relu(torch.tensor([[-1.0, 2.0]]), torch.tensor([0.5, 0.0]))
    torch.testing.assert_close(out, torch.tensor([[-0.1 * math.sqrt(2), 2 * math.sqrt(2)]]))
    torch.testing.assert_close(pixel_norm(torch.tensor([[3.0, 4.0]])), torch.tensor([[3.0, 4.0]]) / math.sqrt(12.5))
    layer = EqualLinear(4, 1, lr_mul=0.01)
    with torch.no_grad():
        layer.weight.fill_(100.0)  # effective weight 100 * 0.01 / sqrt(4) = 0.5
        layer.bias.fill_(10.0)  # effective bias 10 * 0.01 = 0.1
    assert layer(torch.ones(1, 4)).item() == pytest.approx(4 * 0.5 + 0.1)


def test_truncation_moves_towards_the_average():
    w, avg = torch.tensor([4.0, -2.0]), torch.tensor([1.0, 1.0])
    torch.testing.assert_close(truncate(w, avg, 0.5), torch.tensor([2.5, -0.5]))
    generator = random_generator(NARROW_ARCH)
    w = torch.randn(2, 32)
    assert torch.equal(generator.truncate(w, 1.0), w)
    torch.testing.assert_close(generator.truncate(w, 0.0), generator.latent_avg.expand(2, 32))
    torch.testing.assert_close(generator.truncate(w, 0.7), 0.3 * generator.latent_avg + 0.7 * w)


def test_lsun_car_crop_keeps_the_central_band():
    image = torch.arange(16.0).view(1, 1, 16, 1).expand(1, 3, 16, 16)
    band = crop_image(image, "lsun-car")
    assert band.shape == (1, 3, 12, 16)
    assert band[0, 0, 0, 0].item() == 2.0 and band[0, 0, -1, 0].item() == 13.0


# ----------------------------------------------------------------------------------------------
# Architectures, loading and key checking.

ARCHS = [StyleGan2Arch(64, style_dim=48, n_mlp=3, channels=(64, 64, 32, 32, 16)), NARROW_ARCH]


@pytest.mark.parametrize("arch", ARCHS, ids=lambda a: a.describe())
def test_save_load_round_trip_infers_the_architecture(arch, tmp_path):
    original = random_generator(arch)
    save_stylegan2(original, tmp_path / "g.pt")
    loaded = load_stylegan2(tmp_path / "g.pt")
    assert loaded.arch == arch and loaded.latent_avg_source == "checkpoint"
    torch.testing.assert_close(loaded.latent_avg, original.latent_avg)
    w_plus = torch.randn(2, arch.n_latent, arch.style_dim)
    with torch.no_grad():
        image = loaded(w_plus)
        assert image.shape == (2, 3, arch.size, arch.size)
        torch.testing.assert_close(image, original(w_plus))


def test_standard_rosinality_checkpoint_loads(artefacts):
    generator = load_stylegan2(artefacts / "standard.pt")
    assert generator.arch == StyleGan2Arch.standard(32, style_dim=64, n_mlp=2)
    assert generator.arch.channels == (512, 512, 512, 512) and generator.n_latent == 8
    with torch.no_grad():
        assert generator(torch.zeros(1, 8, 64)).shape == (1, 3, 32, 32)


def test_standard_table_reports_its_channel_multiplier():
    assert StyleGan2Arch.standard(256, channel_multiplier=1).channel_multiplier == 1
    assert StyleGan2Arch.standard(256).channels[-1] == 128
    assert NARROW_ARCH.channel_multiplier is None
    assert infer_arch(random_generator(ARCHS[0]).state_dict()) == ARCHS[0]


def test_noise_buffers_are_fixed_and_random_noise_changes_the_image():
    generator = random_generator(NARROW_ARCH)
    assert [n.shape[-1] for n in generator.fixed_noise()] == [4, 8, 8, 16, 16, 32, 32]
    w_plus = generator.truncate(generator.map(torch.randn(1, 32)), 0.7)[:, None].expand(1, 8, 32)
    with torch.no_grad():
        first, second = generator(w_plus), generator(w_plus)
        noisy = generator(w_plus, generator.random_noise(torch.Generator().manual_seed(3)))
        again = generator(w_plus, generator.random_noise(torch.Generator().manual_seed(3)))
    assert torch.equal(first, second) and torch.equal(noisy, again)
    assert not torch.allclose(first, noisy)


def _saved(tmp_path, edit):
    generator = random_generator(NARROW_ARCH)
    state = generator.state_dict()
    edit(state)
    torch.save({"g_ema": state, "latent_avg": generator.latent_avg}, tmp_path / "bad.pt")
    return tmp_path / "bad.pt"


def test_missing_key_is_named(tmp_path):
    path = _saved(tmp_path, lambda s: s.pop("conv1.conv.weight"))
    with pytest.raises(CheckpointError) as err:
        load_stylegan2(path)
    message = str(err.value)
    assert "missing conv1.conv.weight" in message and str(path) in message
    assert "unexpected" not in message and "wrong shape" not in message and "\n" not in message


def test_unexpected_and_wrongly_shaped_keys_are_named(tmp_path):
    def edit(state):
        state["extra.weight"] = torch.zeros(3)
        state["convs.1.conv.weight"] = torch.zeros(1, 24, 7, 3, 3)  # one corrupt tensor among the channel votes

    with pytest.raises(CheckpointError) as err:
        load_stylegan2(_saved(tmp_path, edit))
    message = str(err.value)
    assert "unexpected extra.weight" in message
    assert "wrong shape convs.1.conv.weight [1, 24, 7, 3, 3] (expected [1, 32, 32, 3, 3])" in message
    assert "missing" not in message and message.count("[1, ") == 2  # no other key is blamed


def test_files_that_are_not_checkpoints_are_rejected(tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint file is missing"):
        load_stylegan2(tmp_path / "absent.pt")
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read as a torch checkpoint"):
        load_stylegan2(tmp_path / "text.pt")
    torch.save({"generator": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="expected a dict with 'g_ema'.*got generator"):
        load_stylegan2(tmp_path / "other.pt")


def test_missing_latent_avg_is_computed_deterministically(tmp_path):
    generator = random_generator(NARROW_ARCH)
    torch.save({"g_ema": generator.state_dict()}, tmp_path / "train.pt")
    first, second = load_stylegan2(tmp_path / "train.pt"), load_stylegan2(tmp_path / "train.pt")
    assert first.latent_avg_source == "computed"
    assert torch.equal(first.latent_avg, second.latent_avg)
    torch.testing.assert_close(first.latent_avg, generator.mean_latent())
