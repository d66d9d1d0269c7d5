"""`gansvr-viewcodes`: find and label the view codes of a StyleGAN2 checkpoint.

    gansvr-viewcodes sheet --checkpoint car.pt --first-seed 0 --num-seeds 48 --out sheet.png
    gansvr-viewcodes sheet --checkpoint car.pt --view-codes labels.json --out check.png
    gansvr-viewcodes validate labels.json --checkpoint car.pt

`sheet` shows each candidate seed as a view code mixed with a few content codes: what stays the same
across a cell is that code's viewpoint. Write the azimuth/elevation of the useful seeds into a label
file (see configs/viewcodes/), then `validate` it, and render it back with `sheet --view-codes` to check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch
import tyro
from PIL import Image, ImageDraw, ImageFont
from rich.console import Console

from gansvr_ns.data.sources import run_cli
from gansvr_ns.data.sources.stylegan2 import DEFAULT_DEVICE, resize_images
from gansvr_ns.generators.stylegan2 import CropMode, StyleGan2Generator, crop_image, load_stylegan2, to_rgb_uint8
from gansvr_ns.generators.viewcodes import (
    DEFAULT_MIX_LAYERS,
    DEFAULT_TRUNCATION,
    ViewCode,
    ViewCodeSet,
    check_against_generator,
    load_view_codes,
    mix_views,
    seed_to_z,
    view_code_ws,
)

CAPTION_HEIGHT = 16
CELL_GAP = 6


@dataclass
class SheetConfig:
    """Render a contact sheet of candidate view codes (a seed range, or a label file) with a few contents."""

    checkpoint: Path
    """StyleGAN2 checkpoint in rosinality/stylegan2-pytorch layout."""
    out: Path = Path("viewcodes_sheet.png")
    """PNG file to write."""
    first_seed: int = 0
    """First candidate seed of the range."""
    num_seeds: int = 48
    """Number of candidate seeds (first_seed, first_seed + 1, ...)."""
    view_codes: Optional[Path] = None
    """Show the codes of this label file, captioned with their labels, instead of the seed range."""
    content_seeds: Tuple[int, ...] = (1, 2, 3)
    """Seeds of the content codes every view code is shown with."""
    mix_layers: Optional[int] = None
    """w+ rows taken from the view code; default: the label file's, else 4."""
    truncation: Optional[float] = None
    """Truncation psi; default: the label file's, else 0.7."""
    tile: int = 128
    """Width of one image on the sheet, in pixels."""
    columns: int = 6
    """View codes per row of the sheet."""
    crop: CropMode = "none"
    """lsun-car: show the 512x384 band of LSUN Car canvases."""
    batch_size: int = 8
    """Images per generator batch."""
    device: str = DEFAULT_DEVICE
    """Torch device."""

    def main(self) -> Path:
        return run_cli(self.run)

    def run(self) -> Path:
        """Render every (view code, content) pair and lay them out with captions."""
        if not self.content_seeds or self.tile < 8 or self.columns < 1 or self.num_seeds < 1:
            raise ValueError("need at least one --content-seeds, --tile >= 8, --columns >= 1 and --num-seeds >= 1")
        generator = load_stylegan2(self.checkpoint, self.device)
        codes, captions, mix_layers, psi = self._candidates()
        where = self.view_codes or "--mix-layers"
        check_against_generator(ViewCodeSet(tuple(codes), mix_layers, psi), generator.arch.style_dim,
                                generator.n_latent, where)
        w_plus = sheet_latents(generator, codes, self.content_seeds, mix_layers, psi)
        tiles = render_tiles(generator, w_plus, self.crop, self.tile, self.batch_size)
        sheet = layout_sheet(tiles, captions, self.columns)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(self.out)
        Console(stderr=True).print(f"Wrote {len(codes)} view codes x {len(self.content_seeds)} contents to {self.out}")
        return self.out

    def _candidates(self) -> Tuple[List[ViewCode], List[str], int, float]:
        if self.view_codes is None:
            codes = [ViewCode(0.0, 0.0, seed=s) for s in range(self.first_seed, self.first_seed + self.num_seeds)]
            captions = [f"seed {c.seed}" for c in codes]
            mix_layers, psi = DEFAULT_MIX_LAYERS, DEFAULT_TRUNCATION
        else:
            labels = load_view_codes(self.view_codes)
            codes = list(labels.codes)
            captions = [f"{'seed ' + str(c.seed) if c.seed is not None else 'w'} az {c.azimuth_deg:g} "
                        f"el {c.elevation_deg:g}{' in' if c.input_only else ''}" for c in codes]
            mix_layers, psi = labels.mix_layers, labels.truncation
        mix_layers = self.mix_layers if self.mix_layers is not None else mix_layers
        psi = self.truncation if self.truncation is not None else psi
        if not 0.0 < psi <= 1.0:
            raise ValueError(f"truncation must lie in (0, 1], got {psi:g}")
        return codes, captions, mix_layers, psi


@torch.inference_mode()
def sheet_latents(generator: StyleGan2Generator, codes: List[ViewCode], content_seeds: Tuple[int, ...],
                  mix_layers: int, psi: float) -> torch.Tensor:
    """Truncated w+ [num_codes, num_contents, L, D]: view code i in the coarse rows, content j in the rest."""
    d = generator.arch.style_dim
    view_ws = view_code_ws(codes, generator)
    content_ws = generator.map(torch.stack([seed_to_z(s, d) for s in content_seeds]).to(view_ws.device))
    w_plus = torch.stack([mix_views(c, view_ws, generator.n_latent, mix_layers) for c in content_ws], dim=1)
    return generator.truncate(w_plus, psi)


@torch.inference_mode()
def render_tiles(generator: StyleGan2Generator, w_plus: torch.Tensor, crop: CropMode, tile: int,
                 batch_size: int) -> np.ndarray:
    """uint8 [num_codes, num_contents, h, tile, 3] from w+ [num_codes, num_contents, L, D], fixed noise."""
    images = []
    for chunk in w_plus.flatten(0, 1).split(batch_size):
        image = crop_image(generator(chunk), crop)
        height = max(1, round(tile * image.shape[-2] / image.shape[-1]))
        images.append(to_rgb_uint8(resize_images(image, (height, tile))).cpu().numpy())
    return np.concatenate(images).reshape(*w_plus.shape[:2], *images[0].shape[1:])


def layout_sheet(tiles: np.ndarray, captions: List[str], columns: int) -> Image.Image:
    """A grid of cells (one per view code: its contents side by side, the caption underneath)."""
    num_codes, num_contents, h, w, _ = tiles.shape
    cell_w, cell_h = num_contents * w + CELL_GAP, h + CAPTION_HEIGHT
    rows = -(-num_codes // columns)
    sheet = Image.new("RGB", (columns * cell_w - CELL_GAP, rows * cell_h), "white")
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    for i in range(num_codes):
        x, y = (i % columns) * cell_w, (i // columns) * cell_h
        sheet.paste(Image.fromarray(np.concatenate(list(tiles[i]), axis=1)), (x, y))
        draw.text((x + 3, y + h + 2), captions[i], fill="black", font=font)
    return sheet


@dataclass
class ValidateConfig:
    """Check a view-code label file; with --checkpoint, also that it fits the generator."""

    view_codes: tyro.conf.Positional[Path]
    """The label file."""
    checkpoint: Optional[Path] = None
    """StyleGAN2 checkpoint to check w lengths and mix_layers against."""

    def main(self) -> None:
        run_cli(self.run)

    def run(self) -> List[str]:
        """Return (and print) a summary: counts, settings and the angular coverage."""
        codes = load_view_codes(self.view_codes)
        if self.checkpoint is not None:
            generator = load_stylegan2(self.checkpoint)
            check_against_generator(codes, generator.arch.style_dim, generator.n_latent, self.view_codes)
        lines = [f"{self.view_codes}: valid", *summarize(codes.views, len(codes.inputs)),
                 f"mix_layers {codes.mix_layers}, truncation {codes.truncation:g}"]
        Console().print("\n".join(lines), highlight=False)
        return lines


def summarize(views: List[ViewCode], num_inputs: int) -> List[str]:
    """Counts, the azimuth/elevation ranges and the largest azimuth gap (where more labels would help)."""
    azimuths = sorted(c.azimuth_deg % 360.0 for c in views)
    gaps = [(b - a, a, b) for a, b in zip(azimuths, azimuths[1:] + [azimuths[0] + 360.0])]
    gap, start, end = max(gaps)
    elevations = [c.elevation_deg for c in views]
    return [
        f"{len(views)} pseudo-view codes, {num_inputs} input-only codes",
        f"elevation {min(elevations):g} .. {max(elevations):g} deg; "
        f"largest azimuth gap {gap:g} deg (from {start:g} to {end % 360.0:g})",
    ]


def entrypoint() -> None:
    """Console script `gansvr-viewcodes`."""
    config = tyro.extras.subcommand_cli_from_dict({"sheet": SheetConfig, "validate": ValidateConfig})
    config.main()

