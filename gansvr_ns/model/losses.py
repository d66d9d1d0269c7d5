"""Loss terms and pose-error metrics, as pure functions."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn


def uncertainty_l1(
    pred: Float[Tensor, "num_rays 3"],
    target: Float[Tensor, "num_rays 3"],
    sigma: Float[Tensor, "num_rays 1"],
    weight: Float[Tensor, "num_rays 1"],
) -> Float[Tensor, ""]:
    """Uncertainty-weighted L1: mean over weighted rays of r / sigma + log sigma, r = mean_c |c - c_hat|.

    For a fixed residual r the minimum over sigma is at sigma = r (d/dsigma: -r/sigma^2 + 1/sigma = 0), so a
    learned sigma tracks how far a pixel can be trusted and down-weights the unreliable ones.
    """
    return weighted_mean(l1_residual(pred, target) / sigma + torch.log(sigma), weight)


def relative_confidence(
    sigma: Float[Tensor, "num_rays 1"], weight: Float[Tensor, "num_rays 1"]
) -> Float[Tensor, "num_rays 1"]:
    """Per-ray weights 1/sigma scaled to a mean of 1 over the weighted rays, without gradient: sigma then only moves
    weight between rays, and a term weighted by it keeps its total weight."""
    confidence = 1.0 / sigma.detach()
    return confidence * weight.sum().clamp_min(1.0) / (confidence * weight).sum().clamp_min(1e-12)


def sigma_nll(
    residual: Float[Tensor, "num_rays 1"], sigma: Float[Tensor, "num_rays 1"], weight: Float[Tensor, "num_rays 1"]
) -> Float[Tensor, ""]:
    """Mean over weighted rays of r / sigma + log sigma with the residual r held fixed: only sigma learns from it,
    towards sigma = r."""
    return weighted_mean(residual.detach() / sigma + torch.log(sigma), weight)


def weighted_mean(values: Float[Tensor, "num_rays 1"], weight: Float[Tensor, "num_rays 1"]) -> Float[Tensor, ""]:
    """sum(values * weight) / sum(weight), the weight sum floored at 1 (a batch without weighted rays gives 0)."""
    return (values * weight).sum() / weight.sum().clamp_min(1.0)


def l1_residual(pred: Float[Tensor, "num_rays 3"], target: Float[Tensor, "num_rays 3"]) -> Float[Tensor, "num_rays 1"]:
    """mean_c |c - c_hat| per ray."""
    return (pred - target).abs().mean(dim=-1, keepdim=True)


def bce_per_ray(
    accumulation: Float[Tensor, "num_rays 1"], mask: Float[Tensor, "num_rays 1"], eps: float = 1e-4
) -> Float[Tensor, "num_rays 1"]:
    """Binary cross-entropy of each ray's rendered opacity against its mask value."""
    return torch.nn.functional.binary_cross_entropy(accumulation.clamp(eps, 1.0 - eps), mask, reduction="none")


def masked_l1(
    pred: Float[Tensor, "num_rays 3"], target: Float[Tensor, "num_rays 3"], weight: Float[Tensor, "num_rays 1"]
) -> Float[Tensor, ""]:
    """Plain L1 over weighted rays: mean of mean_c |c - c_hat| (the loss without uncertainty)."""
    return weighted_mean(l1_residual(pred, target), weight)


def silhouette_bce(
    accumulation: Float[Tensor, "num_rays 1"], mask: Float[Tensor, "num_rays 1"], eps: float = 1e-4
) -> Float[Tensor, ""]:
    """Binary cross-entropy between the rendered opacity and the object mask."""
    return torch.nn.functional.binary_cross_entropy(accumulation.clamp(eps, 1.0 - eps), mask)


def sdf_silhouette(
    min_sdf: Float[Tensor, "num_rays 1"], mask: Float[Tensor, "num_rays 1"], alpha: float
) -> Float[Tensor, ""]:
    """A silhouette term on the SDF itself (IDR's mask loss, Yariv et al. 2020): BCE(sigmoid(-alpha m), mask) / alpha
    over the rays, m the smallest SDF on each ray.

    Per ray that is softplus(alpha m) / alpha on the mask and softplus(-alpha m) / alpha off it, which tends to the
    hinge max(m, 0) (max(-m, 0)) as alpha grows: a ray of the mask must enter the zero level set, any other ray must
    miss it, and a ray already on the right side by more than about 1/alpha costs nothing. Its gradient in m is at
    most 1 in size whatever alpha is.
    """
    inside = nn.functional.softplus(alpha * min_sdf)
    outside = nn.functional.softplus(-alpha * min_sdf)
    return ((mask * inside + (1.0 - mask) * outside) / alpha).mean()


def eikonal(gradients: Float[Tensor, "*batch 3"]) -> Float[Tensor, ""]:
    """mean (|grad sdf| - 1)^2: a signed distance function has unit gradient."""
    return ((gradients.norm(dim=-1) - 1.0) ** 2).mean()


def normal_smoothness(
    normals: Float[Tensor, "num_rays 3"], nearby: Float[Tensor, "num_rays 3"], weight: Float[Tensor, "num_rays 1"]
) -> Float[Tensor, ""]:
    """Weighted mean of |n(x) - n(x + e)|: unit normals at surface points and at points a small random offset e away.
    Zero on a plane; it grows with the surface's curvature at the scale of |e|, so bumps cost more than broad bends."""
    return weighted_mean((normals - nearby).norm(dim=-1, keepdim=True), weight)


def truncated_sdf_l1(
    pred: Float[Tensor, "*batch 1"], target: Float[Tensor, "*batch 1"], truncation: float
) -> Float[Tensor, ""]:
    """mean |clamp(pred) - clamp(target)| with both clamped to [-truncation, truncation]: only the band around the
    target's surface is matched, far points need only the right sign."""
    return (pred.clamp(-truncation, truncation) - target.clamp(-truncation, truncation)).abs().mean()


def latent_spread_hinge(latents: Float[Tensor, "batch latent_dim"], target: float = 1.0) -> Float[Tensor, ""]:
    """mean_d relu(target - std_d): zero once every latent dimension varies over the batch by at least `target`.

    The variance term of VICReg (Bardes et al., ICLR 2022), against an encoder that maps every image to one code.
    """
    std = torch.sqrt(latents.var(dim=0) + 1e-4)
    return torch.relu(target - std).mean()


def info_nce(
    first: Float[Tensor, "batch dim"], second: Float[Tensor, "batch dim"], temperature: float
) -> Float[Tensor, ""]:
    """Symmetric InfoNCE between two embeddings of each row: row i of `first` must pick row i of `second` among all
    rows by cosine similarity, and the other way round (the contrastive loss of SimCLR, Chen et al., ICML 2020)."""
    logits = nn.functional.normalize(first, dim=-1) @ nn.functional.normalize(second, dim=-1).T / temperature
    labels = torch.arange(len(first), device=first.device)
    return 0.5 * (nn.functional.cross_entropy(logits, labels) + nn.functional.cross_entropy(logits.T, labels))


def rotation_error_deg(
    rot_a: Float[Tensor, "num_cameras 3 3"], rot_b: Float[Tensor, "num_cameras 3 3"]
) -> Float[Tensor, " num_cameras"]:
    """Geodesic angle between rotations: arccos((trace(R_a^T R_b) - 1) / 2), in degrees."""
    trace = torch.einsum("nij,nij->n", rot_a, rot_b)
    cos = ((trace - 1.0) * 0.5).clamp(-1.0, 1.0)
    return torch.rad2deg(torch.arccos(cos))


def psnr_masked(
    pred: Float[Tensor, "num_rays 3"], target: Float[Tensor, "num_rays 3"], mask: Float[Tensor, "num_rays 1"]
) -> Float[Tensor, ""]:
    """PSNR over the object pixels only: -10 log10(mean squared error inside the mask)."""
    mse = (((pred - target) ** 2).mean(dim=-1, keepdim=True) * mask).sum() / mask.sum().clamp_min(1.0)
    return -10.0 * torch.log10(mse.clamp_min(1e-10))


def silhouette_iou(
    accumulation: Float[Tensor, "num_rays 1"], mask: Float[Tensor, "num_rays 1"], threshold: float = 0.5
) -> Float[Tensor, ""]:
    """IoU of the rendered silhouette (opacity > threshold) with the mask."""
    pred = accumulation > threshold
    true = mask > 0.5
    union = (pred | true).sum()
    return (pred & true).sum() / union.clamp_min(1)
