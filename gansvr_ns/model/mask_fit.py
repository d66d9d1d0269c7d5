"""Fit a reconstruction to its own image's object mask.

The encoder reads one image and answers with a latent; the framing search (`framing_search.py`) then finds the
camera from which that latent's shape best covers the image's object mask. Neither is exact: the latent carries the
encoder's error on this image, the camera is one of the training inputs' (or beside one) with intrinsics from a box
alignment. `fit_to_mask` adjusts both for a few gradient steps so that the silhouette drawn with the camera covers the
mask: a small offset of the latent (held near the encoder's by a penalty) and a small rigid motion of the camera.
Only the image's own mask is used, as in any single-view reconstruction from a segmented photo; nothing of the
object's 3D shape.

The silhouette of a ray is sigmoid(-k s), with s the smallest SDF along the ray. The smallest is found without
gradients over `SAMPLES` depths every `SEARCH_EVERY` steps and tracked between them from the last one (three depths
around it), and only that point is evaluated with gradients: a step costs one SDF evaluation per ray with its
backward, plus the search. On a CPU, 40 steps (`gansvr-reconstruct --fit-steps`) over `RAYS_PER_SIDE`^2 rays
take about 0.5 s (docs/benchmarks.md, "Fitting each reconstruction to its mask").
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
from jaxtyping import Float
from nerfstudio.cameras.lie_groups import exp_map_SO3xR3
from torch import Tensor

from gansvr_ns.data.framing import box_measures
from gansvr_ns.model.framing_search import ImageCamera
from gansvr_ns.model.gansvr_model import unit_scale
from gansvr_ns.model.losses import silhouette_iou

RAYS_PER_SIDE = 24
"""The rays form a grid of this many per side over the mask's box, widened by `BOX_MARGIN` on each side."""
BOX_MARGIN = 0.25
"""Fraction of the box's height (width) added above and below (left and right) of it for the rays."""
SAMPLES = 32
"""Depths per ray searched for the smallest SDF, over the unit sphere's depth range seen from the camera."""
SEARCH_EVERY = 8
"""Steps between full searches of the smallest SDF; in between it is tracked from the last one."""
SHARPNESS = 50.0
"""k of the silhouette sigmoid(-k s): about 0.02 scene units from half to 12% coverage."""
LATENT_LR = 0.08
"""Adam's learning rate for the latent offset (latents have unit variance over their dimensions)."""
CAMERA_LR = 0.008
"""Adam's learning rate for the camera's rotation (radians) and translation (scene units)."""
LATENT_WEIGHT = 0.03
"""Weight of the mean squared latent offset: how far from the encoder's latent the fit may go."""


@dataclass(frozen=True)
class MaskFit:
    """What `fit_to_mask` found."""

    latent: Float[Tensor, "1 latent_dim"]
    """The fitted latent (unit-scaled, as `GanSvrModel.encode` gives them)."""
    camera: ImageCamera
    """The camera moved by the fit; its `fit` is `iou_after`."""
    iou_before: float
    """IoU of the mask with the silhouette on the fit's rays, for the encoder's latent and the camera given."""
    iou_after: float
    """The same after the fit: the best of its steps, whose latent and camera it returns."""


def box_pixels(mask: np.ndarray, per_side: int = RAYS_PER_SIDE, margin: float = BOX_MARGIN):
    """Pixel-edge coordinates (u, v) of a per_side x per_side grid over the mask's box widened by `margin` (clipped
    to the image), and the mask's value at each (the pixel it falls in). None for an empty mask."""
    box = box_measures(mask)
    if box is None:
        return None
    (log_h, log_w, _), (cy, cx) = box
    height, width = mask.shape
    half_h, half_w = np.exp(log_h) * (0.5 + margin), np.exp(log_w) * (0.5 + margin)
    top, bottom = max(cy - half_h, 0.0), min(cy + half_h, float(height))
    left, right = max(cx - half_w, 0.0), min(cx + half_w, float(width))
    # cell centres of an even grid over the widened box
    v = top + (np.arange(per_side) + 0.5) * (bottom - top) / per_side
    u = left + (np.arange(per_side) + 0.5) * (right - left) / per_side
    vv, uu = np.meshgrid(v, u, indexing="ij")
    rows = np.clip(vv.astype(np.int64), 0, height - 1)
    cols = np.clip(uu.astype(np.int64), 0, width - 1)
    target = mask[rows, cols].reshape(-1).astype(np.float32)
    return uu.reshape(-1), vv.reshape(-1), target


def fit_to_mask(field, latent: Float[Tensor, "1 latent_dim"], camera: ImageCamera, mask: np.ndarray,
                steps: int) -> MaskFit:
    """Adjust `latent` (unit-scaled, `GanSvrModel.encode`) and `camera` (in the pixels of the image whose object
    mask is `mask`, (H, W) bool) so that the silhouette of `field` (`ConditionedSDFField`) with that latent, drawn
    with the camera, covers the mask, in `steps` gradient steps. The field's parameters are not changed."""
    device = latent.device
    pixels = box_pixels(mask, RAYS_PER_SIDE, BOX_MARGIN)
    if pixels is None:
        raise ValueError("fit_to_mask: the mask is empty")
    u, v, target = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in pixels)
    fx, fy, cx, cy = camera.intrinsics
    local = torch.stack([(u - cx) / fx, -(v - cy) / fy, -torch.ones_like(u)], dim=-1)  # OpenGL camera frame
    local = local / local.norm(dim=-1, keepdim=True)
    c2w = torch.as_tensor(camera.c2w[:3], dtype=torch.float32, device=device)
    distance = float(c2w[:, 3].norm())
    depths = torch.linspace(max(distance - 1.0, 1e-3), distance + 1.0, SAMPLES, device=device)
    half_step = float(depths[1] - depths[0]) / 2.0
    around = torch.tensor([-half_step, 0.0, half_step], device=device)

    latent = latent.detach()
    offset = torch.zeros_like(latent, requires_grad=True)
    tangent = torch.zeros(1, 6, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([{"params": [offset], "lr": LATENT_LR}, {"params": [tangent], "lr": CAMERA_LR}])

    def rays() -> tuple[Tensor, Tensor, Tensor]:
        motion = exp_map_SO3xR3(tangent)[0]  # applied to the camera on the left, as nerfstudio's pose refinement
        rotation = motion[:, :3] @ c2w[:, :3]
        origin = motion[:, :3] @ c2w[:, 3] + motion[:, 3]
        return origin, local @ rotation.T, rotation

    depth = None
    ious = []
    for step in range(steps + 1):
        origin, directions, _ = rays()
        code = field.encode_latents(unit_scale(latent + offset))
        with torch.no_grad():
            if depth is None or step % SEARCH_EVERY == 0 or step == steps:
                tried = depths.expand(len(directions), -1)
            else:
                tried = depth[:, None] + around
            points = origin + directions[:, None] * tried[..., None]
            sdf = field.sdf(points.reshape(-1, 3), code).reshape(tried.shape)
            depth = tried.gather(1, sdf.argmin(dim=1, keepdim=True))[:, 0]
        coverage = torch.sigmoid(-SHARPNESS * field.sdf(origin + directions * depth[:, None], code)[:, 0])
        ious.append(float(silhouette_iou(coverage.detach(), target)))
        if ious[-1] >= max(ious):  # the fit keeps the best state it saw (the last, on a trained run, nearly always)
            best = (offset.detach().clone(), tangent.detach().clone())
        if step == steps:
            break
        loss = torch.nn.functional.binary_cross_entropy(coverage.clamp(1e-5, 1.0 - 1e-5), target)
        loss = loss + LATENT_WEIGHT * offset.square().mean()
        offset.grad, tangent.grad = torch.autograd.grad(loss, [offset, tangent])  # the field's parameters stay put
        optimizer.step()

    with torch.no_grad():
        offset.copy_(best[0])
        tangent.copy_(best[1])
        origin, _, rotation = rays()
        moved = np.eye(4)
        moved[:3, :3] = rotation.double().cpu().numpy()
        moved[:3, 3] = origin.double().cpu().numpy()
        fitted = unit_scale(latent + offset)
    return MaskFit(latent=fitted, camera=replace(camera, c2w=moved, fit=max(ious)), iou_before=ious[0],
                   iou_after=max(ious))
