"""Shared test fixtures: a tiny analytic dataset written through the project's format writers."""

import json
import subprocess
import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest
import trimesh

from gansvr_ns.data import format as fmt

BIN = Path(sys.executable).parent
"""The venv's bin folder: the project's and nerfstudio's command lines."""


def run(*args, cwd: Path, env=None, check: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a command line; with `check`, fail with the end of its output when it exits non-zero."""
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if check:
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def render_ellipsoid(radii, color, pose, size: int, focal: float):
    """Ray-cast an axis-aligned ellipsoid at the origin: (rgb [H, W, 3], mask [H, W])."""
    v, u = np.mgrid[0:size, 0:size] + 0.5
    dirs = np.stack([(u - size / 2) / focal, -(v - size / 2) / focal, -np.ones_like(u)], -1) @ pose[:3, :3].T
    o = pose[:3, 3] / radii
    d = dirs / radii
    a, b, c = (d * d).sum(-1), 2 * (o * d).sum(-1), (o * o).sum() - 1
    disc = b * b - 4 * a * c
    hit = disc > 0
    t = (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a)
    normal = (pose[:3, 3] + t[..., None] * dirs) / radii**2
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    shade = 0.3 + 0.7 * np.clip(normal @ np.array([0.3, 0.5, 0.81]), 0, 1)
    return np.where(hit[..., None], color * shade[..., None], np.array([0.5, 0.6, 0.7])), hit


def make_ellipsoid_dataset(out: Path, num_instances: int = 6, views: int = 6, size: int = 24, seed: int = 0) -> Path:
    """A small valid dataset of ellipsoids with meshes, true poses and 4/1/1-style splits."""
    rng = np.random.default_rng(seed)
    focal = size * 1.1
    ids = [f"ell_{i:03d}" for i in range(num_instances)]
    with fmt.staging_dir(out) as tmp:
        for instance_id in ids:
            radii, color = rng.uniform(0.3, 0.8, 3), rng.uniform(0.2, 0.9, 3)
            folder = tmp / instance_id
            entries = []
            for j in range(views):
                azimuth, elevation = 360.0 * j / views, float(rng.uniform(0, 30))
                pose = fmt.orbit_pose(azimuth, elevation, 2.5)
                rgb, mask = render_ellipsoid(radii, color, pose, size, focal)
                fmt.save_rgb(folder / f"views/{j:03d}.png", rgb)
                fmt.save_mask(folder / f"masks/{j:03d}.png", mask)
                entries.append(fmt.view_entry(j, pose, pose, azimuth, elevation, 2.5))
            pose = fmt.orbit_pose(float(rng.uniform(0, 360)), 20.0, 2.5)
            rgb, mask = render_ellipsoid(radii, color, pose, size, focal)
            fmt.save_rgb(folder / "input.png", rgb)
            fmt.save_mask(folder / "input_mask.png", mask)
            fmt.write_cameras(folder, fmt.input_entry(pose), entries)
            mesh = trimesh.creation.icosphere(subdivisions=3)
            mesh.apply_scale(radii)
            mesh.export(folder / "mesh.ply")
        intrinsics = {"fx": focal, "fy": focal, "cx": size / 2, "cy": size / 2}
        splits = fmt.split_ids(ids)
        info = fmt.dataset_json("ellipsoid", "test", (size, size), intrinsics, splits, {})
        fmt.write_json(tmp / "dataset.json", info)
    return out


@pytest.fixture
def ellipsoids(tmp_path) -> Path:
    return make_ellipsoid_dataset(tmp_path / "ellipsoids")


def small_training_pipeline(data: Path, configure=None):
    """A gansvr pipeline on `data` in training mode with few rays and samples per step (seeded);
    `configure(config)` may change the default TrainerConfig first."""
    import torch

    from gansvr_ns.method_config import gansvr_config

    torch.manual_seed(0)
    config = gansvr_config()
    config.pipeline.datamanager.data = data
    config.pipeline.datamanager.rays_per_view = 16
    config.pipeline.model.num_samples = config.pipeline.model.num_samples_importance = 8
    if configure is not None:
        configure(config)
    pipeline = config.pipeline.setup(device="cpu", test_mode="val")
    pipeline.train()
    return pipeline


def adam_history(parameters, loss_fn, steps: int, lr: float = 1e-3) -> List[float]:
    """Minimise `loss_fn()` over `parameters` with Adam for `steps` steps; the loss of every step."""
    import torch

    optimizer = torch.optim.Adam(parameters, lr=lr)
    history = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return history


def reconstruct_test_split(config: Path, data: Path, out: Path, cwd: Path) -> List[str]:
    """`gansvr-reconstruct` the test split plus one image of a run into `out`, check every mesh (faces, inside the
    box, a GLB with vertex colours), and return the test ids."""
    run(BIN / "gansvr-reconstruct", "--load-config", config, "--data", data, "--split", "test",
        "--images", data / "ell_000" / "input.png", "--output-dir", out, "--resolution", "32",
        "--format", "ply", "glb", cwd=cwd)
    test_ids = json.loads((data / "dataset.json").read_text())["splits"]["test"]
    for name in test_ids + ["input"]:
        mesh = trimesh.load(out / f"{name}.ply", force="mesh")
        assert len(mesh.faces) > 0
        assert np.abs(mesh.vertices).max() <= 1.0 + 1e-6
        glb = trimesh.load(out / f"{name}.glb", force="mesh")
        assert glb.visual.kind == "vertex" and len(glb.visual.vertex_colors) == len(glb.vertices)
    return test_ids
