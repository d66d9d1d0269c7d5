"""Input images from a different renderer: the domain-shift check of the quality benchmark.

The procedural source sphere-traces analytic SDFs with its own palette, lights and backgrounds. Here the
ground-truth mesh itself is ray-cast with open3d and shaded differently (flat faces, a head light plus a
warm key light, a metallic colour ramp over height, a checkerboard or vertical-gradient backdrop), so a model
that only memorised the training renderer's look would fail.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from gansvr_ns.data import format as fmt


def camera_rays(pose: np.ndarray, intrinsics: Dict[str, float], height: int, width: int):
    """World-space ray origins and unit directions through pixel centres (OpenGL camera, as nerfstudio)."""
    v, u = np.mgrid[0:height, 0:width] + 0.5
    dirs = np.stack(
        [(u - intrinsics["cx"]) / intrinsics["fx"], -(v - intrinsics["cy"]) / intrinsics["fy"], -np.ones_like(u)], -1
    )
    dirs = dirs @ pose[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    return np.broadcast_to(pose[:3, 3], dirs.shape).copy(), dirs


def render_mesh(mesh_path: Path, pose: np.ndarray, intrinsics: Dict[str, float], height: int, width: int,
                rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """RGB float image [H, W, 3] of a mesh under `pose`, shaded in this module's own style on a backdrop, and the
    mesh's mask [H, W] (bool)."""
    import open3d as o3d

    mesh = o3d.t.io.read_triangle_mesh(str(mesh_path))
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(mesh)
    origins, dirs = camera_rays(pose, intrinsics, height, width)
    rays = o3d.core.Tensor(np.concatenate([origins, dirs], -1).reshape(-1, 6).astype(np.float32))
    hit = scene.cast_rays(rays)
    t = hit["t_hit"].numpy().reshape(height, width)
    normals = hit["primitive_normals"].numpy().reshape(height, width, 3)
    inside = np.isfinite(t)
    normals = np.where((normals * dirs).sum(-1, keepdims=True) > 0, -normals, normals)
    points = origins + np.where(inside, t, 0.0)[..., None] * dirs
    key = np.array([0.4, -0.6, 0.7]) / np.linalg.norm([0.4, -0.6, 0.7])
    head = np.clip((normals * -dirs).sum(-1), 0, 1)
    diffuse = 0.25 + 0.45 * head + 0.4 * np.clip(normals @ key, 0, 1)
    base_a, base_b = rng.uniform(0.1, 0.9, 3), rng.uniform(0.1, 0.9, 3)
    ramp = np.clip((points[..., 2:3] + 0.5), 0, 1)
    colour = (base_a * (1 - ramp) + base_b * ramp) * diffuse[..., None] * np.array([1.0, 0.95, 0.85])
    background = backdrop(height, width, rng)
    return np.clip(np.where(inside[..., None], colour, background), 0.0, 1.0), inside


def backdrop(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A checkerboard or a vertical gradient, in colours drawn from `rng`."""
    a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
    if rng.random() < 0.5:
        v, u = np.mgrid[0:height, 0:width]
        cell = max(2, height // 8)
        check = ((u // cell + v // cell) % 2)[..., None]
        return a * check + b * (1 - check)
    ramp = np.linspace(0, 1, height)[:, None, None] * np.ones((1, width, 1))
    return a * ramp + b * (1 - ramp)


def write_shifted_inputs(data: Path, split: str, out: Path, seed: int = 0, masks: bool = False) -> Dict[str, Path]:
    """Render each instance of `split` from its `mesh.ply` at a random pose to `out/<id>.png`, with `masks` its mask
    to `out/masks/<id>.png` too (`shifted_mask`); returns {instance id: image}."""
    info = fmt.read_dataset(data)
    rng = np.random.default_rng(seed)
    height, width = info.image_size
    distance = float(info.generator.get("distance", 2.5)) if isinstance(info.generator, dict) else 2.5
    images = {}
    for instance_id in info.instances(split):
        record = fmt.read_instance(info, instance_id, check_images=False)
        if record.mesh_path is None:
            raise fmt.FormatError(record.folder / "mesh.ply", "ground-truth mesh is missing")
        pose = fmt.orbit_pose(rng.uniform(0, 360), rng.uniform(5, 25), distance)
        path = out / f"{instance_id}.png"
        rgb, mask = render_mesh(record.mesh_path, pose, info.intrinsics, height, width, rng)
        fmt.save_rgb(path, rgb)
        if masks:
            fmt.save_mask(shifted_mask(path), mask)
        images[instance_id] = path
    return images


def shifted_mask(image: Path) -> Path:
    """Where `write_shifted_inputs` writes the mask of one of its images."""
    return image.parent / "masks" / image.name
