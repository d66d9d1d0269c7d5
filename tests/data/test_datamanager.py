"""Pixel sampling of the datamanager: bounding boxes of the masks and object-focused rays."""

import torch


def test_mask_boxes_and_object_pixels_stay_in_the_grown_box():
    from gansvr_ns.data.datamanager import mask_boxes, sample_pixels

    masks = torch.zeros(3, 20, 30, dtype=torch.bool)
    masks[0, 5:9, 10:21] = True
    masks[1, 0, 29] = True  # one pixel in a corner; mask 2 is empty
    boxes = mask_boxes(masks)
    assert boxes.tolist() == [[5, 10, 8, 20], [0, 29, 0, 29], [0, 0, 19, 29]]
    generator = torch.Generator().manual_seed(0)
    ray_boxes = boxes[torch.tensor([0] * 500 + [1] * 500)]
    in_box = torch.arange(1000) % 2 == 0
    y, x = sample_pixels(ray_boxes, (20, 30), in_box, 2, generator)
    first, corner = in_box & (torch.arange(1000) < 500), in_box & (torch.arange(1000) >= 500)
    assert y[first].min() == 3 and y[first].max() == 10 and x[first].min() == 8 and x[first].max() == 22
    assert y[corner].max() <= 2 and x[corner].min() >= 27 and x[corner].max() == 29  # clipped to the image
    assert y[~in_box].max() > 15 and x[~in_box].min() < 3  # the other rays cover the whole image
