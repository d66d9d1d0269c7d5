"""Volumetric SDF rendering in the NeuS style, as pure functions."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor


def neus_alpha(
    sdf: Float[Tensor, "num_rays num_samples 1"],
    gradients: Float[Tensor, "num_rays num_samples 3"],
    directions: Float[Tensor, "num_rays num_samples 3"],
    deltas: Float[Tensor, "num_rays num_samples 1"],
    inv_s: Float[Tensor, "1"] | float,
    cos_anneal_ratio: float = 1.0,
) -> Float[Tensor, "num_rays num_samples 1"]:
    """Opacity of each ray section from the SDF (NeuS, Wang et al. 2021).

    With Phi_s(x) = sigmoid(s x), cos = <d, grad sdf> (annealed towards -|cos| as in NeuS) and the SDF
    estimated at the section ends f_prev = f - cos * delta / 2, f_next = f + cos * delta / 2:

        alpha = clip((Phi_s(f_prev) - Phi_s(f_next)) / Phi_s(f_prev), 0, 1)

    A ray crossing the surface from outside to inside gets alpha -> 1 as s grows; free space gets alpha ~ 0.
    """
    true_cos = (directions * gradients).sum(-1, keepdim=True)
    iter_cos = -(
        torch.relu(-true_cos * 0.5 + 0.5) * (1.0 - cos_anneal_ratio) + torch.relu(-true_cos) * cos_anneal_ratio
    )
    prev_cdf = torch.sigmoid((sdf - iter_cos * deltas * 0.5) * inv_s)
    next_cdf = torch.sigmoid((sdf + iter_cos * deltas * 0.5) * inv_s)
    alpha = (prev_cdf - next_cdf + 1e-5) / (prev_cdf + 1e-5)
    return alpha.clip(0.0, 1.0)


def weights_from_alpha(alpha: Float[Tensor, "num_rays num_samples 1"]) -> Float[Tensor, "num_rays num_samples 1"]:
    """Rendering weights w_i = alpha_i * prod_{j<i} (1 - alpha_j); they are >= 0 and sum to at most 1."""
    transmittance = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1.0 - alpha[:, :-1]], dim=1), dim=1)
    return alpha * transmittance


def composite(
    weights: Float[Tensor, "num_rays num_samples 1"], values: Float[Tensor, "num_rays num_samples channels"]
) -> Float[Tensor, "num_rays channels"]:
    """sum_i w_i v_i along each ray (no background term: the object is rendered over black)."""
    return (weights * values).sum(dim=1)
