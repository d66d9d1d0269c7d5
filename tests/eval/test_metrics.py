"""Mesh metrics against closed forms: concentric spheres, a mesh with itself, overlapping boxes."""

import numpy as np
import pytest
import trimesh

from gansvr_ns.eval.metrics import (
    WORST_DISTANCE,
    MetricConfig,
    fscore,
    mesh_metrics,
    normalisation,
    occupancy,
    sample_surface,
    surface_distances,
    volumetric_iou,
)

CONFIG = MetricConfig(num_samples=10000)


def sphere(radius: float, subdivisions: int = 5) -> trimesh.Trimesh:
    return trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)


def box(extents=(1.0, 1.0, 1.0), offset=(0.0, 0.0, 0.0)) -> trimesh.Trimesh:
    mesh = trimesh.creation.box(extents=extents)
    mesh.apply_translation(offset)
    return mesh


def test_normalisation_uses_ground_truth_bbox():
    centre, scale = normalisation(box(extents=(2.0, 4.0, 1.0), offset=(1.0, -2.0, 3.0)))
    np.testing.assert_allclose(centre, [1.0, -2.0, 3.0], atol=1e-12)
    assert scale == pytest.approx(0.25)


@pytest.mark.parametrize("r_gt, r_pred", [(2.0, 1.5), (0.5, 0.6)])
def test_concentric_spheres_chamfer_and_iou(r_gt, r_pred):
    result = mesh_metrics(sphere(r_pred), sphere(r_gt), CONFIG)
    expected = abs(r_gt - r_pred) / (2.0 * r_gt)  # the gap, normalised by the gt's bbox side 2 r_gt
    assert result["accuracy"] == pytest.approx(expected, abs=2e-3)
    assert result["completeness"] == pytest.approx(expected, abs=2e-3)
    assert result["chamfer_l1"] == pytest.approx(expected, abs=2e-3)
    assert result["iou"] == pytest.approx((min(r_gt, r_pred) / max(r_gt, r_pred)) ** 3, abs=0.03)


def test_scaling_only_the_prediction_is_not_normalised_away():
    gt = sphere(1.0)
    assert mesh_metrics(sphere(1.0), gt, CONFIG)["chamfer_l1"] == pytest.approx(0.0, abs=1e-12)
    assert mesh_metrics(sphere(1.2), gt, CONFIG)["chamfer_l1"] == pytest.approx(0.1, abs=2e-3)


def test_metrics_are_invariant_to_a_shared_similarity():
    pred, gt = box(offset=(0.3, 0.0, 0.1)), box(extents=(1.0, 0.8, 0.6))
    moved = [m.copy().apply_scale(3.0).apply_translation([5.0, -1.0, 2.0]) for m in (pred, gt)]
    before, after = mesh_metrics(pred, gt, CONFIG), mesh_metrics(*moved, CONFIG)
    for key in before:
        assert after[key] == pytest.approx(before[key], abs=1e-6), key


def test_mesh_against_itself_and_a_retriangulated_copy():
    gt = box(extents=(1.0, 0.5, 0.4))
    same = mesh_metrics(gt, gt, CONFIG)
    assert same["chamfer_l1"] == 0.0
    assert same["fscore@0.01"] == 1.0 and same["fscore@0.05"] == 1.0
    assert same["iou"] == 1.0
    finer = gt.subdivide().subdivide()  # same surface, other triangles, so other samples
    copy = mesh_metrics(finer, gt, CONFIG)
    assert 0.0 < copy["chamfer_l1"] < 0.01
    assert copy["fscore@0.05"] == 1.0
    assert copy["iou"] == 1.0


def test_disjoint_cubes_have_zero_iou():
    assert volumetric_iou(box(offset=(2.0, 0.0, 0.0)), box()) == 0.0


@pytest.mark.parametrize("far", [box(offset=(1e4, 0.0, 0.0)), box(extents=(1e4, 1e4, 1e4))])
def test_a_prediction_that_dwarfs_the_grid_cells_scores_zero_iou_not_an_error(far):
    assert volumetric_iou(far, box()) == 0.0


@pytest.mark.parametrize("shift, expected", [(0.5, 1 / 3), (0.25, 0.6), (0.0, 1.0)])
def test_shifted_cube_iou_matches_overlap(shift, expected):
    # overlap (1 - s), union (1 + s) for unit cubes shifted by s along x
    iou = volumetric_iou(box(offset=(shift, 0.0, 0.0)), box(), resolution=32)
    assert iou == pytest.approx(expected, abs=0.03)


def test_fscore_is_monotone_in_tau():
    pred = sphere(1.0).apply_scale([1.1, 0.9, 1.0])  # an ellipsoid: a spread of distances to the sphere
    gt_points = sample_surface(sphere(1.0), 5000, seed=0)
    distances = surface_distances(sample_surface(pred, 5000, seed=1), gt_points)
    taus = [0.001, 0.01, 0.03, 0.05, 0.1, 0.2]
    scores = [fscore(distances, tau) for tau in taus]
    assert all(np.all(np.diff(values) >= 0) for values in zip(*scores))
    assert scores[0][0] < 0.1 and scores[-1][0] == 1.0
    assert len(set(s[0] for s in scores)) > 3  # not flat: the thresholds matter


def test_fscore_closed_form():
    distances = surface_distances(np.array([[0.0, 0, 0], [1.0, 0, 0]]), np.array([[0.0, 0, 0.02]]))
    f, precision, recall = fscore(distances, tau=0.05)
    assert (precision, recall) == (0.5, 1.0)
    assert f == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_sampling_is_deterministic_on_surface_and_area_weighted():
    mesh = sphere(0.7, subdivisions=3)
    a, b = sample_surface(mesh, 2000, seed=3), sample_surface(mesh, 2000, seed=3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, sample_surface(mesh, 2000, seed=4))
    # every sample lies on a triangle of a sphere of radius 0.7 (between the flat facets and the sphere)
    assert np.all(np.linalg.norm(a, axis=1) <= 0.7 + 1e-9) and np.all(np.linalg.norm(a, axis=1) > 0.68)
    small, big = box(extents=(1.0, 1.0, 1.0)), box(extents=(2.0, 2.0, 2.0), offset=(5.0, 0.0, 0.0))
    points = sample_surface(trimesh.util.concatenate([small, big]), 20000, seed=0)
    assert np.mean(points[:, 0] < 2.5) == pytest.approx(0.2, abs=0.01)  # areas 6 and 24


def test_occupancy_majority_vote_survives_holes():
    mesh = sphere(0.5)
    keep = np.ones(len(mesh.faces), dtype=bool)
    keep[np.random.default_rng(0).choice(len(mesh.faces), 200, replace=False)] = False  # ~1% of faces gone
    holey = trimesh.Trimesh(mesh.vertices, mesh.faces[keep], process=False)
    points = np.random.default_rng(1).uniform(-0.6, 0.6, size=(20000, 3))
    radii = np.linalg.norm(points, axis=1)
    points = points[np.abs(radii - 0.5) > 2e-3]  # away from the gap between the facets and the true sphere
    truth = np.linalg.norm(points, axis=1) < 0.5
    errors_one_ray = np.sum(occupancy(holey, points, num_rays=1) != truth)
    errors_vote = np.sum(occupancy(holey, points, num_rays=7) != truth)
    assert errors_one_ray > 50  # a single ray does go through the holes
    assert errors_vote <= 5
    assert np.array_equal(occupancy(mesh, points, num_rays=7), truth)


def test_empty_prediction_gets_worst_case_values():
    empty = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    result = mesh_metrics(empty, box(), CONFIG)
    assert result["chamfer_l1"] == result["accuracy"] == result["completeness"] == WORST_DISTANCE
    assert result["fscore@0.01"] == result["recall@0.05"] == result["iou"] == 0.0
    assert set(result) == set(mesh_metrics(box(), box(), CONFIG))


def test_degenerate_ground_truth_and_config_are_errors():
    empty = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="empty"):
        mesh_metrics(box(), empty, CONFIG)
    flat = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]])  # encloses no volume
    with pytest.raises(ValueError, match="encloses no cell"):
        mesh_metrics(box(), flat, CONFIG)
    with pytest.raises(ValueError, match="odd"):
        MetricConfig(occupancy_rays=4)
    with pytest.raises(ValueError, match="iou_resolution must be at least 4, got 1"):
        MetricConfig(iou_resolution=1)
    assert 0.0 < mesh_metrics(box(), box(), MetricConfig(num_samples=1000, iou_resolution=4))["iou"] <= 1.0
