"""Pose refinement about the object centre: an orbit error is undone by a rotation alone."""

import numpy as np
import torch
from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig
from nerfstudio.cameras.lie_groups import exp_map_SO3xR3
from nerfstudio.cameras.rays import RayBundle

from gansvr_ns.data.format import orbit_pose
from gansvr_ns.model.poses import PoseCorrectionNet, refine_poses, refine_rays


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


def test_pose_network_starts_at_the_identity_and_learns_from_the_rays():
    torch.manual_seed(0)
    net = PoseCorrectionNet(size=32)
    views, masks = torch.rand(2, 3, 48, 48), (torch.rand(2, 1, 48, 48) > 0.5).float()  # resized to 32 px
    poses = torch.from_numpy(np.stack([orbit_pose(a, 15.0, 2.5) for a in (0.0, 90.0)])[:, :3]).float()
    tangent = net(views, masks, poses)
    assert tangent.shape == (2, 6) and torch.equal(tangent, torch.zeros(2, 6))
    with torch.no_grad():
        net.head[-1].bias[:] = torch.tensor([0.1, 0.2, 0.3])
    assert torch.equal(net(views, masks, poses)[:, :3], torch.zeros(2, 3))  # a rotation about the object centre only
    with torch.no_grad():
        net.head[-1].bias.zero_()
    optimizer = CameraOptimizerConfig(mode="SO3xR3").setup(num_cameras=2, device="cpu")
    bundle = RayBundle(origins=poses[:, :3, 3].clone(), directions=-poses[:, :3, 2].clone(),
                       pixel_area=torch.ones(2, 1), camera_indices=torch.arange(2)[:, None])
    refine_rays(optimizer, bundle, exp_map_SO3xR3(tangent))
    assert torch.allclose(bundle.origins, poses[:, :3, 3], atol=1e-5)  # identity before any step
    bundle.origins.sum().backward()
    assert net.head[-1].weight.grad.abs().sum() > 0


def test_pose_network_correction_is_applied_after_the_cameras_own():
    poses = torch.from_numpy(np.stack([orbit_pose(a, 15.0, 2.5) for a in (30.0, 200.0)])[:, :3]).float()
    optimizer = CameraOptimizerConfig(mode="SO3xR3").setup(num_cameras=2, device="cpu")
    with torch.no_grad():
        optimizer.pose_adjustment.normal_(0.0, 0.1)
    extra = exp_map_SO3xR3(torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.2, 0.0], [0.1, 0.0, 0.0, 0.0, 0.0, -0.3]]))
    bundle = RayBundle(origins=poses[:, :3, 3].clone(), directions=-poses[:, :3, 2].clone(),
                       pixel_area=torch.ones(2, 1), camera_indices=torch.arange(2)[:, None])
    refine_rays(optimizer, bundle, extra)
    own = refine_poses(optimizer, poses)
    expected = torch.einsum("nij,nj->ni", extra[:, :, :3], own[:, :, 3]) + extra[:, :, 3]
    assert torch.allclose(bundle.origins, expected, atol=1e-5)
    assert torch.allclose(refine_poses(optimizer, poses[1:], torch.tensor([1])), own[1:], atol=1e-6)


def test_searched_base_rotation_comes_before_the_cameras_own_correction():
    torch.manual_seed(1)
    poses = torch.from_numpy(np.stack([orbit_pose(a, 15.0, 2.5) for a in (20.0, 140.0)])[:, :3]).float()
    optimizer = CameraOptimizerConfig(mode="SO3xR3").setup(num_cameras=2, device="cpu")
    with torch.no_grad():
        optimizer.pose_adjustment.normal_(0.0, 0.05)
    base = exp_map_SO3xR3(torch.cat([torch.zeros(2, 3), 0.1 * torch.randn(2, 3)], dim=-1))[:, :3, :3]
    refined = refine_poses(optimizer, poses, base=base)
    corrected = exp_map_SO3xR3(optimizer.pose_adjustment.detach())
    expected_rotation = corrected[:, :3, :3] @ base @ poses[:, :, :3]
    assert torch.allclose(refined[:, :, :3], expected_rotation, atol=1e-5)
    local = torch.nn.functional.normalize(torch.randn(2, 3), dim=-1)
    bundle = RayBundle(origins=poses[:, :3, 3].clone(), directions=torch.einsum("nij,nj->ni", poses[:, :3, :3], local),
                       pixel_area=torch.ones(2, 1), camera_indices=torch.arange(2)[:, None])
    refine_rays(optimizer, bundle, base=base)
    assert torch.allclose(bundle.origins, refined[:, :3, 3], atol=1e-5)
    assert torch.allclose(bundle.directions, torch.einsum("nij,nj->ni", refined[:, :3, :3], local), atol=1e-5)
