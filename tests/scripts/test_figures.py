"""`scripts/figures.py`: the CPU mesh renderer against a closed form, the curve smoothing by hand, and the three PNGs of
the tiny ablation runs (one with the image uncertainty head, one with the uncertainty field)."""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from gansvr_ns.data import format as fmt
from tests.scripts.conftest import ROOT, load_script, run

figures = load_script("figures")


def test_render_mesh_sphere_silhouette():
    """A sphere of radius r seen from distance d covers a disc of radius f r / sqrt(d^2 - r^2) pixels."""
    size, distance, radius = 96, 2.5, 0.6
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=radius)
    focal = figures.orbit_focal(distance, size)
    image = figures.render_mesh(sphere, fmt.orbit_pose(40.0, 20.0, distance), focal, size, np.array([1.0, 0.0, 0.0]))
    hit = np.any(image < 0.999, axis=-1)
    expected = math.pi * (focal * radius / math.sqrt(distance**2 - radius**2)) ** 2
    assert hit.sum() == pytest.approx(expected, rel=0.03)
    ys, xs = np.nonzero(hit)
    assert (xs.mean(), ys.mean()) == pytest.approx((size / 2 - 0.5, size / 2 - 0.5), abs=0.5)
    assert np.all(image[hit][:, 1:] == 0) and image[hit][:, 0].min() >= 0.25 - 1e-6  # red, shaded, never black
    assert np.all(figures.render_mesh(trimesh.Trimesh(), np.eye(4), focal, size, np.ones(3)) == 1.0)


def test_smooth_is_a_trailing_mean():
    values = np.array([1.0, 3.0, 5.0, 7.0, 9.0])
    # windows of up to 3: [1], [1, 3], [1, 3, 5], [3, 5, 7], [5, 7, 9]
    assert figures.smooth(values, 3).tolist() == pytest.approx([1.0, 2.0, 3.0, 5.0, 7.0])


def non_blank(path: Path) -> np.ndarray:
    image = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    assert image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 10.0 and len(np.unique(image.reshape(-1, 3), axis=0)) > 100
    return image


@pytest.mark.parametrize("variant", ["no_pose_refinement", "uncertainty_field"])
def test_figures_of_a_tiny_run(ablation_run, variant, tmp_path):
    work, data, output, _ = ablation_run
    config = Path(json.loads(output.read_text())["variants"][variant]["seeds"]["0"]["config"])
    out = tmp_path / "docs"
    result = run(sys.executable, ROOT / "scripts" / "figures.py", "--load-config", config, "--data", data, "--out", out,
                 "--instances", 2, "--resolution", 32, "--render-size", 64, "--uncertainty-views", 2, cwd=work)
    names = ["contact_sheet.png", "uncertainty.png", "training_curves.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)
    images = {name: non_blank(out / name) for name in names}
    # two rows (instances) of five panels: the sheet is wider than tall
    assert images["contact_sheet.png"].shape[1] > images["contact_sheet.png"].shape[0]
    assert "Wrote" in result.stdout
