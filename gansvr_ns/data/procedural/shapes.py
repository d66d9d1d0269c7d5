"""Parametric objects of the procedural source, as unions of analytic signed distance functions (SDFs).

An object is a list of `Part`s, each an SDF primitive (rounded box, round cone, cylinder, ellipsoid,
convex polytope) placed in the object's raw frame, combined in order by union, smooth union or
subtraction. Every primitive SDF is 1-Lipschitz and so are min, max, the polynomial smooth-min and mirror
folds, so the combined SDF never over-estimates the distance to the surface: sphere tracing it cannot step
through the object. Each part carries a material slot (body, glass, rubber, ...) and optional box regions
that recolour parts of it (windows, lights). `fit_unit_sphere` meshes the SDF by marching cubes and
rescales both mesh and SDF into the canonical frame (+z up, front +x, centred, inside the unit sphere).

Points are `Float[Tensor, "num_points 3"]` (float32) throughout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

MATERIALS = ("body", "accent", "glass", "rubber", "metal", "light_front", "light_back", "trim")
BODY, ACCENT, GLASS, RUBBER, METAL, LIGHT_FRONT, LIGHT_BACK, TRIM = range(len(MATERIALS))
INF = float("inf")

Coords = Tuple[Tensor, Tensor, Tensor]
"""A point set as three `Float[Tensor, "num_points"]` coordinate columns (x, y, z)."""


# ----------------------------------------------------------------------------------------------
# Primitive SDFs in a part's local frame.


def _length(*components: Tensor) -> Tensor:
    """Euclidean norm sqrt(sum_i c_i^2) of stacked components."""
    total = components[0] * components[0]
    for c in components[1:]:
        total = total + c * c
    return torch.sqrt(total)


def sd_box(q: Coords, half: Sequence[float], radius: float) -> Tensor:
    """Rounded box with half extents `half` (rounding included) and edge radius `radius`.

    With d = |q| - (half - radius): sdf = |max(d, 0)| + min(max_i d_i, 0) - radius.
    """
    d = [q[i].abs() - (half[i] - radius) for i in range(3)]
    outside = _length(*[c.clamp(min=0.0) for c in d])
    inside = torch.maximum(torch.maximum(d[0], d[1]), d[2]).clamp(max=0.0)
    return outside + inside - radius


def sd_cylinder(q: Coords, axis: int, radius: float, half_height: float, rounding: float) -> Tensor:
    """Capped cylinder along local `axis` with rounded rims.

    With rho the distance from the axis and a the axial coordinate, w = (rho - (r - e), |a| - (h - e)):
    sdf = min(max(w), 0) + |max(w, 0)| - e.
    """
    others = [i for i in range(3) if i != axis]
    w0 = _length(q[others[0]], q[others[1]]) - (radius - rounding)
    w1 = q[axis].abs() - (half_height - rounding)
    inside = torch.maximum(w0, w1).clamp(max=0.0)
    return inside + _length(w0.clamp(min=0.0), w1.clamp(min=0.0)) - rounding


def sd_round_cone(q: Coords, a: Sequence[float], b: Sequence[float], r1: float, r2: float) -> Tensor:
    """Round cone: the convex hull of a sphere of radius r1 at a and one of radius r2 at b (capsule if r1 = r2).

    In the plane of the axis, with u the axial and v the radial coordinate of q - a, L = |b - a| and
    sin(alpha) = (r1 - r2) / L, the closest feature follows from s = u cos(alpha) - v sin(alpha):
    s < 0 -> |(u, v)| - r1; s > L cos(alpha) -> |(u - L, v)| - r2; else u sin(alpha) + v cos(alpha) - r1.
    """
    axis = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    length = float(np.linalg.norm(axis))
    t = axis / length
    sin_a = (r1 - r2) / length
    cos_a = math.sqrt(max(1.0 - sin_a * sin_a, 0.0))
    pa = [q[i] - float(a[i]) for i in range(3)]
    u = pa[0] * float(t[0]) + pa[1] * float(t[1]) + pa[2] * float(t[2])
    v = _length(*[pa[i] - u * float(t[i]) for i in range(3)])
    s = u * cos_a - v * sin_a
    side = u * sin_a + v * cos_a - r1
    start = _length(u, v) - r1
    end = _length(u - length, v) - r2
    return torch.where(s < 0.0, start, torch.where(s > length * cos_a, end, side))


def sd_ellipsoid(q: Coords, radii: Sequence[float]) -> Tensor:
    """Ellipsoid with semi-axes `radii`, as the bound (|q / radii| - 1) * min(radii).

    The map q -> q / radii shrinks lengths by at most 1 / min(radii), so this never exceeds the true distance.
    """
    return (_length(*[q[i] / radii[i] for i in range(3)]) - 1.0) * min(radii)


def sd_planes(q: Coords, planes: Sequence[Tuple[Sequence[float], float]]) -> Tensor:
    """Convex polytope {q : n_k . q <= o_k for all k}, as max_k (n_k . q - o_k) with unit normals n_k.

    Exact inside and on the faces, a lower bound near edges outside.
    """
    result: Optional[Tensor] = None
    for normal, offset in planes:
        d = q[0] * normal[0] + q[1] * normal[1] + q[2] * normal[2] - offset
        result = d if result is None else torch.maximum(result, d)
    assert result is not None
    return result


def plane(normal: Sequence[float], offset: float) -> Tuple[Tuple[float, float, float], float]:
    """A half-space n . q <= offset, with n normalised (and offset divided by |n|)."""
    n = np.asarray(normal, dtype=np.float64)
    norm = float(np.linalg.norm(n))
    return (float(n[0] / norm), float(n[1] / norm), float(n[2] / norm)), float(offset / norm)


PRIMITIVES: Dict[str, Callable[..., Tensor]] = {
    "box": sd_box,
    "cylinder": sd_cylinder,
    "cone": sd_round_cone,
    "ellipsoid": sd_ellipsoid,
    "planes": sd_planes,
}


def smooth_min(a: Tensor, b: Tensor, k: float) -> Tensor:
    """Polynomial smooth minimum: h = clamp(1/2 + (b - a) / 2k, 0, 1), smin = b + h (a - b) - k h (1 - h).

    Its gradient is h grad(a) + (1 - h) grad(b), so it stays 1-Lipschitz.
    """
    h = (0.5 + 0.5 * (b - a) / k).clamp(0.0, 1.0)
    return b + h * (a - b) - k * h * (1.0 - h)


# ----------------------------------------------------------------------------------------------
# Parts and shapes.


@dataclass(frozen=True)
class Region:
    """A box [lo, hi] in a part's local frame whose surface takes another material (windows, lights)."""

    lo: Tuple[float, float, float]
    hi: Tuple[float, float, float]
    material: int


@dataclass(frozen=True)
class Part:
    """One primitive of an object, placed in the raw object frame.

    A raw point p is first mirrored (p_k -> m_k + |p_k - m_k| for each axis k with a mirror plane m_k),
    then expressed in the part's local frame q = rotation^T (p - center), where the primitive is evaluated.
    """

    kind: str
    """Key of `PRIMITIVES`."""
    params: Dict
    """Keyword arguments of the primitive function."""
    material: int
    center: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    rotation: Optional[Tuple[Tuple[float, ...], ...]] = None
    """3x3 matrix whose columns are the local axes in the raw frame; None for identity."""
    mirror: Tuple[Optional[float], Optional[float], Optional[float]] = (None, None, None)
    op: str = "union"
    """How the part joins the shape built so far: "union", "smooth" (smooth union) or "subtract"."""
    blend: float = 0.0
    """Smooth-union radius k (raw units) for op "smooth"."""
    regions: Tuple[Region, ...] = ()

    def local(self, p: Coords) -> Coords:
        """Mirror, translate and rotate raw points into the part's local frame."""
        q = [p[i] if m is None else m + (p[i] - m).abs() for i, m in enumerate(self.mirror)]
        q = [q[i] - self.center[i] for i in range(3)]
        if self.rotation is None:
            return q[0], q[1], q[2]
        r = self.rotation
        return tuple(q[0] * r[0][j] + q[1] * r[1][j] + q[2] * r[2][j] for j in range(3))  # type: ignore

    def sdf(self, p: Coords) -> Tensor:
        return PRIMITIVES[self.kind](self.local(p), **self.params)


@dataclass
class Shape:
    """An object: its parts, materials, and the similarity that maps the raw frame to the canonical frame.

    A canonical point x corresponds to the raw point p = x / scale + offset, and the canonical SDF is
    sdf(x) = scale * sdf_raw(x / scale + offset) (exact under uniform scaling).
    """

    category: str
    subtype: str
    parts: List[Part]
    colors: np.ndarray
    """`Float[ndarray, "num_materials 3"]` base colour of every material slot, in [0, 1]."""
    specular: np.ndarray
    """`Float[ndarray, "num_materials"]` specular strength of every material slot."""
    raw_radius: float
    """The raw object lies inside the cube [-raw_radius, raw_radius]^3."""
    scale: float = 1.0
    offset: np.ndarray = field(default_factory=lambda: np.zeros(3))

    def _raw(self, x: Tensor) -> Coords:
        return tuple(x[:, i] / self.scale + float(self.offset[i]) for i in range(3))  # type: ignore

    def sdf_raw(self, p: Coords) -> Tensor:
        """SDF of the raw object, combining the parts in order."""
        d: Optional[Tensor] = None
        for part in self.parts:
            di = part.sdf(p)
            if d is None:
                d = di
            elif part.op == "union":
                d = torch.minimum(d, di)
            elif part.op == "smooth":
                d = smooth_min(d, di, part.blend)
            elif part.op == "subtract":
                d = torch.maximum(d, -di)
            else:
                raise ValueError(f"unknown part operation {part.op!r}")
        assert d is not None
        return d

    def sdf(self, x: Tensor) -> Tensor:
        """SDF in the canonical frame: `Float[Tensor, "num_points 3"]` -> `Float[Tensor, "num_points"]`."""
        return self.sdf_raw(self._raw(x)) * self.scale

    def material(self, x: Tensor) -> Tensor:
        """Material slot of surface points `x`: that of the part with the smallest |sdf|, then its regions."""
        p = self._raw(x)
        distances = torch.stack([part.sdf(p).abs() for part in self.parts], dim=-1)
        best = distances.argmin(dim=-1)
        result = torch.zeros_like(best)
        for j, part in enumerate(self.parts):
            chosen = best == j
            result[chosen] = part.material
            if part.regions:
                q = part.local(p)
                for region in part.regions:
                    inside = chosen.clone()
                    for i in range(3):
                        inside &= (q[i] >= region.lo[i]) & (q[i] <= region.hi[i])
                    result[inside] = region.material
        return result


def evaluate_grid(sdf: Callable[[Tensor], Tensor], axes: Sequence[np.ndarray], chunk: int = 1 << 18) -> np.ndarray:
    """Evaluate `sdf` on the grid axes[0] x axes[1] x axes[2]: `Float[ndarray, "nx ny nz"]`."""
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    points = torch.from_numpy(grid.astype(np.float32))
    with torch.no_grad():
        values = torch.cat([sdf(points[i : i + chunk]) for i in range(0, len(points), chunk)])
    return values.numpy().reshape(len(axes[0]), len(axes[1]), len(axes[2]))


def raw_bounds(shape: Shape, samples: int = 48) -> Tuple[np.ndarray, np.ndarray]:
    """A box [lo, hi] that contains the raw object, from the SDF on a coarse grid over the raw cube.

    Every surface point is within half a cell diagonal h of a grid node, so the nodes with sdf < h, grown by
    one cell, bound the surface.
    """
    r = shape.raw_radius
    axis = np.linspace(-r, r, samples)
    cell = axis[1] - axis[0]
    values = evaluate_grid(lambda x: shape.sdf_raw((x[:, 0], x[:, 1], x[:, 2])), [axis] * 3)
    near = values < cell * math.sqrt(3.0) / 2.0
    if not near.any():
        raise RuntimeError(f"procedural {shape.category} ({shape.subtype}) is empty")
    border = near.copy()
    border[1:-1, 1:-1, 1:-1] = False
    if border.any():
        raise RuntimeError(f"procedural {shape.category} ({shape.subtype}) exceeds its raw radius {r}")
    index = np.argwhere(near)
    return axis[index.min(axis=0)] - cell, axis[index.max(axis=0)] + cell


@dataclass
class GridSDF:
    """Trilinear interpolation of SDF samples on a regular grid, in the canonical frame.

    Marching cubes places its vertices where this interpolant crosses zero, so tracing it (rather than the
    analytic SDF, whose sharp thin edges marching cubes chamfers) gives silhouettes that match `mesh.ply`.
    Along each axis the interpolant's slope is a weighted mean of neighbour differences of a 1-Lipschitz
    function, so |d/dx_i| <= 1 and its gradient norm is at most sqrt(3) (`lipschitz`).
    """

    volume: Tensor
    """`Float[Tensor, "1 1 nx ny nz"]` SDF samples in canonical units."""
    origin: Tuple[float, float, float]
    """Canonical position of grid node (0, 0, 0)."""
    cell: float
    """Canonical spacing of grid nodes."""
    lipschitz: float = math.sqrt(3.0)

    def __call__(self, x: Tensor) -> Tensor:
        """`Float[Tensor, "num_points 3"]` -> `Float[Tensor, "num_points"]`; border values outside the grid."""
        sizes = self.volume.shape[2:]
        coords = [(x[:, i] - self.origin[i]) / self.cell * (2.0 / (sizes[i] - 1)) - 1.0 for i in range(3)]
        grid = torch.stack(coords[::-1], dim=-1).view(1, -1, 1, 1, 3)  # grid_sample wants (z, y, x) order
        values = torch.nn.functional.grid_sample(
            self.volume, grid, mode="bilinear", padding_mode="border", align_corners=True
        )
        return values.view(-1)


@dataclass
class FittedShape:
    """A shape in the canonical frame with its watertight mesh and the grid SDF that the mesh was cut from."""

    shape: Shape
    vertices: np.ndarray
    """`Float[ndarray, "num_vertices 3"]`."""
    faces: np.ndarray
    """`Int[ndarray, "num_faces 3"]`, counter-clockwise seen from outside."""
    grid: GridSDF


def fit_unit_sphere(shape: Shape, resolution: int = 96, radius: float = 0.9) -> FittedShape:
    """Mesh the raw SDF by marching cubes and map shape, mesh and grid into the canonical frame.

    The grid has `resolution` cells along the object's longest side plus two cells of padding on every side,
    so the zero level set is closed (watertight). The mesh's bounding-box centre c goes to the origin and the
    scale s = radius / max_v |v - c| puts its farthest vertex at `radius`: x = s (p - c) for raw points p.
    """
    from skimage.measure import marching_cubes

    lo, hi = raw_bounds(shape)
    cell = float((hi - lo).max()) / resolution
    counts = np.ceil((hi - lo) / cell).astype(int) + 5
    axes = [lo[i] - 2 * cell + cell * np.arange(counts[i]) for i in range(3)]
    volume = evaluate_grid(lambda x: shape.sdf_raw((x[:, 0], x[:, 1], x[:, 2])), axes)
    verts, faces, _, _ = marching_cubes(volume, level=0.0, spacing=(cell,) * 3, allow_degenerate=False)
    origin = np.array([a[0] for a in axes])
    verts = verts.astype(np.float64) + origin
    center = (verts.min(axis=0) + verts.max(axis=0)) / 2.0
    scale = radius / float(np.linalg.norm(verts - center, axis=1).max())
    grid = GridSDF(
        volume=torch.from_numpy(volume * np.float32(scale))[None, None].contiguous(),
        origin=tuple(float(v) for v in (origin - center) * scale),
        cell=cell * scale,
    )
    normalised = replace(shape, scale=scale, offset=center)
    return FittedShape(normalised, (verts - center) * scale, faces.astype(np.int64), grid)


# ----------------------------------------------------------------------------------------------
# Builders. Raw units are roughly metres for cars and chairs; an airplane's fuselage spans x in [-1, 1].


def _u(rng: np.random.Generator, low: float, high: float) -> float:
    return float(rng.uniform(low, high))


def _rot_y(angle: float) -> Tuple[Tuple[float, ...], ...]:
    """Rotation by `angle` (radians) about +y, as a nested tuple (columns are the rotated axes)."""
    c, s = math.cos(angle), math.sin(angle)
    return ((c, 0.0, s), (0.0, 1.0, 0.0), (-s, 0.0, c))


CAR_SPECS: Dict[str, Dict[str, Tuple[float, float]]] = {
    # length, width/length, wheel radius, clearance (x wheel radius), lower body height,
    # cabin front (fraction of length from centre), cabin rear, cabin height, windscreen run and rear run
    # (x cabin height).
    "sedan": dict(length=(4.3, 5.0), width=(0.37, 0.42), wheel=(0.31, 0.36), clearance=(0.45, 0.6),
                  body=(0.55, 0.7), front=(0.14, 0.22), rear=(-0.32, -0.24), cabin=(0.42, 0.52),
                  run_front=(0.9, 1.4), run_rear=(0.7, 1.2)),
    "hatchback": dict(length=(3.7, 4.3), width=(0.4, 0.45), wheel=(0.29, 0.33), clearance=(0.45, 0.6),
                      body=(0.6, 0.72), front=(0.14, 0.22), rear=(-0.48, -0.44), cabin=(0.5, 0.6),
                      run_front=(0.9, 1.3), run_rear=(0.2, 0.5)),
    "suv": dict(length=(4.4, 5.0), width=(0.39, 0.43), wheel=(0.36, 0.42), clearance=(0.65, 0.85),
                body=(0.75, 0.95), front=(0.12, 0.2), rear=(-0.48, -0.44), cabin=(0.6, 0.75),
                run_front=(0.6, 0.9), run_rear=(0.1, 0.3)),
    "pickup": dict(length=(5.0, 5.6), width=(0.36, 0.4), wheel=(0.38, 0.44), clearance=(0.7, 0.85),
                   body=(0.75, 0.9), front=(0.12, 0.2), rear=(-0.16, -0.08), cabin=(0.6, 0.75),
                   run_front=(0.5, 0.8), run_rear=(0.0, 0.1)),
    "van": dict(length=(4.6, 5.3), width=(0.38, 0.42), wheel=(0.33, 0.38), clearance=(0.5, 0.65),
                body=(0.85, 1.0), front=(0.24, 0.32), rear=(-0.49, -0.46), cabin=(0.8, 1.0),
                run_front=(0.4, 0.7), run_rear=(0.0, 0.08)),
}


def build_car(rng: np.random.Generator) -> Tuple[str, List[Part], float]:
    """A car of a random type: lower body, sloped cabin with windows, wheels in arches, bumpers, spoiler."""
    kind = str(rng.choice(list(CAR_SPECS)))
    spec = {k: _u(rng, *v) for k, v in CAR_SPECS[kind].items()}
    length, wheel = spec["length"], spec["wheel"]
    width = length * spec["width"]
    bottom = wheel * spec["clearance"]
    top = max(bottom + spec["body"], 2 * wheel + 0.25)  # the wheel arches stay below the body's top
    parts = [_car_body(length, width, bottom, top, rng)]
    cabin_front, cabin_rear = length * spec["front"], length * spec["rear"]
    height = spec["cabin"]
    cabin_material = ACCENT if rng.random() < 0.3 else BODY
    parts.append(_car_cabin(cabin_front, cabin_rear, width, top, height, spec, cabin_material, rng))
    if kind == "pickup":
        parts += _pickup_bed(length, width, top, cabin_rear, rng)
    parts += _car_wheels(length, width, wheel, rng)
    for sign in (1.0, -1.0):
        half = (0.1, width / 2 - 0.04, _u(rng, 0.08, 0.13))
        material = TRIM if rng.random() < 0.6 else BODY
        center = (sign * (length / 2 - 0.02), 0.0, bottom + 0.15)
        parts.append(Part("box", dict(half=half, radius=0.05), material, center=center))
    if kind in ("sedan", "hatchback") and rng.random() < 0.4:
        parts += _car_spoiler(kind, length, width, top, cabin_rear, height, spec, rng)
    return kind, parts, length / 2 + 1.0


def _car_body(length: float, width: float, bottom: float, top: float, rng: np.random.Generator) -> Part:
    half = (length / 2, width / 2, (top - bottom) / 2)
    hx, hy, hz = half
    light_y, light_z = _u(rng, 0.25, 0.4), _u(rng, 0.12, 0.2)
    regions = (
        Region((hx - 0.12, hy - light_y, hz - 0.08 - light_z), (INF, hy - 0.08, hz - 0.08), LIGHT_FRONT),
        Region((hx - 0.12, -INF, hz - 0.1 - 0.2), (INF, hy * _u(rng, 0.3, 0.5), hz - 0.1), TRIM),
        Region((-INF, hy - light_y, hz - 0.08 - light_z), (-hx + 0.12, hy - 0.06, hz - 0.08), LIGHT_BACK),
    )
    return Part("box", dict(half=half, radius=_u(rng, 0.1, 0.22)), BODY, center=(0.0, 0.0, (top + bottom) / 2),
                mirror=(None, 0.0, None), regions=regions)


def _car_cabin(
    front: float, rear: float, width: float, base: float, height: float, spec: Dict, material: int,
    rng: np.random.Generator,
) -> Part:
    """Cabin as a polytope: floor sunk into the body, roof, sides leaning in, sloped windscreen and rear window."""
    run_front, run_rear = spec["run_front"] * height, spec["run_rear"] * height
    half_width = width / 2 * _u(rng, 0.86, 0.94)
    lean = width * _u(rng, 0.05, 0.1) / height
    planes = (
        plane((0, 0, -1), 0.15),
        plane((0, 0, 1), height),
        plane((0, 1, lean), half_width),
        plane((1, 0, run_front / height), front),
        plane((-1, 0, run_rear / height), -rear),
    )
    window = Region((-INF, -INF, _u(rng, 0.05, 0.09)), (INF, INF, height - _u(rng, 0.06, 0.1)), GLASS)
    return Part("planes", dict(planes=planes), material, center=(0.0, 0.0, base), mirror=(None, 0.0, None),
                op="smooth", blend=0.08, regions=(window,))


def _pickup_bed(length: float, width: float, top: float, cabin_rear: float, rng: np.random.Generator) -> List[Part]:
    wall = _u(rng, 0.2, 0.35)
    back = -length / 2
    walls = Part("box", dict(half=((cabin_rear - back) / 2, width / 2, (wall + 0.1) / 2), radius=0.05), BODY,
                 center=((cabin_rear + back) / 2, 0.0, top + (wall - 0.1) / 2))
    inner_back, inner_front = back + 0.12, cabin_rear - 0.1
    hollow = Part("box", dict(half=((inner_front - inner_back) / 2, width / 2 - 0.12, 0.6), radius=0.03), TRIM,
                  center=((inner_front + inner_back) / 2, 0.0, top - 0.15 + 0.6), op="subtract")
    return [walls, hollow]


def _car_wheels(length: float, width: float, wheel: float, rng: np.random.Generator) -> List[Part]:
    """Tyres with hubs at four corners (one part each, mirrored in x about the axle midpoint and in y)."""
    front = length / 2 - wheel - length * _u(rng, 0.1, 0.16)
    rear = -length / 2 + wheel + length * _u(rng, 0.09, 0.15)
    mirror = ((front + rear) / 2, 0.0, None)
    tyre_width = _u(rng, 0.2, 0.3)
    y = width / 2 - tyre_width / 2 + _u(rng, 0.0, 0.03)
    arch = Part("cylinder", dict(axis=1, radius=wheel + 0.11, half_height=tyre_width / 2 + 0.12, rounding=0.02),
                TRIM, center=(front, y + 0.1, wheel), mirror=mirror, op="subtract")
    tyre = Part("cylinder", dict(axis=1, radius=wheel, half_height=tyre_width / 2, rounding=0.05), RUBBER,
                center=(front, y, wheel), mirror=mirror)
    hub = Part("cylinder", dict(axis=1, radius=wheel * _u(rng, 0.5, 0.65), half_height=tyre_width / 2 + 0.015,
                                rounding=0.02), METAL, center=(front, y, wheel), mirror=mirror)
    return [arch, tyre, hub]


def _car_spoiler(
    kind: str, length: float, width: float, top: float, cabin_rear: float, height: float, spec: Dict,
    rng: np.random.Generator,
) -> List[Part]:
    material = TRIM if rng.random() < 0.5 else BODY
    if kind == "hatchback":  # roof spoiler over the rear window
        x = cabin_rear + spec["run_rear"] * height + 0.1  # the rear window's top edge
        return [Part("box", dict(half=(0.16, width * 0.4, 0.05), radius=0.03), material,
                     center=(x, 0.0, top + height + 0.02))]
    x = -length / 2 + 0.3
    lift = _u(rng, 0.18, 0.28)
    wing = Part("box", dict(half=(0.15, width / 2 - 0.1, 0.05), radius=0.03), material, center=(x, 0.0, top + lift))
    stand = Part("box", dict(half=(0.06, 0.05, lift / 2 + 0.02), radius=0.02), material,
                 center=(x + 0.02, width / 2 - 0.4, top + lift / 2), mirror=(None, 0.0, None))
    return [stand, wing]


def build_chair(rng: np.random.Generator) -> Tuple[str, List[Part], float]:
    """A chair: seat, one of three leg styles (four legs, pedestal, sled), a slab or railed back, optional arms."""
    legs = str(rng.choice(["four", "pedestal", "sled"], p=[0.6, 0.2, 0.2]))
    back = str(rng.choice(["slab", "rails"]))
    depth, width = _u(rng, 0.4, 0.52), _u(rng, 0.42, 0.56)
    thick, seat_top = _u(rng, 0.05, 0.12), _u(rng, 0.42, 0.5)
    seat_bottom = seat_top - thick
    frame = ACCENT if rng.random() < 0.3 else BODY
    cushion = ACCENT if rng.random() < 0.6 else frame
    parts = [Part("box", dict(half=(depth / 2, width / 2, thick / 2), radius=min(0.03, thick / 2 - 0.005)), cushion,
                  center=(0.0, 0.0, seat_bottom + thick / 2))]
    builders = {"four": _chair_four_legs, "pedestal": _chair_pedestal, "sled": _chair_sled}
    parts += builders[legs](depth, width, seat_bottom, frame, rng)
    tilt = math.radians(_u(rng, 0.0, 14.0))
    height = _u(rng, 0.35, 0.55)
    thickness = _u(rng, 0.025, 0.05)
    back_x = -depth / 2 + thickness
    if back == "slab":
        half = (thickness, width / 2 * _u(rng, 0.9, 1.0), (height + thick) / 2)
        lean = (-math.sin(tilt), 0.0, math.cos(tilt))
        center = tuple(c + half[2] * d for c, d in zip((back_x, 0.0, seat_bottom), lean))
        parts.append(Part("box", dict(half=half, radius=min(0.02, thickness - 0.005)), cushion,
                          center=center, rotation=_rot_y(-tilt)))
    else:
        parts += _chair_rails(back_x, width, seat_bottom, height + thick, tilt, frame, cushion, rng)
    if legs != "sled" and rng.random() < 0.35:
        parts += _chair_arms(depth, width, seat_top, back_x, seat_bottom, tilt, frame, rng)
    return f"{legs}-{back}", parts, 1.3


def _chair_four_legs(depth: float, width: float, seat_bottom: float, material: int, rng) -> List[Part]:
    radius, inset, splay = _u(rng, 0.022, 0.04), _u(rng, 0.015, 0.05), _u(rng, 0.0, 0.06)
    x, y = depth / 2 - inset - radius, width / 2 - inset - radius
    corners = (0.0, 0.0, None)
    if rng.random() < 0.5:
        foot = radius * _u(rng, 0.7, 1.0)
        leg = Part("cone", dict(a=(x + splay, y + splay, foot), b=(x, y, seat_bottom + 0.01), r1=foot, r2=radius),
                   material, mirror=corners)
    else:
        leg = Part("box", dict(half=(radius, radius, seat_bottom / 2 + 0.005), radius=0.006), material,
                   center=(x, y, seat_bottom / 2), mirror=corners)
    parts = [leg]
    if rng.random() < 0.4:  # stretchers between front and back legs
        z = _u(rng, 0.1, 0.2)
        slope = splay * (1.0 - z / seat_bottom)
        parts.append(Part("cone", dict(a=(0.0, y + slope, z), b=(x + slope, y + slope, z), r1=0.018, r2=0.018),
                          material, mirror=corners))
    return parts


def _chair_pedestal(depth: float, width: float, seat_bottom: float, material: int, rng) -> List[Part]:
    reach = _u(rng, 0.24, 0.3) / math.sqrt(2.0)
    column = Part("cylinder", dict(axis=2, radius=_u(rng, 0.025, 0.04), half_height=(seat_bottom - 0.05) / 2,
                                   rounding=0.005), METAL, center=(0.0, 0.0, (seat_bottom + 0.05) / 2))
    hub = Part("cylinder", dict(axis=2, radius=0.06, half_height=0.035, rounding=0.01), material, center=(0, 0, 0.08))
    spoke = Part("cone", dict(a=(0.0, 0.0, 0.08), b=(reach, reach, 0.03), r1=0.03, r2=0.028), material,
                 mirror=(0.0, 0.0, None))
    return [column, hub, spoke]


def _chair_sled(depth: float, width: float, seat_bottom: float, material: int, rng) -> List[Part]:
    radius = _u(rng, 0.02, 0.026)
    y = width / 2 - radius - 0.01
    front, rear = depth / 2 - 0.02 + _u(rng, 0.0, 0.05), -depth / 2 + 0.02 - _u(rng, 0.0, 0.05)
    side = (None, 0.0, None)
    top = seat_bottom + 0.01
    segments = [((front, y, radius), (front - 0.03, y, top)), ((rear, y, radius), (rear + 0.03, y, top)),
                ((rear, y, radius), (front, y, radius))]
    return [Part("cone", dict(a=a, b=b, r1=radius, r2=radius), material, mirror=side) for a, b in segments]


def _chair_rails(
    back_x: float, width: float, base: float, height: float, tilt: float, frame: int, cushion: int, rng
) -> List[Part]:
    """Back made of two posts, a top rail and sometimes a middle rail, all leaning back by `tilt`."""
    radius = _u(rng, 0.02, 0.03)
    y = width / 2 - radius - 0.01
    lean = np.array([-math.sin(tilt), 0.0, math.cos(tilt)])
    bottom = np.array([back_x, y, base])
    post = Part("cone", dict(a=tuple(bottom), b=tuple(bottom + height * lean), r1=radius, r2=radius), frame,
                mirror=(None, 0.0, None))
    parts = [post]
    rail_heights = [height - _u(rng, 0.04, 0.08)] + ([height * _u(rng, 0.45, 0.6)] if rng.random() < 0.5 else [])
    for i, h in enumerate(rail_heights):
        half_z = _u(rng, 0.04, 0.08) if i == 0 else 0.03
        center = np.array([back_x, 0.0, base]) + h * lean
        parts.append(Part("box", dict(half=(0.025, y, half_z), radius=0.01), cushion if i == 0 else frame,
                          center=tuple(center), rotation=_rot_y(-tilt)))
    return parts


def _chair_arms(
    depth: float, width: float, seat_top: float, back_x: float, base: float, tilt: float, material: int, rng
) -> List[Part]:
    z = seat_top + _u(rng, 0.18, 0.25)
    y = width / 2 + _u(rng, -0.02, 0.04)
    rear = back_x - (z - base) * math.tan(tilt)
    front = depth / 2 - 0.02
    rest = Part("box", dict(half=((front - rear) / 2 + 0.03, 0.035, 0.025), radius=0.01), material,
                center=((front + rear) / 2, y, z), mirror=(None, 0.0, None))
    post = Part("cone", dict(a=(front - 0.05, y, seat_top - 0.03), b=(front - 0.05, y, z), r1=0.022, r2=0.022),
                material, mirror=(None, 0.0, None))
    return [rest, post]


def wing_planes(
    root_le: float, chord: float, span: float, sweep_deg: float, taper: float, half_thick: Tuple[float, float],
    dihedral_deg: float,
) -> Tuple[Tuple[Tuple[float, float, float], float], ...]:
    """Planform polytope of a half wing in y >= 0 (to be mirrored in y), root chord at y = 0, tip at y = span.

    Leading edge x = root_le - y tan(sweep); trailing edge from root_le - chord to the tip's leading edge minus
    taper * chord; half thickness shrinks linearly from root to tip about the plane z = y tan(dihedral).
    """
    tan_le = math.tan(math.radians(sweep_deg))
    tip_te = root_le - span * tan_le - taper * chord
    root_te = root_le - chord
    tan_te = (root_te - tip_te) / span
    thin = (half_thick[0] - half_thick[1]) / span
    rise = math.tan(math.radians(dihedral_deg))
    return (
        plane((1, tan_le, 0), root_le),
        plane((-1, -tan_te, 0), -root_te),
        plane((0, 1, 0), span),
        plane((0, -(rise - thin), 1), half_thick[0]),
        plane((0, rise + thin, -1), half_thick[0]),
    )


def fin_planes(root_le: float, chord: float, height: float, sweep_deg: float, taper: float, half_thick: float):
    """Vertical fin polytope: root chord on z = 0, tip at z = height, |y| <= half_thick (mirror in y)."""
    tan_le = math.tan(math.radians(sweep_deg))
    tip_te = root_le - height * tan_le - taper * chord
    root_te = root_le - chord
    tan_te = (root_te - tip_te) / height
    return (
        plane((1, 0, tan_le), root_le),
        plane((-1, 0, -tan_te), -root_te),
        plane((0, 0, 1), height),
        plane((0, 0, -1), 0.05),
        plane((0, 1, 0), half_thick),
    )


AIRPLANE_TYPES = ("airliner", "jet", "prop", "bizjet")


def build_airplane(rng: np.random.Generator) -> Tuple[str, List[Part], float]:
    """An airplane along x (nose at +x): fuselage of round cones, swept wings, tail, engines by type."""
    kind = str(rng.choice(AIRPLANE_TYPES))
    radius = _u(rng, 0.08, 0.11) if kind in ("jet", "bizjet") else _u(rng, 0.09, 0.12)
    tail_z = radius * _u(rng, 0.4, 0.8)
    tail_r = radius * _u(rng, 0.25, 0.4)
    tip_r = radius * (_u(rng, 0.06, 0.15) if kind == "jet" else _u(rng, 0.2, 0.35))
    y_sym = (None, 0.0, None)
    window_band = (radius * 0.25, radius * 0.4)
    body_regions = () if kind == "jet" else (Region((-0.4, -INF, window_band[0]), (0.5, INF, window_band[1]), TRIM),)
    if rng.random() < 0.4:
        body_regions += (Region((-INF, -INF, -INF), (INF, INF, -radius * 0.35), ACCENT),)
    cockpit = () if kind == "jet" else (Region((0.7, -INF, radius * 0.2), (0.82, INF, INF), GLASS),)
    parts = [
        Part("cone", dict(a=(-0.45, 0, 0), b=(0.55, 0, 0), r1=radius, r2=radius), BODY, mirror=y_sym,
             regions=body_regions),
        Part("cone", dict(a=(0.55, 0, 0), b=(1.0 - tip_r, 0, -radius * _u(rng, 0.0, 0.2)), r1=radius, r2=tip_r),
             BODY, mirror=y_sym, regions=cockpit),
        Part("cone", dict(a=(-0.45, 0, 0), b=(-1.0 + tail_r, 0, tail_z), r1=radius, r2=tail_r), BODY, mirror=y_sym,
             regions=(Region((-INF, -INF, -INF), (-0.9, INF, INF), METAL),) if kind == "jet" else ()),
    ]
    builders = {"airliner": _airliner, "jet": _jet, "prop": _prop_plane, "bizjet": _bizjet}
    parts += builders[kind](radius, tail_z, rng)
    return kind, parts, 1.6


def _tail(radius: float, tail_z: float, rng, t_tail: bool = False, twin: bool = False) -> List[Part]:
    """Vertical fin(s) on the tail cone and a horizontal stabiliser at its base or on top (T-tail)."""
    chord, height = _u(rng, 0.26, 0.36), _u(rng, 0.28, 0.42) * (0.8 if twin else 1.0)
    sweep = _u(rng, 30.0, 48.0)
    root_le = -0.98 + chord
    fin = fin_planes(root_le, chord, height, sweep, _u(rng, 0.4, 0.7), 0.032)
    fin_material = ACCENT if rng.random() < 0.6 else BODY
    base = tail_z + radius * 0.3
    fin_y = radius * 0.6 if twin else 0.0
    parts = [Part("planes", dict(planes=fin), fin_material, center=(0.0, fin_y, base), mirror=(None, 0.0, None))]
    if twin and rng.random() < 0.5:
        return parts
    stab_chord, stab_span = _u(rng, 0.2, 0.28), _u(rng, 0.28, 0.42)
    if t_tail:
        stab_le, stab_z = root_le - height * math.tan(math.radians(sweep)) + 0.02, base + height - 0.02
    else:
        stab_le, stab_z = -0.98 + stab_chord + _u(rng, 0.0, 0.08), tail_z * 0.8
    stab = wing_planes(stab_le, stab_chord, stab_span, _u(rng, 22.0, 38.0), _u(rng, 0.35, 0.55), (0.03, 0.028),
                       _u(rng, 0.0, 5.0))
    parts.append(Part("planes", dict(planes=stab), BODY, center=(0.0, 0.0, stab_z), mirror=(None, 0.0, None)))
    return parts


def _wing(rng, root_le, chord, span, sweep, taper, dihedral, z, material=BODY) -> Tuple[Part, Dict]:
    half_thick = (_u(rng, 0.035, 0.045), 0.028)
    planes = wing_planes(root_le, chord, span, sweep, taper, half_thick, dihedral)
    geometry = dict(root_le=root_le, sweep=sweep, dihedral=dihedral, z=z, half_thick=half_thick, span=span)
    return Part("planes", dict(planes=planes), material, center=(0.0, 0.0, z), mirror=(None, 0.0, None),
                op="smooth", blend=0.03), geometry


def _under_wing_nacelle(wing: Dict, y: float, radius: float, length: float) -> Part:
    """An engine nacelle hung under the wing at span position y, intake ahead of the leading edge."""
    le = wing["root_le"] - y * math.tan(math.radians(wing["sweep"]))
    thick = wing["half_thick"][0] + (wing["half_thick"][1] - wing["half_thick"][0]) * y / wing["span"]
    z = wing["z"] + y * math.tan(math.radians(wing["dihedral"])) - thick - radius * 0.6
    front = le + length * 0.35
    return Part("cone", dict(a=(front - length, y, z), b=(front, y, z), r1=radius * 0.8, r2=radius), METAL,
                mirror=(None, 0.0, None))


def _airliner(radius: float, tail_z: float, rng) -> List[Part]:
    wing, geo = _wing(rng, _u(rng, 0.15, 0.3), _u(rng, 0.38, 0.5), _u(rng, 0.85, 1.1), _u(rng, 22.0, 35.0),
                      _u(rng, 0.25, 0.4), _u(rng, 3.0, 7.0), -radius * 0.45)
    parts = [wing]
    engine_r, engine_len = _u(rng, 0.05, 0.07), _u(rng, 0.25, 0.35)
    parts.append(_under_wing_nacelle(geo, geo["span"] * _u(rng, 0.3, 0.38), engine_r, engine_len))
    if rng.random() < 0.3:
        parts.append(_under_wing_nacelle(geo, geo["span"] * _u(rng, 0.58, 0.66), engine_r * 0.9, engine_len * 0.9))
    return parts + _tail(radius, tail_z, rng)


def _jet(radius: float, tail_z: float, rng) -> List[Part]:
    wing, _ = _wing(rng, _u(rng, 0.25, 0.45), _u(rng, 0.9, 1.15), _u(rng, 0.5, 0.7), _u(rng, 45.0, 60.0),
                    _u(rng, 0.08, 0.2), _u(rng, -3.0, 0.0), 0.0)
    canopy = Part("ellipsoid", dict(radii=(_u(rng, 0.18, 0.25), radius * 0.55, radius * 0.6)), GLASS,
                  center=(_u(rng, 0.4, 0.55), 0.0, radius * 0.7), op="smooth", blend=0.02)
    parts = [wing, canopy]
    if rng.random() < 0.6:
        parts.append(Part("box", dict(half=(0.2, 0.05, 0.07), radius=0.02), TRIM,
                          center=(0.1, radius + 0.02, -radius * 0.2), mirror=(None, 0.0, None)))
    return parts + _tail(radius, tail_z * 0.3, rng, twin=rng.random() < 0.5)


def _prop_plane(radius: float, tail_z: float, rng) -> List[Part]:
    high = rng.random() < 0.5
    wing, geo = _wing(rng, _u(rng, 0.2, 0.35), _u(rng, 0.25, 0.35), _u(rng, 0.9, 1.2), _u(rng, 0.0, 6.0),
                      _u(rng, 0.55, 1.0), _u(rng, 1.0, 5.0), radius * (0.85 if high else -0.5))
    parts = [wing]
    if rng.random() < 0.35:  # twin engines with spinners on the wings
        y = geo["span"] * _u(rng, 0.3, 0.4)
        nacelle = _under_wing_nacelle(geo, y, _u(rng, 0.05, 0.065), _u(rng, 0.3, 0.4))
        front = nacelle.params["b"]
        spinner = Part("cone", dict(a=front, b=(front[0] + 0.06, front[1], front[2]), r1=0.035, r2=0.015), METAL,
                       mirror=(None, 0.0, None))
        parts += [nacelle, spinner]
    else:
        parts.append(Part("cone", dict(a=(0.95, 0, 0), b=(1.06, 0, 0), r1=radius * 0.45, r2=0.02), METAL))
        angle = _u(rng, 0.0, math.pi)
        c, s = math.cos(angle), math.sin(angle)
        blade = Part("box", dict(half=(0.03, 0.035, 0.3), radius=0.015), TRIM, center=(1.0, 0.0, 0.0),
                     rotation=((1.0, 0.0, 0.0), (0.0, c, -s), (0.0, s, c)))
        parts.append(blade)
    return parts + _tail(radius, tail_z, rng)


def _bizjet(radius: float, tail_z: float, rng) -> List[Part]:
    wing, _ = _wing(rng, _u(rng, 0.05, 0.2), _u(rng, 0.35, 0.45), _u(rng, 0.75, 0.95), _u(rng, 25.0, 35.0),
                    _u(rng, 0.3, 0.45), _u(rng, 2.0, 5.0), -radius * 0.45)
    engine_r = _u(rng, 0.045, 0.06)
    y = radius + engine_r + 0.03
    z = radius * 0.4
    nacelle = Part("cone", dict(a=(-0.7, y, z), b=(-0.38, y, z), r1=engine_r * 0.8, r2=engine_r), METAL,
                   mirror=(None, 0.0, None))
    pylon = Part("box", dict(half=(0.08, y / 2, 0.025), radius=0.01), BODY, center=(-0.55, y / 2, z),
                 mirror=(None, 0.0, None))
    return [wing, pylon, nacelle] + _tail(radius, tail_z, rng, t_tail=True)


# ----------------------------------------------------------------------------------------------
# Materials.


def hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    """HSV in [0, 1]^3 to RGB in [0, 1]^3."""
    i = int(h * 6.0) % 6
    f = h * 6.0 - math.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


PAINTS = {  # (hue, saturation, value) centres of common finishes per category
    "car": [(0, 0, 0.92), (0, 0, 0.08), (0, 0, 0.7), (0, 0, 0.42), (0.0, 0.85, 0.7), (0.6, 0.75, 0.55),
            (0.62, 0.6, 0.25), (0.33, 0.5, 0.35), (0.14, 0.8, 0.9), (0.07, 0.85, 0.85), (0.1, 0.3, 0.75)],
    "chair": [(0.07, 0.6, 0.45), (0.08, 0.5, 0.65), (0.06, 0.7, 0.3), (0, 0, 0.1), (0, 0, 0.85), (0, 0, 0.6)],
    "airplane": [(0, 0, 0.93), (0, 0, 0.93), (0, 0, 0.8), (0.6, 0.1, 0.7), (0.25, 0.2, 0.4), (0.58, 0.3, 0.85)],
}


def _paint(rng: np.random.Generator, category: str) -> np.ndarray:
    h, s, v = PAINTS[category][int(rng.integers(len(PAINTS[category])))]
    h = (h + rng.normal(0.0, 0.02)) % 1.0
    s, v = (float(np.clip(c + rng.normal(0.0, 0.06), 0.0, 1.0)) for c in (s, v))
    return hsv_to_rgb(h, s, v)


def palette(category: str, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Per-instance colour (num_materials x 3) and specular strength (num_materials) of every material slot."""
    body = _paint(rng, category)
    accent = hsv_to_rgb(float(rng.random()), _u(rng, 0.4, 0.9), _u(rng, 0.3, 0.9))
    if category == "car" and rng.random() < 0.5:
        accent = _paint(rng, category)
    glass = np.array([0.06, 0.08, 0.11]) + _u(rng, 0.0, 0.08)
    rubber = np.full(3, _u(rng, 0.04, 0.09))
    metal = np.full(3, _u(rng, 0.45, 0.75))
    trim = np.full(3, _u(rng, 0.08, 0.2))
    colors = np.stack([body, accent, glass, rubber, metal, np.array([0.95, 0.93, 0.82]), np.array([0.75, 0.06, 0.05]),
                       trim])
    shine = _u(rng, 0.15, 0.5)
    specular = np.array([shine, shine, 0.8, 0.05, 0.6, 0.5, 0.4, 0.1])
    return colors, specular


BUILDERS = {"car": build_car, "chair": build_chair, "airplane": build_airplane}


def build_shape(category: str, rng: np.random.Generator) -> Shape:
    """A random raw object of `category` with its materials (not yet in the canonical frame)."""
    if category not in BUILDERS:
        raise ValueError(f"unknown category {category!r}, expected one of {', '.join(BUILDERS)}")
    subtype, parts, raw_radius = BUILDERS[category](rng)
    colors, specular = palette(category, rng)
    return Shape(category, subtype, parts, colors, specular, raw_radius)
