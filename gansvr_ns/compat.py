"""Guarded fixes that let nerfstudio 1.1.5's own tools work with this plugin on today's torch.

- Since torch 2.6, `torch.load` defaults to `weights_only=True`, and nerfstudio's checkpoints hold numpy
  scalars (learning-rate scheduler state), so `ns-viewer`, `ns-export` and `ns-eval` could not load any run.
  `allow_nerfstudio_checkpoints` allow-lists exactly those numpy types.
"""

from __future__ import annotations

import numpy as np
import torch


def allow_nerfstudio_checkpoints() -> None:
    """Allow-list the numpy scalar types found in nerfstudio checkpoints for `torch.load(weights_only=True)`."""
    add = getattr(torch.serialization, "add_safe_globals", None)
    if add is None:  # torch < 2.4 loads them without help
        return
    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    dtypes = [type(np.dtype(t)) for t in ("float64", "float32", "int64", "int32", "bool")]
    add([scalar, np.dtype, *dtypes])
