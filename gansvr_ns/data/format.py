"""Reading and writing the pseudo-view dataset format `gansvr-pseudoviews/1` (see FORMAT.md).

Every data source writes through this module and every reader (dataparser, evaluation) reads through
it. Readers never modify files; every problem is reported as one `FormatError` whose message names
the file and what is wrong.

This module must stay light (numpy, PIL, json): the dataparser imports it while nerfstudio's own
dataparser registry is still importing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageOps

FORMAT_ID = "gansvr-pseudoviews/1"
INSTANCE_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
SPLITS = ("train", "val", "test")


class FormatError(ValueError):
    """A dataset that does not follow the format. The message is one line: `<file>: <what is wrong>`."""

    def __init__(self, path: Path | str, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass
class ViewRecord:
    """One pseudo view of an instance, with paths resolved against the instance folder."""

    image_path: Path
    mask_path: Path
    transform_matrix: np.ndarray
    """4x4 camera-to-world (OpenGL), the rough pose a method starts from."""
    transform_matrix_true: Optional[np.ndarray] = None
    azimuth_deg: Optional[float] = None
    elevation_deg: Optional[float] = None
    distance: Optional[float] = None
    intrinsics: Optional[Dict[str, float]] = None
    """Per-view override of the dataset intrinsics (fx, fy, cx, cy in pixels)."""


@dataclass
class InstanceRecord:
    """One object instance: its input view, its pseudo views and its optional ground-truth mesh."""

    instance_id: str
    folder: Path
    input_path: Path
    input_mask_path: Optional[Path]
    input_camera: Dict
    views: List[ViewRecord]
    mesh_path: Optional[Path]


@dataclass
class DatasetInfo:
    """The contents of `dataset.json`."""

    root: Path
    category: str
    source: str
    image_size: Tuple[int, int]
    """(height, width) of every view and input."""
    intrinsics: Dict[str, float]
    splits: Dict[str, List[str]]
    generator: Dict = field(default_factory=dict)

    def instances(self, split: str) -> List[str]:
        """Instance ids of a split; an empty or unknown split is an error."""
        ids = self.splits.get(split, [])
        if not ids:
            raise FormatError(self.root / "dataset.json", f"split '{split}' is empty or missing")
        return list(ids)


# ----------------------------------------------------------------------------------------------
# Geometry helpers shared by every source.


def orbit_pose(azimuth_deg: float, elevation_deg: float, distance: float) -> np.ndarray:
    """Camera-to-world matrix (OpenGL) of a camera on the orbit of the canonical frame.

    The camera sits at d * (cos e cos a, cos e sin a, sin e), looks at the origin and uses world +z as
    its up hint. Its -z axis is the viewing direction, +y is up in the image and +x is right.
    """
    a, e = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    position = distance * np.array([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)])
    backward = position / np.linalg.norm(position)  # camera +z points away from the target
    right = np.cross(np.array([0.0, 0.0, 1.0]), backward)
    if np.linalg.norm(right) < 1e-8:  # looking straight down or up: any horizontal right axis works
        right = np.array([-np.sin(a), np.cos(a), 0.0])
    right /= np.linalg.norm(right)
    up = np.cross(backward, right)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, backward, position
    return pose


def check_rigid(matrix, where: Path, key: str, atol: float = 1e-3) -> np.ndarray:
    """Return `matrix` as a float64 4x4 array, or raise if it is not a rigid transform."""
    try:
        m = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        raise FormatError(where, f"{key} is not a numeric matrix") from None
    if m.shape != (4, 4):
        raise FormatError(where, f"{key} must be 4x4, got shape {'x'.join(map(str, m.shape)) or 'scalar'}")
    if not np.all(np.isfinite(m)):
        raise FormatError(where, f"{key} has non-finite entries")
    rotation = m[:3, :3]
    if not np.allclose(m[3], [0, 0, 0, 1], atol=atol):
        raise FormatError(where, f"{key} last row must be [0, 0, 0, 1]")
    if not np.allclose(rotation.T @ rotation, np.eye(3), atol=atol) or np.linalg.det(rotation) < 0:
        raise FormatError(where, f"{key} is not a rigid transform (rotation part not orthonormal)")
    return m


# ----------------------------------------------------------------------------------------------
# Reading.


def _load_json(path: Path) -> Dict:
    if not path.is_file():
        raise FormatError(path, "file is missing")
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise FormatError(path, f"not valid JSON (line {err.lineno}: {err.msg})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(path, f"cannot be read ({err.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise FormatError(path, "must contain a JSON object")
    return data


def _intrinsics(value, where: Path, key: str) -> Dict[str, float]:
    if not isinstance(value, dict) or any(k not in value for k in ("fx", "fy", "cx", "cy")):
        raise FormatError(where, f"{key} must be an object with fx, fy, cx, cy")
    try:
        intrinsics = {k: float(value[k]) for k in ("fx", "fy", "cx", "cy")}
    except (TypeError, ValueError):
        raise FormatError(where, f"{key} values must be numbers") from None
    if not all(np.isfinite(v) for v in intrinsics.values()):
        raise FormatError(where, f"{key} values must be finite")
    if not (intrinsics["fx"] > 0 and intrinsics["fy"] > 0):
        raise FormatError(where, f"{key}: fx and fy must be positive focal lengths in pixels "
                                 f"(got {intrinsics['fx']:g}, {intrinsics['fy']:g})")
    return intrinsics


def read_dataset(root: Path | str) -> DatasetInfo:
    """Read and check `<root>/dataset.json` (not the instances)."""
    root = Path(root)
    path = root / "dataset.json"
    if not root.is_dir():
        raise FormatError(root, "dataset folder does not exist")
    data = _load_json(path)
    if data.get("format") != FORMAT_ID:
        raise FormatError(path, f"unknown format {data.get('format')!r}, expected '{FORMAT_ID}'")
    size = data.get("image_size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
        raise FormatError(path, "image_size must be [height, width] in pixels")
    splits = data.get("splits")
    if not isinstance(splits, dict) or not all(isinstance(v, list) for v in splits.values()):
        raise FormatError(path, "splits must map split names to lists of instance ids")
    for name, ids in splits.items():
        for instance_id in ids:
            if not isinstance(instance_id, str) or not INSTANCE_ID_PATTERN.match(instance_id):
                raise FormatError(path, f"invalid instance id {instance_id!r}")
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise FormatError(path, f"split {name!r} lists {repeated[0]!r} more than once")
    return DatasetInfo(
        root=root,
        category=str(data.get("category", "")),
        source=str(data.get("source", "")),
        image_size=(size[0], size[1]),
        intrinsics=_intrinsics(data.get("intrinsics"), path, "intrinsics"),
        splits={k: list(v) for k, v in splits.items()},
        generator=data.get("generator") or {},
    )


EXIF_ORIENTATION = 0x0112
"""The EXIF tag by which cameras and phones say how to turn a photo, instead of turning its pixels."""


def oriented(img: Image.Image) -> Image.Image:
    """An open image as it is meant to be seen: turned and mirrored by its EXIF orientation, if it has one (a phone
    photo taken upright is often stored sideways). An image without it comes back as it is."""
    if img.getexif().get(EXIF_ORIENTATION, 1) == 1:
        return img
    return ImageOps.exif_transpose(img)


def _turned_a_quarter(img: Image.Image) -> bool:
    """Whether an open image's EXIF orientation turns it a quarter, so that it is seen with its sides swapped."""
    return img.getexif().get(EXIF_ORIENTATION, 1) in (5, 6, 7, 8)


@contextmanager
def open_image(path: Path, what: str = "image") -> Iterator[Image.Image]:
    """`Image.open(path)`, with a file PIL cannot read, or one larger than PIL's limit against decompression bombs,
    a FormatError naming it."""
    try:
        with Image.open(path) as img:
            yield img
    except Image.DecompressionBombError:
        raise FormatError(path, f"{what} of more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels, PIL's limit: scale it "
                          "down") from None
    except (OSError, SyntaxError):
        raise FormatError(path, f"not a readable {what}") from None


def exif_turned(path: Path) -> bool:
    """Whether an image file is seen turned a quarter by its EXIF orientation (False for an unreadable file)."""
    try:
        with open_image(path) as img:
            return _turned_a_quarter(img)
    except FormatError:
        return False


def image_size_of(path: Path) -> Tuple[int, int]:
    """(height, width) of an image file as it is meant to be seen (`oriented`), reading only its header."""
    if not path.is_file():
        raise FormatError(path, "file is missing")
    with open_image(path) as img:
        width, height = img.size
        if _turned_a_quarter(img):
            width, height = height, width
    return height, width


def read_instance(info: DatasetInfo, instance_id: str, check_images: bool = True) -> InstanceRecord:
    """Read and check one instance's `cameras.json` and, with `check_images`, the image files it names."""
    folder = info.root / instance_id
    if not folder.is_dir():
        raise FormatError(folder, "instance folder named in dataset.json is missing")
    cam_path = folder / "cameras.json"
    cameras = _load_json(cam_path)
    input_camera = cameras.get("input", {})
    if not isinstance(input_camera, dict):
        raise FormatError(cam_path, "input must be an object")
    if "transform_matrix" in input_camera:
        check_rigid(input_camera["transform_matrix"], cam_path, "input.transform_matrix")
    entries = cameras.get("views")
    if not isinstance(entries, list) or not entries:
        raise FormatError(cam_path, "views must be a non-empty list")
    views = [_read_view(entry, i, folder, cam_path) for i, entry in enumerate(entries)]
    input_path = folder / "input.png"
    input_mask = folder / "input_mask.png"
    mesh = folder / "mesh.ply"
    record = InstanceRecord(
        instance_id=instance_id,
        folder=folder,
        input_path=input_path,
        input_mask_path=input_mask if input_mask.exists() else None,
        input_camera=input_camera,
        views=views,
        mesh_path=mesh if mesh.exists() else None,
    )
    if check_images:
        _check_image_sizes(info, record)
    return record


def _read_view(entry, index: int, folder: Path, cam_path: Path) -> ViewRecord:
    key = f"views[{index}]"
    if not isinstance(entry, dict) or "file" not in entry or "mask" not in entry or "transform_matrix" not in entry:
        raise FormatError(cam_path, f"{key} needs file, mask and transform_matrix")
    true_pose = entry.get("transform_matrix_true")
    intrinsics = entry.get("intrinsics")

    def _opt_float(name: str) -> Optional[float]:
        value = entry.get(name)
        return None if value is None else float(value)

    return ViewRecord(
        image_path=folder / entry["file"],
        mask_path=folder / entry["mask"],
        transform_matrix=check_rigid(entry["transform_matrix"], cam_path, f"{key}.transform_matrix"),
        transform_matrix_true=None
        if true_pose is None
        else check_rigid(true_pose, cam_path, f"{key}.transform_matrix_true"),
        azimuth_deg=_opt_float("azimuth_deg"),
        elevation_deg=_opt_float("elevation_deg"),
        distance=_opt_float("distance"),
        intrinsics=None if intrinsics is None else _intrinsics(intrinsics, cam_path, f"{key}.intrinsics"),
    )


def _check_image_sizes(info: DatasetInfo, record: InstanceRecord) -> None:
    expected = info.image_size
    for path in [record.input_path] + [p for p in [record.input_mask_path] if p is not None]:
        size = image_size_of(path)
        if size != expected:
            raise FormatError(path, f"size {size[0]}x{size[1]} differs from image_size {expected[0]}x{expected[1]}")
    for view in record.views:
        size = image_size_of(view.image_path)
        if size != expected:
            raise FormatError(
                view.image_path, f"size {size[0]}x{size[1]} differs from image_size {expected[0]}x{expected[1]}"
            )
        mask_size = image_size_of(view.mask_path)
        if mask_size != size:
            raise FormatError(
                view.mask_path, f"mask size {mask_size[0]}x{mask_size[1]} differs from its view {size[0]}x{size[1]}"
            )


TRANSPARENT_BACKGROUND = 0.5
"""The grey that an image's transparent pixels are composited onto (`load_rgb`). Dropping the alpha channel would keep
whatever colour those pixels hold, often black: with the 26 test inputs of `gan-car` cut out onto black by their
input masks, three default runs reconstructed them at 0.87-0.90x the another-instance baseline, against 0.78-0.83x
for the inputs as they are and 0.76-0.80x cut out onto this grey (session 29, docs/benchmarks.md)."""


def _has_transparency(img: Image.Image) -> bool:
    return img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info


def _alpha(img: Image.Image) -> Optional[np.ndarray]:
    """The alpha channel (H, W, uint8) of an image with transparency, `oriented`; None for one without."""
    if not _has_transparency(img):
        return None
    return np.asarray(oriented(img).convert("RGBA"))[..., 3]


def _is_deep(img: Image.Image) -> bool:
    """A one-channel image of more than 8 bits per pixel (16-bit and 32-bit integer, or float), which PIL's
    `convert` would clip to 255 rather than scale."""
    return img.mode.startswith("I") or img.mode == "F"


def _levels(img: Image.Image) -> np.ndarray:
    """A one-channel image of more than 8 bits (`_is_deep`) as float32 (H, W) in [0, 1]. 16-bit images are read over
    65535; 32-bit integer and float images, whose files do not say their range, over the smallest of 1, 255 and
    65535 that holds their largest value."""
    values = np.asarray(img, dtype=np.float32)
    if img.mode.startswith("I;16"):
        full = 65535.0
    else:
        peak = float(values.max(initial=0.0))
        full = 1.0 if peak <= 1.0 else 255.0 if peak <= 255.0 else 65535.0
    return np.clip(values / full, 0.0, 1.0)


def rgb_of(img: Image.Image) -> np.ndarray:
    """An open image as RGB float32 in [0, 1], shape (H, W, 3). An image with transparency (an alpha channel, or a
    palette with a transparent colour) is composited onto `TRANSPARENT_BACKGROUND` grey; a grey image of more than 8
    bits is scaled to [0, 1] (`_levels`), not clipped. The image is first `oriented`."""
    img = oriented(img)
    if _is_deep(img):
        return np.repeat(_levels(img)[..., None], 3, axis=-1)
    if _has_transparency(img):
        rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
        alpha = rgba[..., 3:]
        return rgba[..., :3] * alpha + np.float32(TRANSPARENT_BACKGROUND) * (1.0 - alpha)
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def rgb_image(img: Image.Image) -> Image.Image:
    """An open image as an 8-bit RGB image, `oriented` and its transparency composited as by `rgb_of` (for resizing
    with PIL)."""
    if _is_deep(img) or _has_transparency(img):
        return Image.fromarray(to_uint8(rgb_of(img)), mode="RGB")
    return oriented(img).convert("RGB")


def load_rgb(path: Path) -> np.ndarray:
    """An RGB image file as float32 in [0, 1], shape (H, W, 3), read by `rgb_of`."""
    with open_image(path) as img:
        return rgb_of(img)


def load_mask(path: Path, zero_one: bool = False) -> np.ndarray:
    """A mask as bool (H, W): a value > 127 is object (in a mask of more than 8 bits, above half its range, unless
    no value exceeds 255: an 8-bit mask stored in 16 bits); `oriented` first. A mask with transparency that is not
    opaque everywhere (a cut-out saved as the mask) is its alpha channel. A mask of 8 or 16 bits whose values are all
    0 or 1, and not all 0, was saved as 0/1 rather than 0/255 (as segmentation tools often do): with `zero_one` (a
    user's own mask) 1 is object; otherwise (a dataset's, whose format says 0/255) it is a FormatError that says so,
    where it would read as empty."""
    with open_image(path, "mask") as img:
        alpha = _alpha(img)
        if alpha is not None and alpha.min() < 255:
            return alpha > 127
        img = oriented(img)
        if img.mode.startswith("I;16"):
            raw = np.asarray(img)
            mask = raw > 127 if raw.max(initial=0) <= 255 else _levels(img) > 0.5
        elif _is_deep(img):
            return _levels(img) > 0.5  # 32-bit and float: _levels reads all-0/1 values over a range of 1
        else:
            raw = np.asarray(img.convert("L"))
            mask = raw > 127
    if not mask.any() and raw.max(initial=0) == 1:
        if zero_one:
            return raw == 1
        raise FormatError(path, "mask values are 0 and 1: the object's pixels must be above 127 (save it as 0/255)")
    return mask


def load_alpha_mask(path: Path) -> Optional[np.ndarray]:
    """The object mask (H, W) bool that an image's transparency gives (alpha above half its range), or None for an
    image without transparency, or whose alpha channel is opaque everywhere (as many RGBA files are): that marks no
    object."""
    with open_image(path) as img:
        alpha = _alpha(img)
    if alpha is None:
        return None
    mask = alpha > 127
    return None if mask.all() else mask


# ----------------------------------------------------------------------------------------------
# Writing. Sources build a dataset inside `staging_dir` and it appears complete or not at all.


def to_uint8(rgb: np.ndarray) -> np.ndarray:
    """A float image in [0, 1] as uint8, rounded to the nearest level (values outside [0, 1] clipped)."""
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_rgb(path: Path, rgb: np.ndarray) -> None:
    """Write an (H, W, 3) float image in [0, 1] or uint8 image as an 8-bit PNG, deterministically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if rgb.dtype != np.uint8:
        rgb = to_uint8(rgb)
    Image.fromarray(rgb, mode="RGB").save(path, format="PNG", optimize=False)


def save_mask(path: Path, mask: np.ndarray) -> None:
    """Write a boolean (H, W) mask as an 8-bit single-channel PNG (255 object, 0 background)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(path, format="PNG", optimize=False)


def _to_list(matrix: np.ndarray) -> List[List[float]]:
    return [[round(float(v), 8) for v in row] for row in np.asarray(matrix)]


def view_entry(
    index: int,
    transform_matrix: np.ndarray,
    transform_matrix_true: Optional[np.ndarray] = None,
    azimuth_deg: Optional[float] = None,
    elevation_deg: Optional[float] = None,
    distance: Optional[float] = None,
) -> Dict:
    """The `cameras.json` entry of view `index`, whose files are `views/NNN.png` and `masks/NNN.png`."""
    entry: Dict = {
        "file": f"views/{index:03d}.png",
        "mask": f"masks/{index:03d}.png",
        "transform_matrix": _to_list(transform_matrix),
    }
    if transform_matrix_true is not None:
        entry["transform_matrix_true"] = _to_list(transform_matrix_true)
    for key, value in (("azimuth_deg", azimuth_deg), ("elevation_deg", elevation_deg), ("distance", distance)):
        if value is not None:
            entry[key] = round(float(value), 6)
    return entry


def input_entry(transform_matrix: Optional[np.ndarray], **labels: Optional[float]) -> Dict:
    """The `cameras.json` entry of the input view (pose where known, plus azimuth/elevation/distance)."""
    entry: Dict = {}
    if transform_matrix is not None:
        entry["transform_matrix"] = _to_list(transform_matrix)
    entry.update({k: round(float(v), 6) for k, v in labels.items() if v is not None})
    return entry


def write_json(path: Path, data: Dict) -> None:
    """Write JSON atomically (a per-process temporary file, then a rename), keys in the format's order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def write_cameras(folder: Path, input_camera: Dict, views: List[Dict]) -> None:
    write_json(folder / "cameras.json", {"input": input_camera, "views": views})


def dataset_json(
    category: str,
    source: str,
    image_size: Tuple[int, int],
    intrinsics: Dict[str, float],
    splits: Dict[str, List[str]],
    generator: Dict,
) -> Dict:
    return {
        "format": FORMAT_ID,
        "category": category,
        "source": source,
        "image_size": [int(image_size[0]), int(image_size[1])],
        "intrinsics": {k: round(float(intrinsics[k]), 6) for k in ("fx", "fy", "cx", "cy")},
        "splits": {k: list(v) for k, v in splits.items()},
        "generator": generator,
    }


def split_ids(ids: List[str], fractions: Tuple[float, float, float] = (0.8, 0.1, 0.1)) -> Dict[str, List[str]]:
    """Split ids in order into train/val/test by fractions (non-negative, summing to 1). Val and test get
    round(n * fraction) ids, at least one each where their fraction is positive, and train the rest. No id is in
    two splits, and a split with a positive fraction gets at least one id when there are enough: train first, then
    val, then test (1 id: train only; 2: train and val)."""
    n = len(ids)
    wanted = [fraction > 0 for fraction in fractions]
    counts = [0, 0, 0]
    for k in (0, 1, 2):  # the least: one id for each split that wants any, while ids remain
        if wanted[k] and sum(counts) < n:
            counts[k] = 1
    for k in (2, 1):  # val and test by their fractions, as far as the least of the others allows
        counts[k] = max(counts[k], min(round(n * fractions[k]), n - sum(counts) + counts[k]))
    counts[0] = n - counts[1] - counts[2]
    n_train, n_val = counts[0], counts[1]
    return {"train": ids[:n_train], "val": ids[n_train : n_train + n_val], "test": ids[n_train + n_val :]}


def untrainable_note(splits: Dict[str, List[str]]) -> Optional[str]:
    """Why `ns-train` cannot train on a dataset with these splits (it needs a train and a val instance), or None."""
    empty = [name for name in ("train", "val") if not splits.get(name)]
    if not empty:
        return None
    return f"no {' and no '.join(empty)} instance, so ns-train cannot train on it (it needs one of each)"


@contextmanager
def staging_dir(out: Path) -> Iterator[Path]:
    """Build a dataset in a temporary sibling folder and move it to `out` only when complete.

    An interrupted run leaves at most a `.<name>.partial-*` folder beside `out`, never a folder at `out`
    that reads as a dataset. `out` must not exist yet, or be an empty folder (also `.`, or a link to one): the
    dataset's files are then moved into it, `dataset.json` last.
    """
    out = Path(os.path.abspath(out))  # `.` and `..` resolved, links kept
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FormatError(out, "output folder already exists and is not empty")
    existing = next(parent for parent in out.parents if parent.exists())
    if not existing.is_dir():
        raise FormatError(out, f"cannot be written below {existing}, which is a file")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; the dataset gets a new folder's usual mode
        if out.is_dir():  # an empty folder: kept as it is (the working directory, a link), the dataset moved in
            record = tmp / "dataset.json"
            for child in sorted(tmp.iterdir(), key=lambda path: path == record):
                shutil.move(child, out / child.name)  # a link's folder may be on another file system
        else:
            os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
