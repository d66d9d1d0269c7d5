"""Pixel sampling of the datamanager: bounding boxes of the masks and object-focused rays."""

import pytest
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


def test_repainting_leaves_one_colour_on_the_object_and_blocks_make_a_flat_backdrop():
    from gansvr_ns.data.datamanager import augment_conditions

    images = torch.full((2, 3, 16, 16), 0.3)
    images[:, :, 4:12, 4:7] = torch.tensor([0.35, 0.15, 0.2])[:, None, None]  # three paints on one object
    images[:, :, 4:12, 7:9] = torch.tensor([0.1, 0.3, 0.25])[:, None, None]
    images[:, :, 4:12, 9:12] = torch.tensor([0.2, 0.2, 0.05])[:, None, None]
    mask = torch.zeros(16, 16, dtype=torch.bool)
    mask[4:12, 4:12] = True

    def object_colours(out):
        return [out[i][:, mask].T.unique(dim=0) for i in range(len(out))]

    plain = augment_conditions(images, [mask, mask], 1.0, torch.Generator().manual_seed(0))
    repainted = augment_conditions(images, [mask, mask], 1.0, torch.Generator().manual_seed(0), repaint=1.0,
                                   block_backdrop=1.0)
    for before, after in zip(object_colours(plain), object_colours(repainted)):
        # one tint times the luminance, then the same affine colour changes for every pixel: the paints' colours
        # lie on one line in RGB; unrepainted, the three span a plane
        assert len(before) == 3 and len(after) == 3  # the luminance differences stay
        assert torch.linalg.matrix_rank(before - before.mean(dim=0), atol=1e-4) == 2
        assert torch.linalg.matrix_rank(after - after.mean(dim=0), atol=1e-4) == 1
    for out in repainted:
        background = out[:, ~mask].T.unique(dim=0)
        assert 2 <= len(background) <= 64  # flat blocks, at most 8 x 8 colours
    smooth = plain[0][:, ~mask].T.unique(dim=0)
    assert len(smooth) > 64


def test_condition_augmentation_reaches_the_encoder_images_but_not_the_ray_targets(ellipsoids):
    from gansvr_ns.data.datamanager import GanSvrDataManagerConfig

    batches = []
    for augment in (0.0, 1.0):
        config = GanSvrDataManagerConfig(data=ellipsoids, instances_per_batch=2, condition_augment=augment,
                                         consistency_augment=0.0)
        datamanager = config.setup(device="cpu", test_mode="val")
        rays, batch = datamanager.next_train(0)
        batches.append((rays, batch))
        _, held_out = datamanager.next_eval(0)  # never augmented: the input images themselves
        torch.testing.assert_close(held_out["condition_images"], datamanager.eval_data.inputs[held_out["instances"]])
    (rays, plain), (augmented_rays, augmented) = batches
    torch.testing.assert_close(rays.origins, augmented_rays.origins)  # same seed, same draws
    torch.testing.assert_close(plain["image"], augmented["image"])
    assert (plain["condition_images"] - augmented["condition_images"]).abs().mean() > 0.01
    torch.testing.assert_close(plain["consistency_images"], augmented["consistency_images"])  # their own chance


def test_framing_jitter_moves_and_scales_an_image_as_drawn():
    from gansvr_ns.data.datamanager import jitter_framing

    images = torch.zeros(3, 3, 64, 64)
    images[:, :, 24:40, 20:36] = 1.0  # a 16-pixel square, centred at (32, 28)
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    assert jitter_framing(images, 0.0, 0.0, generator) is images
    assert torch.equal(generator.get_state(), state)  # nothing drawn
    out = jitter_framing(images, 0.2, 0.05, generator)
    replay = torch.Generator().manual_seed(3)
    scale = torch.exp(0.2 * torch.randn(3, generator=replay))
    shift = 2.0 * 0.05 * torch.randn(3, 2, generator=replay) * 32.0  # in pixels: the image spans 2 grid units
    for k in range(3):
        rows, cols = torch.nonzero(out[k, 0] > 0.5, as_tuple=True)
        assert (rows.max() - rows.min() + 1).item() == pytest.approx(16 * scale[k].item(), abs=1.5)
        # a point q (from the centre, in pixels) goes to s q + t: the square's centre (0, -4) to (-4 s + tx, ty)
        assert (cols.float().mean() + 0.5).item() == pytest.approx(32 - 4 * scale[k].item() + shift[k, 0].item(),
                                                                   abs=0.6)
        assert (rows.float().mean() + 0.5).item() == pytest.approx(32 + shift[k, 1].item(), abs=0.6)


def test_framing_jitter_reaches_the_training_images_only(ellipsoids):
    from gansvr_ns.data.datamanager import GanSvrDataManagerConfig

    batches = []
    for jitter in (0.0, 0.1):
        config = GanSvrDataManagerConfig(data=ellipsoids, instances_per_batch=2, condition_jitter_scale=jitter,
                                         condition_jitter_shift=jitter)
        datamanager = config.setup(device="cpu", test_mode="val")
        batches.append(datamanager.next_train(0))
        _, held_out = datamanager.next_eval(0)
        torch.testing.assert_close(held_out["condition_images"], datamanager.eval_data.inputs[held_out["instances"]])
    (rays, plain), (jittered_rays, jittered) = batches
    torch.testing.assert_close(rays.origins, jittered_rays.origins)  # its draws come last
    torch.testing.assert_close(plain["image"], jittered["image"])
    for key in ("condition_images", "consistency_images"):
        assert (plain[key] - jittered[key]).abs().mean() > 0.01


def test_a_grey_background_reaches_every_encoder_image_but_not_the_ray_targets(ellipsoids):
    from gansvr_ns.data.datamanager import GanSvrDataManagerConfig
    from gansvr_ns.data.format import TRANSPARENT_BACKGROUND

    managers, batches = [], []
    for background in ("image", "grey"):
        config = GanSvrDataManagerConfig(data=ellipsoids, instances_per_batch=4, condition_background=background,
                                         consistency_augment=0.0, condition_view_probability=1.0)
        managers.append(config.setup(device="cpu", test_mode="val"))
        batches.append(managers[-1].next_train(0))
    (rays, plain), (grey_rays, grey) = batches
    torch.testing.assert_close(rays.origins, grey_rays.origins)  # the same draws
    torch.testing.assert_close(plain["image"], grey["image"])
    fewest = int((~managers[1].train_data.masks).sum(dim=(1, 2)).min())
    for key in ("condition_images", "consistency_images"):  # pseudo views all (the inputs below)
        changed = plain[key] != grey[key]
        assert changed.any() and (grey[key][changed] == TRANSPARENT_BACKGROUND).all()
        assert ((grey[key] == TRANSPARENT_BACKGROUND).all(dim=1).sum(dim=(1, 2)) >= fewest).all()
    for split in ("train_data", "eval_data"):
        image_data, grey_data = (getattr(manager, split) for manager in managers)
        for k, mask in enumerate(grey_data.input_masks):
            torch.testing.assert_close(grey_data.inputs[k][:, mask], image_data.inputs[k][:, mask])
            assert (grey_data.inputs[k][:, ~mask] == TRANSPARENT_BACKGROUND).all()
    _, held_out = managers[1].eval_image(0)
    assert (held_out["condition_images"] == TRANSPARENT_BACKGROUND).any()


def test_second_images_are_randomised_on_their_own(ellipsoids):
    from gansvr_ns.data.datamanager import GanSvrDataManagerConfig

    batches = []
    for second in (0.0, 1.0):
        config = GanSvrDataManagerConfig(data=ellipsoids, instances_per_batch=2, consistency_augment=second)
        batches.append(config.setup(device="cpu", test_mode="val").next_train(0)[1])
    plain, second_only = batches
    torch.testing.assert_close(plain["condition_images"], second_only["condition_images"])
    torch.testing.assert_close(plain["image"], second_only["image"])
    assert (plain["consistency_images"] - second_only["consistency_images"]).abs().mean() > 0.01


def test_edge_band_holds_exactly_the_pixels_near_the_outline():
    from gansvr_ns.data.datamanager import edge_pixels, sample_edge_pixels

    masks = torch.zeros(3, 12, 14, dtype=torch.bool)
    masks[0, 3:9, 4:11] = True
    masks[1, :5, :6] = True  # cut by the image border: its outline runs along the border too; mask 2 is empty
    index, counts = edge_pixels(masks, 1)
    for view in range(3):
        band = torch.zeros(12 * 14, dtype=torch.bool)
        band[index[view, : counts[view]].long()] = True
        padded = torch.nn.functional.pad(masks[view].float(), (1, 1, 1, 1))  # background beyond the border
        windows = padded.unfold(0, 3, 1).unfold(1, 3, 1).reshape(12, 14, 9)
        expected = (windows.max(-1).values > windows.min(-1).values).flatten()
        assert torch.equal(band, expected)
    assert counts[2] == 0 and counts[0] == 6 * 7 - 4 * 5 + 8 * 9 - 6 * 7
    generator = torch.Generator().manual_seed(0)
    cams = torch.tensor([0, 1, 2] * 300)
    y, x, has_edge = sample_edge_pixels((index, counts), cams, 14, generator)
    assert torch.equal(has_edge, cams != 2)
    for view in (0, 1):
        drawn = set((y[cams == view] * 14 + x[cams == view]).tolist())
        assert drawn == set(index[view, : counts[view]].tolist())  # every band pixel, nothing else


def test_edge_rays_replace_the_last_uniform_rays_of_each_view(ellipsoids):
    from gansvr_ns.data.datamanager import DataError, GanSvrDataManagerConfig

    draws = {}
    for fraction in (0.0, 0.25):
        config = GanSvrDataManagerConfig(data=ellipsoids, instances_per_batch=2, views_per_instance=2,
                                         rays_per_view=16, edge_ray_fraction=fraction)
        datamanager = config.setup(device="cpu", test_mode="val")
        rays, batch = datamanager.next_train(0)
        draws[fraction] = (batch["ray_pixel"].view(4, 16, 2), batch["view_cameras"], datamanager)
    plain, plain_cams, _ = draws[0.0]
    edged, cams, datamanager = draws[0.25]
    assert torch.equal(plain_cams, cams)
    assert torch.equal(plain[:, :12], edged[:, :12])  # the box and uniform rays before them are drawn as before
    index, counts = datamanager.train_data.edges
    width = datamanager.train_data.masks.shape[2]
    for view, cam in enumerate(cams.tolist()):
        band = set(index[cam, : counts[cam]].tolist())
        assert all(int(y) * width + int(x) in band for y, x in edged[view, 12:])
    config = GanSvrDataManagerConfig(data=ellipsoids, object_ray_fraction=0.8, edge_ray_fraction=0.3)
    with pytest.raises(DataError, match="edge_ray_fraction"):
        config.setup(device="cpu", test_mode="val")


@pytest.mark.parametrize("setting, message", [
    ({"instances_per_batch": 0}, "--pipeline.datamanager.instances-per-batch must be at least 1, got 0"),
    ({"views_per_instance": 0}, "--pipeline.datamanager.views-per-instance must be at least 1, got 0"),
    ({"rays_per_view": -2}, "--pipeline.datamanager.rays-per-view must be at least 1, got -2"),
    ({"object_box_margin": -50}, "--pipeline.datamanager.object-box-margin must be 0 or more, got -50"),
    ({"object_ray_fraction": 1.5}, r"--pipeline.datamanager.object-ray-fraction must be within \[0, 1\], got 1.5"),
    ({"edge_ray_fraction": -0.1}, r"--pipeline.datamanager.edge-ray-fraction must be within \[0, 1\], got -0.1"),
])
def test_sampling_settings_that_draw_nothing_or_out_of_range_are_one_line(ellipsoids, setting, message):
    from gansvr_ns.data.datamanager import DataError, GanSvrDataManagerConfig

    with pytest.raises(DataError, match=f"^gansvr: {message}$"):
        GanSvrDataManagerConfig(data=ellipsoids, **setting).setup(device="cpu", test_mode="val")
