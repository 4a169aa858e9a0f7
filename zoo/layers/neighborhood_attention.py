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
tile per axis, i.e. plain dense attention with the mask, which is as fast there. With dilation, the
``d x d`` sub-grids run as batch entries when ``d`` divides both sides, and otherwise as one call over
all of them (``_strided_tiling``); either way one attention call per layer. The tiling of a map size is
a constant of the sizes (``_layout``): torch.compile / torch.export take its index tensors as constants
rather than tracing their construction.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_

from zoo.layers.padding import pad_to_multiple
from zoo.validation import is_fx_tracing

__all__ = ["na2d", "NeighborhoodAttention2d", "na2d_reference", "na_min_size"]

# query tile side; an axis of at most _DENSE_MAX positions is attended densely (one tile)
_TILE = 8
_DENSE_MAX = 20
# map sizes whose additive mask one NeighborhoodAttention2d keeps
_MASK_CACHE_SIZE = 4


def na_min_size(kernel_size: int, dilation: int = 1) -> int:
    """Smallest map side neighborhood attention accepts: ``kernel_size * dilation``."""
    return kernel_size * dilation


def _tile_size(length: int, kernel_size: int) -> int:
    if length <= max(_DENSE_MAX, kernel_size + _TILE - 1):
        return length
    n = math.ceil(length / _TILE)
    return math.ceil(length / n)  # balanced tiles, so the last one is not mostly padding


@lru_cache(maxsize=64)
def _axis_index(length: int, kernel_size: int, tile: int, span: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per axis: key-halo positions ``[n_tiles, halo]`` and the relative index ``[n_tiles, tile, halo]``.

    The axis has ``length`` real positions laid out in ``span >= length`` slots (a dilated sub-grid
    shorter than its neighbours, see ``_strided_tiling``); tiles and halos cover the ``span`` slots, windows
    are clamped into the ``length`` real ones. The relative index is ``key - query + k - 1`` in
    ``[0, 2k - 2]`` for keys inside the query's clamped window and ``-1`` outside it (every slot past
    ``length`` is outside every window). Queries past the end (padding of the last tile) get the last
    window; their outputs are cropped away.
    """
    with torch.inference_mode(False):  # cached: must stay usable by autograd later
        return _axis_index_impl(length, kernel_size, tile, span)


def _axis_index_impl(length: int, kernel_size: int, tile: int, span: int) -> Tuple[torch.Tensor, torch.Tensor]:
    k = kernel_size
    n_tiles = math.ceil(span / tile)
    halo = min(tile + k - 1, span)
    q = torch.arange(n_tiles * tile)
    start = (q - k // 2).clamp(0, length - k)
    # the windows of a tile's queries lie in [start of its first, end of its last): at most tile + k - 1
    halo_start = start[::tile].clamp(max=span - halo)
    keys = halo_start[:, None] + torch.arange(halo)  # [n_tiles, halo]
    key = keys[:, None, :]
    qs = q.view(n_tiles, tile, 1)
    st = start.view(n_tiles, tile, 1)
    inside = (key >= st) & (key < st + k)
    rel = (key - qs.clamp(max=length - 1) + k - 1).clamp(0, 2 * k - 2)
    rel = torch.where(inside, rel, torch.full_like(rel, -1))
    return keys, rel


class _Tiling(NamedTuple):
    th: int  # query tile sides
    tw: int
    nth: int  # tiles per axis (of one residue sub-grid)
    ntw: int
    dilation: int  # 1, or d when the d x d residue sub-grids are laid out tile-major inside (_strided_tiling)
    q_index: Optional[torch.Tensor]  # [groups * th * tw] flat query positions (None: one tile)
    kv_index: Optional[torch.Tensor]  # [groups * lh * lw] flat key-halo positions (None: one tile)
    bias_index: torch.Tensor  # [groups, th * tw, lh * lw] into the flat (2k-1)^2 table; (2k-1)^2 = outside


def _bias_index(ry: torch.Tensor, rx: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Per-axis relative indices ``[nth, th, lh]`` x ``[ntw, tw, lw]`` -> ``[nth * ntw, th * tw, lh * lw]``
    into the flat ``(2k - 1)^2`` table, ``(2k - 1)^2`` where the key is outside the window."""
    k = kernel_size
    nth, th, lh = ry.shape
    ntw, tw, lw = rx.shape
    # [nth, th, lh] x [ntw, tw, lw] -> [nth, ntw, th, tw, lh, lw]
    ry_ = ry[:, None, :, None, :, None]
    rx_ = rx[None, :, None, :, None, :]
    idx = ry_ * (2 * k - 1) + rx_
    idx = torch.where((ry_ < 0) | (rx_ < 0), torch.full_like(idx, (2 * k - 1) ** 2), idx)
    return idx.reshape(nth * ntw, th * tw, lh * lw)


@lru_cache(maxsize=64)
def _tiling(height: int, width: int, kernel_size: int, device: torch.device, dilation: int = 1) -> _Tiling:
    """Query tiles, their key halos and the bias index of a ``height x width`` map, built once per size.

    The bias index points into the flattened ``[(2k - 1)^2]`` table; the value ``(2k - 1)^2`` (one past
    the table) marks a key outside the query's window, which the mask turns into ``-inf``. Query
    positions past the end of the map (the last tile's padding) repeat the last row / column.
    ``dilation > 1`` gives the strided layout of ``_strided_tiling``.
    """
    with torch.inference_mode(False):  # cached: must stay usable by autograd later
        if dilation > 1:
            return _strided_tiling(height, width, kernel_size, dilation, device)
        return _tiling_impl(height, width, kernel_size, device)


def _tiling_impl(height: int, width: int, kernel_size: int, device: torch.device) -> _Tiling:
    k = kernel_size
    th, tw = _tile_size(height, k), _tile_size(width, k)
    hy, ry = _axis_index(height, k, th, height)
    hx, rx = _axis_index(width, k, tw, width)
    nth, lh = hy.shape
    ntw, lw = hx.shape
    idx = _bias_index(ry, rx, k)
    q_index = kv_index = None
    if nth * ntw > 1:
        qy = torch.arange(nth * th).clamp(max=height - 1).view(nth, 1, th, 1)
        qx = torch.arange(ntw * tw).clamp(max=width - 1).view(1, ntw, 1, tw)
        q_index = (qy * width + qx).reshape(-1).to(device)
        kv_index = (hy.view(nth, 1, lh, 1) * width + hx.view(1, ntw, 1, lw)).reshape(-1).to(device)
    return _Tiling(th, tw, nth, ntw, 1, q_index, kv_index, idx.to(device))


def _strided_tiling(height: int, width: int, kernel_size: int, dilation: int, device: torch.device) -> _Tiling:
    """Dilated NA on a map whose sides are not multiples of ``d``, as one tiled attention call.

    The ``d x d`` residue sub-grids (positions ``(ry + d * i, rx + d * j)``) have two lengths per axis,
    ``ceil(L / d)`` and one less. Each is tiled as if it had the longer length (the same tiles and
    halos for all, so that they stack), with windows clamped into its own length: the missing last slot
    of a shorter sub-grid is outside every window (masked), and its query slots are cropped. Query and
    key indices point straight into the flat ``H x W`` map (slots past the map read its last row /
    column, masked or cropped), groups ordered ``(ry, rx, tile_y, tile_x)``.
    """
    k, d = kernel_size, dilation
    span_h, span_w = math.ceil(height / d), math.ceil(width / d)
    th, tw = _tile_size(span_h, k), _tile_size(span_w, k)
    qs, kvs, idxs = [], [], []
    for ry in range(d):
        len_y = len(range(ry, height, d))
        hy, rely = _axis_index(len_y, k, th, span_h)
        nth, lh = hy.shape
        qy = (torch.arange(nth * th).clamp(max=len_y - 1) * d + ry).view(nth, 1, th, 1)
        ky = (hy * d + ry).clamp(max=height - 1).view(nth, 1, lh, 1)
        for rx in range(d):
            len_x = len(range(rx, width, d))
            hx, relx = _axis_index(len_x, k, tw, span_w)
            ntw, lw = hx.shape
            qx = (torch.arange(ntw * tw).clamp(max=len_x - 1) * d + rx).view(1, ntw, 1, tw)
            kx = (hx * d + rx).clamp(max=width - 1).view(1, ntw, 1, lw)
            qs.append((qy * width + qx).reshape(-1))
            kvs.append((ky * width + kx).reshape(-1))
            idxs.append(_bias_index(rely, relx, k))
    return _Tiling(th, tw, nth, ntw, d, torch.cat(qs).to(device), torch.cat(kvs).to(device),
                   torch.cat(idxs).to(device))


@torch.compiler.assume_constant_result
def _layout(height: int, width: int, kernel_size: int, dilation: int, device: torch.device) -> _Tiling:
    """The tiling of one NA call on a ``height x width`` map, a constant of the sizes: torch.compile and
    torch.export take its index tensors as constants instead of tracing their construction (hundreds
    of small integer ops per layer, which inductor otherwise compiles for minutes).

    Dilation 1 tiles the map; a dilation dividing both sides tiles one ``H / d x W / d`` sub-grid (the
    sub-grids then run as batch entries, see ``_na_dilated``); any other dilation gives the strided
    layout of all sub-grids at once.
    """
    if dilation == 1 or (height % dilation == 0 and width % dilation == 0):
        return _tiling(height // dilation, width // dilation, kernel_size, device)
    return _tiling(height, width, kernel_size, device, dilation)


def _na_mask(
        rpb: Optional[torch.Tensor], height: int, width: int, kernel_size: int, num_heads: int,
        dtype: torch.dtype, device: torch.device, dilation: int = 1,
) -> torch.Tensor:
    """Additive attention mask ``[1, heads * groups, th * tw, lh * lw]`` of ``_layout(...)``: the bias
    inside each query's window, ``-inf`` outside it (zero bias when ``rpb`` is None)."""
    t = _layout(height, width, kernel_size, dilation, device)
    groups, tq, tk = t.bias_index.shape
    outside = torch.full((1, 1), float("-inf"), dtype=dtype, device=device)
    if rpb is None:
        table = torch.cat([torch.zeros(1, (2 * kernel_size - 1) ** 2, dtype=dtype, device=device), outside], 1)
        return table[:, t.bias_index].expand(num_heads, -1, -1, -1).reshape(1, num_heads * groups, tq, tk)
    table = torch.cat([rpb.reshape(num_heads, -1).to(dtype), outside.expand(num_heads, 1)], 1)
    return table[:, t.bias_index].view(1, num_heads * groups, tq, tk)


def _na_tiled(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, t: _Tiling, mask: torch.Tensor, scale: float,
        dropout_p: float = 0.0,
) -> torch.Tensor:
    """NA of heads-first ``(B, heads, H, W, head_dim)`` inputs laid out by ``t``; returns ``(B, H, W, heads, head_dim)``.

    Queries are gathered tile by tile and keys / values halo by halo with one ``index_select`` each,
    in heads-major order, so that ``(B, heads, groups * L, E)`` views as ``(B, heads * groups, L, E)``
    without a copy; the mask of shape ``[1, heads * groups, L, S]`` then broadcasts over the batch,
    which keeps SDPA on its fused CPU kernel whenever the mask needs no gradient.
    """
    B, nh, H, W, hd = q.shape
    groups, tq, tk = t.bias_index.shape
    q, k, v = (x.reshape(B, nh, H * W, hd) for x in (q, k, v))
    if t.q_index is not None:
        q = q.index_select(2, t.q_index)
        k = k.index_select(2, t.kv_index)
        v = v.index_select(2, t.kv_index)
    q = q.view(B, nh * groups, tq, hd)
    k = k.view(B, nh * groups, tk, hd)
    v = v.view(B, nh * groups, tk, hd)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, scale=scale)
    # [B, heads, dy, dx, nth, ntw, th, tw, hd] -> [B, nth, th, dy, ntw, tw, dx, heads, hd]: row
    # (tile_y * th + i) * d + ry of the map (d = 1 unless strided)
    d = t.dilation
    out = out.view(B, nh, d, d, t.nth, t.ntw, t.th, t.tw, hd).permute(0, 4, 6, 2, 5, 7, 3, 1, 8)
    out = out.reshape(B, t.nth * t.th * d, t.ntw * t.tw * d, nh, hd)
    if t.nth * t.th * d != H or t.ntw * t.tw * d != W:
        out = out[:, :H, :W].contiguous()
    return out


def _na_dilated(
        q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel_size: int, dilation: int, scale: float,
        rpb: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None, dropout_p: float = 0.0,
) -> torch.Tensor:
    """NA with dilation on heads-first inputs ``(B, heads, H, W, head_dim)``; returns ``(B, H, W, heads, head_dim)``.

    When ``d`` divides both sides, the ``d x d`` sub-grids of equal residues run as batch entries of
    one ``H / d x W / d`` map; otherwise all sub-grids run as one call in the strided layout
    (``_strided_tiling``). Either way one attention call, with one constant index per map size.
    ``mask`` is ``_na_mask(rpb, H, W, ...)`` when the caller has it cached.
    """
    d = dilation
    B, nh, H, W, hd = q.shape
    t = _layout(H, W, kernel_size, d, q.device)
    if mask is None:
        mask = _na_mask(rpb, H, W, kernel_size, nh, q.dtype, q.device, d)
    if d == 1 or t.dilation > 1:
        return _na_tiled(q, k, v, t, mask, scale, dropout_p)

    def split(x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(B, nh, H // d, d, W // d, d, hd).permute(0, 3, 5, 1, 2, 4, 6)
        return x.reshape(B * d * d, nh, H // d, W // d, hd)

    out = _na_tiled(split(q), split(k), split(v), t, mask, scale, dropout_p)
    out = out.view(B, d, d, H // d, W // d, nh, hd).permute(0, 3, 1, 4, 2, 5, 6)
    return out.reshape(B, H, W, nh, hd)


def _pad_small(x: torch.Tensor, min_size: int) -> Tuple[torch.Tensor, int, int]:
    """Zero-pad a ``(B, H, W, C)`` map at the bottom/right to at least ``min_size`` per side."""
    H, W = x.shape[1], x.shape[2]
    x = pad_to_multiple(x, 1, channels_last=True, min_size=min_size)
    return x, x.shape[1] - H, x.shape[2] - W


# fx (torchvision feature extraction, timm's feature_cls='fx') records these as single calls: their
# index arithmetic and padding depend on the map size, which symbolic tracing does not know
torch.fx.wrap("_pad_small")
torch.fx.wrap("_na_dilated")


def _check_args(shape: Tuple[int, ...], kernel_size: int, dilation: int, rpb: Optional[torch.Tensor]) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"na2d kernel_size must be odd and positive, got {kernel_size}")
    if dilation < 1:
        raise ValueError(f"na2d dilation must be >= 1, got {dilation}")
    B, H, W, nh, hd = shape
    if rpb is not None and tuple(rpb.shape) != (nh, 2 * kernel_size - 1, 2 * kernel_size - 1):
        raise ValueError(f"na2d rpb must have shape {(nh, 2 * kernel_size - 1, 2 * kernel_size - 1)}, "
                         f"got {tuple(rpb.shape)}")
    min_side = na_min_size(kernel_size, dilation)
    if H < min_side or W < min_side:
        raise ValueError(
            f"neighborhood attention with kernel_size={kernel_size}, dilation={dilation} needs a feature map "
            f"of at least {min_side}x{min_side} (kernel_size * dilation), got {H}x{W}")


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
    _check_args(tuple(q.shape), kernel_size, dilation, rpb)
    scale = q.shape[-1] ** -0.5 if scale is None else float(scale)
    q, k, v = (x.permute(0, 3, 1, 2, 4) for x in (q, k, v))
    return _na_dilated(q, k, v, kernel_size, dilation, scale, rpb)


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
        self.attn_drop = float(attn_drop)  # dropout on the attention weights, in training only
        self.proj = nn.Linear(dim, dim, **dd)
        self.proj_drop = nn.Dropout(proj_drop)
        # immutable ((key, mask), ...) snapshot, replaced (never mutated) on a miss: one module may serve
        # several threads at several input sizes at once, and each forward reads one consistent snapshot
        self._mask_cache: Tuple[Tuple[tuple, torch.Tensor], ...] = ()

    @property
    def min_size(self) -> int:
        return na_min_size(self.kernel_size, self.dilation)

    def _cached_mask(self, height: int, width: int, dtype: torch.dtype, device: torch.device) -> Optional[torch.Tensor]:
        """The additive mask for this map size, reused while the bias is unchanged and needs no gradient."""
        if is_fx_tracing() or torch.compiler.is_compiling() or torch.jit.is_tracing():
            return None
        rpb = self.rpb
        if rpb is not None and rpb.requires_grad and torch.is_grad_enabled():
            return None  # built inside the autograd graph, so the bias gets its gradient
        bias_key = None if rpb is None else (rpb.data_ptr(), rpb._version)
        key = (height, width, dtype, device, torch.is_inference_mode_enabled(), bias_key)
        cache = self._mask_cache  # read the attribute once: another thread may replace it meanwhile
        for k, mask in cache:
            if k == key:
                return mask
        with torch.no_grad():
            mask = _na_mask(rpb, height, width, self.kernel_size, self.num_heads, dtype, device, self.dilation)
        # keep the entries of the current bias only (a training step makes the old ones stale), at most
        # _MASK_CACHE_SIZE map sizes
        kept = tuple(e for e in cache if e[0][-1] == bias_key)[-(_MASK_CACHE_SIZE - 1):]
        self._mask_cache = kept + ((key, mask),)
        return mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        pad_h = pad_w = 0
        if self.pad_small:
            x, pad_h, pad_w = _pad_small(x, self.min_size)
        Hp, Wp = H + pad_h, W + pad_w
        if not is_fx_tracing():
            _check_args((B, Hp, Wp, self.num_heads, self.head_dim), self.kernel_size, self.dilation, self.rpb)
        # one copy to heads-first (3, B, heads, H, W, head_dim), shared by q, k and v
        q, k, v = self.qkv(x).view(B, Hp, Wp, 3, self.num_heads, self.head_dim).permute(3, 0, 4, 1, 2, 5).contiguous()
        mask = self._cached_mask(Hp, Wp, q.dtype, q.device)
        x = _na_dilated(q, k, v, self.kernel_size, self.dilation, self.scale, rpb=self.rpb, mask=mask,
                        dropout_p=self.attn_drop if self.training else 0.0)
        x = x.reshape(B, Hp, Wp, C)
        if is_fx_tracing() or pad_h or pad_w:
            x = x[:, :H, :W]
        return self.proj_drop(self.proj(x))

    def extra_repr(self) -> str:
        return (f"num_heads={self.num_heads}, kernel_size={self.kernel_size}, dilation={self.dilation}, "
                f"rel_pos_bias={self.rpb is not None}, pad_small={self.pad_small}")
