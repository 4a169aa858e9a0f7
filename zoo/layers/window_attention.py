"""Non-overlapping window attention on channels-last maps, for any map size.

Shared by MixFormer (plain 7x7 windows with a Swin relative position bias, no output projection of
its own), MT-UNet (its local branch, on windows it cuts itself), VSA (query windows whose keys/values
are resampled) and ViTDet (windowed blocks with decomposed relative position).

* :func:`window_partition` zero-pads a ``(B, H, W, C)`` map at the bottom/right to multiples of the
  window (as every official implementation here does) and cuts it into ``(B * nW, wh * ww, C)``
  token windows; :func:`window_reverse` stitches them back and crops the padding away.
* :class:`WindowAttention` is windowed multi-head self-attention (fused qkv Linear, optional Swin
  relative position bias, output projection) computed with ``F.scaled_dot_product_attention``,
  the bias passed as ``attn_mask``. Options instead of cut-off pieces: ``proj=False`` builds no output
  projection (a caller that projects a concatenation itself, MixFormer); ``partition=False`` takes
  token windows ``(..., N, C)`` a caller has already cut (MT-UNet, whose padding differs).

Padded positions are zeros that take part in attention as keys, unmasked: that is what the official
MixFormer, VSA and ViTDet code does, and what their weights were trained with.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from timm.layers import to_2tuple

from zoo.layers.padding import pad_to_multiple
from zoo.layers.rel_pos import RelPosBias
from zoo.validation import is_fx_tracing

__all__ = ["window_partition", "window_reverse", "WindowAttention"]

torch.fx.wrap("pad_to_multiple")  # fx: one call (whether and how much to pad depends on the map size)

_Size = Union[int, Tuple[int, int]]


def window_partition(x: torch.Tensor, window_size: _Size) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """``(B, H, W, C)`` -> ``(B * nW, wh * ww, C)`` windows in row-major window order, and the padded size.

    Windows are taken batch-major, then window rows, then window columns; tokens inside a window are
    row-major (the order of Swin's ``relative_position_index``).
    """
    wh, ww = to_2tuple(window_size)
    x = pad_to_multiple(x, (wh, ww), channels_last=True)
    B, Hp, Wp, C = x.shape
    x = x.view(B, Hp // wh, wh, Wp // ww, ww, C).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, C), (Hp, Wp)


def window_reverse(
        windows: torch.Tensor,
        window_size: _Size,
        padded_size: Tuple[int, int],
        size: Optional[Tuple[int, int]] = None,
) -> torch.Tensor:
    """Inverse of :func:`window_partition`: ``(B * nW, wh * ww, C)`` -> ``(B, H, W, C)``, cropped to ``size``."""
    wh, ww = to_2tuple(window_size)
    Hp, Wp = padded_size
    C = windows.shape[-1]
    x = windows.view(-1, Hp // wh, Wp // ww, wh, ww, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, Hp, Wp, C)
    if size is not None and (is_fx_tracing() or size[0] != Hp or size[1] != Wp):
        x = x[:, :size[0], :size[1], :].contiguous()
    return x


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows of a channels-last map.

    ``softmax(q k^T * scale + B) v`` per window and head, with ``B`` the Swin relative position bias
    (Liu et al. 2021, Eq. 4) when ``rel_pos_bias``; heads are split from a fused ``[q; k; v]`` Linear
    as ``(..., 3, heads, head_dim)``. Maps of any size are padded to window multiples and cropped back.

    ``proj=False``: no output projection (``forward`` returns the heads concatenated).
    ``partition=False``: ``forward`` takes and returns token windows ``(..., N, C)`` instead of a map.
    """

    def __init__(
            self,
            dim: int,
            num_heads: int,
            window_size: _Size = 7,
            qkv_bias: bool = True,
            rel_pos_bias: bool = True,
            attn_drop: float = 0.,
            proj_drop: float = 0.,
            scale: Optional[float] = None,
            proj: bool = True,
            partition: bool = True,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.window_size = to_2tuple(window_size)
        self.scale = scale if scale is not None else self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.rel_pos = RelPosBias(self.window_size, num_heads) if rel_pos_bias else None
        self.attn_drop = attn_drop
        self.partition = partition
        self.proj = nn.Linear(dim, dim) if proj else nn.Identity()
        self.proj_drop = nn.Dropout(proj_drop)

    def attend(self, windows: torch.Tensor) -> torch.Tensor:
        """Attention over ``(B * nW, N, C)`` token windows, before the output projection."""
        Bw, N, C = windows.shape
        q, k, v = self.qkv(windows).view(Bw, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        bias = self.rel_pos().to(q.dtype) if self.rel_pos is not None else None
        x = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.attn_drop if self.training else 0., scale=self.scale)
        # an explicit copy: the exporters' SDPA decomposition returns another layout than the CPU kernel,
        # and a reshape traced as a view of the kernel's layout fails there (issue 24)
        return x.transpose(1, 2).clone(memory_format=torch.contiguous_format).view(Bw, N, C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` -> ``(B, H, W, C)``; with ``partition=False``, ``(..., N, C)`` -> ``(..., N, C)``."""
        if not self.partition:
            # the output has the input's shape (qkv and proj keep ``dim``); one reshape, so fx can follow it
            N, C = x.shape[-2], x.shape[-1]
            return self.proj_drop(self.proj(self.attend(x.reshape(-1, N, C)))).reshape(x.shape)
        H, W = x.shape[1], x.shape[2]
        windows, padded = window_partition(x, self.window_size)
        windows = self.proj_drop(self.proj(self.attend(windows)))
        return window_reverse(windows, self.window_size, padded, (H, W))
