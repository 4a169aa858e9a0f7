"""Depthwise-convolution feed-forward networks.

:class:`DetailSpecificFFN` is the detail-specific feed-forward layer of the Shunted Transformer
(Ren et al., CVPR 2022, arXiv:2111.15193, Sec. 3.3), on channels-last maps::

    h = fc1(x)                       # Linear C -> hidden
    FFN(x) = fc2(act(h + DW(h)))     # DW: depthwise 3x3 with bias over the hidden map

i.e. the PVTv2 convolutional FFN with the depthwise conv made residual, so that it adds local
detail to the hidden features instead of replacing them.

:class:`GatedDconvFFN` is the gated-Dconv feed-forward network (GDFN) of Restormer (Zamir et al.,
CVPR 2022, arXiv:2111.09881, Sec. 3.2, Eq. 5-6), on channels-first maps::

    X1, X2 = split(W_d W_p0 LN(X))           # 1x1 conv to 2*hidden, depthwise 3x3, two halves
    GDFN(X) = W_p1 (act(X1) * X2)            # gate with GELU, 1x1 conv back to dim

with ``hidden = int(dim * expansion_ratio)`` (2.66 in every released Restormer). Inference on large
maps is chunked over the hidden channels: each chunk of gate/value channels is projected, filtered,
gated and projected back on its own, and the partial outputs are summed. The hidden activations
(5.3x the input, twice, at the peak of the plain form) then never exist whole, which cuts the peak
memory of a whole-image forward; the arithmetic is the same up to the order of the final sums.
With gradients enabled the plain form runs.

In both, the residual around the whole layer and the normalisation belong to the caller's block.
"""
from __future__ import annotations

import math
from typing import Optional, Type

import torch
import torch.nn.functional as F
from torch import nn

from zoo.validation import is_fx_tracing

__all__ = ["DetailSpecificFFN", "GatedDconvFFN"]


class DetailSpecificFFN(nn.Module):
    """Detail-specific FFN of the Shunted Transformer on ``(B, H, W, C)`` (channels-last) maps.

    The Linear layers act on the last axis; the depthwise conv sees the same memory as a
    ``channels_last`` NCHW tensor (a permuted view, no copy), which is also the fastest layout for
    depthwise convolutions on CPU. ``dwconv`` holds DW's own weights (as in the official code) and is
    called as a module (hooks, quantization and pruning see it); the residual ``h + DW(h)`` is added.
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
        x = x + self.dwconv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = self.drop1(self.act(x))
        return self.drop2(self.fc2(x))


class GatedDconvFFN(nn.Module):
    """Gated-Dconv feed-forward network (GDFN) on ``(B, C, H, W)`` maps.

    Parameter names (``project_in``, ``dwconv``, ``project_out``) are those of the official
    Restormer, so its checkpoints load without renaming. ``chunk_min_pixels``: maps with at least
    this many pixels run chunked when gradients are off (``None`` never chunks).
    """

    chunk_min_pixels: Optional[int]

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
        self.chunk_min_pixels = 128 * 128

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        limit = self.chunk_min_pixels
        # (an fx graph, which knows no sizes, records the unchunked computation)
        if limit is not None and not torch.is_grad_enabled() and not is_fx_tracing() \
                and x.shape[-2] * x.shape[-1] >= limit:
            return self._forward_chunked(x)
        gate, value = self.dwconv(self.project_in(x)).chunk(2, dim=1)
        return self.project_out(self.act(gate) * value)

    def _forward_chunked(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.hidden_features
        # chunks of about dim/2 hidden channels: each chunk's activations are about the input's size
        num_chunks = max(1, math.ceil(2 * hidden / x.shape[1]))
        step = math.ceil(hidden / num_chunks)
        w_in, w_dw, w_out = self.project_in.weight, self.dwconv.weight, self.project_out.weight
        b_in, b_dw, b_out = self.project_in.bias, self.dwconv.bias, self.project_out.bias
        out = torch.empty(0)
        for start in range(0, hidden, step):
            end = min(start + step, hidden)
            rows = torch.cat([torch.arange(start, end), torch.arange(hidden + start, hidden + end)]).to(x.device)
            h = F.conv2d(x, w_in.index_select(0, rows), None if b_in is None else b_in.index_select(0, rows))
            h = F.conv2d(h, w_dw.index_select(0, rows), None if b_dw is None else b_dw.index_select(0, rows),
                         padding=w_dw.shape[-1] // 2, groups=2 * (end - start))
            gate, value = h.chunk(2, dim=1)
            part = F.conv2d(self.act(gate) * value, w_out[:, start:end])
            if start == 0:
                out = part
            else:
                out += part
        if b_out is not None:
            out += b_out.view(1, -1, 1, 1)
        return out
