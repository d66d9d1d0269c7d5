"""Guarded fixes that let nerfstudio 1.1.5's own tools work with this plugin on today's torch and on a CPU.

- Since torch 2.6, `torch.load` defaults to `weights_only=True`, and nerfstudio's checkpoints hold numpy
  scalars (learning-rate scheduler state), so `ns-viewer`, `ns-export` and `ns-eval` could not load any run.
  `allow_nerfstudio_checkpoints` allow-lists exactly those numpy types.
- `ns-export marching-cubes` calls `.cuda()` unconditionally inside
  `nerfstudio.exporter.marching_cubes.generate_mesh_with_multires_marching_cubes`, and its texture step renders a
  UV texture with the model (4.2 M rays by default, through `Model.get_rgba_image`, which needs a `renderer_rgb`
  that gansvr does not have). `patch_nerfstudio_exporter` makes the first run on the CPU when CUDA is absent, and
  replaces the second, for gansvr models only, by vertex colours from the colour head (PLY, OBJ and GLB). Nothing
  of the exporter is copied: its functions are wrapped.
- `ns-viewer` (and `ns-train --vis viewer`) starts viser's camera inside the unit sphere, i.e. inside a gansvr
  object, and renders still frames at 512 px, which takes minutes per frame on a CPU. `patch_nerfstudio_viewer`
  starts every client's camera on an orbit around the object and, without CUDA, the "Max res" slider at
  `VIEWER_CPU_MAX_RES` (the user can raise it). Only gansvr runs are affected.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from pathlib import Path
from typing import Callable, Iterator, List

import numpy as np
import torch

MARCHING_CUBES_MODULE = "nerfstudio.exporter.marching_cubes"
TEXTURE_MODULE = "nerfstudio.exporter.texture_utils"
EXPORTER_SCRIPT = "nerfstudio.scripts.exporter"
MARCHING_CUBES_FN = "generate_mesh_with_multires_marching_cubes"
TEXTURE_FN = "export_textured_mesh"
VIEWER_MODULE = "nerfstudio.viewer.viewer"
MESH_STEM = "mesh"
"""The texture step writes `<output dir>/mesh.{ply,obj,glb}`, the name nerfstudio's own texture step uses."""
VIEWER_CPU_MAX_RES = 128
"""Start value of the viewer's "Max res" slider without CUDA (nerfstudio starts at 512)."""
VIEWER_START_ORBIT = (30.0, 20.0, 3.0)
"""Azimuth (deg), elevation (deg) and distance of each viewer client's first camera, in the object frame."""


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


def patch_nerfstudio_tools() -> None:
    """Adapt the already imported parts of `ns-export` and `ns-viewer` to gansvr runs (idempotent)."""
    patch_nerfstudio_exporter()
    patch_nerfstudio_viewer()


def patch_nerfstudio_exporter() -> None:
    """Adapt the parts of nerfstudio's exporter that are already imported (idempotent).

    `ns-export` imports its exporter modules before it discovers plugins, so calling this when the gansvr model
    module is imported covers `ns-export`. Code that imports the exporter later calls this again itself.
    """
    if not torch.cuda.is_available():
        _wrap(MARCHING_CUBES_MODULE, MARCHING_CUBES_FN, _on_cpu)
    _wrap(TEXTURE_MODULE, TEXTURE_FN, vertex_colors_instead_of_texture)


def _wrap(module_name: str, name: str, make_wrapper: Callable[[Callable], Callable]) -> None:
    """Replace `module.name` (and `ns-export`'s own imported reference to it) by `make_wrapper(original)`."""
    module = sys.modules.get(module_name)
    original = getattr(module, name, None)
    if original is None or getattr(original, "__gansvr_wrapped__", False):
        return
    wrapper = functools.wraps(original)(make_wrapper(original))
    wrapper.__gansvr_wrapped__ = True
    setattr(module, name, wrapper)
    script = sys.modules.get(EXPORTER_SCRIPT)
    if getattr(script, name, None) is original:  # `from ... import name` done before the patch
        setattr(script, name, wrapper)


@contextlib.contextmanager
def cuda_calls_stay_on_cpu() -> Iterator[None]:
    """Within the block `Tensor.cuda()` returns the tensor itself. Only for machines without CUDA."""
    if torch.cuda.is_available():
        raise RuntimeError("cuda_calls_stay_on_cpu is only for machines without CUDA")
    original = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = original


def _on_cpu(original: Callable) -> Callable:
    """`original`, run with `cuda_calls_stay_on_cpu`."""

    def on_cpu(*args, **kwargs):
        with cuda_calls_stay_on_cpu():
            return original(*args, **kwargs)

    return on_cpu


def vertex_colors_instead_of_texture(original: Callable) -> Callable:
    """nerfstudio's texture step `original` for other models; `write_vertex_colored_mesh` for gansvr models."""

    def export_textured_mesh(mesh, pipeline, output_dir: Path, *args, **kwargs):
        from gansvr_ns.model.gansvr_model import GanSvrModel

        if not isinstance(pipeline.model, GanSvrModel):
            return original(mesh, pipeline, output_dir, *args, **kwargs)
        return write_vertex_colored_mesh(mesh.vertices, mesh.faces, pipeline.model, Path(output_dir))

    return export_textured_mesh


def write_vertex_colored_mesh(vertices: torch.Tensor, faces: torch.Tensor, model, output_dir: Path) -> List[Path]:
    """The texture step for gansvr: colour the vertices of the selected instance and write PLY, OBJ and GLB.

    nerfstudio's UV texturing renders num_pixels_per_side^2 rays (4.2 M by default) along the inward normal of
    each texel; the colour head seen along the inward normal at each vertex (`vertex_colors`) is the same
    quantity sampled at the vertices, and takes seconds on a CPU.
    """
    import trimesh
    from rich.console import Console

    from gansvr_ns.model.mesh import MESH_FORMATS, save_mesh, vertex_colors

    console = Console()
    console.print(
        f"gansvr: nerfstudio's UV texture step is skipped; colouring the {len(vertices)} vertices of instance "
        f"'{model.selected_instance}' with the colour head instead"
    )
    result = trimesh.Trimesh(vertices=vertices.cpu().numpy(), faces=faces.cpu().numpy(), process=False)
    if len(vertices):
        with torch.no_grad():
            result.visual.vertex_colors = vertex_colors(model, vertices.float().to(model.device))
    written = save_mesh(result, output_dir / MESH_STEM, MESH_FORMATS)
    console.print(f"gansvr: wrote vertex-coloured {', '.join(str(p) for p in written)}")
    return written


def patch_nerfstudio_viewer() -> None:
    """Give viewers of gansvr runs a start camera outside the object and, on a CPU, a low "Max res" (idempotent).

    nerfstudio's viewer module is imported (by its trainer) before plugins are discovered, so calling this when
    the gansvr model module is imported covers `ns-viewer` and `ns-train --vis viewer`.
    """
    viewer_class = getattr(sys.modules.get(VIEWER_MODULE), "Viewer", None)
    if viewer_class is None or getattr(viewer_class.__init__, "__gansvr_wrapped__", False):
        return
    original = viewer_class.__init__

    @functools.wraps(original)
    def __init__(self, *args, **kwargs):
        original(self, *args, **kwargs)
        from gansvr_ns.model.gansvr_model import GanSvrModel

        if isinstance(self.get_model(), GanSvrModel):
            set_viewer_defaults(self)

    __init__.__gansvr_wrapped__ = True
    viewer_class.__init__ = __init__


def set_viewer_defaults(viewer) -> None:
    """Lower the "Max res" slider when CUDA is absent and start each new client on `VIEWER_START_ORBIT`."""
    if not torch.cuda.is_available():  # nerfstudio 1.1.5 has no setting for the slider's start value
        viewer.control_panel._max_res.value = VIEWER_CPU_MAX_RES
    viewer.viser_server.on_client_connect(start_camera)


def start_camera(client) -> None:
    """Put a viser client's camera on `VIEWER_START_ORBIT`, looking at the origin with +z up (the object frame).

    Viser units are nerfstudio's world units times `VISER_NERFSTUDIO_SCALE_RATIO`.
    """
    from nerfstudio.viewer.viewer import VISER_NERFSTUDIO_SCALE_RATIO

    from gansvr_ns.data.format import orbit_pose

    position = orbit_pose(*VIEWER_START_ORBIT)[:3, 3] * VISER_NERFSTUDIO_SCALE_RATIO
    with client.atomic():
        client.camera.up_direction = (0.0, 0.0, 1.0)
        client.camera.position = tuple(float(v) for v in position)
        client.camera.look_at = (0.0, 0.0, 0.0)
