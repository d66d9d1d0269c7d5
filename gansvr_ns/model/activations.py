"""The SDF MLP's softplus with hand-written first and second derivatives.

A NeuS step differentiates the SDF twice: once for the normals and the eikonal term (`create_graph=True`), and
again when the loss flows back through those normals. torch's own softplus rebuilds its second derivative from
seven elementwise operations (scale, sigmoid, sigmoid derivative, threshold test, cast, two products), each a full
pass over a (samples x width) tensor, and recomputes the sigmoid in every backward. `Softplus` computes the sigmoid
s = sigmoid(beta z) once in the forward pass and keeps it, so every derivative is one or two passes over it:

    y = softplus(z),   dy/dz = s,   d2y/dz2 = beta s (1 - s).

Slopes below `SLOPE_FLOOR` are kept as 0, so that no derivative computes with denormal floats.

The value itself is read off the slope: softplus(z) = relu(z) - log(max(s, 1 - s)) / beta, since
1 - s = sigmoid(-beta z). On a 2-core CPU, for 1024 x 32 x 96 floats, torch's softplus took 16 ms, the form
relu(z) + log(1 + exp(-beta |z|)) / beta (used until session 36) 8.6 ms, and this one 4.4 ms once s is there
(s itself: 1.4 ms; docs/benchmarks.md, "Speed"). It agrees with torch's softplus to float rounding (7.7e-9 at
beta = 100), and so do the derivatives (its linear branch above beta z = 20 has s = 1 in float32 as well).
Derivatives of third order are not needed by any loss and are not supported.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

SLOPE_FLOOR = 1e-20
"""Slopes s = sigmoid(beta z) below this are kept as exactly 0 (beta z < -46; at beta = 100, z < -0.46). The deep
negative tail of a beta = 100 softplus would otherwise keep slopes down to float32's denormal range (s < 1.2e-38
below beta z ~ -87), and the backward passes' products with them are denormal too, which x86 arithmetic computes
many times slower. On a 2-core CPU a default step took 0.63-0.80 s with them, 0.37-0.38 s with this floor, with or
without denormals flushed to zero (`GanSvrPipelineConfig.flush_denormals`; docs/benchmarks.md, Speed). A slope
of 1e-20 moves nothing a float32 sum can see."""


def sigmoid_slope(z: Tensor, beta: float) -> Tensor:
    """s = sigmoid(beta z), the softplus's slope, kept as exactly 0 below `SLOPE_FLOOR`."""
    return torch.nn.functional.threshold_(torch.mul(z, beta).sigmoid_(), SLOPE_FLOOR, 0.0)


def softplus_from_slope(z: Tensor, s: Tensor, beta: float) -> Tensor:
    """softplus(z) = relu(z) - log(max(s, 1 - s)) / beta, read off its slope s (module docstring)."""
    larger = torch.rsub(s, 1.0)
    torch.maximum(larger, s, out=larger)
    return larger.log_().mul_(-1.0 / beta).add_(torch.relu(z))


class _Softplus(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z: Tensor, beta: float) -> Tensor:
        s = sigmoid_slope(z, beta)
        ctx.save_for_backward(z, s)
        ctx.beta = beta
        return softplus_from_slope(z, s, beta)

    @staticmethod
    def backward(ctx, grad: Tensor):
        z, slope = ctx.saved_tensors
        return _SoftplusSlope.apply(grad, z, slope, ctx.beta), None


class _SoftplusSlope(torch.autograd.Function):
    """grad * s(z): the first derivative's product, differentiable in `grad` and in `z` (through s)."""

    @staticmethod
    def forward(ctx, grad: Tensor, z: Tensor, slope: Tensor, beta: float) -> Tensor:
        ctx.save_for_backward(grad, slope)
        ctx.beta = beta
        return grad * slope

    @staticmethod
    @once_differentiable
    def backward(ctx, outer: Tensor):
        grad, slope = ctx.saved_tensors
        # d/dz (grad * s) = grad * beta s (1 - s); sigmoid_backward(a, s) is a * s * (1 - s) in one pass, and the
        # other factors are applied in place (one new tensor instead of two)
        grad_z = torch.ops.aten.sigmoid_backward(outer, slope).mul_(grad).mul_(ctx.beta)
        return outer * slope, grad_z, None, None


class Softplus(nn.Module):
    """`nn.Softplus(beta)` whose derivatives up to the second cost a few elementwise passes (module docstring)."""

    def __init__(self, beta: float = 1.0):
        super().__init__()
        self.beta = float(beta)

    def forward(self, z: Tensor) -> Tensor:
        if not (torch.is_grad_enabled() and z.requires_grad):  # e.g. mesh extraction: no slope to keep
            return softplus_from_slope(z, sigmoid_slope(z, self.beta), self.beta)
        return _Softplus.apply(z, self.beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta}"
