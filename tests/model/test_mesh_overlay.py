"""Drawing a mesh over an image with a camera: its silhouette, and the tinted, outlined overlay."""

import numpy as np
import pytest
import trimesh

from gansvr_ns.data.format import orbit_pose
from gansvr_ns.model.mesh import mesh_silhouette, overlay


def test_a_sphere_is_drawn_as_the_disc_its_camera_sees():
    """A ball of radius 0.5 seen from 2.5 away with fx = fy = 100 is a disc of radius 100 r / sqrt(d^2 - r^2) about
    the principal point (PIL fills every pixel a face's outline touches: about half a pixel more all round)."""
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    cx, cy = 70.0, 40.0  # off the middle of a 101 x 121 image
    mask = mesh_silhouette(sphere.vertices, sphere.faces, orbit_pose(30.0, 10.0, 2.5), (100.0, 100.0, cx, cy),
                           (101, 121))
    radius = 100.0 * 0.5 / np.sqrt(2.5**2 - 0.5**2)
    assert np.pi * radius**2 < mask.sum() < np.pi * (radius + 0.75) ** 2
    rows, cols = np.nonzero(mask)
    assert (rows.mean() + 0.5, cols.mean() + 0.5) == pytest.approx((cy, cx), abs=0.3)
    behind = orbit_pose(30.0, 10.0, 2.5)
    behind[:3, 2] *= -1.0  # looking away from the ball (the pose's handedness does not matter here)
    behind[:3, 0] *= -1.0
    assert not mesh_silhouette(sphere.vertices, sphere.faces, behind, (100.0, 100.0, cx, cy), (101, 121)).any()


def test_overlay_tints_the_silhouette_and_outlines_it():
    rgb = np.full((20, 30, 3), 0.5, dtype=np.float32)
    silhouette = np.zeros((20, 30), dtype=bool)
    silhouette[5:15, 10:20] = True
    out = overlay(rgb, silhouette, colour=(1.0, 0.0, 0.0), tint=0.5)
    np.testing.assert_array_equal(out[~silhouette], rgb[~silhouette])
    np.testing.assert_allclose(out[10, 15], [0.75, 0.25, 0.25])
    for row, col in ((5, 10), (14, 19), (5, 15), (10, 10)):
        np.testing.assert_array_equal(out[row, col], [1.0, 0.0, 0.0])
    assert rgb[10, 15, 0] == 0.5  # the input is left as it is
