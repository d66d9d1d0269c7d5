"""Pose refinement about the object centre: an orbit error is undone by a rotation alone."""

import numpy as np
import torch
from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
from nerfstudio.cameras.rays import RayBundle

from gansvr_ns.data.format import orbit_pose
from gansvr_ns.model.poses import jitter_rays, refine_poses, refine_rays


def rotation_vector(rotation: np.ndarray) -> np.ndarray:
    """Axis times angle of a rotation matrix (angles below 180 degrees)."""
    angle = np.arccos(np.clip((np.trace(rotation) - 1.0) / 2.0, -1.0, 1.0))
    axis = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0], rotation[1, 0] - rotation[0, 1]])
    return axis / (2.0 * np.sin(angle)) * angle


def test_a_rotation_about_the_object_turns_rough_poses_into_true_ones():
    rough = np.stack([orbit_pose(30.0, 10.0, 2.5), orbit_pose(200.0, 25.0, 2.5)])
    true = np.stack([orbit_pose(37.0, 4.0, 2.5), orbit_pose(195.0, 31.0, 2.5)])
    optimizer = CameraOptimizerConfig(mode="SO3xR3").setup(num_cameras=2, device="cpu")
    with torch.no_grad():  # SO3xR3 parameters: translation, then the rotation vector
        for i in range(2):
            error = true[i, :3, :3] @ rough[i, :3, :3].T  # orbit poses differ by a rotation about the origin
            optimizer.pose_adjustment[i, 3:] = torch.from_numpy(rotation_vector(error))
    refined = refine_poses(optimizer, torch.from_numpy(rough[:, :3]).float())
    assert torch.allclose(refined, torch.from_numpy(true[:, :3]).float(), atol=1e-4)


def test_refined_rays_are_the_rays_of_the_refined_pose():
    torch.manual_seed(0)
    poses = torch.from_numpy(np.stack([orbit_pose(a, 15.0, 2.5) for a in (0.0, 90.0, 250.0)])[:, :3]).float()
    optimizer = CameraOptimizerConfig(mode="SO3xR3").setup(num_cameras=3, device="cpu")
    with torch.no_grad():
        optimizer.pose_adjustment.normal_(0.0, 0.1)
    local = torch.nn.functional.normalize(torch.randn(3, 3), dim=-1)  # one ray per camera, in camera coordinates
    bundle = RayBundle(
        origins=poses[:, :3, 3].clone(), directions=torch.einsum("nij,nj->ni", poses[:, :3, :3], local),
        pixel_area=torch.ones(3, 1), camera_indices=torch.arange(3)[:, None],
    )
    refine_rays(optimizer, bundle)
    refined = refine_poses(optimizer, poses)
    assert torch.allclose(bundle.origins, refined[:, :3, 3], atol=1e-5)
    assert torch.allclose(bundle.directions, torch.einsum("nij,nj->ni", refined[:, :3, :3], local), atol=1e-5)
    assert not torch.allclose(refined, poses, atol=1e-3)


def test_refinement_off_leaves_rays_and_poses_alone():
    poses = torch.from_numpy(orbit_pose(10.0, 5.0, 2.5)[None, :3]).float()
    optimizer = CameraOptimizerConfig(mode="off").setup(num_cameras=1, device="cpu")
    bundle = RayBundle(origins=poses[:, :3, 3].clone(), directions=-poses[:, :3, 2].clone(),
                       pixel_area=torch.ones(1, 1), camera_indices=torch.zeros(1, 1, dtype=torch.long))
    refine_rays(optimizer, bundle)
    assert torch.equal(bundle.origins, poses[:, :3, 3]) and torch.equal(refine_poses(optimizer, poses), poses)


def camera_rays(poses: torch.Tensor, local: torch.Tensor, cameras: torch.Tensor) -> RayBundle:
    """One ray per row: camera `cameras[k]` of `poses` (n, 3, 4), direction `local[k]` in camera coordinates."""
    return RayBundle(
        origins=poses[cameras, :3, 3].clone(),
        directions=torch.einsum("nij,nj->ni", poses[cameras, :3, :3], local),
        pixel_area=torch.ones(len(cameras), 1), camera_indices=cameras[:, None],
    )


def test_jitter_draws_one_orbit_error_per_camera_of_the_rough_pose_error_model():
    sigma, n = 6.0, 3000
    pose = torch.from_numpy(orbit_pose(40.0, 15.0, 2.5)[:3]).float()
    poses = pose.expand(n, 3, 4)
    cameras = torch.arange(n).repeat_interleave(2)  # two rays per camera: the central one and an off-axis one
    local = torch.tensor([[0.0, 0.0, -1.0], [0.3, 0.2, -1.0]]).repeat(n, 1)
    bundle = camera_rays(poses, torch.nn.functional.normalize(local, dim=-1), cameras)
    jitter_rays(bundle, sigma, torch.Generator().manual_seed(0))
    origins, directions = bundle.origins.view(n, 2, 3), bundle.directions.view(n, 2, 3)
    # the rays of a camera move together: one centre, and the angle between them is kept
    assert torch.allclose(origins[:, 0], origins[:, 1], atol=1e-5)
    cosine = (directions[:, 0] * directions[:, 1]).sum(-1)
    assert torch.allclose(cosine, torch.full_like(cosine, float(local[0] @ local[1] / local[1].norm())), atol=1e-5)
    # the central ray still looks at the object centre from the same distance
    assert torch.allclose(origins[:, 0].norm(dim=-1), torch.full((n,), 2.5), atol=1e-4)
    assert torch.allclose(directions[:, 0], -torch.nn.functional.normalize(origins[:, 0], dim=-1), atol=1e-4)
    centre = origins[:, 0].double().numpy()
    azimuth = np.degrees(np.arctan2(centre[:, 1], centre[:, 0]))
    elevation = np.degrees(np.arcsin(centre[:, 2] / 2.5))
    # roll: the angle, about the viewing axis, from the upright camera at the moved centre to the moved camera
    rolls = []
    for k in range(200):
        upright = orbit_pose(float(azimuth[k]), float(elevation[k]), 2.5)[:3, :3]
        seen = upright.T @ directions[k, 1].double().numpy()  # the off-axis ray in the upright camera's frame
        rolls.append(np.degrees(np.arctan2(seen[1], seen[0]) - np.arctan2(0.2, 0.3)))
    assert abs(np.std(azimuth - 40.0) - sigma) < 0.5 and abs(np.mean(azimuth - 40.0)) < 0.5
    assert abs(np.std(elevation - 15.0) - sigma) < 0.5 and abs(np.mean(elevation - 15.0)) < 0.5
    assert abs(np.std(rolls) - sigma / 2) < 0.6


def test_no_jitter_leaves_rays_alone():
    pose = torch.from_numpy(orbit_pose(10.0, 5.0, 2.5)[None, :3]).float()
    bundle = camera_rays(pose, torch.tensor([[0.0, 0.0, -1.0]]), torch.zeros(1, dtype=torch.long))
    origins = bundle.origins.clone()
    jitter_rays(bundle, 0.0)
    assert torch.equal(bundle.origins, origins)
