"""Object masks of photos taken on a backdrop, estimated from the image alone.

A product or studio photo shows its object on a backdrop that runs out to the image's border: a plain wall, a
gradient, a pattern of a few colours. `backdrop_mask` reads the backdrop's colours off a band along the border and
calls background every pixel whose colour is close to one of them and that is connected to the border through such
pixels; the object is the largest remaining region, its holes filled. It needs nothing but the image: no weights,
no class. It is wrong for cluttered scenes, where the border shows other things, and for objects that fill much of
the border; an estimate that does not look like one object on a backdrop is refused (None).

`gansvr-reconstruct --estimate-masks` uses it for images given without a mask (README, "Photos without a mask").
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from scipy import ndimage

from gansvr_ns.generators.segmentation import clean_mask

WORK_SIZE = 160
"""The estimate is made on the image scaled down to at most this many pixels on its long side, then scaled back."""
MIN_SIDE = 8
"""Images with a side shorter than this many pixels get no estimate."""
BORDER = 0.03
"""Width of the border band read for the backdrop's colours, as a fraction of the image's short side (at least one
pixel)."""
MIN_TOLERANCE = 0.08
"""Least colour distance (Euclidean, RGB in [0, 1]) below which a pixel matches a backdrop colour. A noisy or
textured backdrop raises it (`backdrop_mask`)."""
COMMON = 0.02
"""A border colour counts as backdrop only if at least this fraction of the border's pixels lie within the tolerance
of it, on at least two of the image's four sides: the border pixels of an object that touches one side do not make
its colours backdrop."""
MIN_OBJECT, MAX_OBJECT = 0.005, 0.9
"""Fractions of the image an estimated object may cover; outside them the estimate is refused."""
MIN_BACKDROP_BORDER = 0.6
"""Least fraction of the border band that must be backdrop; below it the border is mostly not a backdrop and the
estimate is refused."""
MIN_HOLE = 0.002
"""Regions in backdrop colours enclosed by the object and larger than this fraction of the image are background
seen through it; smaller ones are filled."""
MAX_BORDER_COLOURS = 1024
"""Border pixels kept as backdrop colours (evenly spaced along the band)."""


def border_band(height: int, width: int, band: int) -> np.ndarray:
    """bool [H, W]: the pixels within `band` of the image's edge."""
    inside = np.zeros((height, width), dtype=bool)
    inside[band : height - band, band : width - band] = True
    return ~inside


def nearest_side(height: int, width: int) -> np.ndarray:
    """int [H, W]: the side of the image nearest each pixel (0 top, 1 bottom, 2 left, 3 right)."""
    v, u = np.mgrid[0:height, 0:width]
    return np.argmin(np.stack([v, height - 1 - v, u, width - 1 - u]), axis=0)


def nearest_colour_distance(pixels: torch.Tensor, colours: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
    """For each of `pixels` (N, 3), the distance to the nearest of `colours` (M, 3)."""
    return torch.cat([torch.cdist(part, colours).min(dim=1).values for part in pixels.split(chunk)])


def backdrop_mask(rgb: np.ndarray) -> Optional[np.ndarray]:
    """The object mask (bool [H, W]) of an image (float [H, W, 3] in [0, 1]) whose object stands on a backdrop that
    reaches its border, or None where the image does not look like that (module docstring)."""
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_SIDE:
        return None
    scale = min(1.0, WORK_SIZE / max(height, width))
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    image = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None]
    if size != (height, width):
        image = torch.nn.functional.interpolate(image, size=size, mode="area")
    pixels = image[0].permute(1, 2, 0).reshape(-1, 3)
    band = border_band(*size, max(1, round(BORDER * min(size))))
    keep = torch.linspace(0, int(band.sum()) - 1, min(int(band.sum()), MAX_BORDER_COLOURS)).long()
    colours = pixels[torch.from_numpy(band.reshape(-1))][keep]
    sides = torch.from_numpy(nearest_side(*size)[band])[keep]
    # how close the border's colours lie to each other: a noisy or textured backdrop needs a wider tolerance
    spacing = torch.cdist(colours, colours)
    spacing.fill_diagonal_(float("inf"))
    tolerance = max(MIN_TOLERANCE, 3.0 * float(spacing.min(dim=1).values.median()))
    spacing.fill_diagonal_(0.0)
    close = spacing < tolerance
    on_sides = sum(close[:, sides == side].any(dim=1).int() for side in range(4))
    common = (close.sum(dim=1) >= COMMON * len(colours)) & (on_sides >= 2)
    if not common.any():
        return None
    near = (nearest_colour_distance(pixels, colours[common]) < tolerance).reshape(size).numpy()
    labels, _ = ndimage.label(near)
    touching = np.unique(labels[band & near])
    backdrop = np.isin(labels, touching[touching > 0])
    if backdrop[band].mean() < MIN_BACKDROP_BORDER:
        return None
    mask = clean_mask(~backdrop)
    # the holes it filled that show backdrop colours are the backdrop seen through the object (a chair's back, the
    # gap under a table) unless they are specks
    enclosed, count = ndimage.label(mask & near)
    if count:
        sizes = np.bincount(enclosed.ravel())[1:]
        mask &= ~np.isin(enclosed, 1 + np.flatnonzero(sizes >= MIN_HOLE * mask.size))
    if size != (height, width):
        mask = refined_outline(mask, rgb, colours[common], tolerance)
    if not MIN_OBJECT <= mask.mean() <= MAX_OBJECT:
        return None
    return mask


def refined_outline(mask: np.ndarray, rgb: np.ndarray, backdrop: torch.Tensor, tolerance: float) -> np.ndarray:
    """`mask`, estimated on a smaller copy of `rgb`, at `rgb`'s size: scaled up, then every pixel within a cell of
    the smaller copy of its outline is backdrop or object by its own colour (against the `backdrop` colours)."""
    height, width = rgb.shape[:2]
    grown = torch.nn.functional.interpolate(torch.from_numpy(mask).float()[None, None], size=(height, width),
                                            mode="bilinear", align_corners=False)[0, 0].numpy() > 0.5
    reach = 2 * int(np.ceil(max(height / mask.shape[0], width / mask.shape[1]))) + 1
    outline = ndimage.maximum_filter(grown, size=reach) & ~ndimage.minimum_filter(grown, size=reach)
    where = np.flatnonzero(outline)
    colours = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32).reshape(-1, 3)[where])
    grown.flat[where] = (nearest_colour_distance(colours, backdrop) >= tolerance).numpy()
    return grown
