"""Depthwise-convolution feed-forward networks on channels-first maps.

:class:`GatedDconvFFN` is the gated-Dconv feed-forward network (GDFN) of Restormer (Zamir et al.,
CVPR 2022, arXiv:2111.09881, Sec. 3.2, Eq. 5-6)::

    X1, X2 = split(W_d W_p0 LN(X))           # 1x1 conv to 2*hidden, depthwise 3x3, two halves
    GDFN(X) = W_p1 (act(X1) * X2)            # gate with GELU, 1x1 conv back to dim

with ``hidden = int(dim * expansion_ratio)`` (2.66 in every released Restormer). The residual and
the normalisation belong to the caller's block.
"""
from __future__ import annotations

from typing import Type

import torch
from torch import nn

__all__ = ["GatedDconvFFN"]


class GatedDconvFFN(nn.Module):
    """Gated-Dconv feed-forward network (GDFN) on ``(B, C, H, W)`` maps.

    Parameter names (``project_in``, ``dwconv``, ``project_out``) are those of the official
    Restormer, so its checkpoints load without renaming.
    """

    def __init__(
            self,
            dim: int,
            expansion_ratio: float = 2.66,
            bias: bool = False,
            kernel_size: int = 3,
            act_layer: Type[nn.Module] = nn.GELU,
    ):
        super().__init__()
        # int() truncates, as the official code does: 48 * 2.66 -> 127, not 128
        hidden = int(dim * expansion_ratio)
        self.hidden_features = hidden
        self.project_in = nn.Conv2d(dim, hidden * 2, 1, bias=bias)
        self.dwconv = nn.Conv2d(
            hidden * 2, hidden * 2, kernel_size, padding=kernel_size // 2, groups=hidden * 2, bias=bias)
        self.act = act_layer()
        self.project_out = nn.Conv2d(hidden, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(self.act(gate) * value)
