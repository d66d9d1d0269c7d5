"""Object masks of photos taken on a backdrop, estimated from the image alone.

A product or studio photo shows its object on a backdrop that runs out to the image's border: a plain wall, a
gradient, a pattern of a few colours. `backdrop_mask` reads the backdrop's colours off a band along the border and
calls background every pixel whose colour is close to one of them and that is connected to the border through such
pixels; the object is the largest remaining region, its holes filled. Along the outline, where a soft edge or a
JPEG's ringing mixes the object's colour with the backdrop's, a pixel whose colour lies between a backdrop colour
and the object's own colour nearby, nearer the backdrop's end, is background too. It needs nothing but the image:
no weights, no class. It is wrong for cluttered scenes, where the border shows other things, and for objects that
fill much of the border; an estimate that does not look like one object on a backdrop is refused (None).

`gansvr-reconstruct --estimate-masks` uses it for images given without a mask (README, "Photos without a mask").
"""

from __future__ import annotations

from typing import Iterator, Optional

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
CORE_DEPTH = 2
"""The object's own colours are read off its core: the estimated object eroded by this many pixels of the working
copy, away from the mixed colours of its outline."""
CORE_REACH = 3
"""A pixel is compared with the core's colours within this many pixels of it (of the working copy); a pixel with no
core that near (a thin part: a chair's leg, a wing seen edge-on) keeps the plain tolerance test."""


def border_band(height: int, width: int, band: int) -> np.ndarray:
    """bool [H, W]: the pixels within `band` of the image's edge."""
    inside = np.zeros((height, width), dtype=bool)
    inside[band : height - band, band : width - band] = True
    return ~inside


def nearest_side(height: int, width: int) -> np.ndarray:
    """int [H, W]: the side of the image nearest each pixel (0 top, 1 bottom, 2 left, 3 right)."""
    v, u = np.mgrid[0:height, 0:width]
    return np.argmin(np.stack([v, height - 1 - v, u, width - 1 - u]), axis=0)


def nearest_colour(pixels: torch.Tensor, colours: torch.Tensor, chunk: int = 8192) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of `pixels` (N, 3), the distance to the nearest of `colours` (M, 3), and that colour (N, 3)."""
    distances, nearest = [], []
    for part in pixels.split(chunk):
        distance, index = torch.cdist(part, colours).min(dim=1)
        distances.append(distance)
        nearest.append(colours[index])
    return torch.cat(distances), torch.cat(nearest)


def within_reach(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> Iterator[torch.Tensor]:
    """For pixels at (`rows`, `cols`) of an image of `shape` (H, W), the flat index of their neighbour at each offset
    up to `CORE_REACH` rows and columns away, offset by offset (clipped at the image's edge)."""
    height, width = shape
    for dv in range(-CORE_REACH, CORE_REACH + 1):
        for du in range(-CORE_REACH, CORE_REACH + 1):
            yield torch.from_numpy((rows + dv).clip(0, height - 1) * width + (cols + du).clip(0, width - 1))


def nearest_nearby(pixels: torch.Tensor, rows: np.ndarray, cols: np.ndarray, image: torch.Tensor,
                   region: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """For each of `pixels` (N, 3) at (`rows`, `cols`) of the working copy `image` (H, W, 3), the colour nearest
    theirs among the pixels of `region` (bool [H, W]) within `CORE_REACH` of them: its distance (inf where `region`
    has none that near) and the colour (N, 3)."""
    flat, inside = image.reshape(-1, 3), torch.from_numpy(region.reshape(-1))
    best, colour = torch.full((len(pixels),), float("inf")), torch.zeros_like(pixels)
    for index in within_reach(rows, cols, region.shape):
        there = flat[index]
        distance = torch.where(inside[index], (pixels - there).norm(dim=1), float("inf"))
        closer = distance < best
        best = torch.where(closer, distance, best)
        colour[closer] = there[closer]
    return best, colour


def on_backdrop_half(pixels: torch.Tensor, own: torch.Tensor, backdrop: torch.Tensor,
                     tolerance: float) -> torch.Tensor:
    """bool (N,): which `pixels` lie within `tolerance` of the segment from `own` to `backdrop` (N, 3 each), on the
    backdrop's half."""
    step = backdrop - own
    along = ((pixels - own) * step).sum(dim=1) / step.square().sum(dim=1).clamp_min(1e-12)
    off = (pixels - (own + along.clamp(0, 1)[:, None] * step)).norm(dim=1)
    return (along > 0.5) & (off < tolerance)


def mean_nearby(rows: np.ndarray, cols: np.ndarray, image: torch.Tensor,
                region: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """For each pixel at (`rows`, `cols`) of the working copy `image` (H, W, 3), the number of `region` pixels (bool
    [H, W]) within `CORE_REACH` of it and their mean colour (N, 3)."""
    flat, inside = image.reshape(-1, 3), torch.from_numpy(region.reshape(-1)).float()
    count, total = torch.zeros(len(rows)), torch.zeros(len(rows), 3)
    for index in within_reach(rows, cols, region.shape):
        count += inside[index]
        total += inside[index, None] * flat[index]
    return count, total / count.clamp_min(1)[:, None]


def mixed_with_backdrop(pixels: torch.Tensor, rows: np.ndarray, cols: np.ndarray, backdrop: torch.Tensor,
                        image: torch.Tensor, core: np.ndarray, outside: np.ndarray, tolerance: float) -> torch.Tensor:
    """bool (N,): which `pixels` (N, 3), at (`rows`, `cols`) of the working copy `image` (H, W, 3), are a soft edge
    or JPEG ringing rather than a part of the object: within `tolerance` of the segment from the object's own colour
    (the colour nearest theirs among the `core` pixels, bool [H, W], within `CORE_REACH`) to a backdrop colour, on
    the backdrop's half. The backdrop colour is their nearest `backdrop` colour (N, 3) or, for a gradient, where
    that need not be the one behind them, the mean colour of the `outside` (backdrop) pixels within `CORE_REACH`. A
    pixel with no core pixel that near is not."""
    own_distance, own = nearest_nearby(pixels, rows, cols, image, core)
    mixed = on_backdrop_half(pixels, own, backdrop, tolerance)
    count, behind = mean_nearby(rows, cols, image, outside)
    mixed |= (count > 0) & on_backdrop_half(pixels, own, behind, tolerance)
    return mixed & torch.isfinite(own_distance)


def object_of(near: np.ndarray, band: np.ndarray) -> Optional[np.ndarray]:
    """The object mask of a working copy whose backdrop-coloured pixels are `near`: the regions of them that touch
    the border `band` are backdrop, the largest rest is the object, holes filled except for enclosed backdrop regions
    larger than `MIN_HOLE`. None when less than `MIN_BACKDROP_BORDER` of the band is backdrop."""
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
    return mask


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
    image = image[0].permute(1, 2, 0).contiguous()
    pixels = image.reshape(-1, 3)
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
    backdrop = colours[common]
    distance, nearest = nearest_colour(pixels, backdrop)
    near = (distance < tolerance).reshape(size).numpy()
    mask = object_of(near, band)
    if mask is None:
        return None
    core = ndimage.binary_erosion(mask, iterations=CORE_DEPTH)
    outside = near & ~mask
    # the outline's mixtures of the object's colour and the backdrop's, judged against the object's core nearby
    test = np.flatnonzero(mask & ~core & ~near)
    if core.any() and len(test):
        rows, cols = np.divmod(test, size[1])
        which = torch.from_numpy(test)
        mixed = mixed_with_backdrop(pixels[which], rows, cols, nearest[which], image, core, outside, tolerance)
        near.flat[test] = mixed.numpy()
        mask = object_of(near, band) if mixed.any() else mask
        if mask is None:
            return None
    if size != (height, width):
        mask = refined_outline(mask, rgb, backdrop, tolerance, image, core, outside)
    if not MIN_OBJECT <= mask.mean() <= MAX_OBJECT:
        return None
    return mask


def refined_outline(mask: np.ndarray, rgb: np.ndarray, backdrop: torch.Tensor, tolerance: float, image: torch.Tensor,
                    core: np.ndarray, outside: np.ndarray) -> np.ndarray:
    """`mask`, estimated on the smaller working copy `image` of `rgb`, at `rgb`'s size: scaled up, then every pixel
    within a cell of the working copy of its outline is backdrop or object by its own colour: backdrop when within
    `tolerance` of one of the `backdrop` colours or a mixture of the backdrop's colour with the object's `core` colour
    nearby (`mixed_with_backdrop`, the `outside` pixels of the working copy as the backdrop nearby)."""
    height, width = rgb.shape[:2]
    grown = torch.nn.functional.interpolate(torch.from_numpy(mask).float()[None, None], size=(height, width),
                                            mode="bilinear", align_corners=False)[0, 0].numpy() > 0.5
    reach = 2 * int(np.ceil(max(height / mask.shape[0], width / mask.shape[1]))) + 1
    outline = ndimage.maximum_filter(grown, size=reach) & ~ndimage.minimum_filter(grown, size=reach)
    where = np.flatnonzero(outline)
    colours = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32).reshape(-1, 3)[where])
    distance, nearest = nearest_colour(colours, backdrop)
    background = distance < tolerance
    if core.any():
        rows, cols = np.divmod(where, width)
        rows = ((rows + 0.5) * mask.shape[0] / height).astype(int).clip(0, mask.shape[0] - 1)
        cols = ((cols + 0.5) * mask.shape[1] / width).astype(int).clip(0, mask.shape[1] - 1)
        background |= mixed_with_backdrop(colours, rows, cols, nearest, image, core, outside, tolerance)
    grown.flat[where] = (~background).numpy()
    return grown
