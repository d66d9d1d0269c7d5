"""A StyleGAN2 generator in pure PyTorch that loads rosinality/stylegan2-pytorch checkpoints.

The checkpoint layout is `{"g_ema": state_dict, "latent_avg": tensor}` (what that project's
`convert_weight.py` writes for the official LSUN Car/Cat/Church models; its training checkpoints hold
`g_ema` too). Module and parameter names below mirror that state dict, so loading is a plain strict
`load_state_dict` after the architecture has been inferred from the tensors and every key checked.

No compiled ops: the FIR filters run as depthwise convolutions, the modulated convolutions as one
shared-weight convolution between a per-sample input scaling and a per-sample output scaling, which
is the same sum as convolving with per-sample modulated weights.

Shape names: B batch, I/O input/output channels, H/W height/width, D style_dim, L n_latent (w+ rows).
"""

from __future__ import annotations

import argparse
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Literal, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)
LEAKY_SLOPE = 0.2
LEAKY_GAIN = math.sqrt(2.0)
MAPPING_LR_MUL = 0.01
EPS = 1e-8
MIN_SIZE, MAX_SIZE = 8, 1024
CropMode = Literal["none", "lsun-car"]


class CheckpointError(ValueError):
    """A checkpoint that is not a StyleGAN2 generator in rosinality layout: one line, `<file>: <problem>`."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        super().__init__(f"{path}: {problem}")


# ----------------------------------------------------------------------------------------------
# Pure functions: the numerics of the architecture.


def pixel_norm(x: Tensor, eps: float = EPS) -> Tensor:
    """x / sqrt(mean_j x_j^2 + eps) over dim 1 (the style features). x: [B, D]."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def fused_leaky_relu(x: Tensor, bias: Tensor, slope: float = LEAKY_SLOPE, gain: float = LEAKY_GAIN) -> Tensor:
    """gain * leaky_relu(x + bias, slope), bias broadcast along dim 1. x: [B, C] or [B, C, H, W]."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return F.leaky_relu(x + bias.view(shape), negative_slope=slope) * gain


def make_blur_kernel(taps: Sequence[float] = BLUR_TAPS, gain: float = 1.0) -> Tensor:
    """The separable FIR kernel k_ij = gain * t_i t_j / (sum t)^2, shape [K, K]."""
    t = torch.tensor(taps, dtype=torch.float32)
    return gain * torch.outer(t, t) / t.sum() ** 2


def upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, pad: Tuple[int, int] = (0, 0)) -> Tensor:
    """Upsample by zero insertion, pad, then filter: y = correlate(pad(zero_insert(x, up)), flip(kernel)).

    Zero insertion puts x[i] at up*i of a length up*H signal; `pad = (p0, p1)` adds p0 zeros
    before and p1 after on both axes, so the output side is up*H + p0 + p1 - K + 1.
    x: [B, C, H, W]; kernel: [K, K]; applied to every channel independently.
    """
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(b, c, h * up, w * up)
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    weight = torch.flip(kernel, [0, 1]).to(x.dtype).expand(c, 1, *kernel.shape)
    return F.conv2d(x, weight, groups=c)


def modulated_conv2d(
    x: Tensor, weight: Tensor, style: Tensor, demodulate: bool = True, upsample: bool = False
) -> Tensor:
    """StyleGAN2 modulated convolution, before any blur.

    With w [O, I, k, k] (equalised scale already applied) and style s [B, I]:
        w'_boi.. = w_oi.. * s_bi,    d_bo = (sum_{i,kh,kw} w'^2 + 1e-8)^(-1/2) if demodulate else 1,
        y_b = conv(x_b, w'_b) * d_b  =  conv(x_b * s_b, w) * d_b,
    where sum_{i,kh,kw} w'^2 = sum_i s_bi^2 (sum_{kh,kw} w_oi..^2) is computed as one matrix product.
    `upsample` uses a stride-2 transposed convolution (output side 2H + k - 2), as the reference does.
    x: [B, I, H, W] -> [B, O, H', W'].
    """
    out = x * style[:, :, None, None]
    if upsample:
        out = F.conv_transpose2d(out, weight.transpose(0, 1), stride=2)
    else:
        out = F.conv2d(out, weight, padding=weight.shape[-1] // 2)
    if demodulate:
        power = style.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t()
        out = out * torch.rsqrt(power + EPS)[:, :, None, None]
    return out


def truncate(w: Tensor, latent_avg: Tensor, psi: float) -> Tensor:
    """The truncation trick: latent_avg + psi * (w - latent_avg), for w [..., D]."""
    return latent_avg + psi * (w - latent_avg)


def crop_image(image: Tensor, crop: CropMode) -> Tensor:
    """`lsun-car`: keep the central band of 3/4 of the rows (512x512 canvas -> 512 wide, 384 high)."""
    if crop == "none":
        return image
    size = image.shape[-2]
    return image[..., size // 8 : size - size // 8, :]


# ----------------------------------------------------------------------------------------------
# Modules, named as in the rosinality state dict.


class PixelNorm(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return pixel_norm(x)


class EqualLinear(nn.Module):
    """Equalised-lr linear: y = x (W * lr_mul / sqrt(in))^T + b * lr_mul, then optionally fused leaky ReLU."""

    def __init__(self, in_dim: int, out_dim: int, lr_mul: float = 1.0, bias_init: float = 0.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.lr_mul, self.activate = lr_mul, activate
        self.scale = lr_mul / math.sqrt(in_dim)

    def forward(self, x: Tensor) -> Tensor:
        if self.activate:
            return fused_leaky_relu(F.linear(x, self.weight * self.scale), self.bias * self.lr_mul)
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class Blur(nn.Module):
    """FIR filter with `make_blur_kernel(gain)` and padding `pad`."""

    def __init__(self, pad: Tuple[int, int], gain: float = 1.0):
        super().__init__()
        self.register_buffer("kernel", make_blur_kernel(gain=gain))
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x FIR upsampling (zero insertion, kernel gain 4 to keep the mean, pad (2, 1)): [B,C,H,W] -> [B,C,2H,2W]."""

    def __init__(self):
        super().__init__()
        self.register_buffer("kernel", make_blur_kernel(gain=4.0))

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, up=2, pad=(2, 1))


class ModulatedConv2d(nn.Module):
    """Modulated convolution; the style comes from an affine map of w (bias initialised to 1).

    With `upsample`, the transposed convolution (side 2H + 1) is followed by a blur with pad (1, 1) and
    gain 4, giving side 2H.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, style_dim: int, demodulate: bool = True,
                 upsample: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_ch, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_ch * kernel_size**2)
        self.demodulate, self.upsample = demodulate, upsample
        if upsample:
            self.blur = Blur(pad=(1, 1), gain=4.0)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        out = modulated_conv2d(x, self.weight[0] * self.scale, self.modulation(w), self.demodulate, self.upsample)
        return self.blur(out) if self.upsample else out


class NoiseInjection(nn.Module):
    """x + strength * noise, with one learned scalar strength; noise [B or 1, 1, H, W]."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor, noise: Tensor) -> Tensor:
        return x + self.weight * noise


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        return fused_leaky_relu(x, self.bias)


class StyledConv(nn.Module):
    """Modulated 3x3 convolution -> noise injection -> fused leaky ReLU."""

    def __init__(self, in_ch: int, out_ch: int, style_dim: int, upsample: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(out_ch)

    def forward(self, x: Tensor, w: Tensor, noise: Tensor) -> Tensor:
        return self.activate(self.noise(self.conv(x, w), noise))


class ToRGB(nn.Module):
    """1x1 modulated convolution without demodulation, plus bias, plus the upsampled skip image."""

    def __init__(self, in_ch: int, style_dim: int, upsample: bool = True):
        super().__init__()
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2d(in_ch, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x: Tensor, w: Tensor, skip: Optional[Tensor] = None) -> Tensor:
        out = self.conv(x, w) + self.bias
        return out if skip is None else out + self.upsample(skip)


class ConstantInput(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, 4, 4))

    def forward(self, batch: int) -> Tensor:
        return self.input.expand(batch, -1, -1, -1)


# ----------------------------------------------------------------------------------------------
# The architecture and the generator.


@dataclass(frozen=True)
class StyleGan2Arch:
    """Everything that fixes the tensor shapes of a generator."""

    size: int
    """Output side in pixels, a power of two."""
    style_dim: int
    """Dimension D of z and w."""
    n_mlp: int
    """Number of mapping-network layers."""
    channels: Tuple[int, ...]
    """Feature channels at resolutions 4, 8, ..., size."""

    @staticmethod
    def standard(size: int, style_dim: int = 512, n_mlp: int = 8, channel_multiplier: int = 2) -> "StyleGan2Arch":
        """The rosinality channel table: 512 up to 32 px, then (2^14 / res) * channel_multiplier."""
        resolutions = [2**i for i in range(2, int(math.log2(size)) + 1)]
        channels = tuple(standard_channels(r, channel_multiplier) for r in resolutions)
        return StyleGan2Arch(size, style_dim, n_mlp, channels)

    @property
    def log_size(self) -> int:
        return int(math.log2(self.size))

    @property
    def n_latent(self) -> int:
        """Rows L of w+: 2 log2(size) - 2."""
        return 2 * self.log_size - 2

    @property
    def num_noise_layers(self) -> int:
        return 2 * self.log_size - 3

    @property
    def channel_multiplier(self) -> Optional[int]:
        """The multiplier of the standard table these channels follow, or None for a custom table.

        Up to 32 px every multiplier gives the same table; the reference default 2 is reported then.
        """
        for cm in (2, 1, 4, 8):
            if self.channels == StyleGan2Arch.standard(self.size, channel_multiplier=cm).channels:
                return cm
        return None

    def describe(self) -> str:
        cm = self.channel_multiplier
        table = f"channel_multiplier {cm}" if cm is not None else "channels " + "/".join(map(str, self.channels))
        return f"size {self.size}, style_dim {self.style_dim}, n_mlp {self.n_mlp}, {table}"


def standard_channels(resolution: int, channel_multiplier: int = 2) -> int:
    return 512 if resolution <= 32 else (16384 // resolution) * channel_multiplier


class StyleGan2Generator(nn.Module):
    """Mapping network z -> w and synthesis network w+ -> image in [-1, 1].

    `latent_avg` (the mean w, for truncation) is a non-persistent buffer, so `state_dict()` keeps
    exactly the rosinality `g_ema` keys.
    """

    def __init__(self, arch: StyleGan2Arch):
        super().__init__()
        self.arch = arch
        ch, d = arch.channels, arch.style_dim
        self.style = nn.Sequential(
            PixelNorm(), *[EqualLinear(d, d, lr_mul=MAPPING_LR_MUL, activate=True) for _ in range(arch.n_mlp)]
        )
        self.input = ConstantInput(ch[0])
        self.conv1 = StyledConv(ch[0], ch[0], d)
        self.to_rgb1 = ToRGB(ch[0], d, upsample=False)
        self.convs, self.to_rgbs = nn.ModuleList(), nn.ModuleList()
        for in_ch, out_ch in zip(ch[:-1], ch[1:]):
            self.convs.append(StyledConv(in_ch, out_ch, d, upsample=True))
            self.convs.append(StyledConv(out_ch, out_ch, d))
            self.to_rgbs.append(ToRGB(out_ch, d))
        self.noises = nn.Module()
        for i in range(arch.num_noise_layers):
            side = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, side, side))
        self.register_buffer("latent_avg", torch.zeros(d), persistent=False)

    @property
    def n_latent(self) -> int:
        return self.arch.n_latent

    def map(self, z: Tensor) -> Tensor:
        """Mapping network: PixelNorm then n_mlp equalised-lr layers (lr_mul 0.01). z [B, D] -> w [B, D]."""
        return self.style(z)

    def truncate(self, w: Tensor, psi: float) -> Tensor:
        """Move w ([..., D]) towards `latent_avg` by factor psi; psi = 1 leaves w unchanged."""
        return w if psi == 1.0 else truncate(w, self.latent_avg, psi)

    def fixed_noise(self) -> List[Tensor]:
        """The checkpoint's noise buffers, [1, 1, side, side] each."""
        return [getattr(self.noises, f"noise_{i}") for i in range(self.arch.num_noise_layers)]

    def random_noise(self, generator: torch.Generator) -> List[Tensor]:
        """Fresh noise maps shaped like the buffers, drawn on the CPU from `generator` (device-independent)."""
        return [torch.randn(n.shape, generator=generator).to(n.device) for n in self.fixed_noise()]

    def forward(self, w_plus: Tensor, noise: Optional[Sequence[Tensor]] = None) -> Tensor:
        """Synthesis: w+ [B, L, D] -> image [B, 3, size, size] (about [-1, 1]); noise defaults to the buffers.

        Row use: conv1 <- 0, to_rgb1 <- 1; block b: its two convs <- 2b+1, 2b+2, its to-RGB <- 2b+3.
        """
        if w_plus.ndim != 3 or w_plus.shape[1:] != (self.n_latent, self.arch.style_dim):
            raise ValueError(f"w+ must be [B, {self.n_latent}, {self.arch.style_dim}], got {list(w_plus.shape)}")
        noise = self.fixed_noise() if noise is None else list(noise)
        x = self.conv1(self.input(w_plus.shape[0]), w_plus[:, 0], noise[0])
        skip = self.to_rgb1(x, w_plus[:, 1])
        for b, to_rgb in enumerate(self.to_rgbs):
            x = self.convs[2 * b](x, w_plus[:, 2 * b + 1], noise[2 * b + 1])
            x = self.convs[2 * b + 1](x, w_plus[:, 2 * b + 2], noise[2 * b + 2])
            skip = to_rgb(x, w_plus[:, 2 * b + 3], skip)
        return skip

    @torch.no_grad()
    def mean_latent(self, n: int = 4096, seed: int = 0) -> Tensor:
        """Mean of w over n z ~ N(0, I) drawn from a CPU generator seeded with `seed`. -> [D]."""
        z = torch.randn(n, self.arch.style_dim, generator=torch.Generator().manual_seed(seed))
        return self.map(z.to(self.latent_avg.device)).mean(dim=0)


def to_rgb_uint8(image: Tensor) -> Tensor:
    """Generator output [B, 3, H, W] in [-1, 1] -> uint8 [B, H, W, 3], as (x + 1) / 2 * 255 rounded."""
    rgb = ((image.clamp(-1.0, 1.0) + 1.0) * 127.5 + 0.5).floor()
    return rgb.to(torch.uint8).permute(0, 2, 3, 1)


# ----------------------------------------------------------------------------------------------
# Architecture inference, key checking, loading and saving.


def expected_shapes(arch: StyleGan2Arch) -> Dict[str, Tuple[int, ...]]:
    """The state-dict key -> shape map of a generator of `arch` (built on the meta device, no memory)."""
    with torch.device("meta"):
        generator = StyleGan2Generator(arch)
    return {k: tuple(v.shape) for k, v in generator.state_dict().items()}


def _vote(state: Dict[str, Tensor], candidates: Sequence[Tuple[str, int]]) -> Optional[int]:
    """The most common size among (key, dim) candidates that exist, so one corrupt tensor cannot decide."""
    sizes = [state[k].shape[d] for k, d in candidates if isinstance(state.get(k), Tensor) and state[k].ndim > d]
    return Counter(sizes).most_common(1)[0][0] if sizes else None


def _channel_candidates(block: int) -> List[Tuple[str, int]]:
    """(key, dim) pairs that each state the channel count of block `block` (-1: the 4x4 stage)."""
    if block < 0:
        return [("input.input", 1), ("conv1.conv.weight", 1), ("conv1.conv.weight", 2),
                ("conv1.activate.bias", 0), ("to_rgb1.conv.weight", 2), ("conv1.conv.modulation.weight", 0)]
    a, b = f"convs.{2 * block}", f"convs.{2 * block + 1}"
    return [(f"{a}.conv.weight", 1), (f"{a}.activate.bias", 0), (f"{b}.conv.weight", 1), (f"{b}.conv.weight", 2),
            (f"{b}.activate.bias", 0), (f"{b}.conv.modulation.weight", 0), (f"to_rgbs.{block}.conv.weight", 2)]


def infer_arch(state: Dict[str, Tensor], path: Path | str = "<state dict>") -> StyleGan2Arch:
    """Size, style_dim, n_mlp and the channel table of a rosinality `g_ema` state dict.

    Counts blocks from the `convs.*`, `to_rgbs.*` and `noises.*` keys and mapping layers from
    `style.<k>.*`; each dimension is the majority over every tensor that states it.
    """
    indices: Dict[str, List[int]] = {"convs": [], "to_rgbs": [], "noise": [], "style": []}
    for key in state:
        match = re.match(r"^(convs|to_rgbs|style)\.(\d+)\.|^noises\.(noise)_(\d+)$", key)
        if match:
            name, index = (match[1], match[2]) if match[1] else (match[3], match[4])
            indices[name].append(int(index))
    blocks = max([max(indices["convs"], default=-1) // 2 + 1, max(indices["to_rgbs"], default=-1) + 1,
                  max(indices["noise"], default=-1) // 2])
    n_mlp = max(indices["style"], default=0)
    style_dim = _vote(state, [(k, 1) for k in state if k.endswith("modulation.weight")] +
                      [(f"style.{i}.weight", d) for i in range(1, n_mlp + 1) for d in (0, 1)])
    size = 2 ** (blocks + 2)
    if blocks < 1 or n_mlp < 1 or style_dim is None or not MIN_SIZE <= size <= MAX_SIZE:
        raise CheckpointError(path, "g_ema does not look like a rosinality StyleGAN2 generator "
                              "(expected style.<k>.weight, conv1.*, convs.<i>.*, to_rgbs.<i>.* keys)")
    channels = []
    for block in range(-1, blocks):
        resolution = 2 ** (block + 3)
        channels.append(_vote(state, _channel_candidates(block)) or standard_channels(resolution))
    return StyleGan2Arch(size, style_dim, n_mlp, tuple(channels))


def _listing(label: str, items: List[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit]) + (f" and {len(items) - limit} more" if len(items) > limit else "")
    return f"{label} {shown}"


def check_state_dict(state: Dict, arch: StyleGan2Arch, path: Path | str = "<state dict>") -> None:
    """Raise one CheckpointError naming every missing, unexpected or wrongly shaped key."""
    expected = expected_shapes(arch)
    bad_type = [k for k, v in state.items() if not isinstance(v, Tensor)]
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected and k not in bad_type]
    wrong = [f"{k} {list(state[k].shape)} (expected {list(expected[k])})" for k in expected
             if k in state and k not in bad_type and tuple(state[k].shape) != expected[k]]
    parts = [_listing(label, items) for label, items in
             (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong), ("not a tensor", bad_type))
             if items]
    if parts:
        raise CheckpointError(path, f"g_ema does not match a StyleGAN2 generator ({arch.describe()}): "
                              + "; ".join(parts))


def _torch_load(path: Path) -> object:
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file is missing")
    try:  # rosinality training checkpoints also pickle their argparse arguments
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many exception types for a foreign or corrupt file
        reason = str(err).strip().splitlines()[0] if str(err).strip() else err.__class__.__name__
        raise CheckpointError(path, f"cannot be read as a torch checkpoint ({reason[:200]})") from None


def load_stylegan2(path: Path | str, device: str | torch.device = "cpu") -> StyleGan2Generator:
    """Load a rosinality-layout checkpoint `{"g_ema": state_dict, "latent_avg": [D]}` strictly.

    The architecture is inferred from the tensors. Without `latent_avg` (training checkpoints), the
    mean w of 4096 seeded samples is used instead and `generator.latent_avg_source` says "computed".
    """
    path = Path(path)
    ckpt = _torch_load(path)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("g_ema"), dict):
        found = ", ".join(map(str, list(ckpt)[:8])) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(path, f"expected a dict with 'g_ema' (rosinality/stylegan2-pytorch layout), got {found}")
    state = ckpt["g_ema"]
    arch = infer_arch(state, path)
    check_state_dict(state, arch, path)
    with torch.device("meta"):  # no random initialisation: every tensor comes from the checkpoint
        generator = StyleGan2Generator(arch)
    generator.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    generator.latent_avg = torch.zeros(arch.style_dim)
    generator.latent_avg_source = "checkpoint"
    if ckpt.get("latent_avg") is not None:
        latent_avg = ckpt["latent_avg"]
        if not isinstance(latent_avg, Tensor) or latent_avg.numel() != arch.style_dim:
            raise CheckpointError(path, f"latent_avg must be a tensor of {arch.style_dim} values")
        generator.latent_avg.copy_(latent_avg.reshape(-1))
    else:
        generator.latent_avg.copy_(generator.mean_latent())
        generator.latent_avg_source = "computed"
    return generator.eval().requires_grad_(False).to(device)


def save_stylegan2(generator: StyleGan2Generator, path: Path | str) -> None:
    """Write `generator` in rosinality layout: {"g_ema": state_dict, "latent_avg": [D]}."""
    state = {k: v.detach().cpu().clone() for k, v in generator.state_dict().items()}
    torch.save({"g_ema": state, "latent_avg": generator.latent_avg.detach().cpu().clone()}, path)
