"""Framing a photo's object as a run's training inputs frame theirs.

A run learns from input images in which the object sits where the data's cameras put it: at the principal point,
at one distance, so that its image has about one size. A photo shows the object anywhere, at any size, on a canvas
of any shape. Encoded as it is (resized to the encoder's square), the 26 test cars of `gan-car` moved and scaled on
a 4:3 canvas came out no better than another instance (docs/benchmarks.md, "Framing photos"). Given the object's
mask, `frame_image` crops and scales the photo so that the object's box centre and size are those of the training
inputs, on a canvas of their size.

Which size: the box's height, its width and the square root of the mask's area each vary over the training inputs
with the view and the instance (a car seen from the side is longer than from the front). Their geometric mean with
the weights w that vary least over the training inputs is matched: with F the (N, 3) logarithms of the three
measures and S their covariance, w = S^-1 1 / (1^T S^-1 1) minimises the variance of F w subject to sum(w) = 1.
Weights summing to one keep the measure a length: an image scaled by s has every measure, and so the combined one,
times s.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Tuple

import numpy as np
import torch

from gansvr_ns.data.format import TRANSPARENT_BACKGROUND

RIDGE = 0.05
"""Added to the covariance's diagonal as a fraction of its mean variance, so that a few training masks, or measures
that move together, give weights near the plain geometric mean rather than large ones of opposite signs."""


def box_measures(mask: np.ndarray) -> Optional[Tuple[np.ndarray, Tuple[float, float]]]:
    """The logarithms of a mask's box height, box width and sqrt(area) in pixels, and the box centre (y, x) in
    pixel-edge coordinates (the top-left corner of the image is (0, 0)); None for an empty mask."""
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        return None
    top, bottom, left, right = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
    measures = np.log([bottom - top, right - left, np.sqrt(len(rows))])
    return measures, ((top + bottom) / 2.0, (left + right) / 2.0)


@dataclass(frozen=True)
class InputFraming:
    """Where and how large the object is in a run's training inputs."""

    image_size: Tuple[int, int]
    """(height, width) of the training inputs: the framed image's size."""
    centre: Tuple[float, float]
    """Median box centre (y, x) of the training inputs' masks, in pixels."""
    weights: Tuple[float, float, float]
    """Weights of the log box height, log box width and log sqrt(area) in the size matched (they sum to one)."""
    log_size: float
    """Median of the weighted log size over the training inputs."""
    log_size_spread: float
    """Spread of the weighted log size over the training inputs (1.4826 x its median absolute deviation: the
    standard deviation, were it normal)."""
    centre_spread: Tuple[float, float]
    """Spread (y, x) of the box centres over the training inputs in pixels, measured alike; at least one pixel."""

    def log_size_of(self, measures: np.ndarray) -> float:
        return float(np.dot(self.weights, measures))


def framing_from_masks(masks: Iterable[np.ndarray]) -> InputFraming:
    """The framing of a set of training masks, all of one size (see the module's docstring); empty masks are left
    out. Fewer than two non-empty masks is a ValueError."""
    measures, centres, size = [], [], None
    for mask in masks:
        size = size or mask.shape[:2]
        if mask.shape[:2] != size:
            raise ValueError(f"training masks of different sizes: {size} and {mask.shape[:2]}")
        box = box_measures(mask)
        if box is not None:
            measures.append(box[0])
            centres.append(box[1])
    if len(measures) < 2:
        raise ValueError("framing needs at least two non-empty training masks")
    logs, centres = np.stack(measures), np.array(centres)
    covariance = np.cov(logs, rowvar=False)
    covariance += RIDGE * np.trace(covariance) / 3.0 * np.eye(3) + 1e-12 * np.eye(3)
    weights = np.linalg.solve(covariance, np.ones(3))
    weights /= weights.sum()
    sizes = logs @ weights
    return InputFraming(
        image_size=(int(size[0]), int(size[1])),
        centre=tuple(float(v) for v in np.median(centres, axis=0)),
        weights=tuple(float(w) for w in weights),
        log_size=float(np.median(sizes)),
        log_size_spread=float(_spread(sizes)),
        centre_spread=tuple(float(max(_spread(centres[:, axis]), 1.0)) for axis in range(2)),
    )


def _spread(values: np.ndarray) -> float:
    return 1.4826 * float(np.median(np.abs(values - np.median(values))))


def frame_image(rgb: np.ndarray, mask: np.ndarray, framing: InputFraming, tolerance: float = 2.0,
                fill: float = TRANSPARENT_BACKGROUND) -> Tuple[np.ndarray, Optional[float]]:
    """An (H, W, C) float image in [0, 1] cropped and scaled so that the box of its object `mask` (H, W) has the
    training inputs' centre and size, on a canvas of their size filled with `fill` (`TRANSPARENT_BACKGROUND` grey)
    where the photo does not reach; and the scale applied (framed pixels per photo pixel).

    An image of the training inputs' aspect ratio (to a pixel of their size) is first looked at as the encoder would
    see it, resized to their size: where its object's size is within `tolerance` spreads of theirs, that scale is
    kept, and where its box centre is within `tolerance` spreads on an axis, so is that coordinate. Framing an image
    that is framed like them already would move it by the estimate's error alone (docs/benchmarks.md, "Framing
    photos"); such an image comes back as it is, with scale None. `tolerance` 0 frames every image.

    The photo is resized with an antialiased filter, then placed to the nearest framed pixel. An empty mask is a
    ValueError."""
    box = box_measures(mask)
    if box is None:
        raise ValueError("the object mask is empty")
    measures, centre = box
    (height, width), (out_h, out_w) = rgb.shape[:2], framing.image_size
    scale = float(np.exp(framing.log_size - framing.log_size_of(measures)))
    target = list(framing.centre)
    if tolerance > 0 and abs(width * out_h / height - out_w) <= 1.0:
        as_is = out_h / height  # the encoder's own resize
        kept = abs(np.log(scale / as_is)) <= tolerance * framing.log_size_spread
        scale = as_is if kept else scale
        centred = []
        for axis, full in enumerate((height, width)):
            seen = centre[axis] * framing.image_size[axis] / full  # where the encoder sees it
            centred.append(abs(seen - framing.centre[axis]) <= tolerance * framing.centre_spread[axis])
            target[axis] = seen if centred[-1] else target[axis]
        if kept and all(centred):
            return rgb, None
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    image = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
    resized = torch.nn.functional.interpolate(image, size=size, mode="bilinear", antialias=True, align_corners=False)
    resized = resized[0].permute(1, 2, 0).clamp(0.0, 1.0).numpy()
    # the resized box centre lands on the target centre: the resized image's top-left corner goes to `offset`
    offset_y = round(target[0] - centre[0] * size[0] / height)
    offset_x = round(target[1] - centre[1] * size[1] / width)
    framed = np.full((out_h, out_w, rgb.shape[2]), fill, dtype=np.float32)
    top, left = max(offset_y, 0), max(offset_x, 0)
    bottom, right = min(offset_y + size[0], out_h), min(offset_x + size[1], out_w)
    if bottom > top and right > left:
        framed[top:bottom, left:right] = resized[top - offset_y:bottom - offset_y, left - offset_x:right - offset_x]
    return framed, scale


def frame_mask(mask: np.ndarray, framing: InputFraming, tolerance: float = 2.0) -> np.ndarray:
    """An object mask (H, W) framed as `frame_image` frames its image: where more than half of a framed pixel is
    object."""
    framed, _ = frame_image(mask[..., None].astype(np.float32), mask, framing, tolerance, fill=0.0)
    return framed[..., 0] > 0.5
