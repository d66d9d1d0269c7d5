"""View codes: hand-labelled w vectors whose coarse w+ rows set the viewpoint of a StyleGAN2 image.

Label file (JSON):

    {"view_codes": [{"seed": 11, "azimuth_deg": 0, "elevation_deg": 10},
                    {"w": [0.1, ...], "azimuth_deg": 45, "elevation_deg": 10},
                    {"seed": 90, "azimuth_deg": 200, "elevation_deg": 5, "input_only": true}],
     "mix_layers": 4, "truncation": 0.7}

A seed means z = numpy.random.RandomState(seed).randn(style_dim), the official StyleGAN2 convention,
mapped to w by the generator. Entries with `"input_only": true` are never pseudo views; they pose the
input image instead. `mix_layers` (default 4) and `truncation` (default 0.7) are optional. Keys that
start with "_" (e.g. "_note") are comments and ignored.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from gansvr_ns.data.format import FormatError

DEFAULT_MIX_LAYERS = 4
DEFAULT_TRUNCATION = 0.7
TOP_KEYS = {"view_codes", "mix_layers", "truncation"}
ENTRY_KEYS = {"seed", "w", "azimuth_deg", "elevation_deg", "input_only"}


@dataclass(frozen=True)
class ViewCode:
    """One labelled view code: a seed of the mapping network or an explicit w."""

    azimuth_deg: float
    elevation_deg: float
    seed: Optional[int] = None
    w: Optional[Tuple[float, ...]] = None
    input_only: bool = False

    def describe(self) -> str:
        code = f"seed {self.seed}" if self.seed is not None else "explicit w"
        return f"{code} (azimuth {self.azimuth_deg:g}, elevation {self.elevation_deg:g})"


@dataclass(frozen=True)
class ViewCodeSet:
    """The parsed label file."""

    codes: Tuple[ViewCode, ...]
    mix_layers: int = DEFAULT_MIX_LAYERS
    truncation: float = DEFAULT_TRUNCATION

    @property
    def views(self) -> List[ViewCode]:
        """Codes rendered as pseudo views, in file order."""
        return [c for c in self.codes if not c.input_only]

    @property
    def inputs(self) -> List[ViewCode]:
        """Codes held out for the input image."""
        return [c for c in self.codes if c.input_only]


def _number(value, where: Path, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FormatError(where, f"{key} must be a finite number, got {value!r}")
    return float(value)


def _parse_entry(entry, index: int, where: Path) -> ViewCode:
    key = f"view_codes[{index}]"
    if not isinstance(entry, dict):
        raise FormatError(where, f"{key} must be an object")
    unknown = sorted(k for k in set(entry) - ENTRY_KEYS if not str(k).startswith("_"))
    if unknown:
        allowed = ", ".join(sorted(ENTRY_KEYS))
        raise FormatError(where, f"{key} has unknown key(s) {', '.join(unknown)} (allowed: {allowed})")
    if ("seed" in entry) == ("w" in entry):
        raise FormatError(where, f"{key} needs exactly one of 'seed' or 'w'")
    for name in ("azimuth_deg", "elevation_deg"):
        if name not in entry:
            raise FormatError(where, f"{key} is missing {name}")
    elevation = _number(entry["elevation_deg"], where, f"{key}.elevation_deg")
    if not -90.0 <= elevation <= 90.0:
        raise FormatError(where, f"{key}.elevation_deg must lie in [-90, 90], got {elevation:g}")
    input_only = entry.get("input_only", False)
    if not isinstance(input_only, bool):
        raise FormatError(where, f"{key}.input_only must be true or false")
    seed, w = entry.get("seed"), entry.get("w")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32):
        raise FormatError(where, f"{key}.seed must be an integer in [0, 2^32), got {seed!r}")
    if w is not None:
        if not isinstance(w, list) or not w:
            raise FormatError(where, f"{key}.w must be a non-empty list of numbers")
        w = tuple(_number(v, where, f"{key}.w[{i}]") for i, v in enumerate(w))
    return ViewCode(_number(entry["azimuth_deg"], where, f"{key}.azimuth_deg"), elevation, seed, w, input_only)


def parse_view_codes(data, where: Path | str = "<view codes>") -> ViewCodeSet:
    """Check a label-file object and return its view codes; every problem is one FormatError naming `where`."""
    where = Path(where)
    if not isinstance(data, dict):
        raise FormatError(where, "must contain a JSON object")
    unknown = sorted(k for k in set(data) - TOP_KEYS if not str(k).startswith("_"))
    if unknown:
        raise FormatError(where, f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(TOP_KEYS))})")
    entries = data.get("view_codes")
    if not isinstance(entries, list) or not entries:
        raise FormatError(where, "view_codes must be a non-empty list")
    codes = tuple(_parse_entry(entry, i, where) for i, entry in enumerate(entries))
    if all(c.input_only for c in codes):
        raise FormatError(where, "every view code is input_only: at least one must be a pseudo view")
    seen: Dict[object, int] = {}
    for i, code in enumerate(codes):
        identity = code.seed if code.seed is not None else code.w
        if identity in seen:
            raise FormatError(where, f"view_codes[{i}] repeats view_codes[{seen[identity]}] ({code.describe()})")
        seen[identity] = i
    dims = {len(c.w) for c in codes if c.w is not None}
    if len(dims) > 1:
        raise FormatError(where, f"explicit w vectors differ in length ({', '.join(map(str, sorted(dims)))})")
    mix_layers = data.get("mix_layers", DEFAULT_MIX_LAYERS)
    if isinstance(mix_layers, bool) or not isinstance(mix_layers, int) or mix_layers < 1:
        raise FormatError(where, f"mix_layers must be a positive integer, got {mix_layers!r}")
    truncation = _number(data.get("truncation", DEFAULT_TRUNCATION), where, "truncation")
    if not 0.0 < truncation <= 1.0:
        raise FormatError(where, f"truncation must lie in (0, 1], got {truncation:g}")
    return ViewCodeSet(codes, mix_layers, truncation)


def load_view_codes(path: Path | str) -> ViewCodeSet:
    """Read and check a label file."""
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, "view-code label file is missing")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise FormatError(path, f"not valid JSON (line {err.lineno}: {err.msg})") from None
    except (OSError, UnicodeDecodeError) as err:
        raise FormatError(path, f"cannot be read ({err.__class__.__name__})") from None
    return parse_view_codes(data, path)


def check_against_generator(codes: ViewCodeSet, style_dim: int, n_latent: int, where: Path | str) -> None:
    """The label file must fit the generator: w of length style_dim, 1 <= mix_layers < n_latent."""
    for i, code in enumerate(codes.codes):
        if code.w is not None and len(code.w) != style_dim:
            raise FormatError(where, f"view_codes[{i}].w has {len(code.w)} values, the generator's style_dim is "
                              f"{style_dim}")
    if codes.mix_layers >= n_latent:
        raise FormatError(where, f"mix_layers {codes.mix_layers} must be below the generator's {n_latent} w+ rows "
                          "(the content needs the remaining rows)")


def seed_to_z(seed: int, style_dim: int) -> Tensor:
    """z = RandomState(seed).randn(style_dim), as float32 [D] (the official StyleGAN2 seed convention)."""
    return torch.from_numpy(np.random.RandomState(seed).randn(style_dim).astype(np.float32))


@torch.no_grad()
def view_code_ws(codes: Sequence[ViewCode], generator) -> Tensor:
    """The untruncated w of each view code, [V, D] on the generator's device (seeds go through the mapping)."""
    device = generator.latent_avg.device
    ws = []
    for code in codes:
        if code.w is not None:
            ws.append(torch.tensor(code.w, dtype=torch.float32, device=device))
        else:
            ws.append(generator.map(seed_to_z(code.seed, generator.arch.style_dim)[None].to(device))[0])
    return torch.stack(ws)


def mix_views(content_w: Tensor, view_ws: Tensor, n_latent: int, mix_layers: int) -> Tensor:
    """w+ for each view: rows [0, mix_layers) from the view code, rows [mix_layers, L) from the content.

    content_w: [D]; view_ws: [V, D] -> [V, L, D].
    """
    if not 1 <= mix_layers < n_latent:
        raise ValueError(f"mix_layers must lie in [1, {n_latent}), got {mix_layers}")
    num_views = view_ws.shape[0]
    coarse = view_ws[:, None, :].expand(num_views, mix_layers, -1)
    fine = content_w[None, None, :].expand(num_views, n_latent - mix_layers, -1)
    return torch.cat([coarse, fine], dim=1)
