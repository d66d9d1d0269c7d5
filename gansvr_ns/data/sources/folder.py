"""`gansvr-generate folder`: a user's existing pseudo views (from any GAN pipeline) into the format.

The input is one pose-label JSON; image paths are relative to its folder:

    {"category": "car",
     "instances": [
       {"id": "car_0000",
        "input": {"image": "car_0000/input.png", "mask": "car_0000/input_mask.png",
                  "azimuth_deg": 30, "elevation_deg": 10},
        "views": [{"image": "car_0000/000.png", "mask": "car_0000/000_mask.png",
                   "azimuth_deg": 0, "elevation_deg": 10, "distance": 2.5}, ...]}]}

- `id` is optional (default `<category>_NNNN`); `category` is optional if `--category` is given.
- `input` is either an object (`image`, optional `mask`, optional `azimuth_deg`/`elevation_deg`/`distance`
  which give it a pose when both angles are present) or the index of one of the views to reuse.
- Per view, `distance` is optional (default `--distance`).
- Every image and mask must share one size (that of the first view); masks: a value > 127 is object.

Everything is checked before anything is written; the dataset then appears at `--out` complete or not
at all (`format.staging_dir`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from gansvr_ns.data import format as fmt
from gansvr_ns.data.sources import intrinsics_from_fov, run_cli


@dataclass
class FolderView:
    """One image (and its mask) with an optional orbit label."""

    image: Path
    mask: Optional[Path]
    azimuth_deg: Optional[float] = None
    elevation_deg: Optional[float] = None
    distance: Optional[float] = None

    def pose(self) -> Optional[np.ndarray]:
        if self.azimuth_deg is None or self.elevation_deg is None:
            return None
        return fmt.orbit_pose(self.azimuth_deg, self.elevation_deg, self.distance)


@dataclass
class FolderInstance:
    instance_id: str
    input: FolderView
    views: List[FolderView] = field(default_factory=list)


@dataclass
class FolderSourceConfig:
    """Write a user's existing pseudo views (images, masks, pose labels) as a pseudo-view dataset."""

    labels: Path
    """Pose-label JSON listing instances, their input image and their labelled views (see the module docstring)."""
    out: Path
    """Output dataset folder (must not exist or be empty)."""
    category: Optional[str] = None
    """Object category; default: the label file's "category"."""
    resolution: Optional[int] = None
    """Resize every image to this width (aspect ratio kept); default: keep the source size."""
    fov_deg: float = 50.0
    """Horizontal field of view of the intrinsics written to dataset.json, in degrees."""
    distance: float = 2.5
    """Camera distance for views whose label gives none."""

    def main(self) -> Path:
        """Run from the CLI: a bad input prints one line and exits with status 2."""
        return run_cli(self.run)

    def run(self) -> Path:
        """Check every input, then write the dataset."""
        if self.distance <= 1:
            raise ValueError(f"--distance must exceed 1 (the unit sphere holding the object), got {self.distance:g}")
        category, instances = read_labels(self.labels, self.category, self.distance)
        source_size = check_images(instances)
        size = source_size if self.resolution is None else output_size(source_size, self.resolution)
        ids = [inst.instance_id for inst in instances]
        generator = {"labels": str(self.labels), "source_image_size": list(source_size)}
        splits = fmt.split_ids(ids)
        dataset = fmt.dataset_json(category, "folder", size, intrinsics_from_fov(size, self.fov_deg), splits, generator)
        console = Console(stderr=True)
        if note := fmt.untrainable_note(splits):
            console.print(f"warning: {self.out}: {note}", markup=False, soft_wrap=True)
        columns = (TextColumn("folder"), BarColumn(), MofNCompleteColumn(), TextColumn("instances"))
        with fmt.staging_dir(self.out) as tmp, Progress(*columns, console=console) as progress:
            task = progress.add_task("folder", total=len(instances))
            blank = []
            for inst in instances:
                blank += write_instance(tmp / inst.instance_id, inst, size)
                progress.advance(task)
            fmt.write_json(tmp / "dataset.json", dataset)
        console.print(f"Wrote {len(instances)} instances ({size[1]}x{size[0]} px) to {self.out}.")
        if blank:
            console.print(f"warning: {len(blank)} mask(s) mark no pixel or every pixel as object, e.g. {blank[0]}: "
                          "an object is above 127 (0/255), 1 in a 0/1 mask, or opaque in a mask with transparency",
                          markup=False, soft_wrap=True)
        return self.out


# ----------------------------------------------------------------------------------------------
# Reading and checking the label file.


def _finite(value, where: Path, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise fmt.FormatError(where, f"{key} must be a finite number, got {value!r}")
    return float(value)


def _view(entry, key: str, where: Path, default_distance: float, mask_required: bool) -> FolderView:
    if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
        raise fmt.FormatError(where, f"{key} must be an object with an 'image' path")
    if mask_required and not isinstance(entry.get("mask"), str):
        raise fmt.FormatError(where, f"{key} needs a 'mask' path")
    angles = [entry.get(k) for k in ("azimuth_deg", "elevation_deg")]
    if (mask_required and None in angles) or angles.count(None) == 1:
        raise fmt.FormatError(where, f"{key} needs azimuth_deg and elevation_deg" + ("" if mask_required else
                                                                                     " (both, or neither)"))
    azimuth, elevation = (None if v is None else _finite(v, where, f"{key}.{k}")
                          for v, k in zip(angles, ("azimuth_deg", "elevation_deg")))
    if elevation is not None and abs(elevation) > 90:
        raise fmt.FormatError(where, f"{key}.elevation_deg must be within [-90, 90], got {elevation:g}")
    distance = _finite(entry.get("distance", default_distance), where, f"{key}.distance")
    if distance <= 1:
        raise fmt.FormatError(where, f"{key}.distance must exceed 1 (the unit sphere holding the object), "
                              f"got {distance:g}")
    mask = entry.get("mask")
    return FolderView(where.parent / entry["image"], None if mask is None else where.parent / mask,
                      azimuth, elevation, distance)


def _instance(entry, index: int, where: Path, category: str, distance: float) -> FolderInstance:
    key = f"instances[{index}]"
    if not isinstance(entry, dict):
        raise fmt.FormatError(where, f"{key} must be an object")
    instance_id = entry.get("id", f"{category}_{index:04d}")
    if not isinstance(instance_id, str) or not fmt.INSTANCE_ID_PATTERN.match(instance_id):
        raise fmt.FormatError(where, f"{key}.id {instance_id!r} must match [A-Za-z0-9_-]+")
    entries = entry.get("views")
    if not isinstance(entries, list) or not entries:
        raise fmt.FormatError(where, f"{key}.views must be a non-empty list")
    views = [_view(v, f"{key}.views[{i}]", where, distance, True) for i, v in enumerate(entries)]
    chosen = entry.get("input")
    if isinstance(chosen, int) and not isinstance(chosen, bool):
        if not 0 <= chosen < len(views):
            raise fmt.FormatError(where, f"{key}.input {chosen} is not a view index (0..{len(views) - 1})")
        return FolderInstance(instance_id, views[chosen], views)
    if chosen is None:
        raise fmt.FormatError(where, f"{key} needs 'input': an object with an 'image' path or a view index")
    return FolderInstance(instance_id, _view(chosen, f"{key}.input", where, distance, False), views)


def read_labels(path: Path, category: Optional[str], distance: float) -> Tuple[str, List[FolderInstance]]:
    """The category and the instances of a pose-label file; paths resolved, nothing read but the JSON."""
    if not path.is_file():
        raise fmt.FormatError(path, "pose-label file is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise fmt.FormatError(path, f"not valid JSON (line {err.lineno}: {err.msg})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise fmt.FormatError(path, f"cannot be read ({err.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise fmt.FormatError(path, "must contain a JSON object")
    category = category or data.get("category")
    if not isinstance(category, str) or not fmt.INSTANCE_ID_PATTERN.match(category):
        raise fmt.FormatError(path, "needs a 'category' of [A-Za-z0-9_-]+ (or pass --category)")
    entries = data.get("instances")
    if not isinstance(entries, list) or not entries:
        raise fmt.FormatError(path, "instances must be a non-empty list")
    instances = [_instance(e, i, path, category, distance) for i, e in enumerate(entries)]
    seen: Dict[str, int] = {}
    for i, inst in enumerate(instances):
        if inst.instance_id in seen:
            first = seen[inst.instance_id]
            raise fmt.FormatError(path, f"instances[{i}] repeats the id {inst.instance_id!r} of instances[{first}]")
        seen[inst.instance_id] = i
    return category, instances


def check_images(instances: List[FolderInstance]) -> Tuple[int, int]:
    """Every image and mask must exist, be readable and share the size of the first view; returns (H, W)."""
    expected = fmt.image_size_of(instances[0].views[0].image)
    for inst in instances:
        for view in [inst.input] + inst.views:
            for path in (view.image, view.mask):
                if path is None:
                    continue
                size = fmt.image_size_of(path)
                if size != expected:
                    raise fmt.FormatError(path, f"size {size[0]}x{size[1]} differs from the first view's "
                                          f"{expected[0]}x{expected[1]} ({instances[0].views[0].image})")
    return expected


def output_size(source: Tuple[int, int], width: int) -> Tuple[int, int]:
    """(H, W) with W = width and the source aspect ratio."""
    if width < 8:
        raise ValueError(f"--resolution must be at least 8 pixels, got {width}")
    return max(1, round(source[0] * width / source[1])), width


# ----------------------------------------------------------------------------------------------
# Writing.


def _rgb(path: Path, size: Tuple[int, int]) -> np.ndarray:
    with fmt.open_image(path) as img:
        img = fmt.rgb_image(img)
        if img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.Resampling.LANCZOS)
        return np.asarray(img)


def _mask(path: Path, size: Tuple[int, int]) -> np.ndarray:
    mask = fmt.load_mask(path, zero_one=True)
    if mask.shape != size:
        coverage = Image.fromarray(mask.astype(np.uint8) * 255).resize((size[1], size[0]), Image.Resampling.BOX)
        mask = np.asarray(coverage) > 127
    return mask


def write_instance(folder: Path, inst: FolderInstance, size: Tuple[int, int]) -> List[Path]:
    """Write one instance's images, masks and cameras.json into `folder`; returns the source masks that mark no
    pixel or every pixel as object (a mask read wrongly, or an object out of the frame)."""
    entries, blank = [], []
    for v, view in enumerate(inst.views):
        fmt.save_rgb(folder / "views" / f"{v:03d}.png", _rgb(view.image, size))
        mask = _mask(view.mask, size)
        if mask.all() or not mask.any():
            blank.append(view.mask)
        fmt.save_mask(folder / "masks" / f"{v:03d}.png", mask)
        entries.append(fmt.view_entry(v, view.pose(), azimuth_deg=view.azimuth_deg,
                                      elevation_deg=view.elevation_deg, distance=view.distance))
    fmt.save_rgb(folder / "input.png", _rgb(inst.input.image, size))
    if inst.input.mask is not None:
        fmt.save_mask(folder / "input_mask.png", _mask(inst.input.mask, size))
    pose = inst.input.pose()
    labels = {"azimuth_deg": inst.input.azimuth_deg, "elevation_deg": inst.input.elevation_deg,
              "distance": inst.input.distance if pose is not None else None}
    fmt.write_cameras(folder, fmt.input_entry(pose, **labels), entries)
    return blank
