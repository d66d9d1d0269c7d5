"""Sampling that keeps the field's outputs: the same samples, SDF and gradients as nerfstudio's NeuSSampler followed
by a second evaluation of the sampled points, and gradients that reach the rays (pose refinement) and the field."""

from types import SimpleNamespace

import torch
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.model_components.ray_samplers import NeuSSampler
from nerfstudio.model_components.scene_colliders import SphereCollider

from gansvr_ns.model.field import ConditionedSDFField, SDFFieldConfig
from gansvr_ns.model.gansvr_model import GanSvrModel


def rays(n: int) -> RayBundle:
    origins = (torch.nn.functional.normalize(torch.randn(n, 3), dim=-1) * 2.5).requires_grad_(True)  # as if refined
    targets = torch.randn(n, 3) * 0.2
    bundle = RayBundle(origins=origins, directions=torch.nn.functional.normalize(targets - origins, dim=-1),
                       pixel_area=torch.ones(n, 1), camera_indices=torch.zeros(n, 1, dtype=torch.long))
    return SphereCollider(center=torch.zeros(3), radius=1.0)(bundle)


def test_samples_geometry_and_gradients_match_sampling_then_evaluating():
    torch.manual_seed(0)
    # 64 wide: at this width and seed, the perturbed surface below still crosses most rays inside the unit sphere
    config = SDFFieldConfig(use_hash_grid=False, latent_grid_resolution=8, hidden_dim=64)
    field = ConditionedSDFField(config, latent_dim=16)
    with torch.no_grad():
        field.output.weight.normal_(0.0, 0.05)  # a shape that is not the initial sphere
    code = field.encode_latents(torch.randn(1, 16)).unsqueeze(1)
    sampler = NeuSSampler(num_samples=16, num_samples_importance=16, num_upsample_steps=2, base_variance=64.0)
    bundle = rays(64)
    model = SimpleNamespace(sampler=sampler, field=field, training=True)

    torch.manual_seed(1)
    samples, geometry, gradients = GanSvrModel.sample_with_geometry(model, bundle, code)
    torch.manual_seed(1)
    expected_samples = sampler(bundle, sdf_fn=lambda s: field.sdf(s.frustums.get_start_positions(), code))
    positions = expected_samples.frustums.get_start_positions()
    expected_geometry, expected_gradients = field.sdf_and_gradient(positions, code, create_graph=True)

    assert samples.shape == (64, 32)
    torch.testing.assert_close(samples.frustums.starts, expected_samples.frustums.starts)
    torch.testing.assert_close(geometry, expected_geometry, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(gradients, expected_gradients, atol=1e-4, rtol=1e-4)
    # the importance samples moved towards the surface: the sampled SDF changes sign on most rays that hit it
    crossings = (geometry[..., 0].min(dim=1).values < 0) & (geometry[..., 0].max(dim=1).values > 0)
    assert crossings.float().mean() > 0.5

    # the kept gradients are differentiable (the eikonal term) and reach the field's weights and the rays
    loss = ((gradients.norm(dim=-1) - 1.0) ** 2).mean() + geometry[..., 0].abs().mean()
    origins = bundle.origins
    origins.retain_grad()
    loss.backward()
    assert field.layers[0].weight.grad.abs().sum() > 0
    assert origins.grad.abs().sum() > 0
