"""`scripts/benchmark.py masks`: the estimated masks' IoU on the other renderer's images, as JPEG and scaled up."""

import json

import numpy as np

from tests.conftest import make_ellipsoid_dataset
from tests.scripts.conftest import load_script

benchmark = load_script("benchmark")


def test_photo_copy_scales_the_image_and_its_mask_and_encodes_jpeg():
    rgb = np.zeros((8, 10, 3), np.float32)
    rgb[2:6, 3:7] = (0.9, 0.2, 0.1)
    mask = rgb[..., 0] > 0.5
    same, same_mask = benchmark.photo_copy(rgb, mask, 1, None)
    assert np.abs(same - rgb).max() < 1 / 255 and np.array_equal(same_mask, mask)
    big, big_mask = benchmark.photo_copy(rgb, mask, 3, None)
    assert big.shape == (24, 30, 3) and big_mask.shape == (24, 30)
    assert abs(big_mask.sum() - 9 * mask.sum()) <= 0.1 * 9 * mask.sum()
    jpeg, jpeg_mask = benchmark.photo_copy(rgb, mask, 3, 50)
    assert np.array_equal(jpeg_mask, big_mask)
    assert np.abs(jpeg - big).max() > 2 / 255  # lossy


def test_masks_rows_score_every_image(tmp_path):
    data = make_ellipsoid_dataset(tmp_path / "ellipsoids", num_instances=6, views=2, size=48)
    result = benchmark.Masks(data=[data], output_dir=tmp_path / "out", qualities=[80], scale=2).main()
    figures = result["datasets"]["ellipsoids"]
    assert set(figures) == {"the other renderer's images, PNG", "the same, JPEG quality 80",
                            "the same scaled up 2x, PNG", "the same scaled up 2x, JPEG quality 80",
                            "the generator's input images"}
    tests = len(json.loads((data / "dataset.json").read_text())["splits"]["test"])
    for row in figures.values():
        assert row["images"] == tests
        assert 0.0 <= row["lowest_iou"] <= row["mean_iou"] <= 1.0
    # an ellipsoid on the other renderer's checkerboard or gradient is found
    assert figures["the other renderer's images, PNG"]["mean_iou"] > 0.8
    assert json.loads((tmp_path / "out" / "masks.json").read_text())["datasets"]["ellipsoids"] == figures
