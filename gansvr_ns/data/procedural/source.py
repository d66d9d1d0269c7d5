"""The procedural data source: random objects rendered as GAN-like pseudo views (`gansvr-generate procedural`).

Every instance is a random parametric object (see `shapes.py`) with its ground-truth mesh, a clean input
view at a random pose and `views` pseudo views around the azimuth orbit. Optional flaws imitate what
GAN-generated views get wrong: colours that drift between views, hallucinated blobs, imperfect masks, parts
that one view draws and the others do not, and rough pose labels. The result is written in the format of
FORMAT.md, atomically.

This module imports only light packages; torch and the renderer are imported when generating.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Literal, Tuple

import numpy as np

Category = Literal["car", "chair", "airplane"]
CATEGORIES: Tuple[str, ...] = ("car", "chair", "airplane")
STREAMS = ("shape", "cameras", "look", "pose_noise", "color_flaw", "blob_flaw", "mask_flaw", "part_flaw")
"""Independent random streams per instance, so switching one option on leaves everything else unchanged."""


@dataclass
class ProceduralConfig:
    """Generate a procedural pseudo-view dataset (random cars, chairs or airplanes) with ground-truth meshes."""

    out: Path
    """Output folder; must not exist yet (or be empty)."""
    category: Category = "car"
    """Object category."""
    num_instances: int = 64
    """Number of object instances."""
    views: int = 40
    """Pseudo views per instance, spread over the azimuth orbit."""
    resolution: int = 64
    """Width and height of every image in pixels."""
    seed: int = 0
    """Random seed; the same seed gives byte-identical files."""
    distance: float = 2.5
    """Camera distance from the object centre; the focal length makes the unit sphere fill the image."""
    elevation_range: Tuple[float, float] = (0.0, 30.0)
    """Range of camera elevations in degrees (views and input)."""
    pose_noise_deg: float = 0.0
    """Std of the rough-pose error in degrees: azimuth and elevation get N(0, s^2), roll N(0, (s/2)^2)."""
    color_flaw_fraction: float = 0.0
    """Fraction of views whose object colours drift (hue and brightness shift plus a texture patch)."""
    color_flaw_strength: float = 0.5
    """Strength of the colour drift in [0, 1]: hue rotation up to 90*s degrees, brightness change up to 40*s %."""
    blob_fraction: float = 0.0
    """Fraction of views with hallucinated blobs painted over the object (RGB only, masks unchanged)."""
    blob_radius: float = 0.12
    """Blob radius as a fraction of the image size."""
    mask_flaw_fraction: float = 0.0
    """Fraction of views whose mask is wrong: eroded, dilated or holed."""
    mask_flaw_strength: float = 0.03
    """Size of mask errors as a fraction of the image size (erosion/dilation radius, half the hole radius)."""
    part_flaw_fraction: float = 0.0
    """Fraction of views whose object has a wrong part, in the image and the mask alike (a GAN's shape drift between
    views): a part grown out of the silhouette in the object's colours, or a part cut away with the background
    showing through. No other view agrees with it, and the mask cannot tell it apart."""
    part_flaw_size: float = 0.15
    """Radius of the wrong part as a fraction of the image size; it is centred on the silhouette's edge."""
    split_fractions: Tuple[float, float, float] = (0.8, 0.1, 0.1)
    """Train, val and test fractions of the instances."""
    mesh_resolution: int = 96
    """Marching-cubes cells along the longest side of each object."""
    progress: bool = True
    """Show a progress bar."""

    def validate(self) -> None:
        """Raise a one-line ValueError naming the first bad option."""
        checks = [
            (self.category in CATEGORIES, f"category must be one of {', '.join(CATEGORIES)}, got {self.category!r}"),
            (self.num_instances >= 1, f"num_instances must be >= 1, got {self.num_instances}"),
            (self.views >= 1, f"views must be >= 1, got {self.views}"),
            (self.resolution >= 8, f"resolution must be >= 8 pixels, got {self.resolution}"),
            (self.seed >= 0, f"seed must be >= 0, got {self.seed}"),
            (self.distance > 1.0, f"distance must exceed 1 (the unit sphere), got {self.distance}"),
            (0.0 <= self.elevation_range[0] <= self.elevation_range[1] < 90.0,
             f"elevation_range must satisfy 0 <= low <= high < 90, got {self.elevation_range}"),
            (self.pose_noise_deg >= 0.0, f"pose_noise_deg must be >= 0, got {self.pose_noise_deg}"),
            (self.mesh_resolution >= 16, f"mesh_resolution must be >= 16, got {self.mesh_resolution}"),
            (len(self.split_fractions) == 3 and min(self.split_fractions) >= 0
             and abs(sum(self.split_fractions) - 1.0) < 1e-6,
             f"split_fractions must be three non-negative numbers summing to 1, got {self.split_fractions}"),
        ]
        for name in ("color_flaw_fraction", "color_flaw_strength", "blob_fraction", "mask_flaw_fraction",
                     "part_flaw_fraction"):
            value = getattr(self, name)
            checks.append((0.0 <= value <= 1.0, f"{name} must be in [0, 1], got {value}"))
        for name in ("blob_radius", "mask_flaw_strength", "part_flaw_size"):
            value = getattr(self, name)
            checks.append((0.0 < value <= 0.5, f"{name} must be in (0, 0.5], got {value}"))
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def main(self) -> Path:
        """Generate the dataset and print a one-line summary; errors print one line and exit with status 2."""
        from gansvr_ns.data.format import FormatError

        start = time.perf_counter()
        try:
            out = generate(self, progress=self.progress)
        except (FormatError, ValueError) as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        print(
            f"Wrote {self.num_instances} {self.category} instances x {self.views} views at "
            f"{self.resolution}x{self.resolution} px to {out} in {time.perf_counter() - start:.1f} s"
        )
        return out


@dataclass
class InstanceData:
    """Everything written for one instance (images as uint8 arrays)."""

    instance_id: str
    subtype: str
    input_rgb: np.ndarray
    input_mask: np.ndarray
    input_camera: Dict
    views: np.ndarray
    """`UInt8[ndarray, "num_views height width 3"]`."""
    masks: np.ndarray
    """`Bool[ndarray, "num_views height width"]`."""
    view_entries: List[Dict]
    vertices: np.ndarray
    faces: np.ndarray


def instance_rngs(config: ProceduralConfig, index: int) -> Dict[str, np.random.Generator]:
    """One generator per stream, seeded by (seed, category, instance index, stream)."""
    category = CATEGORIES.index(config.category)
    return {
        name: np.random.default_rng(np.random.SeedSequence([config.seed, category, index, k]))
        for k, name in enumerate(STREAMS)
    }


def roll_matrix(angle_deg: float) -> np.ndarray:
    """4x4 rotation by `angle_deg` about the camera's own z axis (right-multiplied onto a camera-to-world)."""
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    m = np.eye(4)
    m[:2, :2] = [[c, -s], [s, c]]
    return m


def sample_cameras(config: ProceduralConfig, rng: np.random.Generator) -> Tuple[np.ndarray, np.ndarray]:
    """Azimuths and elevations (degrees) of the views then the input, as two arrays of length views + 1.

    View i has azimuth 360 (i + u_i) / V with u_i ~ U(0, 1) (stratified over the orbit); the input view has a
    uniform azimuth; elevations are uniform in `elevation_range`.
    """
    v = config.views
    azimuth = np.append(360.0 * (np.arange(v) + rng.random(v)) / v, rng.uniform(0.0, 360.0))
    elevation = rng.uniform(*config.elevation_range, size=v + 1)
    return azimuth, elevation


def make_instance(config: ProceduralConfig, index: int) -> InstanceData:
    """Build, mesh, render and corrupt one instance."""
    from gansvr_ns.data.format import input_entry, orbit_pose, view_entry
    from gansvr_ns.data.procedural import render as rendering
    from gansvr_ns.data.procedural import shapes

    rngs = instance_rngs(config, index)
    fitted = shapes.fit_unit_sphere(shapes.build_shape(config.category, rngs["shape"]), config.mesh_resolution)
    azimuth, elevation = sample_cameras(config, rngs["cameras"])
    poses = np.stack([orbit_pose(a, e, config.distance) for a, e in zip(azimuth, elevation)])
    res = config.resolution
    light = rendering.Light.random(rngs["look"])
    colors, masks = rendering.render(fitted, poses, rendering.pinhole_intrinsics(res, config.distance), res, light)
    hue = float(rngs["look"].random())
    backgrounds = np.stack([rendering.background(rngs["look"], res, res, hue) for _ in range(len(poses))])
    images = np.where(masks[..., None], colors, backgrounds)

    noise = rngs["pose_noise"].normal(size=(config.views, 3)) * config.pose_noise_deg * np.array([1.0, 1.0, 0.5])
    entries = []
    for i in range(config.views):
        rough_az, rough_el = (azimuth[i] + noise[i, 0]) % 360.0, elevation[i] + noise[i, 1]
        rough = orbit_pose(rough_az, rough_el, config.distance) @ roll_matrix(noise[i, 2])
        entry = view_entry(i, rough, poses[i], rough_az, rough_el, config.distance)
        entry.update(azimuth_deg_true=round(float(azimuth[i]), 6), elevation_deg_true=round(float(elevation[i]), 6))
        entries.append(entry)
    views, view_masks = images[:-1].copy(), masks[:-1].copy()
    flaws = apply_flaws(config, views, view_masks, backgrounds[:-1], rngs)
    for i, names in flaws.items():
        entries[i]["flaws"] = names
    return InstanceData(
        instance_id=f"{config.category}_{index:04d}",
        subtype=fitted.shape.subtype,
        input_rgb=to_uint8(images[-1]),
        input_mask=masks[-1],
        input_camera=input_entry(poses[-1], azimuth_deg=azimuth[-1], elevation_deg=elevation[-1],
                                 distance=config.distance),
        views=to_uint8(views),
        masks=view_masks,
        view_entries=entries,
        vertices=fitted.vertices,
        faces=fitted.faces,
    )


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """Float colours in [0, 1] to 8-bit, rounding to nearest."""
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ----------------------------------------------------------------------------------------------
# GAN-like flaws. Each kind picks round(fraction * views) views from its own random stream.


def apply_flaws(
    config: ProceduralConfig, views: np.ndarray, masks: np.ndarray, backgrounds: np.ndarray,
    rngs: Dict[str, np.random.Generator],
) -> Dict[int, List[str]]:
    """Corrupt `views` (float, in place) and `masks` (in place) over their `backgrounds`; return the flaw names of
    each affected view."""
    flaws: Dict[int, List[str]] = {}
    kinds = (("color", config.color_flaw_fraction), ("blob", config.blob_fraction), ("mask", config.mask_flaw_fraction),
             ("part", config.part_flaw_fraction))
    for kind, fraction in kinds:
        rng = rngs[f"{kind}_flaw"]
        count = int(round(fraction * config.views))
        for i in sorted(rng.choice(config.views, size=count, replace=False).tolist()):
            if kind == "color":
                views[i] = color_flaw(views[i], masks[i], config.color_flaw_strength, rng)
                name = "color"
            elif kind == "blob":
                views[i] = blob_flaw(views[i], masks[i], config.blob_radius, rng)
                name = "blob"
            elif kind == "mask":
                masks[i], mode = mask_flaw(masks[i], config.mask_flaw_strength, rng)
                name = f"mask_{mode}"
            else:
                views[i], masks[i], mode = part_flaw(views[i], masks[i], backgrounds[i], config.part_flaw_size, rng)
                name = f"part_{mode}"
            flaws.setdefault(i, []).append(name)
    return flaws


def soft_ellipse(
    shape: Tuple[int, int], center: np.ndarray, radii: Tuple[float, float], angle: float, edge: float = 1.0
) -> np.ndarray:
    """(H, W) weight in [0, 1]: 1 inside the rotated ellipse, falling to 0 over `edge` pixels at its border.

    With (a, b) the pixel centre offset rotated by -angle, r = sqrt((a / r0)^2 + (b / r1)^2) and the weight is
    clamp((1 - r) * min(r0, r1) / edge + 0.5, 0, 1).
    """
    y, x = np.meshgrid(np.arange(shape[0]) + 0.5, np.arange(shape[1]) + 0.5, indexing="ij")
    dx, dy = x - center[1], y - center[0]
    a = dx * math.cos(angle) + dy * math.sin(angle)
    b = -dx * math.sin(angle) + dy * math.cos(angle)
    r = np.sqrt((a / radii[0]) ** 2 + (b / radii[1]) ** 2)
    return np.clip((1.0 - r) * min(radii) / edge + 0.5, 0.0, 1.0)


def _object_pixel(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Centre (row, col) of a random object pixel (the image centre if the mask is empty)."""
    pixels = np.argwhere(mask)
    if len(pixels) == 0:
        return np.array(mask.shape, dtype=np.float64) / 2.0
    return pixels[int(rng.integers(len(pixels)))] + 0.5


def _noise_texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random two-colour value-noise texture, (H, W, 3)."""
    from gansvr_ns.data.procedural.render import upsample

    weight = upsample(rng.random((5, 5)), height, width)[..., None]
    return rng.random(3) * (1.0 - weight) + rng.random(3) * weight


def hue_rotate(rgb: np.ndarray, angle_deg: float) -> np.ndarray:
    """Rotate colours about the grey axis g = (1, 1, 1) / sqrt(3) by `angle_deg` (Rodrigues' formula):
    c' = c cos t + (g x c) sin t + g (g . c)(1 - cos t)."""
    t = math.radians(angle_deg)
    g = np.full(3, 1.0 / math.sqrt(3.0))
    dot = (rgb @ g)[..., None]
    return rgb * math.cos(t) + np.cross(g, rgb) * math.sin(t) + g * dot * (1.0 - math.cos(t))


def color_flaw(rgb: np.ndarray, mask: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Object colours drift: hue rotation of +-(0.5..1) * 90 * s degrees, brightness x (1 +- 0.4 s), and a
    texture patch blended with opacity s over part of the object."""
    angle = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.0) * 90.0 * strength
    gain = 1.0 + rng.uniform(-0.4, 0.4) * strength
    shifted = np.clip(hue_rotate(rgb, angle) * gain, 0.0, 1.0)
    out = np.where(mask[..., None], shifted, rgb)
    size = mask.shape[0] * rng.uniform(0.1, 0.2) * (0.5 + strength)
    patch = soft_ellipse(mask.shape, _object_pixel(mask, rng), (size, size * rng.uniform(0.5, 1.0)),
                         rng.uniform(0.0, math.pi))
    weight = (patch * mask * strength)[..., None]
    return out * (1.0 - weight) + _noise_texture(rng, *mask.shape) * weight


def blob_flaw(rgb: np.ndarray, mask: np.ndarray, radius: float, rng: np.random.Generator) -> np.ndarray:
    """One or two opaque textured blobs centred on the object, radius ~ radius * size (masks untouched)."""
    out = rgb
    for _ in range(int(rng.integers(1, 3))):
        radii = tuple(radius * mask.shape[0] * rng.uniform(0.6, 1.2, size=2))
        weight = soft_ellipse(mask.shape, _object_pixel(mask, rng), radii, rng.uniform(0.0, math.pi), 2.0)[..., None]
        out = out * (1.0 - weight) + _noise_texture(rng, *mask.shape) * weight
    return out


def mask_flaw(mask: np.ndarray, strength: float, rng: np.random.Generator) -> Tuple[np.ndarray, str]:
    """A wrong mask: eroded or dilated by a disc of radius r = max(1, round(strength * size)), or with 1-3
    holes of radius 2r..4r punched at object pixels. Returns the new mask and the kind of error."""
    from scipy.ndimage import binary_dilation, binary_erosion

    r = max(1, int(round(strength * mask.shape[0])))
    y, x = np.mgrid[-r : r + 1, -r : r + 1]
    disc = x * x + y * y <= r * r
    mode = str(rng.choice(["erode", "dilate", "holes"]))
    if mode == "erode":
        return binary_erosion(mask, structure=disc), mode
    if mode == "dilate":
        return binary_dilation(mask, structure=disc), mode
    holes = np.zeros(mask.shape)
    for _ in range(int(rng.integers(1, 4))):
        size = r * rng.uniform(2.0, 4.0)
        holes = np.maximum(holes, soft_ellipse(mask.shape, _object_pixel(mask, rng), (size, size), 0.0))
    return mask & (holes < 0.5), mode


def part_flaw(
    rgb: np.ndarray, mask: np.ndarray, background: np.ndarray, size: float, rng: np.random.Generator
) -> Tuple[np.ndarray, np.ndarray, str]:
    """A wrong part, in the image and the mask alike: an ellipse of radii size * image size * U(0.6, 1.2), centred on
    a random pixel of the silhouette's edge, is either grown onto the object (painted in the object's mean colour
    under a value-noise shading) or cut out of it (the background shows). Returns the new image, mask and kind."""
    from scipy.ndimage import binary_erosion

    edge = mask & ~binary_erosion(mask)
    radii = tuple(size * mask.shape[0] * rng.uniform(0.6, 1.2, size=2))
    part = soft_ellipse(mask.shape, _object_pixel(edge, rng), radii, rng.uniform(0.0, math.pi))[..., None]
    mode = str(rng.choice(["grow", "cut"]))
    if mode == "grow":
        base = rgb[mask].mean(axis=0) if mask.any() else rng.random(3)
        shading = 0.75 + 0.5 * _noise_texture(rng, *mask.shape).mean(axis=-1, keepdims=True)
        paint, new_mask = np.clip(base * shading, 0.0, 1.0), mask | (part[..., 0] >= 0.5)
    else:
        paint, new_mask = background, mask & (part[..., 0] < 0.5)
    return rgb * (1.0 - part) + paint * part, new_mask, mode


# ----------------------------------------------------------------------------------------------
# Writing.


def write_instance(folder: Path, data: InstanceData) -> None:
    """Write one instance's images, cameras.json and mesh.ply (see FORMAT.md)."""
    import trimesh

    from gansvr_ns.data.format import save_mask, save_rgb, write_cameras

    mesh = trimesh.Trimesh(data.vertices, data.faces, process=False)
    if not mesh.is_watertight:
        raise RuntimeError(f"{folder / 'mesh.ply'}: marching cubes produced a mesh that is not watertight")
    save_rgb(folder / "input.png", data.input_rgb)
    save_mask(folder / "input_mask.png", data.input_mask)
    for i in range(len(data.views)):
        save_rgb(folder / "views" / f"{i:03d}.png", data.views[i])
        save_mask(folder / "masks" / f"{i:03d}.png", data.masks[i])
    write_cameras(folder, data.input_camera, data.view_entries)
    (folder / "mesh.ply").write_bytes(trimesh.exchange.ply.export_ply(mesh, encoding="binary"))


def generator_record(config: ProceduralConfig, subtypes: Dict[str, str]) -> Dict:
    """The `generator` section of dataset.json: every option (except out/progress), version and subtypes."""
    import gansvr_ns

    options = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()
               if k not in ("out", "progress")}
    return {"name": "procedural", "version": gansvr_ns.__version__, **options,
            "roll_noise_deg": config.pose_noise_deg / 2.0, "subtypes": subtypes}


def generate(config: ProceduralConfig, progress: bool = True) -> Path:
    """Generate the dataset described by `config` at `config.out` and return that path.

    The dataset is built in a staging folder and moved into place only when complete, dataset.json last.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from gansvr_ns.data.format import dataset_json, split_ids, staging_dir, untrainable_note, write_json
    from gansvr_ns.data.procedural.render import pinhole_intrinsics, single_threaded

    config.validate()
    out = Path(config.out)
    ids: List[str] = []
    subtypes: Dict[str, str] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with staging_dir(out) as tmp, Progress(*columns, disable=not progress) as bar, single_threaded():
        task = bar.add_task(f"Generating {config.category}", total=config.num_instances)
        for index in range(config.num_instances):
            data = make_instance(config, index)
            write_instance(tmp / data.instance_id, data)
            ids.append(data.instance_id)
            subtypes[data.instance_id] = data.subtype
            bar.advance(task)
        size = (config.resolution, config.resolution)
        intrinsics = pinhole_intrinsics(config.resolution, config.distance)
        splits = split_ids(ids, tuple(config.split_fractions))
        if note := untrainable_note(splits):
            print(f"warning: {out}: {note}", file=sys.stderr)
        generator = generator_record(config, subtypes)
        record = dataset_json(config.category, "procedural", size, intrinsics, splits, generator)
        write_json(tmp / "dataset.json", record)
    return out

