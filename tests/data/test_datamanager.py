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


def test_condition_augmentation_keeps_gray_gray_replaces_only_the_background_and_leaves_its_input():
    from gansvr_ns.data.datamanager import augment_conditions

    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2, 1, 16, 16).expand(2, 3, 16, 16).clone()  # gray images: all channels equal
    before = images.clone()
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[4:12, 4:12] = True
    out = augment_conditions(images, [mask, None], 1.0, generator)
    torch.testing.assert_close(images, before)  # a new tensor
    assert out.min() >= 0.0 and out.max() <= 1.0
    # brightness, contrast, saturation and channel order change a gray object's level, never its hue
    torch.testing.assert_close(out[0][:, mask], out[0][:1, mask].expand(3, -1))
    torch.testing.assert_close(out[1], out[1][:1].expand(3, -1, -1))
    assert (out[1] - images[1]).abs().max() > 0.01  # changed, even without a mask
    # the masked image's background is a colour field, no longer gray
    background = out[0][:, ~mask]
    assert (background - background[:1]).abs().max() > 0.05
    assert augment_conditions(images, [mask, None], 0.0, generator) is images


def test_condition_augmentation_reaches_the_encoder_images_but_not_the_ray_targets(ellipsoids):
    from gansvr_ns.data.datamanager import GanSvrDataManagerConfig

    batches = []
    for augment in (0.0, 1.0):
        config = GanSvrDataManagerConfig(data=ellipsoids, instances_per_batch=2, condition_augment=augment)
        datamanager = config.setup(device="cpu", test_mode="val")
        rays, batch = datamanager.next_train(0)
        batches.append((rays, batch))
        _, held_out = datamanager.next_eval(0)  # never augmented: the input images themselves
        torch.testing.assert_close(held_out["condition_images"], datamanager.eval_data.inputs[held_out["instances"]])
    (rays, plain), (augmented_rays, augmented) = batches
    torch.testing.assert_close(rays.origins, augmented_rays.origins)  # same seed, same draws
    torch.testing.assert_close(plain["image"], augmented["image"])
    assert (plain["condition_images"] - augmented["condition_images"]).abs().mean() > 0.01
    # the latent-consistency term's second images are conditioning images too: randomised alike
    assert (plain["consistency_images"] - augmented["consistency_images"]).abs().mean() > 0.01
