"""Fitting a reconstruction to its image's object mask: the rays over the mask's box, and the latent and camera that
the fit moves while the field stays as it is."""

import numpy as np
import pytest
import torch

from gansvr_ns.data.format import orbit_pose
from gansvr_ns.model.field import ConditionedSDFField, SDFFieldConfig
from gansvr_ns.model.framing_search import ImageCamera
from gansvr_ns.model.gansvr_model import unit_scale
from gansvr_ns.model.mask_fit import box_pixels, fit_to_mask


def test_box_pixels_cover_the_mask_box_and_its_margin():
    mask = np.zeros((40, 60), dtype=bool)
    mask[10:20, 20:40] = True  # a box 10 high and 20 wide, centred at (15, 30)
    u, v, target = box_pixels(mask, per_side=8, margin=0.25)
    assert len(u) == len(v) == len(target) == 64
    # the grid's cell centres over rows 7.5..22.5 and columns 25..45 of the widened box (the image clips it)
    assert v.min() == pytest.approx(7.5 + 15 / 16) and v.max() == pytest.approx(22.5 - 15 / 16)
    assert u.min() == pytest.approx(15 + 30 / 16) and u.max() == pytest.approx(45 - 30 / 16)
    np.testing.assert_array_equal(target, mask[v.astype(int), u.astype(int)])
    assert 0 < target.sum() < len(target)
    edge = np.zeros((40, 60), dtype=bool)
    edge[:5, :5] = True  # the widened box ends at the image's edges
    u, v, _ = box_pixels(edge, per_side=4)
    assert u.min() > 0 and v.min() > 0 and u.max() < 5 * 1.5 and v.max() < 5 * 1.5
    assert box_pixels(np.zeros((8, 8), dtype=bool)) is None


def disc(size, centre, radius):
    rows, cols = np.mgrid[: size[0], : size[1]] + 0.5
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def test_fit_moves_the_silhouette_onto_its_mask_and_leaves_the_field_alone():
    """A ball of radius 0.5 seen from 2.5 away with fx = fy = 60 is a disc of radius 12.2 px about the principal point
    (32, 32); its mask lies 6 px to the right and is a little larger. The fit covers it, moving the camera (the
    silhouette's centre follows the mask) and the latent; the field's parameters do not change."""
    torch.manual_seed(0)
    field = ConditionedSDFField(SDFFieldConfig(use_hash_grid=False, implementation="torch", init_radius=0.5),
                                latent_dim=8)
    before = {name: p.detach().clone() for name, p in field.state_dict().items()}
    latent = unit_scale(torch.randn(1, 8))
    camera = ImageCamera(c2w=orbit_pose(0.0, 10.0, 2.5), intrinsics=(60.0, 60.0, 32.0, 32.0), image_size=(64, 64),
                         fit=0.0)
    radius = 60.0 * 0.5 / np.sqrt(2.5**2 - 0.5**2)
    mask = disc((64, 64), (32.0, 38.0), radius * 1.1)

    fit = fit_to_mask(field, latent, camera, mask, steps=60)

    assert fit.iou_before < 0.7 and fit.iou_after > 0.9 and fit.camera.fit == fit.iou_after
    # the ball's centre, seen by the fitted camera, moved towards the mask's
    local = np.linalg.inv(fit.camera.c2w) @ np.array([0.0, 0.0, 0.0, 1.0])
    u = 32.0 + 60.0 * local[0] / -local[2]
    assert 35.0 < u < 41.0
    assert fit.camera.intrinsics == camera.intrinsics and fit.camera.image_size == camera.image_size
    assert np.allclose(fit.camera.c2w[:3, :3] @ fit.camera.c2w[:3, :3].T, np.eye(3), atol=1e-5)
    assert not torch.equal(fit.latent, latent)
    torch.testing.assert_close(fit.latent.mean(), torch.tensor(0.0), atol=1e-5, rtol=0)  # still unit-scaled
    for name, p in field.state_dict().items():
        torch.testing.assert_close(p, before[name], atol=0, rtol=0)
    assert all(p.grad is None for p in field.parameters())


def ball_seen_exactly():
    """A ball of radius 0.5 (a field at its start), a latent, a camera and the mask the ball's silhouette fills."""
    torch.manual_seed(1)
    field = ConditionedSDFField(SDFFieldConfig(use_hash_grid=False, implementation="torch", init_radius=0.5),
                                latent_dim=8)
    latent = unit_scale(torch.randn(1, 8))
    camera = ImageCamera(c2w=orbit_pose(40.0, 20.0, 2.5), intrinsics=(60.0, 60.0, 32.0, 32.0), image_size=(64, 64),
                         fit=0.0)
    radius = 60.0 * 0.5 / np.sqrt(2.5**2 - 0.5**2)
    return field, latent, camera, disc((64, 64), (32.0, 32.0), radius)


def test_no_steps_keep_the_latent_and_camera_and_measure_the_fit():
    field, latent, camera, mask = ball_seen_exactly()
    fit = fit_to_mask(field, latent, camera, mask, steps=0)
    torch.testing.assert_close(fit.latent, latent)
    np.testing.assert_allclose(fit.camera.c2w, camera.c2w, atol=1e-6)
    assert fit.iou_before == fit.iou_after > 0.9
    with pytest.raises(ValueError, match="the mask is empty"):
        fit_to_mask(field, latent, camera, np.zeros((64, 64), dtype=bool), steps=5)


def test_a_fit_that_goes_astray_returns_its_best_state(monkeypatch):
    """With steps far too large, the fit leaves the silhouette that already covered the mask: what it returns is
    the best state it saw (here the start), and its IoU."""
    from gansvr_ns.model import mask_fit

    monkeypatch.setattr(mask_fit, "CAMERA_LR", 0.5)
    monkeypatch.setattr(mask_fit, "LATENT_LR", 5.0)
    field, latent, camera, mask = ball_seen_exactly()
    start = fit_to_mask(field, latent, camera, mask, steps=0)
    astray = fit_to_mask(field, latent, camera, mask, steps=3)
    assert astray.iou_after == start.iou_after and astray.camera.fit == start.iou_after
    torch.testing.assert_close(astray.latent, latent)
    np.testing.assert_allclose(astray.camera.c2w, camera.c2w, atol=1e-6)
