"""NeuS rendering math against closed forms."""

import torch

from gansvr_ns.model.rendering import composite, neus_alpha, weights_from_alpha


def ray_through_sphere(num_samples: int = 256, radius: float = 0.5, start: float = -1.5, end: float = 1.5):
    """Samples along the x axis through a sphere centred at the origin."""
    t = torch.linspace(start, end, num_samples + 1)
    starts, deltas = t[:-1], (t[1:] - t[:-1])
    positions = torch.stack([starts, torch.zeros_like(starts), torch.zeros_like(starts)], dim=-1)
    sdf = positions.norm(dim=-1) - radius
    gradients = positions / positions.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    directions = torch.tensor([1.0, 0.0, 0.0]).expand_as(positions)
    return starts, sdf[None, :, None], gradients[None], directions[None], deltas[None, :, None]


def test_weights_are_non_negative_and_sum_to_at_most_one():
    torch.manual_seed(0)
    alpha = torch.rand(64, 48, 1)
    weights = weights_from_alpha(alpha)
    assert (weights >= 0).all()
    assert (weights.sum(dim=1) <= 1.0 + 1e-6).all()
    # sum of weights = 1 - prod(1 - alpha)
    torch.testing.assert_close(weights.sum(dim=1), 1.0 - torch.prod(1.0 - alpha, dim=1))


def test_sharp_sdf_renders_an_opaque_surface_at_the_sphere():
    starts, sdf, gradients, directions, deltas = ray_through_sphere()
    alpha = neus_alpha(sdf, gradients, directions, deltas, inv_s=2000.0)
    weights = weights_from_alpha(alpha)
    assert (alpha >= 0).all() and (alpha <= 1).all()
    assert weights.sum() > 0.99
    depth = composite(weights, starts[None, :, None])
    assert abs(depth.item() - (-0.5)) < 0.02  # first crossing of the sphere of radius 0.5 from x = -1.5


def test_ray_missing_the_object_is_transparent():
    t = torch.linspace(-1.5, 1.5, 129)
    positions = torch.stack([t[:-1], torch.full((128,), 0.9), torch.zeros(128)], dim=-1)
    sdf = positions.norm(dim=-1, keepdim=True) - 0.5
    gradients = positions / positions.norm(dim=-1, keepdim=True)
    directions = torch.tensor([1.0, 0.0, 0.0]).expand_as(positions)
    alpha = neus_alpha(sdf[None], gradients[None], directions[None], (t[1:] - t[:-1])[None, :, None], inv_s=2000.0)
    # only the 1e-5 stabiliser of each of the 128 alphas remains
    assert weights_from_alpha(alpha).sum() < 128 * 1e-5 + 1e-4
