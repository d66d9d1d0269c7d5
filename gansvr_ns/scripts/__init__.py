"""The package's command lines; `check_output_path` is shared with `scripts/benchmark.py`."""

from pathlib import Path


def check_output_path(path: Path, option: str, folder: bool = False) -> Path:
    """A ValueError naming the path when a file (`folder`: a folder) cannot be made at `path`: a folder (a file) is
    there, or the nearest existing folder above it is a file; returns that folder."""
    if path.is_dir() and not folder:
        raise ValueError(f"{path}: {option} is a folder, not a file")
    if path.exists() and not path.is_dir() and folder:
        raise ValueError(f"{path}: {option} is a file, not a folder")
    existing = next(parent for parent in path.absolute().parents if parent.exists())
    if not existing.is_dir():
        raise ValueError(f"{existing}: a file, so {option} {path} cannot be written below it")
    return existing
