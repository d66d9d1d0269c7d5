"""Framing an image's object as the training inputs frame theirs: the size measure, the crop, what is left alone."""

import numpy as np
import pytest

from gansvr_ns.data.framing import InputFraming, box_measures, frame_image, framing_from_masks


def box_mask(shape, top, left, height, width):
    mask = np.zeros(shape, dtype=bool)
    mask[top:top + height, left:left + width] = True
    return mask


def test_box_measures_by_hand():
    measures, centre = box_measures(box_mask((20, 30), 2, 5, 4, 9))
    np.testing.assert_allclose(measures, np.log([4, 9, 6]))
    assert centre == (4.0, 9.5)
    assert box_measures(np.zeros((5, 5), dtype=bool)) is None


def test_the_size_measure_is_the_one_that_varies_least():
    # boxes 20 wide and 8 to 40 high: the width is constant, the height and the area are not
    masks = [box_mask((64, 64), 32 - h // 2, 22, h, 20) for h in (8, 12, 16, 20, 24, 32, 40)]
    framing = framing_from_masks(masks)
    assert sum(framing.weights) == pytest.approx(1.0)
    sizes = [framing.log_size_of(box_measures(mask)[0]) for mask in masks]
    assert np.ptp(sizes) < 0.1 < np.ptp([np.mean(box_measures(mask)[0]) for mask in masks])
    assert framing.log_size == pytest.approx(np.log(20.0), abs=0.05)
    assert framing.log_size_spread < 0.05
    assert framing.image_size == (64, 64) and framing.centre == pytest.approx((32.0, 32.0), abs=1.0)
    # weights summing to one make it a length: the same box twice as large measures log 2 more
    small, large = box_measures(box_mask((99, 99), 0, 0, 10, 20))[0], box_measures(box_mask((99, 99), 0, 0, 20, 40))[0]
    assert framing.log_size_of(large) - framing.log_size_of(small) == pytest.approx(np.log(2.0))


def test_framing_needs_two_masks_of_one_size():
    with pytest.raises(ValueError, match="at least two"):
        framing_from_masks([box_mask((8, 8), 1, 1, 3, 3), np.zeros((8, 8), dtype=bool)])
    with pytest.raises(ValueError, match="different sizes"):
        framing_from_masks([box_mask((8, 8), 1, 1, 3, 3), box_mask((8, 9), 1, 1, 3, 3)])


FRAMING = InputFraming(image_size=(48, 64), centre=(25.0, 31.0), weights=(0.0, 0.0, 1.0), log_size=float(np.log(20.0)),
                       log_size_spread=0.05, centre_spread=(1.5, 2.0))


def framed_object(rgb, mask, tolerance=2.0):
    framed, scale = frame_image(rgb, mask, FRAMING, tolerance)
    return framed, scale, box_measures(framed[..., 0] > 0.5)


def test_a_photo_is_cropped_and_scaled_to_the_training_framing():
    # a 300 x 400 photo, the object a white 60 x 60 square off to the lower right on black
    mask = box_mask((300, 400), 200, 300, 60, 60)
    rgb = np.repeat(mask[..., None], 3, axis=-1).astype(np.float32)
    framed, scale, (measures, centre) = framed_object(rgb, mask)
    assert framed.shape == (48, 64, 3)
    assert scale == pytest.approx(20.0 / 60.0)
    assert np.exp(measures[2]) == pytest.approx(20.0, abs=1.0)
    assert centre[0] == pytest.approx(25.0, abs=1.0) and centre[1] == pytest.approx(31.0, abs=1.0)
    # where the photo does not reach, the canvas is the grey of transparent pixels
    assert framed[0, 0] == pytest.approx([0.0, 0.0, 0.0]) and framed[-1, -1] == pytest.approx([0.5, 0.5, 0.5])


def test_an_image_framed_like_the_training_inputs_is_left_as_it_is():
    # 96 x 128 (the training aspect), object 40 px across at the training centre once halved to 48 x 64
    mask = box_mask((96, 128), 30, 42, 40, 40)
    rgb = np.repeat(mask[..., None], 3, axis=-1).astype(np.float32)
    framed, scale = frame_image(rgb, mask, FRAMING)
    assert scale is None and framed is rgb
    # tolerance 0 frames it all the same
    framed, scale, (measures, _) = framed_object(rgb, mask, tolerance=0.0)
    assert scale == pytest.approx(0.5) and framed.shape == (48, 64, 3)
    # off centre, but of the right size: moved to the centre, the scale kept
    shifted = box_mask((96, 128), 30, 2, 40, 40)
    framed, scale, (measures, centre) = framed_object(np.repeat(shifted[..., None], 3, -1).astype(np.float32), shifted)
    assert scale == pytest.approx(0.5) and centre[1] == pytest.approx(31.0, abs=1.0)
    assert centre[0] == pytest.approx(25.0, abs=0.5)  # in range on this axis: kept where it was
    # of another aspect ratio: framed, never stretched
    wide = box_mask((96, 200), 30, 80, 40, 40)
    framed, scale, (measures, _) = framed_object(np.repeat(wide[..., None], 3, -1).astype(np.float32), wide)
    assert scale == pytest.approx(0.5) and np.exp(measures[0]) == pytest.approx(np.exp(measures[1]), abs=1.0)


def test_an_empty_mask_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        frame_image(np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), dtype=bool), FRAMING)
