"""Dataset presets: named procedural datasets (`configs/presets/<name>.json`) that `--data data/<name>` can build.

A preset file holds `ProceduralConfig` options as JSON (every field except `out` and `progress`). This module
imports only the standard library at module level: the dataparser imports it while nerfstudio's own
dataparser registry is still importing, so the procedural source (numpy, torch) is imported on use.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Tuple

if TYPE_CHECKING:
    from gansvr_ns.data.procedural.source import ProceduralConfig

PRESET_DIR = Path(__file__).resolve().parents[2] / "configs" / "presets"
"""The repository's `configs/presets` folder."""
CALLER_FIELDS = ("out", "progress")
"""ProceduralConfig fields that the caller sets, never a preset file."""


def preset_names() -> List[str]:
    """Names of the available presets (file stems in PRESET_DIR), sorted."""
    if not PRESET_DIR.is_dir():
        return []
    return sorted(path.stem for path in PRESET_DIR.glob("*.json"))


def load_preset(name: str, out: Path) -> "ProceduralConfig":
    """The `ProceduralConfig` of preset `name`, writing to `out`; one-line ValueError for a bad or unknown file."""
    from gansvr_ns.data.procedural.source import ProceduralConfig

    path, options = _read_preset(name)
    known = {f.name for f in fields(ProceduralConfig)} - set(CALLER_FIELDS)
    for key in options:
        if key not in known:
            raise ValueError(f"{path}: unknown option {key!r} (known: {', '.join(sorted(known))})")
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
    config = ProceduralConfig(out=Path(out), **options)
    try:
        config.validate()
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
    return config


def _read_preset(name: str) -> Tuple[Path, dict]:
    """The file of preset `name` and its options as written (JSON values); one-line ValueError for an unknown preset,
    invalid JSON or anything but a JSON object."""
    path = PRESET_DIR / f"{name}.json"
    if not path.is_file():
        available = ", ".join(preset_names()) or "none"
        raise ValueError(f"{path}: unknown preset {name!r} (available: {available})")
    try:
        options = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(options, dict):
        raise ValueError(f"{path}: must contain a JSON object of ProceduralConfig options")
    return path, options


def generate_preset(name: str, out: Path) -> Path:
    """Generate preset `name` at `out` with a progress bar, announcing it in one line; returns `out`."""
    from gansvr_ns.data.procedural.source import generate

    config = load_preset(name, out)
    print(f"Generating preset {name} at {out} ...")
    return generate(config, progress=True)


def resolve_preset_path(data: Path) -> Optional[str]:
    """The preset name to generate for `data`: its last component, if `data` does not exist and names a preset."""
    data = Path(data)
    if data.exists() or data.name not in preset_names():
        return None
    return data.name


def preset_mismatch(data: Path) -> Optional[str]:
    """For an existing dataset folder named like a preset, a one-line note naming the options that its dataset.json
    records otherwise than the preset file does now (it was generated from an older preset); None when they agree,
    when the folder is not named like a preset, or when it was not made by the procedural generator."""
    data = Path(data)
    if data.name not in preset_names():
        return None
    try:
        _, options = _read_preset(data.name)
        dataset = json.loads((data / "dataset.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # an unreadable dataset.json or preset is reported where it is read
    generator = dataset.get("generator") if isinstance(dataset, dict) else None
    if not isinstance(generator, dict) or generator.get("name") != "procedural":
        return None
    changed = [f"{key} {json.dumps(generator[key])} (preset: {json.dumps(value)})"
               for key, value in options.items() if key in generator and generator[key] != value]
    if not changed:
        return None
    return (f"{data}: generated from an older {data.name} preset ({', '.join(changed)}); used as it is, delete the "
            "folder to have the current preset generated there")
