"""Real-image domain alignment (after Wang & Fang, "Unsupervised 3D Reconstruction from a Single Image via
Adversarial Learning"): make the encoder's latents of real photos indistinguishable from those of pseudo views.

A discriminator D classifies latents as pseudo (label 1) or real (label 0). The latents reach it through a
gradient-reversal layer, so one loss trains D to separate the domains while the encoder receives the negated
gradient and learns to confuse it. A decoder reconstructs each image from its latent (the autoencoder branch), so
aligned latents keep the image's content.

Shared by the gansvr and gansvr-voxel models: each builds a `DomainAlignment` when the datamanager's metadata has
`real_images`, trains it in the optimizer group "alignment" and adds `alignment_losses` to its training losses,
weighted by the config fields `alignment_loss_mult` and `autoencoder_loss_mult` (`ImageConditionedModelConfig`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Tuple

import numpy as np
import torch
from jaxtyping import Float
from PIL import Image
from torch import Tensor, nn

from gansvr_ns.data import format as fmt

if TYPE_CHECKING:
    from gansvr_ns.model.instances import ImageConditionedModelConfig

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale: float):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.scale * grad, None


def reverse_gradient(x: Tensor, scale: float = 1.0) -> Tensor:
    """Identity forward; multiplies the gradient by -scale backward."""
    return _ReverseGradient.apply(x, scale)


class DomainAlignment(nn.Module):
    """Latent discriminator plus an image decoder (the autoencoder branch)."""

    def __init__(self, latent_dim: int, hidden: int = 256, image_size: int = 32):
        super().__init__()
        self.discriminator = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )
        self.image_size = image_size
        self.start = image_size // 8
        self.decoder_in = nn.Linear(latent_dim, 128 * self.start * self.start)
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),
            nn.ConvTranspose2d(32, 3, 4, stride=2, padding=1), nn.Sigmoid(),
        )

    def adversarial_loss(
        self, pseudo: Float[Tensor, "batch latent_dim"], real: Float[Tensor, "batch latent_dim"], scale: float = 1.0
    ) -> Tensor:
        """BCE of D on pseudo (label 1) and real (label 0) latents, both behind gradient reversal."""
        logits = self.discriminator(reverse_gradient(torch.cat([pseudo, real]), scale))
        labels = torch.cat([torch.ones(len(pseudo), 1), torch.zeros(len(real), 1)]).to(logits)
        return nn.functional.binary_cross_entropy_with_logits(logits, labels)

    def decode(self, latents: Float[Tensor, "batch latent_dim"]) -> Float[Tensor, "batch 3 size size"]:
        h = self.decoder_in(latents).view(len(latents), 128, self.start, self.start)
        return self.decoder(h)

    def reconstruction_loss(self, latents: Tensor, images: Float[Tensor, "batch 3 height width"]) -> Tensor:
        """L1 between decoded latents and the images, at the decoder's resolution."""
        target = nn.functional.interpolate(images, size=(self.image_size, self.image_size), mode="area")
        return (self.decode(latents) - target).abs().mean()


def alignment_losses(
    alignment: DomainAlignment,
    config: ImageConditionedModelConfig,
    encode: Callable[[Tensor], Tensor],
    pseudo: Float[Tensor, "batch latent_dim"],
    batch: Dict[str, Tensor],
) -> Dict[str, Tensor]:
    """The weighted adversarial loss of the pseudo-view latents `pseudo` (of batch["condition_images"]) against the
    encoded batch["real_images"], and the autoencoder loss of both latents against their images."""
    real = encode(batch["real_images"])
    images = torch.cat([batch["condition_images"], batch["real_images"]])
    return {
        "alignment_loss": config.alignment_loss_mult * alignment.adversarial_loss(pseudo, real),
        "autoencoder_loss": config.autoencoder_loss_mult
        * alignment.reconstruction_loss(torch.cat([pseudo, real]), images),
    }


def load_real_images(folder: Path, size: Tuple[int, int]) -> Float[Tensor, "num_images 3 height width"]:
    """Every image of `folder` as RGB in [0, 1], resized to (height, width); errors name the folder or file."""
    if not folder.is_dir():
        raise ValueError(f"{folder}: real-image folder not found")
    # hidden files (a macOS copy's "._name.png" metadata) are not images
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not paths:
        raise ValueError(f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)}) in the real-image folder")
    images = []
    for path in paths:
        with fmt.open_image(path) as img:  # a FormatError (a ValueError) names an unreadable file
            rgb = fmt.rgb_image(img).resize((size[1], size[0]), Image.BILINEAR)
        images.append(torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 255.0).permute(2, 0, 1))
    return torch.stack(images)
