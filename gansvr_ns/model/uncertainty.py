"""The two sources of per-pixel uncertainty sigma for the pseudo views.

(a) `ImageUncertaintyHead`, the paper's module: a small CNN over a pseudo view predicts a sigma map from the
    image (and, optionally, a second one for the mask from the image and its mask); the losses read them at the
    rays' pixels, or each map's mean over the view (`view_mean`) where one sigma per view is wanted.
(b) `UncertaintyField`: a per-sample uncertainty from the geometry features, the latent and a per-view
    embedding, rendered along the rays with the same weights as the colour.

Both produce sigma >= sigma_min through a softplus.
"""

from __future__ import annotations

from typing import Optional

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn


class ImageUncertaintyHead(nn.Module):
    """A dilated CNN (receptive field 15 px) mapping a pseudo view to sigma maps of the same size.

    Channel 0 is the colour's sigma. With `with_mask` the CNN also reads the view's mask and channel 1 is the mask's
    sigma: a wrong mask (dilated, eroded, with holes) leaves the image itself right, so only the two together show
    where they disagree.
    """

    def __init__(self, hidden: int = 16, sigma_min: float = 0.02, with_mask: bool = False):
        super().__init__()
        self.sigma_min = sigma_min
        self.with_mask = with_mask
        self.net = nn.Sequential(
            nn.Conv2d(4 if with_mask else 3, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=2, dilation=2),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=4, dilation=4),
            nn.ReLU(),
            nn.Conv2d(hidden, 2 if with_mask else 1, 1),
        )

    def forward(
        self,
        views: Float[Tensor, "num_views 3 height width"],
        masks: Optional[Float[Tensor, "num_views 1 height width"]] = None,
    ) -> Float[Tensor, "num_views channels height width"]:
        if self.with_mask:
            if masks is None:
                raise ValueError("this uncertainty head reads each view's mask too; none was given")
            views = torch.cat([views, masks.to(views.dtype)], dim=1)
        # channels last (oneDNN's preferred layout): the convolutions and their backward took 22-23 instead of 26-48 ms
        # for a training step's 16 views on a 2-core CPU
        views = views.contiguous(memory_format=torch.channels_last)
        return nn.functional.softplus(self.net(views)) + self.sigma_min

    def view_maps(
        self,
        views: Float[Tensor, "num_views 3 height width"],
        masks: Optional[Float[Tensor, "num_views 1 height width"]] = None,
        colour_per_view: bool = False,
        mask_per_view: bool = False,
    ) -> Float[Tensor, "num_views channels height width"]:
        """The sigma maps of the views, where a sigma wanted once per view fills its channel with its view's value:
        with `colour_per_view`, the colour map's mean inside the view's mask (the whole view where none is given or
        it is empty); with `mask_per_view`, the mask map's mean over the whole view."""
        channels = list(self(views, masks).split(1, dim=1))
        if colour_per_view:
            channels[0] = view_mean(channels[0], masks).expand_as(channels[0])
        if mask_per_view and self.with_mask:
            channels[1] = channels[1].mean(dim=(2, 3), keepdim=True).expand_as(channels[1])
        return torch.cat(channels, dim=1)

    def at_pixels(
        self,
        views: Float[Tensor, "num_views 3 height width"],
        ray_view: Int[Tensor, " num_rays"],
        ray_pixel: Int[Tensor, "num_rays 2"],
        masks: Optional[Float[Tensor, "num_views 1 height width"]] = None,
        mask_per_view: bool = False,
        colour_per_view: bool = False,
    ) -> Float[Tensor, "num_rays channels"]:
        """Sigmas of each ray: the maps of its view (`view_maps`) read at its (y, x) pixel."""
        maps = self.view_maps(views, masks, colour_per_view=colour_per_view, mask_per_view=mask_per_view)
        return maps[ray_view, :, ray_pixel[:, 0], ray_pixel[:, 1]]


def view_mean(
    maps: Float[Tensor, "num_views 1 height width"], masks: Optional[Float[Tensor, "num_views 1 height width"]] = None
) -> Float[Tensor, "num_views 1 1 1"]:
    """Each map's mean inside its view's mask; over the whole view where no mask is given or the mask is empty."""
    whole = maps.mean(dim=(2, 3), keepdim=True)
    if masks is None:
        return whole
    inside = (masks > 0.5).to(maps.dtype)
    count = inside.sum(dim=(2, 3), keepdim=True)
    masked = (maps * inside).sum(dim=(2, 3), keepdim=True) / count.clamp_min(1.0)
    return torch.where(count > 0, masked, whole)


class UncertaintyField(nn.Module):
    """beta(x, z, view) = softplus(MLP([geo features, latent, view embedding])), rendered as sum_i w_i beta_i."""

    def __init__(self, geo_feat_dim: int, latent_dim: int, num_views: int, embed_dim: int = 16,
                 hidden: int = 32, sigma_min: float = 0.02):
        super().__init__()
        self.sigma_min = sigma_min
        self.view_embedding = nn.Embedding(max(num_views, 1), embed_dim)
        nn.init.normal_(self.view_embedding.weight, 0.0, 0.01)
        self.latent_proj = nn.Linear(latent_dim, hidden, bias=False)
        self.geo = nn.Linear(geo_feat_dim, hidden)
        self.view = nn.Linear(embed_dim, hidden, bias=False)
        self.out = nn.Linear(hidden, 1)

    def forward(
        self,
        geo_features: Float[Tensor, "num_rays num_samples geo_feat_dim"],
        latent: Float[Tensor, "num_rays 1 latent_dim"],
        view_index: Int[Tensor, " num_rays"] | None,
    ) -> Float[Tensor, "num_rays num_samples 1"]:
        """Per-sample beta; views without an embedding (novel or held-out cameras) use the mean embedding."""
        if view_index is None:
            embed = self.view_embedding.weight.mean(dim=0, keepdim=True)[:, None]
        else:
            embed = self.view_embedding(view_index)[:, None]
        h = torch.relu(self.geo(geo_features) + self.latent_proj(latent) + self.view(embed))
        return nn.functional.softplus(self.out(h))
