"""Framing a photo by its reconstruction: silhouette boxes, the aligned IoU, and the framing found for a known shape."""

import dataclasses

import numpy as np
import pytest
import torch

from gansvr_ns.data.format import orbit_pose
from gansvr_ns.data.framing import InputFraming, box_measures, frame_mask
from gansvr_ns.model import framing_search, pose_search
from tests.conftest import render_ellipsoid

SIZE, FOCAL = 64, 70.0
RADII = np.array([0.7, 0.35, 0.25])
CENTRE = np.array([0.2, 0.0, 0.12])  # off the origin: the object's box is not centred where the camera looks
CAMERAS = framing_search.InputCameras(
    c2w=torch.tensor(np.array([orbit_pose(a, e, 2.5)[:3] for a in range(0, 360, 10) for e in (5, 20, 35)]),
                     dtype=torch.float32),
    intrinsics=torch.tensor([FOCAL, FOCAL, SIZE / 2, SIZE / 2]),
)


def ellipsoid_sdf(points: torch.Tensor) -> torch.Tensor:
    radii = torch.tensor(RADII, dtype=points.dtype)
    return ((points - torch.tensor(CENTRE, dtype=points.dtype)) / radii).norm(dim=-1).sub(1.0) * float(RADII.min())


def true_mask(azimuth: float, elevation: float) -> np.ndarray:
    """The off-centre ellipsoid seen from an orbit camera (the camera moved by -CENTRE sees the centred one)."""
    pose = orbit_pose(azimuth, elevation, 2.5)
    pose[:3, 3] -= CENTRE
    return render_ellipsoid(RADII, np.ones(3), pose, SIZE, FOCAL)[1]


def test_silhouette_boxes_measure_as_box_measures():
    rng = np.random.default_rng(0)
    masks = np.zeros((4, 20, 30), dtype=bool)
    for mask in masks[:3]:
        top, left = rng.integers(0, 10), rng.integers(0, 15)
        mask[top:top + rng.integers(2, 10), left:left + rng.integers(2, 15)] = rng.random((1,)) < 2
        mask[rng.integers(0, 20), rng.integers(0, 30)] = True  # a stray pixel the box includes
    weights = (0.5, 0.2, 0.3)
    log_size, centre, non_empty = framing_search.silhouette_boxes(torch.from_numpy(masks), weights)
    assert non_empty.tolist() == [True, True, True, False]
    for k in range(3):
        measures, box_centre = box_measures(masks[k])
        assert log_size[k].item() == pytest.approx(float(np.dot(weights, measures)), abs=1e-5)
        assert tuple(centre[k].tolist()) == box_centre


def test_aligned_iou_moves_and_scales_the_mask_onto_each_silhouette():
    mask = np.zeros((32, 32), dtype=bool)
    mask[8:16, 4:20] = True  # box centre (12, 12), 8 x 16
    silhouette = torch.zeros(2, 64, 64, dtype=torch.bool)  # drawn at twice the size
    silhouette[0, 20:44, 8:56] = True  # the box 1.5 times as large, centred at (16, 16) of the mask's pixels
    silhouette[1] = silhouette[0].roll(12, dims=1)
    centres = torch.tensor([[16.0, 16.0], [16.0, 16.0]])
    iou = framing_search.aligned_iou(torch.from_numpy(mask), (12.0, 12.0), torch.tensor([1.5, 1.5]), centres,
                                     silhouette, upsample=2)
    assert iou[0].item() == pytest.approx(1.0, abs=0.02)
    assert iou[1].item() < 0.8  # the second silhouette is elsewhere


def test_silhouette_points_draw_the_shapes_silhouette():
    """Drawn at twice the mask's size, as the search draws them, the points' silhouette has the ray-cast mask's box
    to within 3% and a pixel."""
    mask = true_mask(40.0, 20.0)
    c2w = torch.from_numpy(orbit_pose(40.0, 20.0, 2.5)[None, :3]).float()
    points, cell = framing_search.silhouette_points(ellipsoid_sdf, 48)
    silhouette = pose_search.splat_silhouettes(points, c2w, CAMERAS.intrinsics[None] * 2, (2 * SIZE, 2 * SIZE), cell)
    measures, centre = box_measures(silhouette[0].numpy() > 0.5)
    true_measures, true_centre = box_measures(mask)
    np.testing.assert_allclose(measures - np.log(2.0), true_measures, atol=0.03)
    np.testing.assert_allclose(np.array(centre) / 2.0, true_centre, atol=1.0)


@pytest.mark.parametrize("rows", [(0, SIZE), (8, SIZE - 8)], ids=["square", "wide"])
def test_search_finds_where_the_camera_puts_the_object(rows):
    """A photo of the off-centre ellipsoid (its mask, scaled and moved on a larger canvas), framed by a framing whose
    box centre and size are off: the search's framing puts the object where the training camera sees it. The wide
    training inputs are the square ones' middle rows (the principal point moves up with them)."""
    azimuth, elevation = 43.0, 22.0  # between the cameras' poses
    first, last = rows
    truth = true_mask(azimuth, elevation)[first:last]
    cameras = dataclasses.replace(CAMERAS, intrinsics=CAMERAS.intrinsics - torch.tensor([0.0, 0.0, 0.0, first]))
    height = last - first
    photo = np.zeros((150, 120), dtype=bool)
    big = torch.nn.functional.interpolate(torch.from_numpy(truth).float()[None, None], size=(112 * height // SIZE, 112),
                                          mode="bilinear")[0, 0].numpy() > 0.5
    photo[20:20 + len(big), 3:115] = big
    measures, centre = box_measures(truth)
    weights = (0.4, 0.3, 0.3)
    true_size = float(np.dot(weights, measures))
    wrong = InputFraming(image_size=(height, SIZE), centre=(centre[0] + 3.0, centre[1] - 4.0), weights=weights,
                         log_size=true_size + 0.15, log_size_spread=0.05, centre_spread=(1.0, 1.0))
    boxed = frame_mask(photo, wrong, tolerance=0.0)
    assert pose_search.mask_iou(torch.from_numpy(boxed)[None].float(), torch.from_numpy(truth).float()).item() < 0.7
    fit = framing_search.search_framing(ellipsoid_sdf, boxed, wrong, cameras)
    found = fit.framing
    assert fit.iou > 0.85
    assert found.log_size == pytest.approx(true_size, abs=0.04)
    assert found.centre == pytest.approx(centre, abs=0.75)
    assert dataclasses.replace(found, centre=wrong.centre, log_size=wrong.log_size) == wrong
    reframed = torch.from_numpy(frame_mask(photo, found, tolerance=0.0))[None].float()
    assert pose_search.mask_iou(reframed, torch.from_numpy(truth).float()).item() > 0.9


def test_nothing_to_search_without_a_shape_or_a_mask():
    framing = InputFraming(image_size=(SIZE, SIZE), centre=(32.0, 32.0), weights=(1 / 3, 1 / 3, 1 / 3),
                           log_size=3.0, log_size_spread=0.05, centre_spread=(1.0, 1.0))
    mask = true_mask(0.0, 20.0)
    assert framing_search.search_framing(lambda p: torch.ones(len(p)), mask, framing, CAMERAS) is None
    assert framing_search.search_framing(ellipsoid_sdf, np.zeros_like(mask), framing, CAMERAS) is None


def lopsided_sdf(points: torch.Tensor) -> torch.Tensor:
    """The off-centre ellipsoid with a ball on its front left top: a shape that no other view draws alike."""
    ball = (points - torch.tensor([0.5, 0.25, 0.3], dtype=points.dtype)).norm(dim=-1) - 0.2
    return torch.minimum(ellipsoid_sdf(points), ball)


def test_the_fit_gives_the_photos_camera():
    """A photo of a lopsided shape from one of the training cameras' poses, at another focal length and principal
    point on a canvas of another shape: the search names that pose, the camera it gives the photo has the photo's
    focal length and principal point, and the shape drawn with it lies over the photo's object."""
    points, cell = framing_search.silhouette_points(lopsided_sdf, 48)
    pose = orbit_pose(40.0, 20.0, 2.5)
    truth = (140.0, 140.0, 59.0, 54.0)  # fx, fy, cx, cy of the photo
    c2w = torch.from_numpy(pose[None, :3]).float()
    photo = pose_search.splat_silhouettes(points, c2w, torch.tensor([truth]), (100, 120), cell)[0].numpy() > 0.5
    measures, centre = box_measures(pose_search.splat_silhouettes(
        points, c2w, CAMERAS.intrinsics[None], (SIZE, SIZE), cell)[0].numpy() > 0.5)
    weights = (0.4, 0.3, 0.3)
    wrong = InputFraming(image_size=(SIZE, SIZE), centre=(centre[0] - 2.0, centre[1] + 3.0), weights=weights,
                         log_size=float(np.dot(weights, measures)) - 0.1, log_size_spread=0.05,
                         centre_spread=(1.0, 1.0))
    fit = framing_search.search_framing(lopsided_sdf, frame_mask(photo, wrong, tolerance=0.0), wrong, CAMERAS)
    camera = framing_search.image_camera(fit, CAMERAS, photo)
    assert fit.camera == 13  # azimuth 40, elevation 20
    np.testing.assert_allclose(camera.c2w, pose, atol=1e-5)
    fx, fy, cx, cy = camera.intrinsics
    assert fx == pytest.approx(truth[0], rel=0.04) and fy == fx
    assert (cx, cy) == pytest.approx(truth[2:], abs=1.5)
    assert camera.image_size == (100, 120)
    drawn = pose_search.splat_silhouettes(points, c2w, torch.tensor([camera.intrinsics]), camera.image_size, cell)
    assert pose_search.mask_iou(drawn, torch.from_numpy(photo).float()).item() > 0.9
    entry = camera.to_json()
    assert (entry["azimuth_deg"], entry["elevation_deg"], entry["distance"]) == pytest.approx((40.0, 20.0, 2.5))
    assert (entry["height"], entry["width"]) == (100, 120)
    assert framing_search.image_camera(fit, CAMERAS, np.zeros_like(photo)) is None


def test_an_image_the_encoder_squashes_gets_a_camera_in_its_own_pixels():
    """`gansvr-reconstruct` searches an image that is not framed as the encoder reads it, resized to the training
    inputs' size: a view twice as wide as theirs gets twice their fx and cx, and their fy and cy."""
    from gansvr_ns.model.losses import rotation_error_deg
    from gansvr_ns.scripts.reconstruct import estimate_camera

    points, cell = framing_search.silhouette_points(lopsided_sdf, 48)
    c2w = torch.from_numpy(orbit_pose(40.0, 20.0, 2.5)[None, :3]).float()
    seen = pose_search.splat_silhouettes(points, c2w, CAMERAS.intrinsics[None], (SIZE, SIZE), cell)[0].numpy() > 0.5
    wide = np.repeat(seen, 2, axis=1)
    measures, centre = box_measures(seen)
    framing = InputFraming(image_size=(SIZE, SIZE), centre=centre, weights=(0.4, 0.3, 0.3),
                           log_size=float(np.dot((0.4, 0.3, 0.3), measures)), log_size_spread=0.05,
                           centre_spread=(1.0, 1.0))

    class Model:  # the image's reconstruction is the lopsided shape whatever the image
        def select_condition(self, image):
            pass

    camera = estimate_camera(torch.zeros(1, 3, SIZE, 2 * SIZE), wide, wide, False, framing, CAMERAS, Model(),
                             lopsided_sdf)
    assert camera.image_size == (SIZE, 2 * SIZE)
    # the cameras beside the best are tried too
    assert rotation_error_deg(torch.from_numpy(camera.c2w[None, :3, :3]), c2w[:, :, :3].double()).item() <= 2.5
    assert camera.intrinsics == pytest.approx((2 * FOCAL, FOCAL, SIZE, SIZE / 2), rel=0.03, abs=1.0)


def test_orbit_neighbours_move_a_camera_on_its_orbit():
    pose = torch.from_numpy(orbit_pose(40.0, 20.0, 2.5)[:3])
    beside = framing_search.orbit_neighbours(pose, (-3.0, 0.0, 3.0))
    assert beside.shape == (9, 3, 4)
    torch.testing.assert_close(beside[4], pose)
    for k, (azimuth, elevation) in enumerate((a, e) for a in (37.0, 40.0, 43.0) for e in (17.0, 20.0, 23.0)):
        torch.testing.assert_close(beside[k], torch.from_numpy(orbit_pose(azimuth, elevation, 2.5)[:3]))
