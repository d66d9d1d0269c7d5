"""Small random-weight artefacts the generator tests share: checkpoints, segmenter weights, label files."""

import json
from pathlib import Path

import pytest
import torch

from gansvr_ns.generators.segmentation import build_segmenter
from gansvr_ns.generators.stylegan2 import StyleGan2Arch, StyleGan2Generator, save_stylegan2

NARROW_ARCH = StyleGan2Arch(size=32, style_dim=32, n_mlp=2, channels=(32, 32, 24, 16))


def random_generator(arch: StyleGan2Arch, seed: int = 0) -> StyleGan2Generator:
    """A randomly initialised generator whose every parameter matters (noise strengths and biases non-zero)."""
    torch.manual_seed(seed)
    generator = StyleGan2Generator(arch).eval()
    with torch.no_grad():
        for name, param in generator.named_parameters():
            if name.endswith("noise.weight") or name.endswith("bias"):
                param.add_(0.1 * torch.randn_like(param))
        generator.latent_avg.copy_(generator.mean_latent(256))
    return generator


def write_labels(path: Path, count: int = 8, **extra) -> Path:
    """A label file of `count` seeded view codes 360/count degrees apart."""
    codes = [{"seed": 100 + i, "azimuth_deg": i * 360.0 / count, "elevation_deg": 5.0 + i} for i in range(count)]
    path.write_text(json.dumps({"view_codes": codes, **extra}))
    return path


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory) -> Path:
    """Folder with standard.pt (size 32, style_dim 64, n_mlp 2), narrow.pt, deeplab.pt (MobileNetV3) and labels.json."""
    root = tmp_path_factory.mktemp("artefacts")
    save_stylegan2(random_generator(StyleGan2Arch.standard(32, style_dim=64, n_mlp=2)), root / "standard.pt")
    save_stylegan2(random_generator(NARROW_ARCH, seed=1), root / "narrow.pt")
    torch.manual_seed(2)
    torch.save(build_segmenter("mobilenet_v3_large", aux_loss=True).state_dict(), root / "deeplab.pt")
    write_labels(root / "labels.json")
    return root
