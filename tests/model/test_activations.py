"""The SDF MLP's softplus: torch's values and derivatives up to the second, from fewer elementwise passes."""

import pytest
import torch

from gansvr_ns.model.activations import Softplus


def eikonal_style_loss(activation, z: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A loss that, like the eikonal term, differentiates a gradient: y and dy/dz both enter it."""
    y = activation(z) @ weight
    (slope,) = torch.autograd.grad(y.sum(), z, create_graph=True)
    return y.square().sum() + (slope.square() * torch.linspace(0.5, 2.0, slope.shape[-1])).sum()


@pytest.mark.parametrize("beta", [1.0, 100.0])
def test_values_and_derivatives_match_torch_softplus(beta):
    torch.manual_seed(0)
    z = (torch.randn(256, 8, dtype=torch.float64) * 3.0 / beta).requires_grad_(True)
    weight = torch.randn(8, 3, dtype=torch.float64)
    ours, theirs = Softplus(beta), torch.nn.Softplus(beta)
    torch.testing.assert_close(ours(z), theirs(z))
    (grad_ours,) = torch.autograd.grad(eikonal_style_loss(ours, z, weight), z)
    (grad_theirs,) = torch.autograd.grad(eikonal_style_loss(theirs, z, weight), z)
    torch.testing.assert_close(grad_ours, grad_theirs)
    assert grad_ours.abs().max() > 0


def test_second_derivatives_pass_gradgradcheck():
    torch.manual_seed(1)
    z = (torch.randn(6, 4, dtype=torch.float64) * 0.05).requires_grad_(True)
    activation = Softplus(30.0)
    assert torch.autograd.gradcheck(activation, (z,))
    assert torch.autograd.gradgradcheck(activation, (z,))


def test_without_grad_it_is_torch_softplus_in_float32():
    z = torch.cat([torch.linspace(-2.0, 2.0, 4001), torch.tensor([-1e4, -50.0, 0.0, 50.0, 1e4])])
    with torch.no_grad():
        ours = Softplus(100.0)(z)
    torch.testing.assert_close(ours, torch.nn.functional.softplus(z, 100.0), rtol=1e-6, atol=1e-7)
    assert (ours >= 0).all()


def flushing_denormals() -> bool:
    """Whether this thread flushes denormal floats to zero (pipelines on a CPU turn it on, process-wide)."""
    return bool((torch.tensor([1e-39]) * 1.0 == 0).item())


def test_no_derivative_is_denormal_in_the_deep_negative_tail():
    # as in the SDF MLP: both the value and the slope enter the loss linearly (the next layer, the normals)
    flushing = flushing_denormals()
    torch.set_flush_denormal(False)  # so that a denormal made here stays visible
    try:
        z = torch.linspace(-2.0, 0.1, 2001).requires_grad_(True)
        y = Softplus(100.0)(z)
        (slope,) = torch.autograd.grad(y.sum(), z, create_graph=True)
        (grad,) = torch.autograd.grad((y * 0.5).sum() + (slope * torch.linspace(1.0, 2.0, 2001)).sum(), z)
    finally:
        torch.set_flush_denormal(flushing)
    tiny = torch.finfo(torch.float32).tiny
    for derivative in (slope, grad):
        assert ((derivative == 0) | (derivative.abs() >= tiny)).all()
    # the slope is kept down to SLOPE_FLOOR (100 z ~ -46)
    assert (slope[z.detach() < -0.47] == 0).all() and (slope[z.detach() > -0.45] > 0).all()
