"""Object masks estimated from a photo's backdrop (gansvr_ns/data/backdrop.py)."""

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from gansvr_ns.data.backdrop import backdrop_mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def scene(height: int, width: int, backdrop: str, seed: int = 0):
    """An object (an ellipse with a square window through it, and a fleck of backdrop colour on it) on a backdrop;
    returns the image, the object's true mask (window excluded, fleck included) and the window."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:height, 0:width] / min(height, width)
    cy, cx = height / min(height, width) / 2, width / min(height, width) / 2
    ellipse = ((u - cx) / 0.3) ** 2 + ((v - cy) / 0.2) ** 2 < 1
    window = (abs(u - cx - 0.1) < 0.06) & (abs(v - cy) < 0.06)
    a, b = np.array([0.85, 0.9, 0.95]), np.array([0.55, 0.75, 0.6])
    if backdrop == "plain":
        image = np.broadcast_to(a, (height, width, 3)).copy()
    elif backdrop == "checkerboard":
        image = np.where((((u // 0.125) + (v // 0.125)) % 2 == 0)[..., None], a, b)
    else:  # a vertical gradient
        ramp = (v / v.max())[..., None]
        image = a * ramp + b * (1 - ramp)
    image = image + rng.normal(0.0, 0.01, image.shape)
    car = np.array([0.6, 0.1, 0.15]) * (1.0 - 0.3 * (v - cy))[..., None]
    image = np.where((ellipse & ~window)[..., None], car, image)
    speck = (abs(u - cx + 0.15) < 0.01) & (abs(v - cy) < 0.01)
    image[speck] = a  # a fleck of backdrop colour on the object: too small to be a hole
    return np.clip(image, 0, 1).astype(np.float32), ellipse & ~window, window


@pytest.mark.parametrize("backdrop", ["plain", "checkerboard", "gradient"])
def test_the_object_on_a_backdrop_is_found(backdrop):
    image, truth, window = scene(96, 128, backdrop)
    mask = backdrop_mask(image)
    assert mask is not None and mask.shape == truth.shape
    assert iou(mask, truth) > 0.97
    # the window through the object is backdrop seen through it, and the fleck is object
    assert not (mask & ndimage.binary_erosion(window)).any()
    assert mask[48, 52]


def test_a_large_photo_is_estimated_small_and_masked_at_full_size():
    image, truth, _ = scene(600, 900, "gradient", seed=1)
    mask = backdrop_mask(image)
    assert mask is not None and mask.shape == (600, 900)
    assert iou(mask, truth) > 0.97


def test_an_object_touching_the_border_keeps_its_colours():
    image, truth, _ = scene(96, 128, "plain")
    image, truth = image[:, 40:], truth[:, 40:]  # the ellipse now reaches the left edge
    assert truth[:, 0].any()
    mask = backdrop_mask(image)
    assert mask is not None and iou(mask, truth) > 0.97


def test_images_that_are_not_an_object_on_a_backdrop_get_none():
    rng = np.random.default_rng(0)
    plain = np.full((64, 64, 3), 0.5, np.float32)
    halves = np.zeros((64, 64, 3), np.float32)
    halves[:, :32] = (1.0, 0.0, 0.0)
    halves[:, 32:] = (0.0, 0.0, 1.0)
    clutter = rng.uniform(0, 1, (64, 64, 3)).astype(np.float32)  # no backdrop: colours everywhere
    sliver = scene(64, 7, "plain")[0]  # too narrow to have a backdrop around anything
    for image in (plain, halves, clutter, sliver):
        assert backdrop_mask(image) is None


@pytest.mark.parametrize("backdrop", ["plain", "gradient"])
def test_a_soft_edge_is_split_where_the_colours_meet(backdrop):
    """A defocused or scaled-up photo mixes the object's colour with the backdrop's over a few pixels: the mask's
    outline lies where the mixture is half and half, not where the backdrop's colour first changes."""
    image, truth, _ = scene(192, 256, backdrop)
    soft = ndimage.gaussian_filter(image, sigma=(1.0, 1.0, 0))
    mask = backdrop_mask(soft)
    assert mask is not None
    assert iou(mask, truth) > 0.98
    assert abs(mask.sum() / truth.sum() - 1) < 0.03


def test_a_soft_jpeg_photo_is_masked_to_its_outline():
    """JPEG's ringing and its halved colour resolution add mixtures of their own along a soft outline."""
    image, truth, _ = scene(192, 256, "plain", seed=2)
    soft = ndimage.gaussian_filter(image, sigma=(1.0, 1.0, 0))
    encoded = io.BytesIO()
    Image.fromarray((soft * 255 + 0.5).astype(np.uint8)).save(encoded, "JPEG", quality=75)
    jpeg = np.asarray(Image.open(encoded).convert("RGB"), dtype=np.float32) / 255
    mask = backdrop_mask(jpeg)
    assert mask is not None
    assert iou(mask, truth) > 0.95


def test_a_thin_part_of_another_colour_stays_with_the_object():
    """A leg a pixel wide in a colour of its own is not a mixture of the body's colour with the backdrop's."""
    image, truth, _ = scene(96, 128, "plain")
    leg = np.zeros_like(truth)
    leg[60:90, 64] = True  # from inside the body down to the backdrop below it
    image[leg & ~truth] = (0.35, 0.35, 0.4)
    mask = backdrop_mask(ndimage.gaussian_filter(image, sigma=(0.5, 0.5, 0)))
    assert mask is not None
    assert mask[leg & ~truth].mean() > 0.9
