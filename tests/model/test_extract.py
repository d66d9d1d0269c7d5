"""The coarse-to-fine SDF grid of mesh extraction and the pose search."""

import numpy as np
import pytest
import torch

from gansvr_ns.model.extract import sdf_grid


def blob_sdf(points: torch.Tensor) -> torch.Tensor:
    """A distance-like function of two overlapping ellipsoids (negative inside)."""
    first = (points / torch.tensor([0.7, 0.35, 0.3])).norm(dim=-1) - 1.0
    second = ((points - torch.tensor([0.3, 0.25, 0.0])) / torch.tensor([0.3, 0.3, 0.25])).norm(dim=-1) - 1.0
    return torch.minimum(first, second) * 0.3


@pytest.mark.parametrize("margin, levels", [(2.0, 1), (1.0, 1), (1.0, 2), (1.0, 3)])
def test_grid_is_exact_near_the_surface_and_right_in_sign_everywhere(margin, levels):
    resolution = 49
    whole = sdf_grid(blob_sdf, resolution, coarse_factor=1)
    grid = sdf_grid(blob_sdf, resolution, coarse_factor=2, margin=margin, levels=levels)
    cell = 2.0 / (resolution - 1)
    near = np.abs(whole) < 2.0 * cell
    assert near.sum() > 1000
    np.testing.assert_allclose(grid[near], whole[near], atol=1e-6)
    np.testing.assert_array_equal(grid < 0, whole < 0)
