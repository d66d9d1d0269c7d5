"""Framing a photo by the run's own reconstruction of it.

`gansvr_ns/data/framing.py` frames a photo's object by its mask's box: the box gets the median centre and size of
the training inputs' boxes. But what fixes where a training input shows its object is its camera, not the object's
box: a car seen from the front has a narrower box than one seen from the side at the same distance, and perspective
moves a box's centre off the object's. On `gan-car`'s test inputs the box alone finds their framing to about 8% in
size and 3 pixels in position (docs/benchmarks.md, "Framing photos").

The reconstruction knows both. The photo framed by its box is encoded, and the reconstruction's silhouette is drawn
from every camera of a training input (`InputCameras`). The photo's mask is moved and scaled so that its box is each
silhouette's box; the silhouette it then overlaps best (IoU) names the camera, and a finer search of the mask's size
and position about that silhouette's box follows. Where that silhouette's box is, and how large, is where the photo's
object belongs (`search_framing`); the photo is framed again by it and encoded once more.

The camera whose silhouette fits best, with the alignment of the photo's mask onto that silhouette, is also a camera
for the photo itself (`image_camera`): the training input's pose, and intrinsics in the photo's own pixels, so that
the mesh drawn with them lies over the photo's object.

Only 2D data is read: the photo's mask and the rough poses of the training inputs' cameras, as the data gives them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import numpy as np
import torch
from jaxtyping import Bool, Float
from torch import Tensor
from torch.nn import functional as F

from gansvr_ns.data.framing import InputFraming, box_measures
from gansvr_ns.model.extract import marching_cubes
from gansvr_ns.model.pose_search import mask_iou, shell_points, splat_silhouettes, surface_grid

SEARCH_RESOLUTION = 48
"""SDF grid points per axis of the reconstruction whose silhouettes are drawn."""
UPSAMPLE = 2
"""The silhouettes are drawn at this many times the training inputs' size, so that their boxes are found to half a
pixel of it."""
LOCAL_LOG_SIZES = tuple(0.02 * i for i in range(-3, 4))
"""Log size offsets of the finer search about the best silhouette's box (up to 6%)."""
LOCAL_SHIFTS = tuple(0.5 * i for i in range(-3, 4))
"""Offsets (pixels of the training inputs) of the finer search's box centre, on each axis."""
ORBIT_OFFSETS = tuple(1.5 * i for i in range(-2, 3))
"""Azimuth and elevation offsets (degrees) of the cameras beside the best training input camera that a camera search
(`search_framing(..., orbit_offsets=ORBIT_OFFSETS)`) also tries: the training inputs' cameras lie a few degrees
apart."""
CHUNK = 256
"""Silhouettes compared with the mask at once."""


@dataclass(frozen=True)
class FramingFit:
    """What `search_framing` found for a mask."""

    framing: InputFraming
    """The framing that puts the mask's object where the best-fitting camera shows the reconstruction."""
    iou: float
    """IoU of the mask so framed with that camera's silhouette of the reconstruction."""
    camera: int
    """Index of the training input camera that fits best in the `InputCameras` searched."""
    c2w: Tensor
    """(3, 4) pose of the camera that fits best: that training input's, or one beside it on its orbit."""


@dataclass(frozen=True)
class ImageCamera:
    """A camera for an image: the reconstruction drawn with it lies over the image's object."""

    c2w: np.ndarray
    """(4, 4) camera-to-world pose (OpenGL) in the reconstruction's frame."""
    intrinsics: Tuple[float, float, float, float]
    """fx, fy, cx, cy in pixels of the image (pixel-edge coordinates: the top-left corner is (0, 0))."""
    image_size: Tuple[int, int]
    """(height, width) of the image."""
    fit: float
    """IoU of the image's mask with the reconstruction's silhouette in the search (training inputs' pixels); after
    `mask_fit.fit_to_mask`, on the fit's rays over the mask's box."""

    def to_json(self) -> dict:
        """The camera as `reconstruct.json` records it: the pose, the intrinsics and the image size, and the
        position as the dataset format's orbit angles (azimuth from +x towards +y, elevation above the xy-plane)."""
        position = self.c2w[:3, 3]
        distance = float(np.linalg.norm(position))
        azimuth = math.degrees(math.atan2(position[1], position[0])) % 360.0
        elevation = math.degrees(math.asin(float(np.clip(position[2] / max(distance, 1e-12), -1.0, 1.0))))
        fx, fy, cx, cy = self.intrinsics
        return {"transform_matrix": np.round(self.c2w, 6).tolist(), "fx": round(fx, 4), "fy": round(fy, 4),
                "cx": round(cx, 4), "cy": round(cy, 4), "height": self.image_size[0], "width": self.image_size[1],
                "azimuth_deg": round(azimuth, 3), "elevation_deg": round(elevation, 3),
                "distance": round(distance, 6), "fit": round(self.fit, 4)}


@dataclass(frozen=True)
class InputCameras:
    """The cameras of a run's training inputs: the views a photo is likely taken from."""

    c2w: Float[Tensor, "num 3 4"]
    """Camera-to-world poses (OpenGL), as the data gives them (rough)."""
    intrinsics: Float[Tensor, "4"]
    """fx, fy, cx, cy in pixels of the training inputs."""


def orbit_neighbours(c2w: Float[Tensor, "3 4"], offsets: Sequence[float]) -> Float[Tensor, "num 3 4"]:
    """`c2w` moved on its orbit about the origin by every pair of `offsets` (degrees): turned about the world's z
    axis (azimuth) and about the horizontal axis across its line of sight (elevation)."""
    position = c2w[:, 3].double()
    up = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    across = torch.linalg.cross(position, up)
    across = across / across.norm() if across.norm() > 1e-6 else c2w[:, 0].double()
    poses = []
    for azimuth in offsets:
        for elevation in offsets:
            turn = axis_rotation(up, math.radians(azimuth)) @ axis_rotation(across, math.radians(elevation))
            poses.append(turn @ c2w.double())
    return torch.stack(poses).to(c2w.dtype)


def axis_rotation(axis: Tensor, angle: float) -> Tensor:
    """(3, 3) rotation by `angle` (radians, right-handed) about the unit vector `axis` (Rodrigues' formula)."""
    x, y, z = axis.tolist()
    k = torch.tensor([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]], dtype=axis.dtype)
    return torch.eye(3, dtype=axis.dtype) + math.sin(angle) * k + (1.0 - math.cos(angle)) * (k @ k)


def silhouette_points(sdf_fn: Callable[[Tensor], Tensor], resolution: int) -> Tuple[Float[Tensor, "num 3"], float]:
    """Points whose silhouettes are the shape's (`splat_silhouettes`), and the grid's cell size: the grid points
    within 1.5 cells inside the surface and the vertices of its zero level set. The grid points alone lie up to a
    cell inside, and their silhouette is short of the shape's by as much on every side (3.6% of the size of
    `gan-car`'s test inputs at 48^3); the vertices are on the surface."""
    grid = surface_grid(sdf_fn, resolution)
    points, cell = shell_points(grid)
    vertices, _ = marching_cubes(grid.numpy())
    return torch.cat([points, torch.from_numpy(vertices).to(points)]), cell


def silhouette_boxes(silhouettes: Bool[Tensor, "num height width"], weights: Sequence[float]
                     ) -> Tuple[Float[Tensor, " num"], Float[Tensor, "num 2"], Bool[Tensor, " num"]]:
    """Each silhouette's weighted log size and box centre (y, x) in pixel-edge coordinates, as `box_measures` and
    `InputFraming.log_size_of` measure a mask, and whether it is non-empty."""
    height, width = silhouettes.shape[1:]
    rows, cols = silhouettes.any(dim=2), silhouettes.any(dim=1)
    row_index, col_index = torch.arange(height), torch.arange(width)
    top = torch.where(rows, row_index, height).amin(dim=1)
    bottom = torch.where(rows, row_index, -1).amax(dim=1) + 1
    left = torch.where(cols, col_index, width).amin(dim=1)
    right = torch.where(cols, col_index, -1).amax(dim=1) + 1
    area = silhouettes.sum(dim=(1, 2)).float()
    logs = torch.stack([(bottom - top).float(), (right - left).float(), area.sqrt()], dim=1).clamp_min(1.0).log()
    log_size = logs @ torch.tensor(weights, dtype=torch.float32)
    centre = torch.stack([top + bottom, left + right], dim=1).float() / 2.0
    return log_size, centre, area > 0


def aligned_iou(mask: Bool[Tensor, "height width"], mask_centre: Tuple[float, float], scales: Float[Tensor, " num"],
                centres: Float[Tensor, "num 2"], silhouettes: Bool[Tensor, "num up_height up_width"],
                upsample: int) -> Float[Tensor, " num"]:
    """IoU of each silhouette (drawn at `upsample` times the mask's size) with the mask scaled by `scales` about its
    box centre `mask_centre` and moved so that the centre lands on `centres` (pixels of the mask)."""
    height, width = mask.shape
    up_height, up_width = silhouettes.shape[1:]
    ys = (torch.arange(up_height, dtype=torch.float32) + 0.5) / upsample
    xs = (torch.arange(up_width, dtype=torch.float32) + 0.5) / upsample
    image = mask.float()[None, None]
    ious = []
    for start in range(0, len(scales), CHUNK):
        s, c = scales[start : start + CHUNK, None, None], centres[start : start + CHUNK]
        # a silhouette pixel p reads the mask at mask_centre + (p - centre) / scale
        y = mask_centre[0] + (ys[None, :, None] - c[:, 0, None, None]) / s
        x = mask_centre[1] + (xs[None, None, :] - c[:, 1, None, None]) / s
        grid = torch.stack(torch.broadcast_tensors(x / width * 2.0 - 1.0, y / height * 2.0 - 1.0), dim=-1)
        moved = F.grid_sample(image.expand(len(grid), 1, height, width), grid, mode="bilinear",
                              padding_mode="zeros", align_corners=False)[:, 0] > 0.5
        ious.append(mask_iou(silhouettes[start : start + CHUNK].float(), moved.float()))
    return torch.cat(ious)


@torch.no_grad()
def search_framing(sdf_fn: Callable[[Tensor], Tensor], mask: np.ndarray, framing: InputFraming,
                   cameras: InputCameras, resolution: int = SEARCH_RESOLUTION, upsample: int = UPSAMPLE,
                   orbit_offsets: Sequence[float] = ()) -> Optional[FramingFit]:
    """The framing (`framing` with its centre and size replaced) that puts the object of `mask`, a mask framed by
    `framing`, where the reconstruction `sdf_fn` (points (N, 3) -> SDF (N,), on the CPU) seen from the best-fitting
    training input camera shows it; that fit's IoU and the camera. With `orbit_offsets`, the cameras beside the best
    one on its orbit (`orbit_neighbours`) are tried too. None when the mask or the reconstruction is empty."""
    box = box_measures(mask)
    if box is None:
        return None
    points, cell = silhouette_points(sdf_fn, resolution)
    if len(points) == 0:
        return None
    height, width = mask.shape
    mask_log_size, mask_centre = framing.log_size_of(box[0]), box[1]
    target = torch.from_numpy(mask)

    def draw_and_fit(poses: Tensor) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """Each pose's silhouette (at `upsample` times the mask's size), its box's log size and centre (pixels of
        the mask), and its IoU with the mask aligned box to box (-1 where nothing is drawn)."""
        drawn = splat_silhouettes(points, poses, (cameras.intrinsics * upsample).expand(len(poses), 4),
                                  (height * upsample, width * upsample), cell) > 0.5
        sizes, places, non_empty = silhouette_boxes(drawn, framing.weights)
        sizes, places = sizes - math.log(upsample), places / upsample
        iou = aligned_iou(target, mask_centre, (sizes - mask_log_size).exp(), places, drawn, upsample)
        return drawn, sizes, places, torch.where(non_empty, iou, -1.0)

    silhouettes, log_sizes, centres, iou = draw_and_fit(cameras.c2w)
    best = int(iou.argmax())
    c2w, silhouette, log_size, centre = cameras.c2w[best], silhouettes[best], log_sizes[best], centres[best]
    if orbit_offsets:
        beside = orbit_neighbours(c2w, orbit_offsets)
        drawn, sizes, places, fits = draw_and_fit(beside)
        k = int(fits.argmax())
        if fits[k] > iou[best]:
            c2w, silhouette, log_size, centre = beside[k], drawn[k], sizes[k], places[k]
    offsets = torch.cartesian_prod(*(torch.tensor(v, dtype=torch.float32)
                                     for v in (LOCAL_LOG_SIZES, LOCAL_SHIFTS, LOCAL_SHIFTS)))
    local_sizes, local_centres = log_size + offsets[:, 0], centre + offsets[:, 1:]
    local = aligned_iou(target, mask_centre, (local_sizes - mask_log_size).exp(), local_centres,
                        silhouette.expand(len(offsets), -1, -1), upsample)
    k = int(local.argmax())
    found = dataclasses.replace(framing, centre=(float(local_centres[k, 0]), float(local_centres[k, 1])),
                                log_size=float(local_sizes[k]))
    return FramingFit(framing=found, iou=float(local[k]), camera=best, c2w=c2w)


def image_camera(fit: FramingFit, cameras: InputCameras, mask: np.ndarray) -> Optional[ImageCamera]:
    """The camera of an image whose object mask is `mask`, from the search's `fit` of that mask (or of the mask
    moved and scaled alike, as framing does): the fitting camera's pose, and its intrinsics carried by the alignment
    that takes the mask's box onto the one the fit found (a pixel p of the camera's view is the image's pixel
    m + (p - c) s, with m and c the two box centres and s the ratio of the mask's box size to the fit's). None for an
    empty mask."""
    box = box_measures(mask)
    if box is None:
        return None
    measures, centre = box
    ratio = math.exp(fit.framing.log_size_of(measures) - fit.framing.log_size)
    fx, fy, cx, cy = (float(v) for v in cameras.intrinsics)
    found_y, found_x = fit.framing.centre
    intrinsics = (fx * ratio, fy * ratio, float(centre[1] + (cx - found_x) * ratio),
                  float(centre[0] + (cy - found_y) * ratio))
    c2w = np.eye(4)
    c2w[:3] = fit.c2w.double().numpy()
    return ImageCamera(c2w=c2w, intrinsics=intrinsics, image_size=(int(mask.shape[0]), int(mask.shape[1])), fit=fit.iou)
