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

import torch
from jaxtyping import Float
from nerfstudio.cameras.camera_optimizers import CameraOptimizer
from nerfstudio.cameras.rays import RayBundle
from torch import Tensor


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
