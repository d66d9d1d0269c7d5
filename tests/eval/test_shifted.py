"""Inputs from another renderer (the quality benchmark's domain-shift check), with their masks."""

import numpy as np

from gansvr_ns.data.format import load_mask, load_rgb
from gansvr_ns.eval.shifted import shifted_mask, write_shifted_inputs


def test_another_renderers_inputs_come_with_their_masks_on_request(ellipsoids, tmp_path):
    images = write_shifted_inputs(ellipsoids, "test", tmp_path / "with", masks=True)
    plain = write_shifted_inputs(ellipsoids, "test", tmp_path / "without")
    assert images and set(images) == set(plain)
    for i, path in images.items():
        assert path.read_bytes() == plain[i].read_bytes()  # the masks change no image
        assert not shifted_mask(plain[i]).exists()
        mask, rgb = load_mask(shifted_mask(path)), load_rgb(path)
        assert mask.shape == rgb.shape[:2] and 0.05 < mask.mean() < 0.95
        # off the mask is the backdrop alone: a checkerboard or a vertical ramp, one or two colours in every row
        for row, off in zip(rgb, ~mask):
            assert len(np.unique(row[off].round(3), axis=0)) <= 2
