"""Padding a map to multiples of a window, patch or stride, and switching between NCHW and NHWC.

One helper for every family: the windowed attentions (MixFormer, VSA, ViTDet, MT-UNet), the patch
and downsampling convs (NAT, MixFormer, Shunted, ViTDet, MT-UNet), neighborhood attention on maps
smaller than its kernel, and Restormer's reflect padding to a multiple of 8.

Every zoo model pads at the bottom/right (what each official implementation does) and crops the
padding away afterwards; only the values of the padding differ (zeros, or a reflection for
Restormer's test pipeline).
"""
from __future__ import annotations

from typing import Tuple, Union

import torch
import torch.nn.functional as F
from timm.layers import to_2tuple
from timm.layers.format import Format, nchw_to, nhwc_to

__all__ = ["pad_to_multiple", "pad_amount", "nchw_to_nhwc", "nhwc_to_nchw"]

_Size = Union[int, Tuple[int, int]]


def pad_amount(size: Tuple[int, int], multiple: _Size, min_size: _Size = 0) -> Tuple[int, int]:
    """``(pad_h, pad_w)`` that bring ``size`` up to a multiple of ``multiple``, and to at least ``min_size``."""
    mh, mw = to_2tuple(multiple)
    nh, nw = to_2tuple(min_size)
    H, W = size
    return max((-H) % mh, nh - H), max((-W) % mw, nw - W)


def pad_to_multiple(
        x: torch.Tensor,
        multiple: _Size,
        *,
        channels_last: bool = False,
        mode: str = "constant",
        min_size: _Size = 0,
) -> torch.Tensor:
    """Pad a map at the bottom/right so its height and width are multiples of ``multiple``.

    Args:
        x: ``(..., C, H, W)`` (``channels_last=False``) or ``(B, H, W, C)`` (``channels_last=True``).
        multiple: an int or ``(mh, mw)``.
        channels_last: whether ``x`` is NHWC.
        mode: ``"constant"`` (zeros) or ``"reflect"``. A side too short to be reflected (reflection
            needs ``pad < side``) is replicated instead, so any size can be padded.
        min_size: also pad each side up to at least this size.

    Returns ``x`` itself when no padding is needed; the padded size is ``x.shape``.
    """
    H, W = (x.shape[-3], x.shape[-2]) if channels_last else (x.shape[-2], x.shape[-1])
    pad_h, pad_w = pad_amount((H, W), multiple, min_size)
    if not (pad_h or pad_w):
        return x
    lead = (0, 0) if channels_last else ()
    if mode == "constant":
        return F.pad(x, lead + (0, pad_w, 0, pad_h))
    if mode != "reflect":
        raise ValueError(f"pad_to_multiple: mode must be 'constant' or 'reflect', got {mode!r}")
    if channels_last:
        return nchw_to_nhwc(pad_to_multiple(nhwc_to_nchw(x), multiple, mode=mode, min_size=min_size))
    if pad_h < H and pad_w < W:
        return F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
    if pad_h:
        x = F.pad(x, (0, 0, 0, pad_h), mode="reflect" if pad_h < H else "replicate")
    if pad_w:
        x = F.pad(x, (0, pad_w, 0, 0), mode="reflect" if pad_w < W else "replicate")
    return x


def nchw_to_nhwc(x: torch.Tensor) -> torch.Tensor:
    """``(B, C, H, W)`` -> ``(B, H, W, C)`` as a view (a channels_last tensor becomes contiguous NHWC)."""
    return nchw_to(x, Format.NHWC)


def nhwc_to_nchw(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, C)`` -> ``(B, C, H, W)`` as a view (contiguous NHWC becomes a channels_last tensor)."""
    return nhwc_to(x, Format.NCHW)
