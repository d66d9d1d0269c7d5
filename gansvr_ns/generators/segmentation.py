"""Object masks for generated views: a torchvision DeepLabV3 with the 21 Pascal VOC classes.

Weights come only from a local file (nothing is downloaded): a state dict of
`deeplabv3_resnet50` or `deeplabv3_mobilenet_v3_large` with 21 classes, such as torchvision's own
`*_coco_with_voc_labels` files, or torchvision's reference-training checkpoint `{"model": state_dict}`.
The backbone and the presence of the auxiliary head are read from the keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor, nn

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)
CATEGORY_ALIASES = {
    "airplane": "aeroplane", "plane": "aeroplane", "bike": "bicycle", "table": "diningtable",
    "motorcycle": "motorbike", "human": "person", "plant": "pottedplant", "couch": "sofa", "tv": "tvmonitor",
    "monitor": "tvmonitor",
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SegmenterArch = Literal["auto", "resnet50", "mobilenet_v3_large"]


def voc_class_index(name: str) -> int:
    """Index of a VOC class, given its VOC name or a common alias (car -> 7, airplane -> 1)."""
    key = CATEGORY_ALIASES.get(name.lower(), name.lower())
    if key not in VOC_CLASSES[1:]:
        raise ValueError(f"'{name}' is not a Pascal VOC class; choose one of {', '.join(VOC_CLASSES[1:])} "
                         "(or give your own masks with --masks-from)")
    return VOC_CLASSES.index(key)


def _read_state_dict(path: Path) -> Dict[str, Tensor]:
    if not path.is_file():
        raise ValueError(f"{path}: segmenter weights file is missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many exception types for a foreign or corrupt file
        raise ValueError(f"{path}: cannot be read as a torch state dict ({err.__class__.__name__})") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a DeepLabV3 state dict (key -> tensor) or {{'model': state_dict}}")
    return state


def infer_segmenter_arch(state: Dict[str, Tensor], path: Path | str) -> str:
    """'resnet50' (keys backbone.layer1.*) or 'mobilenet_v3_large' (keys backbone.<n>.*)."""
    if any(k.startswith("backbone.layer1.") for k in state):
        return "resnet50"
    if "backbone.0.0.weight" in state:
        return "mobilenet_v3_large"
    raise ValueError(f"{path}: not a torchvision DeepLabV3 ResNet-50 or MobileNetV3-Large state dict")


def build_segmenter(arch: str, aux_loss: bool) -> nn.Module:
    """An untrained torchvision DeepLabV3 with 21 classes (weights=None, weights_backbone=None: no download)."""
    from torchvision.models import segmentation

    factory = {"resnet50": segmentation.deeplabv3_resnet50,
               "mobilenet_v3_large": segmentation.deeplabv3_mobilenet_v3_large}[arch]
    return factory(weights=None, weights_backbone=None, num_classes=len(VOC_CLASSES), aux_loss=aux_loss)


def load_segmenter(path: Path | str, arch: SegmenterArch = "auto", device: str | torch.device = "cpu") -> nn.Module:
    """Load DeepLabV3 weights strictly from `path`; the auxiliary head, if any, is dropped after loading."""
    path = Path(path)
    state = _read_state_dict(path)
    found = infer_segmenter_arch(state, path)
    if arch != "auto" and arch != found:
        raise ValueError(f"{path}: holds DeepLabV3 {found} weights, but --segmenter-arch is {arch}")
    classes = state.get("classifier.4.weight")
    if classes is not None and classes.shape[0] != len(VOC_CLASSES):
        raise ValueError(f"{path}: segmenter predicts {classes.shape[0]} classes, expected the 21 Pascal VOC classes")
    model = build_segmenter(found, aux_loss=any(k.startswith("aux_classifier.") for k in state))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = {
        "missing": [k for k in expected if k not in state],
        "unexpected": [k for k in state if k not in expected],
        "wrong shape": [k for k in expected if k in state and tuple(state[k].shape) != expected[k]],
    }
    listed = [f"{label} {', '.join(keys[:6])}" + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")
              for label, keys in problems.items() if keys]
    if listed:
        raise ValueError(f"{path}: does not match DeepLabV3 {found}: {'; '.join(listed)}")
    model.load_state_dict(state, strict=True)
    model.aux_classifier = None
    return model.eval().requires_grad_(False).to(device)


@torch.no_grad()
def predict_class_mask(model: nn.Module, images: Tensor, class_index: int) -> Tensor:
    """Per-pixel argmax over the VOC classes == class_index. images: [B, 3, H, W] in [0, 1] -> bool [B, H, W]."""
    mean = images.new_tensor(IMAGENET_MEAN)[None, :, None, None]
    std = images.new_tensor(IMAGENET_STD)[None, :, None, None]
    logits = model((images - mean) / std)["out"]
    return logits.argmax(dim=1) == class_index


def resize_masks(masks: Tensor, size: tuple) -> Tensor:
    """Resize bool masks [B, H, W] to size (h, w): the fraction of each output pixel covered (area mode) > 0.5."""
    if tuple(masks.shape[-2:]) == tuple(size):
        return masks
    coverage = F.interpolate(masks[:, None].float(), size=size, mode="area")
    return coverage[:, 0] > 0.5


def clean_mask(mask: np.ndarray) -> np.ndarray:
    """Keep the largest 8-connected component and fill its holes. bool [H, W] -> bool [H, W]."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(labels.ravel())[1:]
    largest = labels == (int(np.argmax(sizes)) + 1)
    return ndimage.binary_fill_holes(largest)
