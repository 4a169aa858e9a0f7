"""Depthwise-convolution position embeddings, 2-D and 3-D.

The conditional position encoding of CPVT (Chu et al. 2021, "CPE"), UniFormer's dynamic position
embedding ("DPE", a depthwise 3x3 or 3x3x3 conv added residually before every block) and VSA's CPE
(depthwise 7x7) are the same operation: a depthwise conv over the map whose output the caller adds
to a stream of its choice. :class:`ConvPosEmbed` returns the conv output; the caller decides where it
is added, since the families differ there (UniFormer: ``x = x + pe(x)``; VSA: ``attn(norm(x + pe(x)))``).
"""
from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvPosEmbed"]


class ConvPosEmbed(nn.Module):
    """Depthwise conv with 'same' padding over ``(B, C, H, W)`` (``spatial_dims=2``) or ``(B, C, T, H, W)`` (3)."""

    def __init__(self, dim: int, kernel_size: int = 3, spatial_dims: int = 2, bias: bool = True):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd to keep the map size, got {kernel_size}")
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.proj = conv(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)
