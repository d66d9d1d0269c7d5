"""Data sources: programs that write the pseudo-view format (FORMAT.md) and nothing else.

Each source is a tyro dataclass config with a `main()` that `gansvr-generate <source>` calls:
`stylegan2.StyleGan2SourceConfig` (a StyleGAN2 checkpoint plus labelled view codes) and
`folder.FolderSourceConfig` (a user's existing pseudo views). This package stays light (no torch at
import) so that listing the sources costs nothing; the helpers below are what sources share.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Callable, Dict, Tuple, TypeVar

T = TypeVar("T")


def intrinsics_from_fov(image_size: Tuple[int, int], fov_deg: float) -> Dict[str, float]:
    """Pinhole intrinsics in pixels from the horizontal field of view: fx = fy = (W / 2) / tan(fov / 2).

    The principal point is the image centre (W / 2, H / 2); image_size is (height, width).
    """
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov_deg must lie in (0, 180), got {fov_deg:g}")
    height, width = image_size
    focal = (width / 2.0) / math.tan(math.radians(fov_deg) / 2.0)
    return {"fx": focal, "fy": focal, "cx": width / 2.0, "cy": height / 2.0}


def write_json_atomic(path: Path, data: Dict) -> None:
    """Write JSON through a temporary file unique to this process, then rename it into place.

    Unlike `format.write_json`, concurrent writers (shards finishing together) never share a temp file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def run_cli(work: Callable[[], T]) -> T:
    """Run a source; a bad input (ValueError, including FormatError) or an OS error prints one line, exits 2."""
    try:
        return work()
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
