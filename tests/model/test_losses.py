"""Losses and metrics against closed forms."""

import math

import torch

from gansvr_ns.model import losses
from gansvr_ns.model.losses import eikonal, rotation_error_deg, silhouette_iou, uncertainty_l1


def test_optimal_sigma_tracks_the_residual():
    torch.manual_seed(0)
    target = torch.rand(200, 3)
    residual = torch.rand(200, 1) * 0.5 + 0.05  # the same absolute error on every channel
    pred = target + residual * torch.sign(torch.randn(200, 3))
    log_sigma = torch.zeros(200, 1, requires_grad=True)
    opt = torch.optim.Adam([log_sigma], lr=0.05)
    weight = torch.ones(200, 1)
    for _ in range(1500):
        opt.zero_grad()
        uncertainty_l1(pred, target, log_sigma.exp(), weight).backward()
        opt.step()
    torch.testing.assert_close(log_sigma.exp(), residual, atol=5e-3, rtol=0.02)


def test_uncertainty_loss_value_and_mask():
    pred, target = torch.zeros(2, 3), torch.full((2, 3), 0.5)
    sigma = torch.tensor([[0.25], [1.0]])
    loss = uncertainty_l1(pred, target, sigma, torch.tensor([[1.0], [0.0]]))
    assert math.isclose(loss.item(), 0.5 / 0.25 + math.log(0.25), rel_tol=1e-6)


def test_eikonal_is_zero_for_unit_gradients():
    g = torch.nn.functional.normalize(torch.randn(100, 3), dim=-1)
    assert eikonal(g).item() < 1e-10
    assert math.isclose(eikonal(2 * g).item(), 1.0, rel_tol=1e-5)


def test_rotation_error_of_a_known_rotation():
    angle = math.radians(12.0)
    rz = torch.tensor([[math.cos(angle), -math.sin(angle), 0], [math.sin(angle), math.cos(angle), 0], [0, 0, 1.0]])
    err = rotation_error_deg(torch.eye(3)[None], rz[None])
    assert abs(err.item() - 12.0) < 1e-3


def test_silhouette_iou():
    acc = torch.tensor([[0.9], [0.9], [0.1], [0.1]])
    mask = torch.tensor([[1.0], [0.0], [1.0], [0.0]])
    assert math.isclose(silhouette_iou(acc, mask).item(), 1 / 3, rel_tol=1e-6)


def test_latent_spread_hinge_penalises_collapsed_latents_only():
    torch.manual_seed(0)
    collapsed = torch.ones(8, 16) + 1e-3 * torch.randn(8, 16)
    spread = 3.0 * torch.randn(8, 16)
    assert losses.latent_spread_hinge(collapsed) > 0.9
    assert losses.latent_spread_hinge(spread) < 0.05
    latents = collapsed.clone().requires_grad_(True)
    losses.latent_spread_hinge(latents).backward()
    step = latents - 10.0 * latents.grad  # a gradient step spreads the latents apart
    assert losses.latent_spread_hinge(step) < losses.latent_spread_hinge(collapsed)


def test_relative_confidence_keeps_the_total_weight_and_favours_small_sigma():
    sigma = torch.tensor([[0.1], [0.2], [0.4], [5.0]], requires_grad=True)
    weight = torch.tensor([[1.0], [1.0], [1.0], [0.0]])
    confidence = losses.relative_confidence(sigma, weight)
    assert not confidence.requires_grad
    torch.testing.assert_close((confidence * weight).sum(), weight.sum())
    torch.testing.assert_close(confidence[:3, 0], torch.tensor([4.0, 2.0, 1.0]) * 3.0 / 7.0)


def test_sigma_nll_moves_only_sigma_towards_the_residual():
    residual = torch.tensor([[0.3], [0.05]], requires_grad=True)
    sigma = torch.tensor([[0.3], [0.5]], requires_grad=True)
    losses.sigma_nll(residual, sigma, torch.ones(2, 1)).backward()
    assert residual.grad is None
    assert abs(float(sigma.grad[0])) < 1e-6  # sigma = r is the optimum
    assert float(sigma.grad[1]) > 0  # sigma above its residual shrinks


def test_bce_per_ray_averages_to_the_silhouette_loss():
    accumulation, mask = torch.rand(50, 1), (torch.rand(50, 1) > 0.5).float()
    torch.testing.assert_close(losses.bce_per_ray(accumulation, mask).mean(), losses.silhouette_bce(accumulation, mask))


def test_info_nce_prefers_matched_pairs_and_rejects_one_code_for_all():
    torch.manual_seed(0)
    first = torch.randn(6, 16)
    matched = first + 0.01 * torch.randn(6, 16)
    shuffled = matched[torch.tensor([1, 2, 3, 4, 5, 0])]
    collapsed = torch.ones(6, 16)
    assert losses.info_nce(first, matched, 0.1) < 0.01
    assert losses.info_nce(first, shuffled, 0.1) > 5.0
    # one code for every image (what a consistency term alone allows) is no better than chance: log(batch)
    torch.testing.assert_close(losses.info_nce(collapsed, collapsed, 0.1), torch.tensor(math.log(6)))
    # symmetric in its two arguments, blind to the latents' scale
    torch.testing.assert_close(losses.info_nce(first, shuffled, 0.1), losses.info_nce(shuffled, first, 0.1))
    torch.testing.assert_close(losses.info_nce(3.0 * first, shuffled, 0.1), losses.info_nce(first, shuffled, 0.1))


def test_sdf_silhouette_is_the_scaled_bce_and_tends_to_a_hinge():
    min_sdf = torch.tensor([[0.1], [-0.1], [-0.1], [0.1]])
    mask = torch.tensor([[1.0], [0.0], [1.0], [0.0]])  # two rays on the wrong side by 0.1, two on the right side
    for alpha in (5.0, 50.0):
        bce = torch.nn.functional.binary_cross_entropy(torch.sigmoid(-alpha * min_sdf), mask)
        torch.testing.assert_close(losses.sdf_silhouette(min_sdf, mask, alpha), bce / alpha)
    assert math.isclose(losses.sdf_silhouette(min_sdf, mask, 1e4).item(), (0.1 + 0.1) / 4, rel_tol=1e-4)


def test_sdf_silhouette_gradient_is_bounded_whatever_alpha():
    min_sdf = torch.linspace(-0.5, 0.5, 101)[:, None].requires_grad_()
    mask = (torch.rand(101, 1) > 0.5).float()
    for alpha in (10.0, 1000.0):
        (grad,) = torch.autograd.grad(losses.sdf_silhouette(min_sdf, mask, alpha), min_sdf)
        assert grad.abs().max() <= 1.0 / 101 + 1e-7


def test_sdf_silhouette_fits_a_sphere_to_its_outline():
    """Rays pass the origin at distances b; along a ray the smallest SDF of a sphere of radius r is b - r. Masks
    drawn by a sphere of radius 0.6 pull the radius there from 0.3 and from 0.9, to within about 1 / alpha."""
    b = torch.linspace(0.0, 1.0, 401)[:, None]
    mask = (b < 0.6).float()
    for start in (0.3, 0.9):
        radius = torch.tensor(start, requires_grad=True)
        opt = torch.optim.Adam([radius], lr=0.01)
        for _ in range(400):
            opt.zero_grad()
            losses.sdf_silhouette(b - radius, mask, 200.0).backward()
            opt.step()
        assert abs(radius.item() - 0.6) < 0.01, start


def test_normal_smoothness_is_zero_on_a_plane_and_grows_with_curvature():
    torch.manual_seed(0)
    weight = torch.ones(500, 1)
    up = torch.tensor([[0.0, 0.0, 1.0]]).expand(500, 3)
    assert losses.normal_smoothness(up, up, weight).item() == 0.0
    points = torch.nn.functional.normalize(torch.randn(500, 3), dim=-1)
    offset = 0.02 * torch.randn(500, 3)
    bend = []
    for radius in (1.0, 0.25):  # sphere normals x / |x|, at points and at points offset by the same vectors
        normal = lambda x: torch.nn.functional.normalize(x, dim=-1)  # noqa: E731
        bend.append(losses.normal_smoothness(normal(radius * points), normal(radius * points + offset), weight))
    assert 0.0 < bend[0] < bend[1]
    torch.testing.assert_close(bend[1] / bend[0], torch.tensor(4.0), rtol=0.05, atol=0.0)
