"""Pose search: silhouettes of a voxelised shape, and the orbit rotation that aligns them with a view's mask."""

import numpy as np
import pytest
import torch

from gansvr_ns.data.format import orbit_pose
from gansvr_ns.model import pose_search
from gansvr_ns.model.losses import rotation_error_deg
from tests.conftest import render_ellipsoid, small_training_pipeline

SIZE, FOCAL = 64, 70.0
RADII = np.array([0.8, 0.45, 0.3])
INTRINSICS = torch.tensor([[FOCAL, FOCAL, SIZE / 2, SIZE / 2]])


def ellipsoid_sdf(points: torch.Tensor) -> torch.Tensor:
    """A distance-like function of the ellipsoid (negative inside), good enough for voxelising."""
    radii = torch.tensor(RADII, dtype=points.dtype)
    return ((points / radii).norm(dim=-1) - 1.0) * float(RADII.min())


def true_mask(pose: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(render_ellipsoid(RADII, np.ones(3), pose, SIZE, FOCAL)[1]).float()


def perturbed(pose: np.ndarray, yaw: float, pitch: float, roll: float) -> torch.Tensor:
    c2w = torch.from_numpy(pose[None, :3]).float()
    turn = pose_search.orbit_rotations(c2w, torch.deg2rad(torch.tensor([[yaw, pitch, roll]])))
    return torch.cat([turn @ c2w[:, :, :3], (turn @ c2w[:, :, 3:])], dim=-1)


def test_splatted_silhouette_matches_the_ray_cast_one():
    points, cell = pose_search.interior_points(ellipsoid_sdf, 48)
    pose = orbit_pose(35.0, 20.0, 2.5)
    silhouette = pose_search.splat_silhouettes(points, torch.from_numpy(pose[None, :3]).float(), INTRINSICS,
                                               (SIZE, SIZE), cell)
    iou = pose_search.mask_iou(silhouette, true_mask(pose))
    assert iou.item() > 0.9
    # a view from elsewhere does not match
    other = orbit_pose(125.0, 20.0, 2.5)
    assert pose_search.mask_iou(silhouette, true_mask(other)).item() < 0.8


def test_interior_points_are_those_of_the_whole_grid():
    # the coarse-to-fine grid evaluates every point that can be in the shell
    points, cell = pose_search.interior_points(ellipsoid_sdf, 48)
    lin = torch.linspace(-1.0, 1.0, 48)
    grid = torch.stack(torch.meshgrid(lin, lin, lin, indexing="ij"), dim=-1)
    sdf = ellipsoid_sdf(grid)
    expected = grid[(sdf < 0.0) & (sdf > -1.5 * cell)]
    assert len(points) > 500 and torch.equal(points, expected)


def test_splatted_pixels_are_the_points_projections():
    # random points, cameras around them and a non-square image with its own intrinsics per camera
    generator = torch.Generator().manual_seed(0)
    points = torch.rand(400, 3, generator=generator) * 1.2 - 0.6
    poses = torch.from_numpy(np.stack([orbit_pose(a, e, 2.5)[:3] for a, e in [(10, 15), (130, 35), (250, -5)]]))
    intrinsics = torch.tensor([[60.0, 64.0, 24.0, 15.0], [50.0, 50.0, 20.0, 16.0], [70.0, 66.0, 25.0, 17.0]])
    height, width = 30, 48
    # far-off cells: the closing is then one pixel wide and leaves single points as they are
    silhouettes = pose_search.splat_silhouettes(points, poses.float(), intrinsics, (height, width), 1e-3)
    for c2w, (fx, fy, cx, cy), silhouette in zip(poses.numpy(), intrinsics.numpy(), silhouettes):
        x, y, z = ((points.double().numpy() - c2w[:, 3]) @ c2w[:, :3]).T  # into the camera frame
        col, row = np.floor(cx + fx * x / -z).astype(int), np.floor(cy - fy * y / -z).astype(int)
        seen = (col >= 0) & (col < width) & (row >= 0) & (row < height) & (z < 0)
        raw = torch.zeros(height, width, dtype=torch.bool)
        raw[row[seen], col[seen]] = True
        expected = ~pose_search.dilate(~pose_search.dilate(raw[None], 1), 1)[0]
        assert seen.sum() > 100 and torch.equal(silhouette.bool(), expected)


def test_points_outside_the_image_leave_the_silhouette_alone():
    points, cell = pose_search.interior_points(ellipsoid_sdf, 40)
    pose = torch.from_numpy(orbit_pose(35.0, 20.0, 2.5)[None, :3]).float()
    alone = pose_search.splat_silhouettes(points, pose, INTRINSICS, (SIZE, SIZE), cell)
    # the same points moved along the camera's right axis, far enough to land beside the image, on both sides
    right = pose[0, :, 0]
    beside = torch.cat([points, points + 2.0 * right, points - 2.0 * right])
    assert torch.equal(pose_search.splat_silhouettes(beside, pose, INTRINSICS, (SIZE, SIZE), cell), alone)


@pytest.mark.parametrize("radius", [1, 2])
def test_dilate_is_a_square_max_filter(radius):
    image = torch.rand(5, 17, 23, generator=torch.Generator().manual_seed(radius)) > 0.8
    kernel = 2 * radius + 1
    expected = torch.nn.functional.max_pool2d(image[:, None].float(), kernel, stride=1, padding=radius)[:, 0] > 0
    assert torch.equal(pose_search.dilate(image, radius), expected)
    # the erosion counts beyond the border as full: an all-true image stays all true
    assert bool((~pose_search.dilate(~torch.ones(2, 6, 6, dtype=torch.bool), radius)).all())


def test_shrunk_masks_keep_the_silhouette_and_the_search_still_undoes_an_error():
    true = orbit_pose(35.0, 20.0, 2.5)
    size, focal = 4 * SIZE, 4 * FOCAL  # the same view at four times the pixels
    fine = torch.from_numpy(render_ellipsoid(RADII, np.ones(3), true, size, focal)[1]).float()[None]
    intrinsics = torch.tensor([[focal, focal, size / 2, size / 2]])
    small, small_intrinsics = pose_search.shrink_masks(fine, intrinsics, SIZE)
    assert small.shape == (1, SIZE, SIZE)
    torch.testing.assert_close(small_intrinsics, INTRINSICS)
    assert pose_search.mask_iou(small, true_mask(true)).item() > 0.97  # what a render at the small size shows
    # masks no larger than the limit, or a limit of 0 in the model, are left as they are
    same, same_intrinsics = pose_search.shrink_masks(small, small_intrinsics, SIZE)
    assert same is small and same_intrinsics is small_intrinsics
    same, same_intrinsics = pose_search.shrink_masks(fine, intrinsics, 0)
    assert same is fine and same_intrinsics is intrinsics
    # non-square masks keep their aspect; each axis scales its own intrinsics
    wide_intrinsics = torch.tensor([[100.0, 100.0, 60.0, 30.0]]).expand(2, 4)
    wide, wide_intrinsics = pose_search.shrink_masks(torch.ones(2, 60, 120), wide_intrinsics, 40)
    assert wide.shape == (2, 20, 40) and bool(wide.all())
    torch.testing.assert_close(wide_intrinsics[0], torch.tensor([100.0 / 3, 100.0 / 3, 20.0, 10.0]))
    # the search on the shrunk masks undoes an orbit error as it does at the small size
    points, cell = pose_search.interior_points(ellipsoid_sdf, 40)
    rough = perturbed(true, 7.0, -5.0, 0.0)
    turn, _ = pose_search.search_views(points, cell, rough, small, small_intrinsics, pose_search.default_stages())
    truth = torch.from_numpy(true[None, :3, :3]).float()
    assert rotation_error_deg(turn @ rough[:, :, :3], truth).item() < 0.4 * rotation_error_deg(rough[:, :, :3],
                                                                                                truth).item()


def test_orbit_rotations_are_rotations_about_the_cameras_axes():
    c2w = torch.from_numpy(np.stack([orbit_pose(a, 15.0, 2.5)[:3] for a in (0.0, 100.0)])).float()
    angles = torch.deg2rad(torch.tensor([[10.0, 0.0, 0.0], [0.0, 0.0, -7.0]]))
    turn = pose_search.orbit_rotations(c2w, angles)
    assert torch.allclose(turn @ turn.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-6)
    assert torch.allclose(rotation_error_deg(turn, torch.eye(3).expand(2, 3, 3)), torch.tensor([10.0, 7.0]),
                          atol=1e-3)
    # yaw turns about the camera's up axis, roll about its viewing axis: those axes stay put
    assert torch.allclose(turn[0] @ c2w[0, :, 1], c2w[0, :, 1], atol=1e-6)
    assert torch.allclose(turn[1] @ c2w[1, :, 2], c2w[1, :, 2], atol=1e-6)


@pytest.mark.parametrize("error", [(7.0, -5.0, 0.0), (-10.0, 4.0, 3.0)])
def test_search_undoes_an_orbit_error(error):
    points, cell = pose_search.interior_points(ellipsoid_sdf, 40)
    true = orbit_pose(35.0, 20.0, 2.5)
    rough = perturbed(true, *error)
    truth = torch.from_numpy(true[None, :3, :3]).float()
    before = rotation_error_deg(rough[:, :, :3], truth)
    turn, iou = pose_search.search_views(points, cell, rough, true_mask(true)[None], INTRINSICS,
                                         pose_search.default_stages())
    after = rotation_error_deg(turn @ rough[:, :, :3], truth)
    assert before.item() > 7.0
    assert after.item() < 0.4 * before.item()
    start = pose_search.mask_iou(pose_search.splat_silhouettes(points, rough, INTRINSICS, (SIZE, SIZE), cell),
                                 true_mask(true))
    assert iou.item() > start.item()


def test_search_keeps_a_pose_that_already_fits():
    points, cell = pose_search.interior_points(ellipsoid_sdf, 40)
    true = orbit_pose(35.0, 20.0, 2.5)
    c2w = torch.from_numpy(true[None, :3]).float()
    turn, _ = pose_search.search_views(points, cell, c2w, true_mask(true)[None], INTRINSICS,
                                       pose_search.default_stages())
    assert rotation_error_deg(turn, torch.eye(3)[None]).item() <= 2.0


def test_default_stages_try_seventy_two_rotations_including_none():
    stages = pose_search.default_stages(15.0)
    assert sum(len(s.offsets) for s in stages) == 72
    assert all((s.offsets == 0).all(dim=1).any() for s in stages)


@pytest.mark.parametrize("image_size", [0, 16])  # the views' own size, or masks shrunk below it
def test_pipeline_search_moves_train_poses_and_is_scheduled(ellipsoids, image_size):
    def configure(config):
        config.pipeline.model.pose_search_steps = (3,)
        config.pipeline.model.pose_search_resolution = 24
        config.pipeline.model.pose_search_image_size = image_size

    pipeline = small_training_pipeline(ellipsoids, configure)
    model = pipeline.model
    data = pipeline.datamanager.train_data
    views = (data.images, data.masks)
    before = model.refined_poses(views)
    callbacks = pipeline.get_training_callbacks(None)
    search = [c for c in callbacks if getattr(c.func, "__name__", "") == "search_poses"]
    assert len(search) == 1 and search[0].iters == (3,)
    pipeline.search_poses(step=3)
    rotations = model.searched_rotations
    assert torch.allclose(rotations @ rotations.transpose(1, 2), torch.eye(3).expand_as(rotations), atol=1e-5)
    after = model.refined_poses(views)
    moved = rotation_error_deg(after[:, :, :3], before[:, :, :3])
    assert moved.max() > 0.5
    # the search turns poses about the object centre: the cameras keep their distance to it
    assert torch.allclose(after[:, :, 3].norm(dim=-1), before[:, :, 3].norm(dim=-1), atol=1e-4)
    # rays of a training batch follow the searched poses (refine_rays applies the same rotations)
    state = model.state_dict()
    assert "searched_rotations" in state and torch.equal(state["searched_rotations"], rotations)


def test_no_search_without_pose_refinement(ellipsoids):
    def configure(config):
        config.pipeline.model.pose_search_steps = (3,)
        config.pipeline.model.camera_optimizer.mode = "off"

    pipeline = small_training_pipeline(ellipsoids, configure)
    callbacks = pipeline.get_training_callbacks(None)
    assert not [c for c in callbacks if getattr(c.func, "__name__", "") == "search_poses"]


def test_searches_after_the_last_step_are_named(ellipsoids, capsys):
    from types import SimpleNamespace

    def configure(config):
        config.pipeline.model.pose_search_steps = (3, 9, 12)

    pipeline = small_training_pipeline(ellipsoids, configure)
    trainer = SimpleNamespace(_start_step=0, config=SimpleNamespace(max_num_iterations=10))
    attributes = SimpleNamespace(optimizers=None, grad_scaler=None, pipeline=pipeline, trainer=trainer)
    pipeline.get_training_callbacks(attributes)
    out = capsys.readouterr().out
    assert "the pose search at step(s) 12 will not run: training ends at step 9" in out
    trainer.config.max_num_iterations = 13
    pipeline.get_training_callbacks(attributes)
    assert "will not run" not in capsys.readouterr().out
