"""Depthwise-convolution feed-forward networks on channels-last maps.

:class:`DetailSpecificFFN` is the detail-specific feed-forward layer of the Shunted Transformer
(Ren et al., CVPR 2022, arXiv:2111.15193, Sec. 3.3)::

    h = fc1(x)                       # Linear C -> hidden
    FFN(x) = fc2(act(h + DW(h)))     # DW: depthwise 3x3 with bias over the hidden map

i.e. the PVTv2 convolutional FFN with the depthwise conv made residual, so that it adds local
detail to the hidden features instead of replacing them. The residual around the whole layer and
the normalisation belong to the caller's block.
"""
from __future__ import annotations

from typing import Optional, Type

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DetailSpecificFFN"]


class DetailSpecificFFN(nn.Module):
    """Detail-specific FFN of the Shunted Transformer on ``(B, H, W, C)`` (channels-last) maps.

    The Linear layers act on the last axis; the depthwise conv sees the same memory as a
    ``channels_last`` NCHW tensor (a permuted view, no copy), which is also the fastest layout for
    depthwise convolutions on CPU. ``dwconv`` holds DW's own weights (as in the official code); the
    residual ``h + DW(h)`` is computed as one conv with the identity added to the centre taps.
    """

    def __init__(
            self,
            in_features: int,
            hidden_features: Optional[int] = None,
            out_features: Optional[int] = None,
            kernel_size: int = 3,
            act_layer: Type[nn.Module] = nn.GELU,
            drop: float = 0.0,
    ):
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.hidden_features = hidden_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.dwconv = nn.Conv2d(
            hidden_features, hidden_features, kernel_size, padding=kernel_size // 2, groups=hidden_features)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        # h + DW(h) is itself a depthwise conv whose centre taps are one larger: folding the identity
        # into the (small) weight saves a full pass over the largest activation of the block
        weight = self.dwconv.weight.clone()
        c = self.dwconv.kernel_size[0] // 2
        weight[:, :, c, c] += 1.0
        x = F.conv2d(x.permute(0, 3, 1, 2), weight, self.dwconv.bias, padding=self.dwconv.padding,
                     groups=self.dwconv.groups).permute(0, 2, 3, 1)
        x = self.drop1(self.act(x))
        return self.drop2(self.fc2(x))
