"""The starting ellipsoid estimated from masks and rough poses only."""

import numpy as np
import torch
from nerfstudio.cameras.cameras import Cameras

from gansvr_ns.data import format as fmt
from gansvr_ns.data.hull import project_inside, silhouette_axes
from tests.conftest import render_ellipsoid

SIZE, FOCAL = 48, 60.0


def orbit_views(radii, elevations=(-40.0, 0.0, 30.0, 70.0), azimuths=range(0, 360, 30)):
    poses, masks = [], []
    for elevation in elevations:
        for azimuth in azimuths:
            pose = fmt.orbit_pose(float(azimuth), elevation, 2.5)
            _, mask = render_ellipsoid(np.asarray(radii), np.ones(3), pose, SIZE, FOCAL)
            poses.append(pose[:3])
            masks.append(mask)
    cameras = Cameras(camera_to_worlds=torch.tensor(np.stack(poses), dtype=torch.float32), fx=FOCAL, fy=FOCAL,
                      cx=SIZE / 2, cy=SIZE / 2, width=SIZE, height=SIZE)
    return cameras, torch.from_numpy(np.stack(masks))


def test_projection_agrees_with_the_rendered_masks():
    cameras, masks = orbit_views([0.7, 0.4, 0.3])
    inside = project_inside(torch.tensor([[0.0, 0.0, 0.0], [0.65, 0.0, 0.0], [0.0, 0.0, 0.6]]), cameras, masks)
    assert inside[:, 0].all()  # the centre is inside every silhouette
    assert inside[:, 1].float().mean() > 0.5  # near the tip of the long axis: inside most silhouettes
    assert not inside[:, 2].all()  # above the top (z semi-axis 0.3): carved away by the side views


def test_carving_by_chunks_of_views_equals_counting_every_view():
    from gansvr_ns.data.hull import carve, grid_points

    cameras, masks = orbit_views([0.7, 0.4, 0.3])
    masks = masks.clone()
    masks[::5, 20:28, 20:28] = False  # holes in some views, so that the keep fraction matters
    points = grid_points(24)
    every_view = project_inside(points, cameras, masks).float()
    for keep in (1.0, 0.95, 0.9, 0.5):
        expected = every_view.mean(dim=0) >= keep
        assert 0 < int(expected.sum()) < len(points)
        for chunk in (1, 7, 48):
            assert torch.equal(carve(points, cameras, masks, keep, chunk=chunk), expected)


def instances_views(radii):
    """Orbit views of one ellipsoid per entry of `radii`: cameras, masks and each instance's camera indices."""
    views = [orbit_views(r) for r in radii]
    per_instance = len(views[0][1])
    cameras = Cameras(camera_to_worlds=torch.cat([c.camera_to_worlds for c, _ in views]), fx=FOCAL, fy=FOCAL,
                      cx=SIZE / 2, cy=SIZE / 2, width=SIZE, height=SIZE)
    groups = [torch.arange(k * per_instance, (k + 1) * per_instance) for k in range(len(radii))]
    return cameras, torch.cat([m for _, m in views]), groups


def test_axes_of_two_ellipsoids_come_back_from_their_masks():
    radii = [[0.7, 0.4, 0.3], [0.5, 0.6, 0.35]]
    cameras, masks, groups = instances_views(radii)
    one = silhouette_axes(cameras, masks, groups[:1], resolution=48, keep=1.0)
    assert torch.allclose(one, torch.tensor(radii[0]), atol=0.06)  # a visual hull of an ellipsoid is itself
    both = silhouette_axes(cameras, masks, groups, resolution=48, keep=1.0)
    assert (both - torch.tensor(radii).mean(0)).abs().max() < 0.1  # the average shape's ellipsoid


def test_trilinear_is_exact_on_linear_fields_and_twice_differentiable():
    from gansvr_ns.data.hull import grid_points, trilinear

    res = 8
    points = grid_points(res)
    grid = (points @ torch.tensor([0.5, -1.0, 2.0]) + 0.25).reshape(res, res, res)
    inner = (torch.rand(50, 3) * 2 - 1) * (1 - 1 / res)  # between the outermost cell centres
    inner.requires_grad_(True)
    value = trilinear(grid, inner)
    torch.testing.assert_close(value[:, 0], inner.detach() @ torch.tensor([0.5, -1.0, 2.0]) + 0.25)
    (gradient,) = torch.autograd.grad(value.sum(), inner, create_graph=True)
    torch.testing.assert_close(gradient, torch.tensor([[0.5, -1.0, 2.0]]).expand(50, 3))
    ((gradient.norm(dim=-1) - 1.0) ** 2).sum().backward()  # an eikonal term backpropagates through it


def test_trilinear_instances_reads_each_point_from_its_own_row_without_touching_the_others():
    from gansvr_ns.data.hull import trilinear, trilinear_instances

    res = 6
    grids = torch.randn(3, res**3, requires_grad=True)
    points = torch.rand(4, 5, 3) * 2 - 1
    rows = torch.tensor([2, 0, 2, 2])[:, None]  # one row per ray, for all its samples
    value = trilinear_instances(grids, points, rows)
    assert value.shape == (4, 5, 1)
    for ray in range(4):
        expected = trilinear(grids[rows[ray, 0]].reshape(res, res, res), points[ray])
        torch.testing.assert_close(value[ray], expected)
    value.sum().backward()
    assert grids.grad[1].abs().sum() == 0 and grids.grad[0].abs().sum() > 0 and grids.grad[2].abs().sum() > 0
    # without rows every point reads the first grid
    torch.testing.assert_close(trilinear_instances(grids, points), trilinear(grids[0].reshape(res, res, res), points))


def test_mean_hull_sdf_is_negative_inside_and_zero_near_the_surface():
    from gansvr_ns.data.hull import mean_hull_sdf, trilinear

    cameras, masks = orbit_views([0.7, 0.4, 0.3])
    sdf = mean_hull_sdf(cameras, masks, [torch.arange(len(masks))], resolution=32, keep=1.0)
    probe = torch.tensor([[0.0, 0.0, 0.0], [0.7, 0.0, 0.0], [0.0, 0.4, 0.0], [0.0, 0.0, 0.8]])
    values = trilinear(sdf, probe)[:, 0]
    assert values[0] < -0.2 and values[1:3].abs().max() < 0.1 and values[3] > 0.3


def test_instance_hull_sdfs_tell_two_shapes_apart():
    from gansvr_ns.data.hull import instance_hull_sdfs, trilinear

    cameras, masks, groups = instances_views([[0.7, 0.4, 0.3], [0.35, 0.6, 0.3]])
    masks[-1] = False  # the last view of the second instance sees nothing
    groups.append(torch.arange(0))
    grids = instance_hull_sdfs(cameras, masks, groups, resolution=32, keep=0.95)
    assert grids.shape == (3, 32, 32, 32) and grids[2].isnan().all()  # no views: no hull
    tips = trilinear(grids[0], torch.tensor([[0.7, 0.0, 0.0], [0.0, 0.6, 0.0]]))[:, 0]
    assert tips[0].abs() < 0.1 and tips[1] > 0.1  # the first shape is long in x, ends at y = 0.4
    tips = trilinear(grids[1], torch.tensor([[0.7, 0.0, 0.0], [0.0, 0.6, 0.0]]))[:, 0]
    assert tips[0] > 0.2 and tips[1].abs() < 0.1  # the second is long in y, despite one empty mask (keep 0.95)
    carved = instance_hull_sdfs(cameras, torch.zeros_like(masks), groups[:1], resolution=16, keep=0.95)
    assert carved.isnan().all()  # empty masks carve everything away


def test_trilinear_instances_matches_grid_sample_and_has_exact_second_derivatives():
    from gansvr_ns.data.hull import trilinear_instances

    res = 5
    torch.manual_seed(0)
    grids = torch.randn(2, res**3, dtype=torch.float64, requires_grad=True)
    points = (torch.rand(3, 7, 3, dtype=torch.float64) * 2.4 - 1.2).requires_grad_(True)  # some beyond the border
    rows = torch.tensor([1, 0, 1])[:, None]
    value = trilinear_instances(grids, points, rows)
    # torch's own trilinear sampling of cell-centred grids clamped at the border: grid_sample takes (x, y, z) as the
    # (width, height, depth) axes, so the grid's first axis (x here) is its last
    volumes = grids.view(2, 1, res, res, res).permute(0, 1, 4, 3, 2)[rows[:, 0]]
    expected = torch.nn.functional.grid_sample(
        volumes, points[:, None, None], mode="bilinear", padding_mode="border", align_corners=False)
    torch.testing.assert_close(value[..., 0], expected[:, 0, 0, 0])
    g_value = torch.autograd.grad(value.sum(), [grids, points])
    g_expected = torch.autograd.grad(expected.sum(), [grids, points])
    for a, b in zip(g_value, g_expected):
        torch.testing.assert_close(a, b)
    inner = points.detach().clamp(-0.75, 0.75).requires_grad_(True)  # away from the clamped border and its kinks
    assert torch.autograd.gradgradcheck(lambda g, p: trilinear_instances(g, p, rows), (grids, inner))
