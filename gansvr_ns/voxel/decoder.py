"""The 3D deconvolution decoder: one latent code -> occupancy and colour logits on an R^3 grid."""

from __future__ import annotations

import math

import torch
from jaxtyping import Float
from torch import Tensor, nn

SEED_SIZE = 4
"""Side of the first grid, made by a linear layer from the latent; every block then doubles it."""
GRID_CHANNELS = 4
"""Output channels: occupancy logit, then red, green and blue logits."""
LEAK = 0.2
"""Negative slope of the activations. With plain ReLUs, the early push of the many background rays towards an empty
grid can kill every unit, leaving a spatially uniform grid that silhouettes alone cannot recover from."""


def num_blocks(resolution: int) -> int:
    """Upsampling blocks from the 4^3 seed to `resolution`^3: log2(resolution / 4); a ValueError unless possible."""
    blocks = round(math.log2(max(resolution, 1) / SEED_SIZE))
    if resolution < 2 * SEED_SIZE or SEED_SIZE * 2**blocks != resolution:
        raise ValueError(f"voxel resolution must be a power of two >= {2 * SEED_SIZE} (32, 64, ...), got {resolution}")
    return blocks


class VoxelDecoder(nn.Module):
    """latent -> Linear -> C x 4^3 -> n x [ConvTranspose3d(k 4, stride 2) + GroupNorm + LeakyReLU] -> Conv3d -> 4 x R^3.

    Each block doubles the grid side and halves the channels (never below `min_channels`), so R = 4 * 2^n;
    the last 3^3 convolution maps to the occupancy logit and three colour logits (`GRID_CHANNELS`).

    Args:
        latent_dim: size of the latent code.
        resolution: grid side R, a power of two >= 8.
        base_channels: channels of the 4^3 seed grid.
        min_channels: smallest channel count of a block.
        occupancy_bias: initial bias of the occupancy logit; a negative value starts from a mostly empty grid, so
            that the first silhouettes are not saturated (sigmoid(-4) ~ 0.018 per cell).
    """

    def __init__(self, latent_dim: int, resolution: int = 32, base_channels: int = 128, min_channels: int = 16,
                 occupancy_bias: float = -4.0):
        super().__init__()
        self.resolution = resolution
        self.base_channels = base_channels
        self.seed = nn.Linear(latent_dim, base_channels * SEED_SIZE**3)
        blocks, channels = [], base_channels
        for _ in range(num_blocks(resolution)):
            out = max(channels // 2, min_channels)
            blocks += [
                nn.ConvTranspose3d(channels, out, kernel_size=4, stride=2, padding=1),
                nn.GroupNorm(min(8, out), out),
                nn.LeakyReLU(LEAK, inplace=True),
            ]
            channels = out
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv3d(channels, GRID_CHANNELS, kernel_size=3, padding=1)
        with torch.no_grad():
            self.head.bias[0] = occupancy_bias

    def forward(self, latent: Float[Tensor, "batch latent_dim"]) -> Float[Tensor, "batch 4 res res res"]:
        """Logits of the grid, indexed [batch, channel, i, j, k] along x, y, z (see `projection`)."""
        seed = nn.functional.leaky_relu(self.seed(latent), LEAK)
        seed = seed.view(-1, self.base_channels, SEED_SIZE, SEED_SIZE, SEED_SIZE)
        return self.head(self.blocks(seed))
