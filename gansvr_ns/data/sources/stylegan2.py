"""`gansvr-generate stylegan2`: pseudo views from a StyleGAN2 checkpoint and hand-labelled view codes.

Instance k draws its content code z_k from a generator seeded by (seed, k). Each pseudo view v takes
w+ = [w_view_v in the first mix_layers rows, w(z_k) in the rest], truncated towards latent_avg, and is
posed at its label (azimuth, elevation) on an orbit of radius `distance`. The input image is the
content rendered at an `input_only` view code of the label file (one chosen per instance), or at a
random view (the coarse rows of a random w) when the file has none; it then has no pose.

Output and re-runs:
- Each instance is written to `<out>/.partial-<id>-<pid>` and renamed to `<out>/<id>` when complete,
  so an instance folder is either whole or absent. A re-run with the same settings skips the
  instances present and writes the rest; other settings are refused (`<out>/.gansvr-stylegan2.json`
  records them).
- `--shard i/n` (0 <= i < n) writes only instances k with k % n == i. Shards may run at once into one
  folder, or into separate folders whose instance folders (and `.gansvr-stylegan2.json`) are then
  copied into one. `dataset.json` is written last, by whichever run finds every instance present: the
  last shard to finish, or a final run without `--shard`, which also fills any gap.

`--masks-from DIR` takes the user's own masks instead of the segmenter: `DIR/<id>/masks/NNN.png` for
view NNN (000, 001, ... in label-file order of the non-input codes) and optionally
`DIR/<id>/input_mask.png`; any size (resized to the output), a value > 127 is object, used as given.
Generation is deterministic, so masks made from the views of one run fit a re-run with the same settings.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor

import gansvr_ns
from gansvr_ns.data import format as fmt
from gansvr_ns.data.sources import intrinsics_from_fov, run_cli, write_json_atomic
from gansvr_ns.generators import segmentation as seg
from gansvr_ns.generators.stylegan2 import CropMode, StyleGan2Generator, crop_image, load_stylegan2
from gansvr_ns.generators.viewcodes import (
    ViewCode,
    ViewCodeSet,
    check_against_generator,
    load_view_codes,
    mix_views,
    view_code_ws,
)

SETTINGS_FILE = ".gansvr-stylegan2.json"
MaskPair = Tuple[np.ndarray, Optional[np.ndarray]]
"""(view masks bool [V, H, W], input mask bool [H, W] or None)."""
DEFAULT_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class StyleGan2SourceConfig:
    """Turn a StyleGAN2 checkpoint (rosinality layout) and labelled view codes into a pseudo-view dataset."""

    checkpoint: Path
    """StyleGAN2 checkpoint in rosinality/stylegan2-pytorch layout: {"g_ema": state_dict, "latent_avg": w}."""
    view_codes: Path
    """Label file of view codes (see configs/viewcodes/ and `gansvr-viewcodes`)."""
    out: Path
    """Output dataset folder. A re-run with the same settings completes an interrupted output."""
    segmenter_weights: Optional[Path] = None
    """Local DeepLabV3 (ResNet-50 or MobileNetV3-Large, 21 VOC classes) state dict for the masks."""
    masks_from: Optional[Path] = None
    """Use your own masks instead of the segmenter: DIR/<id>/masks/NNN.png (+ optional DIR/<id>/input_mask.png)."""
    num_instances: int = 1000
    """Number of object instances (content codes)."""
    resolution: int = 256
    """Output width in pixels; the height is equal, or 3/4 of it with --crop lsun-car."""
    seed: int = 0
    """Seed: instance k's content code comes from a generator seeded by (seed, k)."""
    category: str = "car"
    """Object category, written to dataset.json and used for instance ids (<category>_0000)."""
    voc_class: Optional[str] = None
    """VOC class the segmenter keeps; default: the category (car -> car)."""
    segmenter_arch: seg.SegmenterArch = "auto"
    """DeepLabV3 backbone of --segmenter-weights; auto reads it from the keys."""
    segment_width: int = 256
    """Width in pixels of the image given to the segmenter (the aspect ratio is kept)."""
    crop: CropMode = "none"
    """lsun-car: keep the central 3/4 of the rows (the 512x384 car band of a 512x512 LSUN Car canvas)."""
    mix_layers: Optional[int] = None
    """w+ rows taken from the view code; default: the label file's mix_layers (4 if absent)."""
    truncation: Optional[float] = None
    """Truncation psi towards latent_avg; default: the label file's truncation (0.7 if absent)."""
    noise: Literal["fixed", "random"] = "fixed"
    """fixed: the checkpoint's noise buffers; random: one noise draw per instance, shared by its views."""
    fov_deg: float = 50.0
    """Horizontal field of view of the intrinsics written to dataset.json, in degrees."""
    distance: float = 2.5
    """Camera distance from the object centre for the poses made from the labels."""
    batch_size: int = 8
    """Images per generator / segmenter batch."""
    device: str = DEFAULT_DEVICE
    """Torch device (cuda when available)."""
    shard: Optional[str] = None
    """i/n: write only the instances k with k % n == i (0 <= i < n). dataset.json is written by the run that
    finds all instances present: the last shard, or a final run without --shard (which also fills gaps)."""

    def main(self) -> Path:
        """Run from the CLI: a bad input prints one line and exits with status 2."""
        return run_cli(self.run)

    def run(self) -> Path:
        """Generate the missing instances of this shard; write dataset.json when all are present."""
        shard = parse_shard(self.shard)
        self._check_options()
        codes = self._view_codes()
        ids = instance_ids(self.category, self.num_instances)
        todo = [k for k in range(self.num_instances) if k % shard[1] == shard[0] and not (self.out / ids[k]).is_dir()]
        masker = self._masker(len(codes.views), [ids[k] for k in todo])
        console = Console(stderr=True)
        console.print(f"Loading {self.checkpoint}")
        generator = load_stylegan2(self.checkpoint, self.device)
        check_against_generator(codes, generator.arch.style_dim, generator.n_latent, self.view_codes)
        settings = self._settings(generator, codes)
        prepare_output(self.out, settings)
        renderer = InstanceRenderer(self, generator, codes, masker)
        start = time.perf_counter()
        with _progress(console) as progress:
            task = progress.add_task(f"stylegan2 shard {shard[0]}/{shard[1]}", total=len(todo))
            for k in todo:
                renderer.write(self.out, ids[k], k)
                progress.advance(task)
        self._finish(console, ids, settings, len(todo), time.perf_counter() - start, renderer.empty_masks)
        return self.out

    def image_size(self) -> Tuple[int, int]:
        """(height, width) of the written images."""
        return (round(self.resolution * 3 / 4), self.resolution) if self.crop == "lsun-car" else (self.resolution,) * 2

    def _check_options(self) -> None:
        if (self.segmenter_weights is None) == (self.masks_from is None):
            raise ValueError("give exactly one of --segmenter-weights PATH or --masks-from DIR")
        if not fmt.INSTANCE_ID_PATTERN.match(self.category):
            raise ValueError(f"category {self.category!r} must match [A-Za-z0-9_-]+ (it prefixes instance ids)")
        for name in ("num_instances", "resolution", "batch_size", "segment_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.distance <= 0:
            raise ValueError(f"--distance must be positive, got {self.distance:g}")
        intrinsics_from_fov(self.image_size(), self.fov_deg)

    def _view_codes(self) -> ViewCodeSet:
        codes = load_view_codes(self.view_codes)
        given = (("mix_layers", self.mix_layers), ("truncation", self.truncation))
        overrides = {k: v for k, v in given if v is not None}
        if "truncation" in overrides and not 0.0 < overrides["truncation"] <= 1.0:
            raise ValueError(f"--truncation must lie in (0, 1], got {self.truncation:g}")
        if "mix_layers" in overrides and overrides["mix_layers"] < 1:
            raise ValueError(f"--mix-layers must be positive, got {self.mix_layers}")
        return dataclasses.replace(codes, **overrides)

    def _masker(self, num_views: int, todo_ids: List[str]):
        """The user's masks (checked now for the instances to write) or the segmenter."""
        if self.masks_from is not None:
            masker = FolderMasks(self.masks_from, num_views)
            masker.check(todo_ids)
            return masker
        class_index = seg.voc_class_index(self.voc_class or self.category)
        model = seg.load_segmenter(self.segmenter_weights, self.segmenter_arch, self.device)
        return SegmenterMasks(model, class_index, self.segment_width, self.batch_size)

    def _settings(self, generator: StyleGan2Generator, codes: ViewCodeSet) -> Dict:
        """Everything that determines the output, as plain JSON values; a re-run or another shard must match it."""
        if self.masks_from is not None:
            masks: Dict = {"from": "user folder"}
        else:
            masks = {"segmenter_sha256": file_sha256(self.segmenter_weights),
                     "voc_class": seg.VOC_CLASSES[seg.voc_class_index(self.voc_class or self.category)],
                     "segment_width": self.segment_width}
        settings = {
            "seed": self.seed, "num_instances": self.num_instances, "category": self.category,
            "image_size": list(self.image_size()), "crop": self.crop, "noise": self.noise,
            "fov_deg": self.fov_deg, "distance": self.distance,
            "checkpoint_sha256": file_sha256(self.checkpoint), "architecture": dataclasses.asdict(generator.arch),
            "latent_avg": generator.latent_avg_source, "mix_layers": codes.mix_layers,
            "truncation": codes.truncation, "view_codes": [dataclasses.asdict(c) for c in codes.codes],
            "masks": masks,
        }
        return json.loads(json.dumps(settings))

    def _finish(self, console: Console, ids: List[str], settings: Dict, written: int, seconds: float,
                empty_masks: int) -> None:
        present = sum((self.out / i).is_dir() for i in ids)
        rate = f" ({60.0 * written / seconds:.1f} instances/min)" if written else ""
        console.print(f"Wrote {written} instances to {self.out}{rate}; {present}/{len(ids)} present.")
        if empty_masks:
            console.print(f"[yellow]{empty_masks} masks are empty (no '{settings['masks'].get('voc_class', 'object')}' "
                          "found); check the segmenter or the category.[/yellow]")
        if present < len(ids):
            console.print("dataset.json is written by the run that finds every instance present "
                          "(the last shard, or a run without --shard).")
            return
        inputs = {"checkpoint": str(self.checkpoint), "view_codes": str(self.view_codes),
                  "segmenter_weights": None if self.segmenter_weights is None else str(self.segmenter_weights),
                  "masks_from": None if self.masks_from is None else str(self.masks_from)}
        generator_info = {**settings, "inputs": inputs,
                          "versions": {"gansvr_ns": gansvr_ns.__version__, "torch": torch.__version__}}
        image_size = tuple(settings["image_size"])
        splits = fmt.split_ids(ids)
        data = fmt.dataset_json(self.category, "stylegan2", image_size, intrinsics_from_fov(image_size, self.fov_deg),
                                splits, generator_info)
        if note := fmt.untrainable_note(splits):
            console.print(f"warning: {self.out}: {note}", markup=False, soft_wrap=True)
        write_json_atomic(self.out / "dataset.json", data)
        console.print(f"Wrote {self.out / 'dataset.json'} ({len(ids)} instances).")


# ----------------------------------------------------------------------------------------------
# Output folder bookkeeping.


def parse_shard(text: Optional[str]) -> Tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n; None -> (0, 1)."""
    if text is None:
        return 0, 1
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"--shard {text}: need 0 <= i < n")
    return index, count


def instance_ids(category: str, count: int) -> List[str]:
    """<category>_0000, <category>_0001, ... (at least 4 digits)."""
    digits = max(4, len(str(count - 1)))
    return [f"{category}_{k:0{digits}d}" for k in range(count)]


def instance_generator(seed: int, index: int) -> torch.Generator:
    """A CPU torch generator seeded from (seed, index) through numpy's SeedSequence (independent streams)."""
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 31 ^ int(state[1]))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_output(out: Path, settings: Dict) -> None:
    """Create `out` with its settings file, or check that an existing output was made with these settings."""
    path = out / SETTINGS_FILE
    if path.is_file():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise fmt.FormatError(path, "unreadable settings file; remove it only if the folder is to be regenerated")
        if not isinstance(previous, dict):
            raise fmt.FormatError(path, "settings file must contain a JSON object")
        changed = sorted(k for k in set(settings) | set(previous) if settings.get(k) != previous.get(k))
        if changed:
            raise ValueError(f"{out}: was generated with other settings ({', '.join(changed)} differ); "
                             "use a new --out or the same settings")
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out}: exists, is not empty and has no {SETTINGS_FILE}: "
                         "not a gansvr-generate stylegan2 output")
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, settings)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("instances"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console)


# ----------------------------------------------------------------------------------------------
# Masks.


class SegmenterMasks:
    """Masks from DeepLabV3: argmax == class at `segment_width`, resized, largest component, holes filled."""

    def __init__(self, model, class_index: int, segment_width: int, batch_size: int):
        self.model, self.class_index = model, class_index
        self.segment_width, self.batch_size = segment_width, batch_size

    def __call__(self, instance_id: str, images: Tensor, size: Tuple[int, int]) -> MaskPair:
        """images: [V+1, 3, h, w] in [0, 1] (views, then the input) -> (bool [V, H, W], bool [H, W])."""
        h, w = images.shape[-2:]
        seg_size = (max(1, round(self.segment_width * h / w)), self.segment_width)
        small = resize_images(images, seg_size)
        masks = torch.cat([seg.predict_class_mask(self.model, chunk, self.class_index)
                           for chunk in small.split(self.batch_size)])
        cleaned = np.stack([seg.clean_mask(m) for m in seg.resize_masks(masks, size).cpu().numpy()])
        return cleaned[:-1], cleaned[-1]


class FolderMasks:
    """The user's masks: <root>/<id>/masks/NNN.png per view and optionally <root>/<id>/input_mask.png."""

    def __init__(self, root: Path, num_views: int):
        if not root.is_dir():
            raise fmt.FormatError(root, "--masks-from folder does not exist")
        self.root, self.num_views = root, num_views

    def check(self, ids: List[str]) -> None:
        """Fail before any rendering if a view mask of these instances is missing."""
        for instance_id in ids:
            for v in range(self.num_views):
                path = self.root / instance_id / "masks" / f"{v:03d}.png"
                if not path.is_file():
                    raise fmt.FormatError(path, "mask missing (--masks-from expects <id>/masks/NNN.png per view)")

    def __call__(self, instance_id: str, images: Tensor, size: Tuple[int, int]) -> MaskPair:
        views = np.stack([self._load(self.root / instance_id / "masks" / f"{v:03d}.png", size)
                          for v in range(images.shape[0] - 1)])
        input_path = self.root / instance_id / "input_mask.png"
        return views, self._load(input_path, size) if input_path.is_file() else None

    @staticmethod
    def _load(path: Path, size: Tuple[int, int]) -> np.ndarray:
        mask = torch.from_numpy(fmt.load_mask(path))[None]
        return seg.resize_masks(mask, size)[0].numpy()


# ----------------------------------------------------------------------------------------------
# Rendering and writing one instance.


def resize_images(images: Tensor, size: Tuple[int, int]) -> Tensor:
    """Antialiased bilinear resize of [B, C, h, w] to size (H, W); identity when the size already matches."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    return F.interpolate(images, size=size, mode="bilinear", antialias=True, align_corners=False)


class InstanceRenderer:
    """Renders the views and the input of an instance and writes its folder atomically."""

    def __init__(self, config: StyleGan2SourceConfig, generator: StyleGan2Generator, codes: ViewCodeSet, masker):
        self.config, self.generator, self.codes, self.masker = config, generator, codes, masker
        self.view_ws = view_code_ws(codes.views, generator)
        self.input_ws = view_code_ws(codes.inputs, generator) if codes.inputs else None
        self.empty_masks = 0

    @torch.inference_mode()
    def render(self, index: int) -> Tuple[Tensor, Optional[ViewCode]]:
        """Images [V+1, 3, h, w] in [0, 1] (views in label order, then the input) and the input's view code.

        Random draws from the (seed, index) generator, in order: content z, then either the input
        view code's index or a random z for the input's view, then the noise (noise=random only).
        """
        gen, style_dim = self.generator, self.generator.arch.style_dim
        device = self.view_ws.device
        rng = instance_generator(self.config.seed, index)
        content_w = gen.map(torch.randn(1, style_dim, generator=rng).to(device))[0]
        if self.input_ws is not None:
            pick = int(torch.randint(len(self.codes.inputs), (1,), generator=rng))
            input_w, input_code = self.input_ws[pick], self.codes.inputs[pick]
        else:
            input_w, input_code = gen.map(torch.randn(1, style_dim, generator=rng).to(device))[0], None
        noise = gen.random_noise(rng) if self.config.noise == "random" else None
        view_ws = torch.cat([self.view_ws, input_w[None]])
        w_plus = gen.truncate(mix_views(content_w, view_ws, gen.n_latent, self.codes.mix_layers), self.codes.truncation)
        images = torch.cat([gen(chunk, noise) for chunk in w_plus.split(self.config.batch_size)])
        return ((crop_image(images, self.config.crop) + 1.0) / 2.0).clamp(0.0, 1.0), input_code

    def write(self, out: Path, instance_id: str, index: int) -> None:
        """Render instance `index` into a temporary folder, then rename it to `out/<instance_id>`."""
        for stale in out.glob(f".partial-{instance_id}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = out / f".partial-{instance_id}-{os.getpid()}"
        tmp.mkdir()
        images, input_code = self.render(index)
        size = self.config.image_size()
        with torch.inference_mode():
            rgb = (resize_images(images, size) * 255.0 + 0.5).floor().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
            view_masks, input_mask = self.masker(instance_id, images, size)
        self.empty_masks += int(sum(not m.any() for m in view_masks))
        entries = []
        for v, code in enumerate(self.codes.views):
            fmt.save_rgb(tmp / "views" / f"{v:03d}.png", rgb[v])
            fmt.save_mask(tmp / "masks" / f"{v:03d}.png", view_masks[v])
            entries.append(self._entry(v, code))
        fmt.save_rgb(tmp / "input.png", rgb[-1])
        if input_mask is not None:
            fmt.save_mask(tmp / "input_mask.png", input_mask)
        fmt.write_cameras(tmp, self._input_camera(input_code), entries)
        os.replace(tmp, out / instance_id)

    def _entry(self, v: int, code: ViewCode) -> Dict:
        d = self.config.distance
        pose = fmt.orbit_pose(code.azimuth_deg, code.elevation_deg, d)
        return fmt.view_entry(v, pose, azimuth_deg=code.azimuth_deg, elevation_deg=code.elevation_deg, distance=d)

    def _input_camera(self, code: Optional[ViewCode]) -> Dict:
        if code is None:
            return fmt.input_entry(None)
        d = self.config.distance
        pose = fmt.orbit_pose(code.azimuth_deg, code.elevation_deg, d)
        return fmt.input_entry(pose, azimuth_deg=code.azimuth_deg, elevation_deg=code.elevation_deg, distance=d)
