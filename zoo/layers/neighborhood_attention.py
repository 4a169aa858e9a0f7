"""2-D neighborhood attention (NA) in pure PyTorch, exact to NATTEN <= 0.17.

Neighborhood attention (Hassani et al., "Neighborhood Attention Transformer", CVPR 2023,
arXiv:2204.07143; dilated form: "Dilated Neighborhood Attention Transformer", arXiv:2209.15001)
lets each query ``(i, j)`` attend to a ``k x k`` neighbourhood of keys:

    NA(q_ij) = softmax_{(a, b) in N_k(i, j)}( (q_ij * scale) . k_ab + rpb[h, a - i + k - 1, b - j + k - 1] ) v_ab

Semantics reproduced here (those of NATTEN 0.17, which the official NAT / DiNAT weights were trained with):

* the window is clamped into the map: per axis the start is ``clamp(i - k // 2, 0, L - k)``, so every
  query sees exactly ``k`` keys per axis and windows shift inwards at the borders (no zero padding);
* with dilation ``d`` the map splits into the ``d x d`` sub-grids of positions with equal residues
  ``(i mod d, j mod d)``, and neighbourhood attention with the clamping above runs on each sub-grid;
* the relative positional bias table ``rpb`` is ``[heads, 2k - 1, 2k - 1]``, indexed by the true
  relative offset ``(key - query) / d + k - 1`` (border queries read the outer rows of the table),
  added after the scaling and before the softmax;
* each side of the map must be at least ``k * d``.

Speed without compiled kernels comes from a tiled formulation: queries are grouped in ``t x t``
tiles, each tile attends to the ``(t + k - 1)^2`` key halo that holds every window of its queries
(clamped into the map), and all tiles run as one batched ``F.scaled_dot_product_attention`` call.
Clamping and bias are folded into a per-tile additive ``attn_mask`` (``-inf`` outside each query's
window), gathered from the bias table with an index built once per map size and cached. Memory is
``O(H * W * (t + k - 1)^2)``, never ``O((H * W)^2)``. Axes not longer than a tile (small maps) use one
tile per axis, i.e. plain dense attention with the mask, which is as fast there.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_

__all__ = ["na2d", "NeighborhoodAttention2d", "na2d_reference", "na_min_size"]

# query tile side; an axis of at most _DENSE_MAX positions is attended densely (one tile)
_TILE = 8
_DENSE_MAX = 16


def na_min_size(kernel_size: int, dilation: int = 1) -> int:
    """Smallest map side neighborhood attention accepts: ``kernel_size * dilation``."""
    return kernel_size * dilation


def _tile_size(length: int, kernel_size: int) -> int:
    if length <= max(_DENSE_MAX, kernel_size + _TILE - 1):
        return length
    n = math.ceil(length / _TILE)
    return math.ceil(length / n)  # balanced tiles, so the last one is not mostly padding


@lru_cache(maxsize=64)
def _axis_index(length: int, kernel_size: int, tile: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per axis: key-halo positions ``[n_tiles, halo]`` and the relative index ``[n_tiles, tile, halo]``.

    The relative index is ``key - query + k - 1`` in ``[0, 2k - 2]`` for keys inside the query's clamped
    window and ``-1`` outside it. Queries past the end (padding of the last tile) get the last window;
    their outputs are cropped away.
    """
    k = kernel_size
    n_tiles = math.ceil(length / tile)
    halo = min(tile + k - 1, length)
    q = torch.arange(n_tiles * tile)
    start = (q - k // 2).clamp(0, length - k)
    halo_start = start[::tile].clamp(max=length - halo)
    keys = halo_start[:, None] + torch.arange(halo)  # [n_tiles, halo]
    key = keys[:, None, :]
    qs = q.view(n_tiles, tile, 1)
    st = start.view(n_tiles, tile, 1)
    inside = (key >= st) & (key < st + k)
    rel = (key - qs.clamp(max=length - 1) + k - 1).clamp(0, 2 * k - 2)
    rel = torch.where(inside, rel, torch.full_like(rel, -1))
    return keys, rel


@lru_cache(maxsize=64)
def _tile_index(
        height: int, width: int, kernel_size: int, device: torch.device,
) -> Tuple[int, int, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tile sides, halo positions per axis and the flat bias index ``[n_tiles, tile_h * tile_w, halo]``.

    The bias index points into the flattened ``(2k - 1)^2`` table; ``(2k - 1)^2`` itself (one past the
    table) marks a key outside the window, which the mask turns into ``-inf``.
    """
    k = kernel_size
    th, tw = _tile_size(height, k), _tile_size(width, k)
    hy, ry = _axis_index(height, k, th)
    hx, rx = _axis_index(width, k, tw)
    outside = (2 * k - 1) ** 2
    # [nth, th, lh] x [ntw, tw, lw] -> [nth, ntw, th, tw, lh, lw]
    ry_ = ry[:, None, :, None, :, None]
    rx_ = rx[None, :, None, :, None, :]
    idx = ry_ * (2 * k - 1) + rx_
    idx = torch.where((ry_ < 0) | (rx_ < 0), torch.full_like(idx, outside), idx)
    idx = idx.reshape(hy.shape[0] * hx.shape[0], th * tw, hy.shape[1] * hx.shape[1])
    return th, tw, hy.to(device), hx.to(device), idx.to(device)


def _na2d_tiled(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int,
        rpb: Optional[torch.Tensor], scale: float,
) -> torch.Tensor:
    """Dilation-1 neighborhood attention on ``(B, H, W, heads, head_dim)``."""
    B, H, W, nh, hd = q.shape
    th, tw, hy, hx, idx = _tile_index(H, W, kernel_size, q.device)
    nth, lh = hy.shape
    ntw, lw = hx.shape
    n_tiles = nth * ntw

    # additive mask per tile: bias inside each query's window, -inf outside. Tiles are folded into
    # the heads axis, (B, n_tiles * heads, L, E), so that one mask broadcasts over the batch, which
    # keeps SDPA on its fused CPU kernel whenever the mask needs no gradient.
    outside = torch.full((1,), float("-inf"), dtype=q.dtype, device=q.device)
    if rpb is not None:
        table = torch.cat([rpb.reshape(nh, -1).to(q.dtype), outside.expand(nh, 1)], 1)
        mask = table[:, idx].transpose(0, 1)  # [n_tiles, heads, tq, tk]
    else:
        table = torch.cat([q.new_zeros(1, (2 * kernel_size - 1) ** 2), outside.view(1, 1)], 1)
        mask = table[:, idx].transpose(0, 1).expand(n_tiles, nh, -1, -1)
    mask = mask.reshape(1, n_tiles * nh, th * tw, lh * lw)

    # queries in tiles: [B, n_tiles * heads, th * tw, hd]
    ph, pw = nth * th - H, ntw * tw - W
    if ph or pw:
        q = F.pad(q, (0, 0, 0, 0, 0, pw, 0, ph))
    q = q.reshape(B, nth, th, ntw, tw, nh, hd).permute(0, 1, 3, 5, 2, 4, 6).reshape(B, n_tiles * nh, th * tw, hd)

    # key / value halos: [B, n_tiles * heads, lh * lw, hd]
    def halo(t: torch.Tensor) -> torch.Tensor:
        if nth != 1:
            t = t.index_select(1, hy.reshape(-1))
        if ntw != 1:
            t = t.index_select(2, hx.reshape(-1))
        t = t.view(B, nth, lh, ntw, lw, nh, hd).permute(0, 1, 3, 5, 2, 4, 6)
        return t.reshape(B, n_tiles * nh, lh * lw, hd)

    out = F.scaled_dot_product_attention(q, halo(k), halo(v), attn_mask=mask, scale=scale)
    out = out.view(B, nth, ntw, nh, th, tw, hd).permute(0, 1, 4, 2, 5, 3, 6).reshape(B, nth * th, ntw * tw, nh, hd)
    if ph or pw:
        out = out[:, :H, :W]
    return out


def na2d(
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        kernel_size: int,
        dilation: int = 1,
        rpb: Optional[torch.Tensor] = None,
        scale: Optional[float] = None,
) -> torch.Tensor:
    """2-D neighborhood attention, NATTEN's heads-last layout ``(B, H, W, heads, head_dim)``.

    Args:
        q, k, v: ``(B, H, W, heads, head_dim)``.
        kernel_size: odd neighbourhood side ``k``.
        dilation: stride ``d`` of the neighbourhood grid.
        rpb: optional relative positional bias ``[heads, 2k - 1, 2k - 1]``.
        scale: multiplies q before q.k; default ``head_dim ** -0.5``.

    Returns:
        ``(B, H, W, heads, head_dim)``.

    Raises:
        ValueError: a map side smaller than ``kernel_size * dilation``, or mismatched shapes.
    """
    if q.ndim != 5 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(f"na2d expects q, k, v of equal shape (B, H, W, heads, head_dim), got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"na2d kernel_size must be odd and positive, got {kernel_size}")
    if dilation < 1:
        raise ValueError(f"na2d dilation must be >= 1, got {dilation}")
    B, H, W, nh, hd = q.shape
    if rpb is not None and tuple(rpb.shape) != (nh, 2 * kernel_size - 1, 2 * kernel_size - 1):
        raise ValueError(f"na2d rpb must have shape {(nh, 2 * kernel_size - 1, 2 * kernel_size - 1)}, "
                         f"got {tuple(rpb.shape)}")
    min_side = na_min_size(kernel_size, dilation)
    if H < min_side or W < min_side:
        raise ValueError(
            f"neighborhood attention with kernel_size={kernel_size}, dilation={dilation} needs a feature map "
            f"of at least {min_side}x{min_side} (kernel_size * dilation), got {H}x{W}")
    scale = hd ** -0.5 if scale is None else float(scale)
    d = dilation
    if d == 1:
        return _na2d_tiled(q, k, v, kernel_size, rpb, scale)
    if H % d == 0 and W % d == 0:
        # the d x d sub-grids become batch entries: (B, H/d, d, W/d, d, ...) -> (B * d * d, H/d, W/d, ...)
        def split(t: torch.Tensor) -> torch.Tensor:
            t = t.view(B, H // d, d, W // d, d, nh, hd).permute(0, 2, 4, 1, 3, 5, 6)
            return t.reshape(B * d * d, H // d, W // d, nh, hd)

        out = _na2d_tiled(split(q), split(k), split(v), kernel_size, rpb, scale)
        out = out.view(B, d, d, H // d, W // d, nh, hd).permute(0, 3, 1, 4, 2, 5, 6)
        return out.reshape(B, H, W, nh, hd)
    # sub-grids of unequal sizes: one call per residue class (at most d * d calls)
    out = q.new_empty(q.shape)
    for ry in range(d):
        for rx in range(d):
            out[:, ry::d, rx::d] = _na2d_tiled(
                q[:, ry::d, rx::d], k[:, ry::d, rx::d], v[:, ry::d, rx::d], kernel_size, rpb, scale)
    return out


def na2d_reference(
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        kernel_size: int,
        dilation: int = 1,
        rpb: Optional[torch.Tensor] = None,
        scale: Optional[float] = None,
) -> torch.Tensor:
    """Slow, obviously-correct NA: one query at a time, NATTEN 0.17's window and bias rules (for tests)."""
    B, H, W, nh, hd = q.shape
    kk, d = kernel_size, dilation
    scale = hd ** -0.5 if scale is None else scale

    def window(i: int, length: int) -> Tuple[list, list]:
        r, j = i % d, i // d
        sub_len = len(range(r, length, d))
        start = min(max(j - kk // 2, 0), sub_len - kk)
        keys = [r + d * (start + t) for t in range(kk)]
        rel = [start + t - j + kk - 1 for t in range(kk)]
        return keys, rel

    out = torch.empty_like(q)
    for i in range(H):
        ky, ry = window(i, H)
        for j in range(W):
            kx, rx = window(j, W)
            kn = k[:, ky][:, :, kx].reshape(B, kk * kk, nh, hd)
            vn = v[:, ky][:, :, kx].reshape(B, kk * kk, nh, hd)
            logits = torch.einsum("bhc,bnhc->bhn", q[:, i, j] * scale, kn)
            if rpb is not None:
                logits = logits + rpb[:, ry][:, :, rx].reshape(nh, kk * kk)
            out[:, i, j] = torch.einsum("bhn,bnhc->bhc", logits.softmax(-1), vn)
    return out


class NeighborhoodAttention2d(nn.Module):
    """Multi-head neighborhood attention on channels-last maps ``(B, H, W, C)`` (NATTEN 0.17's module).

    ``qkv`` is one Linear to ``3 * dim`` laid out ``[q; k; v]``, each split into heads; ``rpb`` is the
    ``[heads, 2k - 1, 2k - 1]`` relative positional bias; ``proj`` the output Linear.

    With ``pad_small=True`` a map smaller than ``kernel_size * dilation`` is zero-padded at the
    bottom / right to that size before ``qkv`` and cropped back after attention (NATTEN <= 0.14);
    otherwise it raises a ``ValueError`` (NATTEN 0.17).
    """

    def __init__(
            self,
            dim: int,
            num_heads: int,
            kernel_size: int = 7,
            dilation: int = 1,
            qkv_bias: bool = True,
            rel_pos_bias: bool = True,
            qk_scale: Optional[float] = None,
            attn_drop: float = 0.0,
            proj_drop: float = 0.0,
            pad_small: bool = False,
            device=None,
            dtype=None,
    ):
        super().__init__()
        dd = dict(device=device, dtype=dtype)
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = qk_scale or self.head_dim ** -0.5
        self.kernel_size = kernel_size
        self.dilation = dilation or 1
        self.pad_small = pad_small
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias, **dd)
        if rel_pos_bias:
            self.rpb = nn.Parameter(torch.zeros(num_heads, 2 * kernel_size - 1, 2 * kernel_size - 1, **dd))
            trunc_normal_(self.rpb, std=0.02)
        else:
            self.register_parameter("rpb", None)
        self.attn_drop = attn_drop  # kept for signature compatibility; NATTEN applies it to the weights
        self.proj = nn.Linear(dim, dim, **dd)
        self.proj_drop = nn.Dropout(proj_drop)

    @property
    def min_size(self) -> int:
        return na_min_size(self.kernel_size, self.dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        pad_h = pad_w = 0
        if self.pad_small:
            pad_h, pad_w = max(0, self.min_size - H), max(0, self.min_size - W)
            if pad_h or pad_w:
                x = F.pad(x, (0, 0, 0, pad_w, 0, pad_h))
        Hp, Wp = H + pad_h, W + pad_w
        q, k, v = self.qkv(x).view(B, Hp, Wp, 3, self.num_heads, self.head_dim).unbind(3)
        x = na2d(q, k, v, self.kernel_size, self.dilation, rpb=self.rpb, scale=self.scale)
        x = x.reshape(B, Hp, Wp, C)
        if pad_h or pad_w:
            x = x[:, :H, :W]
        return self.proj_drop(self.proj(x))

    def extra_repr(self) -> str:
        return (f"num_heads={self.num_heads}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"rel_pos_bias={self.rpb is not None}, pad_small={self.pad_small}")
