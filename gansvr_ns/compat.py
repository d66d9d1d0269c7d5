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
- On gansvr runs `ns-export` checks its options as soon as the pipeline is built (`check_export_options`, before
  the checkpoint is loaded and long before the extraction) and ends in one line naming the option instead of a
  traceback or an inside-out mesh; a marching-cubes box without surface stops before an empty mesh file is
  written; `ns-export cameras` writes the refined train poses; the subcommands that need what a gansvr model
  lacks (pointcloud, poisson, tsdf, gaussian-splat) are refused up front. Other methods keep nerfstudio's ways.
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
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

MARCHING_CUBES_MODULE = "nerfstudio.exporter.marching_cubes"
TEXTURE_MODULE = "nerfstudio.exporter.texture_utils"
EXPORTER_SCRIPT = "nerfstudio.scripts.exporter"
EXPORTER_UTILS_MODULE = "nerfstudio.exporter.exporter_utils"
PIPELINE_MODULE = "nerfstudio.pipelines.base_pipeline"
MARCHING_CUBES_FN = "generate_mesh_with_multires_marching_cubes"
TEXTURE_FN = "export_textured_mesh"
CAMERA_POSES_FN = "collect_camera_poses"
LOAD_PIPELINE_METHOD = ("VanillaPipeline", "load_pipeline")
EXPORT_SUBCOMMANDS = {
    "ExportPointCloud": "pointcloud",
    "ExportTSDFMesh": "tsdf",
    "ExportPoissonMesh": "poisson",
    "ExportMarchingCubesMesh": "marching-cubes",
    "ExportCameraPoses": "cameras",
    "ExportGaussianSplat": "gaussian-splat",
}
"""`ns-export`'s option classes and their subcommand names."""
GANSVR_EXPORTS = ("marching-cubes", "cameras")
"""The `ns-export` subcommands that serve gansvr runs; the others need outputs or parts a gansvr model lacks."""
MARCHING_CUBES_BLOCK = 512
"""nerfstudio's marching cubes works in blocks of this many cells a side: `--resolution` is a multiple of it."""
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
    _wrap(PIPELINE_MODULE, LOAD_PIPELINE_METHOD[1], options_checked_first, owner=LOAD_PIPELINE_METHOD[0])
    _wrap(MARCHING_CUBES_MODULE, MARCHING_CUBES_FN, gansvr_marching_cubes)
    _wrap(TEXTURE_MODULE, TEXTURE_FN, vertex_colors_instead_of_texture)
    _wrap(EXPORTER_UTILS_MODULE, CAMERA_POSES_FN, refined_train_poses)


def _wrap(module_name: str, name: str, make_wrapper: Callable[[Callable], Callable], owner: str = "") -> None:
    """Replace `module.name` (and `ns-export`'s own imported reference to it), or the method `module.owner.name`,
    by `make_wrapper(original)`."""
    module = sys.modules.get(module_name)
    target = getattr(module, owner, None) if owner else module
    original = getattr(target, name, None)
    if original is None or getattr(original, "__gansvr_wrapped__", False):
        return
    wrapper = functools.wraps(original)(make_wrapper(original))
    wrapper.__gansvr_wrapped__ = True
    setattr(target, name, wrapper)
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


class ExportOptionError(SystemExit):
    """`ns-export` options a gansvr run cannot serve: end the export with this one line instead of a traceback."""


def running_export() -> Tuple[Optional[Any], Optional[Any]]:
    """The options of the running `ns-export` subcommand and its pipeline (None before `eval_setup` returns), or
    (None, None) outside `ns-export`. nerfstudio keeps both only as locals of the subcommand's `main`, so they are
    looked up on the call stack."""
    exporter_class = getattr(sys.modules.get(EXPORTER_SCRIPT), "Exporter", None)
    frame = sys._getframe(1)
    while exporter_class is not None and frame is not None:
        options = frame.f_locals.get("self")
        if isinstance(options, exporter_class):
            return options, frame.f_locals.get("pipeline")
        frame = frame.f_back
    return None, None


def is_gansvr(pipeline) -> bool:
    """Whether `pipeline` serves a gansvr model (the voxel method's runs and other methods' are left alone)."""
    from gansvr_ns.model.gansvr_model import GanSvrModel

    return isinstance(getattr(pipeline, "model", None), GanSvrModel)


def check_export_options(options, scene_box: Optional[Sequence[Sequence[float]]] = None) -> None:
    """Refuse, in one line (`ExportOptionError`), `ns-export` options that would fail late or write a wrong file on a
    gansvr run: a subcommand outside `GANSVR_EXPORTS`, an `--output-dir` that is a file, and for marching cubes a
    `--resolution` that is not a positive multiple of `MARCHING_CUBES_BLOCK`, a box whose min is not below its
    max on every axis (nerfstudio would write the mesh inside out) or, given the run's `scene_box` (min and max
    corner, where the object lies), a box that does not overlap it."""
    command = EXPORT_SUBCOMMANDS.get(type(options).__name__, type(options).__name__)
    prefix = f"gansvr: ns-export {command}"
    if command not in GANSVR_EXPORTS:
        raise ExportOptionError(
            f"{prefix} is not supported for gansvr runs: use `ns-export marching-cubes` for the SDF mesh of an "
            "instance, `ns-export cameras` for the refined train poses, or `gansvr-reconstruct` for meshes from images"
        )
    output_dir = Path(options.output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ExportOptionError(f"{prefix}: --output-dir {output_dir} is a file, not a folder")
    if command != "marching-cubes":
        return
    if options.resolution <= 0 or options.resolution % MARCHING_CUBES_BLOCK:
        raise ExportOptionError(
            f"{prefix}: --resolution must be a positive multiple of {MARCHING_CUBES_BLOCK}, got {options.resolution}"
        )
    low, high = tuple(options.bounding_box_min), tuple(options.bounding_box_max)
    if len(low) != 3 or len(high) != 3 or not all(a < b for a, b in zip(low, high)):
        raise ExportOptionError(
            f"{prefix}: --bounding-box-min {_triple(low)} must be below --bounding-box-max {_triple(high)} on every "
            "axis (a box given the other way round would give an inside-out mesh)"
        )
    if scene_box is not None and not all(a < hi and lo < b for a, b, lo, hi in zip(low, high, *scene_box)):
        raise ExportOptionError(
            f"{prefix}: the box from --bounding-box-min {_triple(low)} to --bounding-box-max {_triple(high)} lies "
            f"outside the run's scene box ({_triple(scene_box[0])} to {_triple(scene_box[1])}) and holds no surface"
        )


def _triple(values) -> str:
    return " ".join(f"{float(v):g}" for v in values)


def options_checked_first(original: Callable) -> Callable:
    """nerfstudio's `VanillaPipeline.load_pipeline`, preceded within `ns-export` on a gansvr pipeline by
    `check_export_options`. `eval_setup` loads the checkpoint with it once the pipeline is built: the options are
    checked before any extraction and before the subcommand's own checks (`eval_setup` itself cannot be wrapped: it
    is still being imported when the plugin is)."""

    def load_pipeline(self, *args, **kwargs):
        options, _ = running_export()
        if options is not None and is_gansvr(self):
            check_export_options(options, self.model.scene_box.aabb.tolist())
        return original(self, *args, **kwargs)

    return load_pipeline


def gansvr_marching_cubes(original: Callable) -> Callable:
    """nerfstudio's marching cubes `original`, on the CPU when CUDA is absent (`cuda_calls_stay_on_cpu`); within an
    `ns-export` of a gansvr run a mesh without faces ends the export in one line before the mesh file is written
    (nerfstudio would write it empty and then fail in its decimation)."""

    def marching_cubes(*args, **kwargs):
        with contextlib.nullcontext() if torch.cuda.is_available() else cuda_calls_stay_on_cpu():
            mesh = original(*args, **kwargs)
        options, pipeline = running_export()
        if len(mesh.faces) == 0 and options is not None and is_gansvr(pipeline):
            raise ExportOptionError(
                f"gansvr: ns-export marching-cubes: no surface of instance '{pipeline.model.selected_instance}' "
                f"between --bounding-box-min {_triple(options.bounding_box_min)} and --bounding-box-max "
                f"{_triple(options.bounding_box_max)} at --isosurface-threshold {options.isosurface_threshold:g}; "
                "nothing written"
            )
        return mesh

    return marching_cubes


def refined_train_poses(original: Callable) -> Callable:
    """nerfstudio's `collect_camera_poses` for other models; for gansvr models the train frames carry the refined
    train poses (`GanSvrModel.refined_poses`: pose search, camera optimizer and pose network), in nerfstudio's
    frame format, and the eval frames the dataset's poses, as nerfstudio's do."""

    def collect_camera_poses(pipeline, *args, **kwargs) -> Tuple[List[Dict[str, Any]], List[Dict[str, Any]]]:
        if not is_gansvr(pipeline):
            return original(pipeline, *args, **kwargs)
        from nerfstudio.exporter.exporter_utils import collect_camera_poses_for_dataset

        model, datamanager = pipeline.model, pipeline.datamanager
        views = None
        if model.pose_network is not None:
            views = (datamanager.train_data.images, datamanager.train_data.masks)
        refined = model.refined_poses(views).cpu()
        filenames = datamanager.train_dataset.image_filenames
        train = [{"file_path": str(path), "transform": pose.tolist()} for path, pose in zip(filenames, refined)]
        return train, collect_camera_poses_for_dataset(datamanager.eval_dataset)

    return collect_camera_poses


def vertex_colors_instead_of_texture(original: Callable) -> Callable:
    """nerfstudio's texture step `original` for other models; `write_vertex_colored_mesh` for gansvr models."""

    def export_textured_mesh(mesh, pipeline, output_dir: Path, *args, **kwargs):
        if not is_gansvr(pipeline):
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
