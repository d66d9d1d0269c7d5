"""Rendering of procedural objects: pinhole rays, sphere tracing of the SDF, shading, and backgrounds.

Rays follow nerfstudio's `Cameras.generate_rays` exactly: pixel (u, v) has its centre at (u + 0.5, v + 0.5)
and the camera-frame direction ((u + 0.5 - cx) / fx, -(v + 0.5 - cy) / fy, -1), rotated into the world by
the OpenGL camera-to-world matrix (camera looks down -z, +y up, +x right).

Shapes: `num_views`, `height`, `width` of the images; `num_rays` flattened rays.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Dict, Iterator, Tuple

import numpy as np
import torch
from torch import Tensor

from gansvr_ns.data.procedural.shapes import FittedShape, Shape, hsv_to_rgb

SDF = Callable[[Tensor], Tensor]
BACKGROUNDS = ("solid", "gradient", "noise", "stripes")


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch on one thread inside the block, restoring the thread count after.

    Sphere tracing issues thousands of small ops; on a shared machine OpenMP workers waiting for each other
    made generation 8x slower than one thread. One thread also makes results independent of the core count.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def pinhole_intrinsics(resolution: int, distance: float) -> Dict[str, float]:
    """Square pinhole intrinsics under which the unit sphere, seen from `distance`, exactly fills the image.

    The sphere's silhouette has half angle asin(1 / d), so tan = 1 / sqrt(d^2 - 1) and fx = fy = (R / 2) sqrt(d^2 - 1)
    for an R x R image; cx = cy = R / 2.
    """
    if distance <= 1.0:
        raise ValueError(f"camera distance must exceed the unit sphere's radius 1, got {distance}")
    focal = resolution / 2.0 * math.sqrt(distance * distance - 1.0)
    return {"fx": focal, "fy": focal, "cx": resolution / 2.0, "cy": resolution / 2.0}


def camera_rays(
    poses: np.ndarray, intrinsics: Dict[str, float], height: int, width: int
) -> Tuple[np.ndarray, np.ndarray]:
    """World-space rays of every pixel of every camera.

    poses: `Float[ndarray, "num_views 4 4"]` camera-to-world (OpenGL). Returns origins and unit directions,
    both `Float[ndarray, "num_views height width 3"]`; direction = R ((u + .5 - cx) / fx, -(v + .5 - cy) / fy, -1).
    """
    u = (np.arange(width) + 0.5 - intrinsics["cx"]) / intrinsics["fx"]
    v = -(np.arange(height) + 0.5 - intrinsics["cy"]) / intrinsics["fy"]
    camera = np.stack(np.broadcast_arrays(u[None, :], v[:, None], -np.ones((1, 1))), axis=-1)  # (H, W, 3)
    rotation = poses[:, None, None, :3, :3]  # (V, 1, 1, 3, 3)
    directions = (rotation * camera[None, :, :, None, :]).sum(axis=-1)
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    origins = np.broadcast_to(poses[:, None, None, :3, 3], directions.shape).copy()
    return origins, directions


def box_interval(origins: Tensor, directions: Tensor, lo: Tensor, hi: Tensor) -> Tuple[Tensor, Tensor]:
    """Entry and exit distances of rays through the box [lo, hi] (slab method); misses have t_near >= t_far.

    Per axis t = (bound - o) / d; t_near = max over axes of the smaller, t_far = min of the larger, t_near >= 0.
    """
    safe = torch.where(directions.abs() < 1e-9, torch.full_like(directions, 1e-9), directions)
    t0, t1 = (lo - origins) / safe, (hi - origins) / safe
    t_near = torch.minimum(t0, t1).amax(dim=-1).clamp(min=0.0)
    t_far = torch.maximum(t0, t1).amin(dim=-1)
    return t_near, t_far


def sphere_trace(
    sdf: SDF,
    origins: Tensor,
    directions: Tensor,
    t_near: Tensor,
    t_far: Tensor,
    eps: float,
    max_steps: int,
    step_scale: float = 1.0,
    min_step: float = 0.0,
) -> Tensor:
    """Distances to the first surface point along each ray, inf where the ray misses.

    March t <- t + max(step_scale * sdf(o + t d), min_step) from t_near; the first term never overshoots an
    L-Lipschitz SDF when step_scale <= 1 / L, and `min_step` bounds the work of rays grazing a surface (they
    can then miss only a dip below zero shorter than min_step). A ray hits when sdf < eps and misses once
    t > t_far or after `max_steps`. Only the rays still marching are evaluated at each step.
    """
    t_hit = torch.full_like(t_near, float("inf"))
    index = torch.nonzero(t_near < t_far).squeeze(1)
    o, d, t, t_end = origins[index], directions[index], t_near[index], t_far[index]
    for _ in range(max_steps):
        if index.numel() == 0:
            break
        dist = sdf(o + t[:, None] * d)
        hit = dist < eps
        t_hit[index[hit]] = t[hit]
        t = t + (step_scale * dist).clamp(min=min_step)
        keep = ~hit & (t < t_end)
        index, o, d, t, t_end = index[keep], o[keep], d[keep], t[keep], t_end[keep]
    return t_hit


TETRAHEDRON = torch.tensor([[1.0, -1.0, -1.0], [-1.0, -1.0, 1.0], [-1.0, 1.0, -1.0], [1.0, 1.0, 1.0]])


def sdf_normals(sdf: SDF, points: Tensor, step: float = 1e-3) -> Tensor:
    """Unit normals as the normalised finite-difference gradient n ~ sum_k e_k sdf(x + h e_k) over the four
    tetrahedron directions e_k = (+-1, +-1, +-1) with an even number of minus signs."""
    gradient = sum(k[None, :] * sdf(points + step * k[None, :])[:, None] for k in TETRAHEDRON)
    return gradient / gradient.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def ambient_occlusion(sdf: SDF, points: Tensor, normals: Tensor) -> Tensor:
    """Occlusion-based ambient factor: 1 - 0.8 * sum_i w_i max(delta_i - sdf(x + delta_i n), 0) / delta_i.

    At open surfaces sdf(x + delta n) = delta and the factor is 1; in creases the SDF grows more slowly.
    """
    occlusion = torch.zeros_like(points[:, 0])
    for delta, weight in ((0.03, 0.5), (0.07, 0.3), (0.15, 0.2)):
        occlusion = occlusion + weight * (delta - sdf(points + delta * normals)).clamp(min=0.0) / delta
    return (1.0 - 0.8 * occlusion).clamp(0.0, 1.0)


@dataclass
class Light:
    """Lighting of one instance: a key light fixed in the world, a fill light from the camera, ambient."""

    direction: Tuple[float, float, float]
    """Unit vector towards the key light, in the canonical frame."""
    key: float = 0.75
    fill: float = 0.25
    ambient: float = 0.3
    shininess: float = 32.0

    @staticmethod
    def random(rng: np.random.Generator) -> "Light":
        """A key light from a random azimuth, 35-70 degrees above the horizon, with random strengths."""
        azimuth, elevation = rng.uniform(0.0, 2 * math.pi), math.radians(rng.uniform(35.0, 70.0))
        direction = (math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth),
                     math.sin(elevation))
        return Light(direction, key=float(rng.uniform(0.6, 0.85)), fill=float(rng.uniform(0.15, 0.3)),
                     ambient=float(rng.uniform(0.22, 0.35)))


def shade(shape: Shape, points: Tensor, normals: Tensor, directions: Tensor, light: Light) -> Tensor:
    """Blinn-Phong colour of surface points: albedo (ambient * ao + key max(n.l, 0) + fill max(n.v, 0))
    + key * specular * max(n.h, 0)^shininess, with v = -direction and h = normalise(l + v)."""
    material = shape.material(points)
    albedo = torch.from_numpy(shape.colors.astype(np.float32))[material]
    specular = torch.from_numpy(shape.specular.astype(np.float32))[material]
    to_light = torch.tensor(light.direction, dtype=points.dtype)[None, :]
    to_eye = -directions
    half = to_light + to_eye
    half = half / half.norm(dim=-1, keepdim=True).clamp(min=1e-12)
    diffuse = (normals * to_light).sum(-1).clamp(min=0.0)
    facing = (normals * to_eye).sum(-1).clamp(min=0.0)
    highlight = (normals * half).sum(-1).clamp(min=0.0) ** light.shininess
    ambient = light.ambient * ambient_occlusion(shape.sdf, points, normals)
    lit = albedo * (ambient + light.key * diffuse + light.fill * facing)[:, None]
    return (lit + (light.key * specular * highlight)[:, None]).clamp(0.0, 1.0)


def render(
    fitted: FittedShape,
    poses: np.ndarray,
    intrinsics: Dict[str, float],
    resolution: int,
    light: Light,
    eps: float = 1e-5,
    max_steps: int = 1024,
) -> Tuple[np.ndarray, np.ndarray]:
    """Render a fitted shape from every pose.

    Rays start where they enter the mesh's bounding box (grown by 0.02) and trace the grid SDF, whose zero
    set is the mesh's surface, with a minimum step of a tenth of a grid cell; normals, materials and
    occlusion come from the exact analytic SDF.
    Returns `Float[ndarray, "num_views height width 3"]` object colours (0 off the object) and the
    `Bool[ndarray, "num_views height width"]` object mask (the rays that hit the surface).
    """
    shape, grid = fitted.shape, fitted.grid
    bounds = (fitted.vertices.min(axis=0) - 0.02, fitted.vertices.max(axis=0) + 0.02)
    origins_np, directions_np = camera_rays(poses, intrinsics, resolution, resolution)
    origins = torch.from_numpy(origins_np.reshape(-1, 3).astype(np.float32))
    directions = torch.from_numpy(directions_np.reshape(-1, 3).astype(np.float32))
    lo, hi = (torch.from_numpy(np.asarray(b, dtype=np.float32)) for b in bounds)
    with torch.no_grad():
        t_near, t_far = box_interval(origins, directions, lo, hi)
        t_hit = sphere_trace(
            grid, origins, directions, t_near, t_far, eps, max_steps, 1.0 / grid.lipschitz, 0.1 * grid.cell
        )
        hit = torch.isfinite(t_hit)
        points = origins[hit] + t_hit[hit, None] * directions[hit]
        colors = torch.zeros_like(origins)
        if points.numel():
            normals = sdf_normals(shape.sdf, points)
            colors[hit] = shade(shape, points, normals, directions[hit], light)
    shape_hw = (len(poses), resolution, resolution)
    return colors.numpy().reshape(*shape_hw, 3), hit.numpy().reshape(shape_hw)


# ----------------------------------------------------------------------------------------------
# Backgrounds.


def upsample(grid: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upsampling of a (h, w) grid to (height, width), grid nodes spread over the image."""
    ys = np.linspace(0.0, grid.shape[0] - 1.0, height)
    xs = np.linspace(0.0, grid.shape[1] - 1.0, width)
    y0 = np.minimum(ys.astype(int), grid.shape[0] - 2)
    x0 = np.minimum(xs.astype(int), grid.shape[1] - 2)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    g00, g01 = grid[y0][:, x0], grid[y0][:, x0 + 1]
    g10, g11 = grid[y0 + 1][:, x0], grid[y0 + 1][:, x0 + 1]
    return (g00 * (1 - fx) + g01 * fx) * (1 - fy) + (g10 * (1 - fx) + g11 * fx) * fy


def _pattern(style: str, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A (height, width) blend weight in [0, 1] for one background style."""
    y, x = np.meshgrid(np.linspace(0.0, 1.0, height), np.linspace(0.0, 1.0, width), indexing="ij")
    angle = rng.uniform(0.0, math.pi)
    along = x * math.cos(angle) + y * math.sin(angle)
    if style == "solid":
        return np.zeros((height, width))
    if style == "gradient":
        return (along - along.min()) / max(along.max() - along.min(), 1e-9)
    if style == "noise":
        cells = int(rng.integers(3, 9))
        return upsample(rng.random((cells, cells)), height, width)
    frequency = rng.uniform(2.0, 7.0)
    return 0.5 + 0.5 * np.sin(2 * math.pi * frequency * along + rng.uniform(0.0, 2 * math.pi))


def background(rng: np.random.Generator, height: int, width: int, hue: float) -> np.ndarray:
    """A random background, `Float[ndarray, "height width 3"]`: solid, gradient, value noise or stripes,
    blending two colours whose hue is near `hue` (the instance's scene tint)."""
    style = BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))]
    colors = [hsv_to_rgb((hue + rng.normal(0.0, 0.08)) % 1.0, rng.uniform(0.05, 0.6), rng.uniform(0.25, 0.95))
              for _ in range(2)]
    weight = _pattern(style, rng, height, width)[..., None]
    return colors[0] * (1.0 - weight) + colors[1] * weight
