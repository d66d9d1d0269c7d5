"""Image encoder: one image -> one global latent code."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, Optional

import torch
import torchvision
from jaxtyping import Float
from torch import Tensor, nn

if TYPE_CHECKING:
    from gansvr_ns.model.instances import ImageConditionedModelConfig

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageEncoder(nn.Module):
    """A torchvision ResNet-18 (no downloaded weights) whose pooled features map linearly to the latent.

    Args:
        latent_dim: size of the latent code.
        input_size: images are resized to this square size before encoding.
        weights_path: optional local file with ImageNet ResNet-18 weights (a torchvision state dict).
        norm: "group" (GroupNorm, 8 groups) or "batch" (torchvision's BatchNorm). A training batch holds only a
            few instances, so BatchNorm's batch statistics are noisy and make each latent depend on the other
            images of the batch, and its running statistics differ from them at reconstruction time; GroupNorm
            normalises each image on its own. ImageNet weights load into either (GroupNorm takes the affine
            parameters of the BatchNorm layers).
        precision: "float32", or "bfloat16" to run the ResNet's convolutions under torch's bf16 autocast (the
            linear head and the latent stay float32). Pays on CPUs with AVX-512 BF16 or AMX and on GPUs with bf16.
    """

    def __init__(
        self,
        latent_dim: int = 256,
        input_size: int = 128,
        weights_path: Optional[Path] = None,
        norm: Literal["group", "batch"] = "group",
        precision: Literal["float32", "bfloat16"] = "float32",
    ):
        super().__init__()
        norm_layer = (lambda channels: nn.GroupNorm(8, channels)) if norm == "group" else nn.BatchNorm2d
        backbone = torchvision.models.resnet18(weights=None, norm_layer=norm_layer)
        if weights_path is not None:
            load_resnet18_weights(backbone, Path(weights_path))
        backbone.fc = nn.Identity()
        self.backbone = backbone
        self.head = nn.Linear(512, latent_dim)
        self.input_size = input_size
        self.precision = precision
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Float[Tensor, "batch 3 height width"]) -> Float[Tensor, "batch latent_dim"]:
        """Encode RGB images in [0, 1]."""
        images = reduce_large(images, self.input_size)
        if images.shape[-2:] != (self.input_size, self.input_size):
            images = nn.functional.interpolate(
                images, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False
            )
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.precision == "bfloat16"):
            features = self.backbone((images - self.mean) / self.std)
        return self.head(features.float())


def setup_encoder(config: ImageConditionedModelConfig) -> ImageEncoder:
    """The `ImageEncoder` of a model config's encoder settings; a weights file that is missing or not ResNet-18's
    ends the program (`ns-train`) with one line naming it (`DataError`) rather than a traceback."""
    from gansvr_ns.data.datamanager import DataError

    try:
        return ImageEncoder(config.latent_dim, config.encoder_input_size, config.encoder_weights, config.encoder_norm,
                            config.encoder_precision)
    except ValueError as err:
        raise DataError(f"gansvr: --pipeline.model.encoder-weights {err}") from None


def reduce_large(images: Float[Tensor, "batch 3 height width"], size: int) -> Float[Tensor, "batch 3 h w"]:
    """Images more than twice `size` on a side (a photo of thousands of pixels) reduced to 2 `size` x 2 `size` with an
    antialiasing filter; others as they are. The encoder's bilinear resize to `size` then averages pixels 2 x 2, where
    from a larger image it would read a few pixels and skip the rest (aliasing)."""
    if max(images.shape[-2:]) <= 2 * size:
        return images
    return nn.functional.interpolate(images, size=(2 * size, 2 * size), mode="bilinear", antialias=True,
                                     align_corners=False)


def load_resnet18_weights(backbone: nn.Module, path: Path) -> None:
    """Load a torchvision ResNet-18 state dict from a local file into `backbone` (the `fc` layer is ignored).

    Raises a ValueError naming the path and the expected format when the file is missing or does not hold
    ResNet-18 weights. Never downloads.
    """
    if not path.is_file():
        raise ValueError(f"{path}: encoder weights file not found (expected a torchvision resnet18 state dict, .pth)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many error types for a corrupt or foreign file
        raise ValueError(f"{path}: not a torch state dict ({err.__class__.__name__})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a torchvision resnet18 state dict")
    expected = {k: v for k, v in backbone.state_dict().items() if not k.startswith("fc.")}
    statistics = ("running_mean", "running_var", "num_batches_tracked")  # BatchNorm's, which GroupNorm has not
    unexpected = sorted(k for k in state if k not in expected and not k.startswith("fc.")
                        and not k.endswith(statistics))  # e.g. a deeper ResNet's extra blocks
    state = {k: v for k, v in state.items() if k in expected}  # drops `fc` and, for GroupNorm, BatchNorm statistics
    missing = sorted(set(expected) - set(state))
    wrong = sorted(k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or wrong or unexpected:
        detail = (f"missing {missing[:3]}" if missing else f"wrong shape {wrong[:3]}" if wrong
                  else f"unexpected {unexpected[:3]}")
        raise ValueError(f"{path}: not torchvision resnet18 weights ({detail})")
    backbone.load_state_dict(state, strict=False)
