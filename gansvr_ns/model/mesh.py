"""From a trained gansvr model and one image to a coloured mesh, and mesh files in PLY, OBJ and GLB."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Optional

import numpy as np
import torch
import trimesh
from jaxtyping import Float
from torch import Tensor

from gansvr_ns.model.extract import marching_cubes, sdf_grid

MESH_FORMATS = ("ply", "obj", "glb")


@torch.no_grad()
def reconstruct_mesh(model, image: Float[Tensor, "1 3 height width"], resolution: int = 128,
                     chunk: int = 65536, latent: Optional[Float[Tensor, "1 latent_dim"]] = None) -> trimesh.Trimesh:
    """Encode `image`, extract the zero level set of its SDF on a resolution^3 grid and colour the vertices.

    Vertex colours come from the colour head, seen along the inward normal (a head-on view of the surface).
    The model's selected instance becomes this image's; with `latent` (unit-scaled, as `GanSvrModel.encode` gives
    them, e.g. fitted to the image's mask by `mask_fit.fit_to_mask`), that latent's instead of the encoder's.
    """
    if latent is None:
        model.select_condition(image)
    else:
        model.select_latent(latent)
    field = model.field
    mesh = level_set_mesh(lambda p: field.forward_geonetwork(p)[:, 0], resolution, chunk, model.device)
    if len(mesh.vertices):
        vertices = torch.from_numpy(np.asarray(mesh.vertices, dtype=np.float32)).to(model.device)
        mesh.visual.vertex_colors = vertex_colors(model, vertices, chunk)
    return mesh


@torch.no_grad()
def level_set_mesh(sdf_fn, resolution: int, chunk: int = 65536, device: torch.device | str = "cpu") -> trimesh.Trimesh:
    """The zero level set of `sdf_fn` (points (N, 3) -> SDF (N,)) on a resolution^3 grid over [-1, 1]^3, uncoloured
    (empty when the SDF has one sign everywhere)."""
    vertices, faces = marching_cubes(sdf_grid(sdf_fn, resolution, chunk=chunk, device=device))
    return trimesh.Trimesh(vertices=vertices, faces=faces, process=False)


def vertex_colors(model, vertices: Float[Tensor, "num_vertices 3"], chunk: int = 65536) -> np.ndarray:
    """RGBA uint8 colours of the selected instance at `vertices`."""
    field = model.field
    code = field.selected
    colors = []
    for start in range(0, len(vertices), chunk):
        points = vertices[start : start + chunk]
        geometry, gradient = field.sdf_and_gradient(points, code, create_graph=False)
        normals = torch.nn.functional.normalize(gradient, dim=-1)
        colors.append(field.color(normals, -normals, geometry[:, 1:], code).detach())
    rgb = (torch.cat(colors).clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
    return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)


EMPTY_OBJ = "# an empty mesh: the SDF has no zero level set in the grid\n"
"""What an OBJ of a mesh without faces holds: a comment only, read back as an empty mesh."""


def save_mesh(mesh: trimesh.Trimesh, stem: Path, formats: Iterable[str]) -> List[Path]:
    """Write `mesh` as `<stem>.<format>` for each format, keeping vertex colours; returns the paths."""
    written = []
    stem.parent.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        if fmt not in MESH_FORMATS:
            raise ValueError(f"unknown mesh format '{fmt}', expected one of {', '.join(MESH_FORMATS)}")
        path = stem.with_name(f"{stem.name}.{fmt}")
        tmp = path.with_name(f".{path.name}.partial")
        if fmt == "obj" and len(mesh.faces) == 0:
            data = EMPTY_OBJ  # trimesh writes an empty mesh as a bare "v" and "f" line, which no reader accepts
        else:
            data = mesh.export(file_type=fmt)
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        tmp.replace(path)
        written.append(path)
    return written


def mesh_silhouette(vertices: np.ndarray, faces: np.ndarray, c2w: np.ndarray, intrinsics, size) -> np.ndarray:
    """(H, W) bool mask of the pixels a mesh's faces touch, seen by an OpenGL camera (`c2w` (4, 4) or (3, 4);
    `intrinsics` fx, fy, cx, cy in pixels, pixel-edge coordinates; `size` (H, W)). Faces with a vertex behind the
    camera are left out."""
    from PIL import Image, ImageDraw

    height, width = size
    fx, fy, cx, cy = intrinsics
    c2w = np.asarray(c2w, dtype=np.float64)
    local = (np.asarray(vertices, dtype=np.float64) - c2w[:3, 3]) @ c2w[:3, :3]  # R^T (v - o), row-wise
    depth = -local[:, 2]
    ahead = depth > 1e-6
    safe = np.where(ahead, depth, 1.0)
    u = cx + fx * local[:, 0] / safe
    v = cy - fy * local[:, 1] / safe
    canvas = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for face in np.asarray(faces)[ahead[faces].all(axis=1)]:
        draw.polygon([(u[k], v[k]) for k in face], fill=1)
    return np.array(canvas, dtype=bool)


def overlay(rgb: np.ndarray, silhouette: np.ndarray, colour=(1.0, 0.25, 0.1), tint: float = 0.35) -> np.ndarray:
    """An (H, W, 3) image in [0, 1] with `silhouette` (H, W) tinted in `colour` and its outline drawn in it."""
    inside = silhouette.copy()
    inside[1:-1, 1:-1] &= silhouette[:-2, 1:-1] & silhouette[2:, 1:-1] & silhouette[1:-1, :-2] & silhouette[1:-1, 2:]
    edge = silhouette & ~inside
    colour = np.asarray(colour, dtype=np.float32)
    out = np.asarray(rgb, dtype=np.float32).copy()
    out[silhouette] = (1.0 - tint) * out[silhouette] + tint * colour
    out[edge] = colour
    return out
