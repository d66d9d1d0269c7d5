"""Figures of a trained gansvr run, made by script (no GUI, no OpenGL):

    python scripts/figures.py --load-config outputs/RUN/config.yml --data data/gan-car --out docs/

contact_sheet.png  one row per test instance: its input image | the mesh reconstructed from it, from two views |
                   the ground-truth mesh from the same views (ray-cast on the CPU with open3d's RaycastingScene)
uncertainty.png    a few pseudo views of train instances (views with colour drift or blobs first) above the
                   uncertainty sigma the run predicts for them: the image head's map (uncertainty=image) or the
                   `uncertainty` output rendered at the view's rough pose (uncertainty=field; held-out view
                   embedding: the mean one)
training_curves.png  losses, masked PSNR, silhouette IoU (and pose error where logged) over the steps, read from
                   the run's tensorboard event files
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import trimesh  # noqa: E402
import tyro  # noqa: E402
from rich.progress import track  # noqa: E402

from gansvr_ns.data import format as fmt  # noqa: E402

RECONSTRUCTION_COLOR = np.array([0.95, 0.62, 0.25])
GROUND_TRUTH_COLOR = np.array([0.55, 0.62, 0.72])


def camera_rays(camera_to_world: np.ndarray, focal: float, size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Origins and unit directions [size, size, 3] of a pinhole OpenGL camera (looks down its -z, +y up)."""
    v, u = np.mgrid[0:size, 0:size] + 0.5
    local = np.stack([(u - size / 2) / focal, -(v - size / 2) / focal, -np.ones_like(u)], axis=-1)
    directions = local @ camera_to_world[:3, :3].T
    directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
    return np.broadcast_to(camera_to_world[:3, 3], directions.shape), directions


def render_mesh(mesh: trimesh.Trimesh, camera_to_world: np.ndarray, focal: float, size: int,
                color: np.ndarray) -> np.ndarray:
    """Ray-cast `mesh` with open3d's RaycastingScene: RGB [size, size, 3] in [0, 1] on white.

    Shading is Lambert from a light at the camera's upper left, 0.25 + 0.75 |n . l|; the absolute value makes it
    independent of the triangles' winding."""
    import open3d as o3d

    image = np.ones((size, size, 3))
    if len(mesh.faces) == 0:
        return image
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, np.float32)),
                        o3d.core.Tensor(np.asarray(mesh.faces, np.uint32)))
    origins, directions = camera_rays(camera_to_world, focal, size)
    rays = np.concatenate([origins, directions], axis=-1).reshape(-1, 6).astype(np.float32)
    hits = scene.cast_rays(o3d.core.Tensor(rays))
    hit = np.isfinite(hits["t_hit"].numpy()).reshape(size, size)
    normals = hits["primitive_normals"].numpy().reshape(size, size, 3)
    light = camera_to_world[:3, :3] @ np.array([-0.4, 0.5, 1.0]) / np.linalg.norm([-0.4, 0.5, 1.0])
    shade = 0.25 + 0.75 * np.abs(normals @ light)
    image[hit] = np.clip(color * shade[hit, None], 0.0, 1.0)
    return image


def orbit_focal(distance: float, size: int) -> float:
    """Focal length (pixels) at which the unit sphere, seen from `distance`, just fills a size x size image:
    f = (size / 2) / tan(asin(1 / d)) = (size / 2) sqrt(d^2 - 1)."""
    return 0.5 * size * (distance**2 - 1.0) ** 0.5


def contact_sheet(model, info: fmt.DatasetInfo, ids: List[str], azimuths: List[float], elevation: float,
                  distance: float, size: int, resolution: int):
    """The contact-sheet figure: input | reconstruction from each azimuth | ground truth from each azimuth."""
    from gansvr_ns.scripts.reconstruct import mesh_reconstructor

    reconstruct = mesh_reconstructor(model)
    poses = [fmt.orbit_pose(a, elevation, distance) for a in azimuths]
    focal = orbit_focal(distance, size)
    titles = ["input"] + [f"reconstruction {a:g}°" for a in azimuths] + [f"ground truth {a:g}°" for a in azimuths]
    fig, axes = plt.subplots(len(ids), len(titles), figsize=(1.9 * len(titles), 1.9 * len(ids)), squeeze=False)
    for row, instance_id in enumerate(track(ids, description="Contact sheet")):
        rgb = fmt.load_rgb(info.root / instance_id / "input.png")
        pred = reconstruct(torch.from_numpy(rgb).permute(2, 0, 1)[None], resolution)
        gt_path = info.root / instance_id / "mesh.ply"
        gt = trimesh.load(gt_path, force="mesh") if gt_path.is_file() else trimesh.Trimesh()
        panels = [rgb] + [render_mesh(pred, p, focal, size, RECONSTRUCTION_COLOR) for p in poses]
        panels += [render_mesh(gt, p, focal, size, GROUND_TRUTH_COLOR) for p in poses]
        for col, panel in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(panel, interpolation="nearest" if col == 0 else "antialiased")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(titles[col], fontsize=8)
        axes[row, 0].set_ylabel(instance_id, fontsize=8)
    fig.tight_layout()
    return fig


def pick_views(info: fmt.DatasetInfo, count: int) -> List[Tuple[str, int, List[str]]]:
    """(instance id, view index, flaws) of one pseudo view of each of `count` train instances, views with RGB flaws
    (colour drift, blobs) first, both within an instance and among the picks.

    Flaws are the optional per-view `flaws` key that the procedural source writes into cameras.json."""

    def rgb_flawed(flaws: List[str]) -> bool:
        return any(f.startswith(("color", "blob")) for f in flaws)

    picks = []
    for instance_id in info.instances("train")[: 4 * count]:
        views = json.loads((info.root / instance_id / "cameras.json").read_text())["views"]
        flaws = [list(view.get("flaws", [])) for view in views]
        best = min(range(len(views)), key=lambda j: not rgb_flawed(flaws[j]))
        picks.append((instance_id, best, flaws[best]))
    return sorted(picks, key=lambda pick: not rgb_flawed(pick[2]))[:count]


def view_camera(info: fmt.DatasetInfo, record: fmt.InstanceRecord, index: int):
    """The nerfstudio camera of one pseudo view at its rough pose."""
    from nerfstudio.cameras.cameras import Cameras, CameraType

    view = record.views[index]
    intr = view.intrinsics or info.intrinsics
    height, width = info.image_size
    return Cameras(camera_to_worlds=torch.from_numpy(view.transform_matrix[:3]).float()[None],
                   fx=float(intr["fx"]), fy=float(intr["fy"]), cx=float(intr["cx"]), cy=float(intr["cy"]),
                   width=width, height=height, camera_type=CameraType.PERSPECTIVE)


@torch.no_grad()
def predicted_sigma(model, info: fmt.DatasetInfo, instance_id: str, index: int) -> np.ndarray:
    """Uncertainty sigma [H, W] the model predicts for one pseudo view (image head, or rendered field)."""
    record = fmt.read_instance(info, instance_id)
    view = torch.from_numpy(fmt.load_rgb(record.views[index].image_path)).permute(2, 0, 1)[None]
    if getattr(model, "image_uncertainty", None) is not None:
        mask = torch.from_numpy(fmt.load_mask(record.views[index].mask_path)).float()[None, None]
        return model.image_uncertainty(view.to(model.device), mask.to(model.device))[0, 0].cpu().numpy()
    image = torch.from_numpy(fmt.load_rgb(record.input_path)).permute(2, 0, 1)[None]
    outputs = model.render_for_image(view_camera(info, record, index).to(model.device), image)
    return outputs["uncertainty"][..., 0].cpu().numpy()


def uncertainty_figure(model, info: fmt.DatasetInfo, count: int):
    """Pseudo views (top) above their predicted sigma maps (bottom, one colour scale); None without uncertainty."""
    mode = getattr(model.config, "uncertainty", "none")
    if mode == "none":
        return None
    picks = pick_views(info, count)
    sigmas = [predicted_sigma(model, info, i, j) for i, j, _ in track(picks, description="Uncertainty maps")]
    vmax = max(float(s.max()) for s in sigmas)
    fig, axes = plt.subplots(2, len(picks), figsize=(2.2 * len(picks) + 0.8, 4.8), squeeze=False,
                             layout="constrained")
    for col, ((instance_id, j, flaws), sigma) in enumerate(zip(picks, sigmas)):
        view = fmt.load_rgb(fmt.read_instance(info, instance_id, check_images=False).views[j].image_path)
        axes[0, col].imshow(view, interpolation="nearest")
        axes[0, col].set_title(f"{instance_id} view {j}\n{', '.join(flaws) or 'no flaw'}", fontsize=8)
        shown = axes[1, col].imshow(sigma, cmap="magma", vmin=0.0, vmax=vmax, interpolation="nearest")
        for ax in axes[:, col]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[1, 0].set_ylabel(f"sigma ({mode})", fontsize=9)
    fig.colorbar(shown, ax=axes[:, -1].tolist(), shrink=0.6, label="sigma")
    return fig


def read_scalars(run: Path) -> Dict[str, Tuple[np.ndarray, np.ndarray]]:
    """{tag: (steps, values)} of every scalar in the run's tensorboard event files."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    if not list(run.glob("events.out.tfevents.*")):
        raise SystemExit(f"{run}: no tensorboard event files (train with --vis tensorboard)")
    events = EventAccumulator(str(run), size_guidance={"scalars": 0})
    events.Reload()
    scalars = {}
    for tag in events.Tags()["scalars"]:
        rows = events.Scalars(tag)
        scalars[tag] = (np.array([r.step for r in rows]), np.array([r.value for r in rows]))
    return scalars


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over up to `window` values (the first points average what exists)."""
    sums = np.cumsum(np.insert(np.asarray(values, float), 0, 0.0))
    end = np.arange(1, len(values) + 1)
    counts = np.minimum(end, window)
    return (sums[end] - sums[end - counts]) / counts


PANELS = [
    ("losses", lambda tag: tag == "Train Loss" or tag.startswith("Train Loss Dict/")),
    ("masked PSNR (dB)", lambda tag: tag.endswith("/psnr_masked")),
    ("silhouette IoU", lambda tag: tag.endswith("/silhouette_iou")),
    ("pose rotation error (deg)", lambda tag: tag.endswith("/pose_rotation_error_deg")),
]
"""Panels of the training curves: title and which tensorboard tags it plots (empty panels are left out)."""


def curve_label(tag: str) -> str:
    """Legend label of a tensorboard tag: the loss name, or which data the metric was measured on."""
    if tag == "Train Loss":
        return "total"
    if tag.startswith("Train Loss Dict/"):
        return tag.split("/", 1)[1]
    source = tag.split("/", 1)[0]
    return {"Train Metrics Dict": "train batch", "Eval Metrics Dict": "eval batch",
            "Eval Images Metrics": "eval images"}.get(source, source)


def training_curves(run: Path):
    """Losses, masked PSNR, silhouette IoU and (where logged) pose error over the steps."""
    scalars = read_scalars(run)
    panels = [(title, [t for t in sorted(scalars) if wanted(t)]) for title, wanted in PANELS]
    panels = [(title, tags) for title, tags in panels if tags]
    if not panels:
        raise SystemExit(f"{run}: the event files hold none of the logged losses or metrics")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, (title, tags) in zip(axes[0], panels):
        for tag in tags:
            steps, values = scalars[tag]
            label = curve_label(tag)
            if len(values) > 20:
                line, = ax.plot(steps, values, alpha=0.25, linewidth=0.8)
                ax.plot(steps, smooth(values, 10), color=line.get_color(), label=label, linewidth=1.4)
            else:
                ax.plot(steps, values, marker="o", markersize=3, label=label, linewidth=1.2)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


@dataclass
class Figures:
    """Write contact_sheet.png, uncertainty.png and training_curves.png of a trained gansvr run."""

    load_config: Path
    """config.yml of the run."""
    data: Optional[Path] = None
    """Its dataset (default: the one named in the run's config)."""
    out: Path = Path("docs")
    """Folder for the PNGs."""
    split: Literal["train", "val", "test"] = "test"
    """Split whose instances fill the contact sheet."""
    instances: int = 4
    """Rows of the contact sheet."""
    azimuths: List[float] = field(default_factory=lambda: [30.0, 210.0])
    """Azimuths (deg) of the mesh views of the contact sheet."""
    elevation: float = 20.0
    """Elevation (deg) of the mesh views."""
    distance: float = 2.5
    """Camera distance of the mesh views; the unit sphere fills the frame."""
    render_size: int = 160
    """Pixels of each rendered mesh view."""
    resolution: int = 128
    """Marching-cubes resolution of the reconstructions."""
    uncertainty_views: int = 5
    """Pseudo views shown in uncertainty.png."""
    dpi: int = 110
    """Resolution of the PNGs."""

    def main(self) -> List[Path]:
        from gansvr_ns.scripts.reconstruct import load_pipeline

        pipeline = load_pipeline(self.load_config)
        model = pipeline.model
        info = fmt.read_dataset(self.data or pipeline.datamanager.get_datapath())
        self.out.mkdir(parents=True, exist_ok=True)
        written = []
        ids = info.instances(self.split)[: self.instances]
        figures = {
            "contact_sheet.png": lambda: contact_sheet(model, info, ids, self.azimuths, self.elevation,
                                                       self.distance, self.render_size, self.resolution),
            "uncertainty.png": lambda: uncertainty_figure(model, info, self.uncertainty_views),
            "training_curves.png": lambda: training_curves(self.load_config.parent),
        }
        for name, make in figures.items():
            fig = make()
            if fig is None:
                print(f"{name}: skipped (the run has uncertainty 'none')")
                continue
            fig.savefig(self.out / name, dpi=self.dpi)
            plt.close(fig)
            written.append(self.out / name)
        print("Wrote " + ", ".join(str(p) for p in written))
        return written


if __name__ == "__main__":
    tyro.cli(Figures).main()
