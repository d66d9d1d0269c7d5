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

import math
from typing import Optional

import torch
from jaxtyping import Float
from nerfstudio.cameras.camera_optimizers import CameraOptimizer
from nerfstudio.cameras.rays import RayBundle
from torch import Tensor, nn


def refine_rays(camera_optimizer: CameraOptimizer, ray_bundle: RayBundle) -> None:
    """Move the rays of each train camera by its correction A, applied in the world frame: o' = R_a o + t_a."""
    if camera_optimizer.config.mode == "off":
        return
    adjustment = camera_optimizer(ray_bundle.camera_indices[:, 0])
    rotation, translation = adjustment[:, :3, :3], adjustment[:, :3, 3]
    ray_bundle.origins = torch.einsum("nij,nj->ni", rotation, ray_bundle.origins) + translation
    ray_bundle.directions = torch.einsum("nij,nj->ni", rotation, ray_bundle.directions)


@torch.no_grad()
def refine_poses(
    camera_optimizer: CameraOptimizer, poses: Float[Tensor, "num_cameras 3 4"]
) -> Float[Tensor, "num_cameras 3 4"]:
    """The camera-to-world poses after the corrections that `refine_rays` applies to their rays."""
    if camera_optimizer.config.mode == "off":
        return poses
    adjustment = camera_optimizer(torch.arange(len(poses), device=poses.device))
    rotation, translation = adjustment[:, :3, :3], adjustment[:, :3, 3:]
    return torch.cat([rotation @ poses[:, :3, :3], rotation @ poses[:, :3, 3:] + translation], dim=-1)


def axis_angle_matrices(axes: Float[Tensor, "n 3"], angles: Float[Tensor, " n"]) -> Float[Tensor, "n 3 3"]:
    """Rotations by `angles` (radians) about unit `axes` (Rodrigues' formula)."""
    x, y, z = axes.unbind(-1)
    zero = torch.zeros_like(x)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).view(-1, 3, 3)
    sin, cos = angles.sin()[:, None, None], angles.cos()[:, None, None]
    eye = torch.eye(3, dtype=axes.dtype, device=axes.device).expand_as(cross)
    return eye + sin * cross + (1.0 - cos) * (cross @ cross)


def jitter_rays(ray_bundle: RayBundle, sigma_deg: float, generator: Optional[torch.Generator] = None) -> None:
    """Move every drawn view's rays by a fresh random orbit error about the object centre, in place.

    Each camera in the bundle gets its own error, shared by all its rays: azimuth (about world +z) and elevation
    (about the camera's horizontal axis) ~ N(0, sigma^2), roll (about its viewing axis) ~ N(0, (sigma/2)^2), the
    error model of rough GAN pose labels (FORMAT.md's procedural noise). A view whose rough pose misses by such an
    error shows a silhouette that is, on average, too large (a car seen from the front at a wrong azimuth shows its
    length as extra width), so fitting the masks under the rough poses alone inflates the shape. Rendering under
    errors drawn from the same distribution inflates the model's silhouettes alike, and the shape that fits keeps its
    true size.
    """
    if sigma_deg <= 0.0:
        return
    cameras, inverse = torch.unique(ray_bundle.camera_indices[:, 0], return_inverse=True)
    noise = torch.randn(len(cameras), 3, generator=generator).to(ray_bundle.origins)
    noise = (noise * torch.tensor([1.0, 1.0, 0.5]).to(noise) * math.radians(sigma_deg))[inverse]
    view = nn.functional.normalize(ray_bundle.origins, dim=-1)  # from the object centre to the camera
    up = torch.tensor([0.0, 0.0, 1.0]).to(view).expand_as(view)
    horizontal = torch.cross(up, view, dim=-1)
    # a camera straight above the centre has no azimuth-elevation split: any horizontal axis will do
    horizontal = torch.where(horizontal.norm(dim=-1, keepdim=True) > 1e-6, horizontal,
                             torch.tensor([0.0, 1.0, 0.0]).to(view).expand_as(view))
    horizontal = nn.functional.normalize(horizontal, dim=-1)
    rotation = (axis_angle_matrices(up, noise[:, 0]) @ axis_angle_matrices(horizontal, -noise[:, 1])
                @ axis_angle_matrices(view, noise[:, 2]))
    ray_bundle.origins = torch.einsum("nij,nj->ni", rotation, ray_bundle.origins)
    ray_bundle.directions = torch.einsum("nij,nj->ni", rotation, ray_bundle.directions)
