"""Pose refinement about the object centre.

The rough poses of a pseudo view miss the true ones by an error in azimuth, elevation and roll: all rotations about
the object centre (the world origin, which every camera looks at). nerfstudio's `CameraOptimizer` applies its
correction A = [R_a | t_a] as R' = R_a R, t' = t + t_a, i.e. it rotates each camera about its own centre, so an
orbit error of angle d needs a rotation d plus a coupled translation of about d x distance, which the optimizer
finds slowly and which its translation penalty resists. Here the same parameters act on the left of the pose,
T' = A T (R' = R_a R, t' = R_a t + t_a): an orbit error is the rotation R_a alone, with t_a = 0. Rotating the
rays about the origin also keeps their near and far bounds on the unit sphere valid.
"""

from __future__ import annotations

from typing import Optional

import torch
from jaxtyping import Float
from nerfstudio.cameras.camera_optimizers import CameraOptimizer
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.utils import poses as pose_utils
from torch import Tensor, nn


class PoseCorrectionNet(nn.Module):
    """Amortised pose refinement: a small CNN reads a pseudo view (image and mask, resized to `size` px) with its
    rough camera-to-world pose and predicts the view's correction A as a rotation about the object centre (an SO3xR3
    tangent with zero translation), applied like the per-camera corrections. An orbit error is such a rotation
    (see above); with a translation as well, the network moved the cameras by 0.57 on average and the shapes got
    worse.

    A per-camera correction learns only when its camera is drawn: about five times in a default run on a 512-car
    set. The network's weights learn from every drawn view, and a view shows its true pose. It starts at the
    identity (zero output layer)."""

    def __init__(self, size: int = 64, hidden: int = 64):
        super().__init__()
        self.size = size
        channels = [4, 16, 32, 64, 64]
        layers = []
        for a, b in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(a, b, 3, stride=2, padding=1), nn.ReLU()]
        self.cnn = nn.Sequential(*layers, nn.Flatten())
        cells = (size // 16) ** 2 * channels[-1]
        self.head = nn.Sequential(nn.Linear(cells + 12, hidden), nn.ReLU(), nn.Linear(hidden, 3))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(
        self,
        views: Float[Tensor, "num_views 3 height width"],
        masks: Float[Tensor, "num_views 1 height width"],
        rough_poses: Float[Tensor, "num_views 3 4"],
    ) -> Float[Tensor, "num_views 6"]:
        x = torch.cat([views, masks.to(views.dtype)], dim=1)
        if x.shape[-2:] != (self.size, self.size):
            x = nn.functional.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        rotation = self.head(torch.cat([self.cnn(x), rough_poses.reshape(len(x), 12)], dim=-1))
        return torch.cat([torch.zeros_like(rotation), rotation], dim=-1)


def _with_base(adjustment: Float[Tensor, "num 3 4"], base: Optional[Float[Tensor, "num 3 3"]]) -> Tensor:
    """The correction A after a rotation B about the origin: A B (B is applied first)."""
    if base is None:
        return adjustment
    return torch.cat([adjustment[:, :3, :3] @ base, adjustment[:, :3, 3:]], dim=-1)


def refine_rays(
    camera_optimizer: CameraOptimizer,
    ray_bundle: RayBundle,
    extra: Optional[Float[Tensor, "num_rays 3 4"]] = None,
    base: Optional[Float[Tensor, "num_cameras 3 3"]] = None,
) -> None:
    """Move the rays of each train camera by its correction A, applied in the world frame: o' = R_a o + t_a.
    `base` holds a rotation about the origin per train camera (from the pose search), applied before A; `extra`
    is a further correction per ray (from `PoseCorrectionNet`), applied after the camera's own."""
    if camera_optimizer.config.mode == "off":
        return
    cameras = ray_bundle.camera_indices[:, 0]
    adjustment = _with_base(camera_optimizer(cameras), None if base is None else base[cameras])
    if extra is not None:
        adjustment = pose_utils.multiply(extra, adjustment)
    rotation, translation = adjustment[:, :3, :3], adjustment[:, :3, 3]
    ray_bundle.origins = torch.einsum("nij,nj->ni", rotation, ray_bundle.origins) + translation
    ray_bundle.directions = torch.einsum("nij,nj->ni", rotation, ray_bundle.directions)


@torch.no_grad()
def refine_poses(
    camera_optimizer: CameraOptimizer,
    poses: Float[Tensor, "num_cameras 3 4"],
    indices: Optional[Tensor] = None,
    base: Optional[Float[Tensor, "num_train_cameras 3 3"]] = None,
) -> Float[Tensor, "num_cameras 3 4"]:
    """The camera-to-world poses after the corrections that `refine_rays` applies to their rays, A B T in the world
    frame (`indices`: the cameras the poses belong to, default all in order; `base`: as in `refine_rays`)."""
    if camera_optimizer.config.mode == "off":
        return poses
    if indices is None:
        indices = torch.arange(len(poses), device=poses.device)
    adjustment = _with_base(camera_optimizer(indices), None if base is None else base[indices])
    return pose_utils.multiply(adjustment, poses)
