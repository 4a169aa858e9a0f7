"""VSA: Learning Varied-Size Window Attention in Vision Transformers, on ViTAEv2 and Swin hosts.

Paper: Zhang, Xu, Zhang, Tao, "VSA: Learning Varied-Size Window Attention in Vision Transformers",
ECCV 2022, arXiv:2204.08446. Official code: https://github.com/ViTAE-Transformer/ViTAE-VSA
(classification code in ``Image-Classification/vitaev2_vsa``, commit 75dc986). The repository has no
licence file; its README states "This project is for research purpose only".

Varied-size window attention (:class:`VaryingWindowAttention`, paper Sec. 3.2): queries stay on the
default ``ws x ws`` windows; each window regresses, per head, a scale ``s`` and an offset ``o`` (x and
y) from its pooled features (AvgPool(ws) -> LeakyReLU -> 1x1 conv), and keys / values are resampled
bilinearly on the transformed window ``centre + rel * (1 + s) + o`` (Eq. 2-4) before windowed
attention with a Swin relative position bias.

The only released host is ViTAEv2 (Xu, Zhang et al., arXiv:2202.10108): each stage is a reduction
cell (pyramid of dilated convs "PRM" + parallel conv module "PCM" + attention that changes the width)
followed by normal cells (attention + parallel grouped-conv module, CPE feeding only the attention
branch). ``swin_vsa_*`` put VSA into Swin-T/S (no shifted windows), as the paper reports; the authors
never released that code or its weights, so those two are zoo-defined.

Everything runs channels-last ``(B, H, W, C)`` inside; convolutions see permuted (channels-last
strided) views; features handed out are NCHW.
"""
from __future__ import annotations

import math
import re
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ClassifierHead, DropPath, Mlp, PatchEmbed, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model_deprecations
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint
from timm.models.swin_transformer import PatchMerging

from zoo.hub import licence_note, unwrap_state_dict
from zoo.layers.conv_pos_embed import ConvPosEmbed
from zoo.layers.padding import nchw_to_nhwc as _nhwc, nhwc_to_nchw as _nchw, pad_to_multiple
from zoo.layers.rel_pos import RelPosBias, resize_rel_pos_bias_table
from zoo.layers.window_attention import window_partition, window_reverse
from zoo.registry import register_checkpoint_filter, register_family, register_model
from zoo.validation import check_input, is_fx_tracing

torch.fx.wrap("pad_to_multiple")  # fx: one call (whether and how much to pad depends on the map size)

__all__ = ["VaryingWindowAttention", "ReductionCell", "NormalCell", "ViTAEv2VSA", "SwinVSA", "checkpoint_filter_fn"]

register_family(
    "vsa",
    title="VSA: Learning Varied-Size Window Attention in Vision Transformers",
    paper_ids=("arXiv:2204.08446",),
    official_repo="https://github.com/ViTAE-Transformer/ViTAE-VSA",
    code_license="no licence file; README: 'This project is for research purpose only'",
    description="Window attention whose key/value windows are regressed (scale + offset per head and window) "
                "and resampled bilinearly; hosted in ViTAEv2 (official) and Swin (zoo-defined). Official "
                "ImageNet-1k weights exist for ViTAEv2*-S+VSA (82.7 top-1) and ViTAEv2*-48M+VSA (83.9) only as "
                "OneDrive share links (no direct download; see the `.in1k` cfg notes): download the file and pass "
                "it as `checkpoint_path=` to `zoo.create_model`. Swin-VSA weights were never released.",
    citation="@inproceedings{zhang2022vsa,\n  title={VSA: Learning Varied-Size Window Attention in Vision "
             "Transformers},\n  author={Zhang, Qiming and Xu, Yufei and Zhang, Jing and Tao, Dacheng},\n"
             "  booktitle={European Conference on Computer Vision (ECCV)},\n  year={2022}\n}",
    module=__name__,
)


class VaryingWindowAttention(nn.Module):
    """Varied-size window attention on a channels-last map ``(B, H, W, dim)`` -> ``(B, H, W, out_dim)``.

    Per default window ``w`` and head ``h`` (paper Eq. 2-4, official ``VSAWindowAttention``):
    ``s, o = conv1x1(LeakyReLU(AvgPool_ws(x)))`` (two convs: ``sampling_scales``, ``sampling_offsets``,
    output channel ``2h`` is x, ``2h + 1`` is y); offsets are divided by the number of *unpadded* windows
    along their axis; the key/value sampling grid is ``centre_w + rel * (1 + s) + o`` in align-corners
    normalised coordinates of the zero-padded map, so ``s = o = 0`` is exactly the default window. K and V
    (``qkv = pad(Linear(x))``: padded positions are zeros, unmasked) are resampled with
    ``grid_sample(bilinear, padding_mode, align_corners=True)``; Q is not. Then
    ``softmax(q k^T * scale + B_rel) v`` per window and head with SDPA, output projection.

    The grid is rebuilt per padded map size and cached (any input size works). ``scale`` defaults to
    ``(dim // num_heads) ** -0.5`` with ``dim`` the *input* width, as in the official code (it differs
    from the query head width in reduction cells, where ``out_dim != dim``). Maps smaller than one
    window are one window; the offset normaliser is then 1 (the official code divides by zero there).
    """

    def __init__(
            self,
            dim: int,
            num_heads: int,
            out_dim: Optional[int] = None,
            window_size: int = 7,
            qkv_bias: bool = True,
            attn_drop: float = 0.,
            proj_drop: float = 0.,
            padding_mode: str = "zeros",
            scale: Optional[float] = None,
    ):
        super().__init__()
        out_dim = out_dim or dim
        if out_dim % num_heads:
            raise ValueError(f"out_dim {out_dim} is not divisible by num_heads {num_heads}")
        if padding_mode not in ("zeros", "border", "reflection"):
            raise ValueError(f"padding_mode must be 'zeros', 'border' or 'reflection', got {padding_mode!r}")
        if window_size < 2:
            raise ValueError(f"window_size must be >= 2, got {window_size}")
        self.dim = dim
        self.out_dim = out_dim
        self.num_heads = num_heads
        self.head_dim = out_dim // num_heads
        self.window_size = window_size
        self.padding_mode = padding_mode
        self.scale = scale if scale is not None else (dim // num_heads) ** -0.5
        # the official 1x1 convs on the pooled map, as Linear layers on channels-last windows
        self.sampling_offsets = nn.Linear(dim, num_heads * 2)
        self.sampling_scales = nn.Linear(dim, num_heads * 2)
        self.qkv = nn.Linear(dim, out_dim * 3, bias=qkv_bias)
        self.rel_pos = RelPosBias((window_size, window_size), num_heads)
        # applied to the attention weights in training; the official module defines an attn_drop it never
        # calls (all released configs use 0, where the two agree)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(out_dim, out_dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self._grid_cache: Dict[Tuple[int, int, str, torch.dtype, bool], Tuple[torch.Tensor, torch.Tensor]] = {}

    def reset_sampling(self) -> None:
        """Zero the window regression (scale = offset = 0: plain window attention), the official
        ``_reset_parameters``."""
        for lin in (self.sampling_offsets, self.sampling_scales):
            nn.init.zeros_(lin.weight)
            nn.init.zeros_(lin.bias)

    def _reference_grid(self, Hp: int, Wp: int, device: torch.device, dtype: torch.dtype):
        """Window centres and in-window relative coordinates, ``(nh, ws, nw, ws, 2)`` each, (x, y) last.

        Built in float64 as the official code does at construction, then cast; cached per padded size.
        """
        if is_fx_tracing() or torch.compiler.is_compiling():
            # traced / compiled: no cache (torch.is_inference_mode_enabled() is a graph break for dynamo, whose
            # resumed frames then recompile with dynamic sizes that inductor fails on); the grid is a
            # function of the static sizes there
            return _window_grid(Hp, Wp, self.window_size, device, dtype)
        # inference-mode tensors cannot enter autograd later: they are cached apart
        key = (Hp, Wp, str(device), dtype, torch.is_inference_mode_enabled())
        cached = self._grid_cache.get(key)
        if cached is not None:
            return cached
        base, rel = _window_grid(Hp, Wp, self.window_size, device, dtype)
        if not (torch.jit.is_tracing() or device.type == "meta"):
            # copy-on-write, then one reference swap: a forward in another thread reads the old dict or
            # the new one, never one being cleared or filled
            cache = dict(self._grid_cache) if len(self._grid_cache) < 16 else {}
            cache[key] = (base, rel)
            self._grid_cache = cache
        return base, rel

    def sampling_grid(self, x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        """The key/value sampling grid ``(B * heads, Hp, Wp, 2)`` for the padded map ``x`` of unpadded ``size``."""
        B, Hp, Wp, C = x.shape
        H, W = size
        ws, nh, nw = self.window_size, Hp // self.window_size, Wp // self.window_size
        pooled = F.leaky_relu(x.view(B, nh, ws, nw, ws, C).mean((2, 4)), 0.01)
        norm = _offset_norm(x, H, W, ws)
        offsets = (self.sampling_offsets(pooled).view(B, nh, nw, self.num_heads, 2) / norm)
        scales = self.sampling_scales(pooled).view(B, nh, nw, self.num_heads, 2)
        offsets = offsets.permute(0, 3, 1, 2, 4).reshape(B * self.num_heads, nh, 1, nw, 1, 2)
        scales = scales.permute(0, 3, 1, 2, 4).reshape(B * self.num_heads, nh, 1, nw, 1, 2)
        base, rel = self._reference_grid(Hp, Wp, x.device, x.dtype)
        grid = base + rel * scales + offsets
        return grid.reshape(B * self.num_heads, Hp, Wp, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, _ = x.shape
        ws, heads, hd = self.window_size, self.num_heads, self.head_dim
        xp = pad_to_multiple(x, ws, channels_last=True)
        Hp, Wp = xp.shape[1], xp.shape[2]
        nh, nw = Hp // ws, Wp // ws
        grid = self.sampling_grid(xp, (H, W))

        qkv = self.qkv(x)
        qkv = pad_to_multiple(qkv, ws, channels_last=True)
        q, kv = qkv.split([self.out_dim, 2 * self.out_dim], dim=-1)
        # one grid_sample for K and V: (B * heads, 2 * hd, Hp, Wp), batch-major then head
        kv = kv.reshape(B, Hp, Wp, 2, heads, hd).permute(0, 4, 3, 5, 1, 2).reshape(B * heads, 2 * hd, Hp, Wp)
        kv = F.grid_sample(kv, grid, mode="bilinear", padding_mode=self.padding_mode, align_corners=True)
        kv = kv.view(B, heads, 2, hd, nh, ws, nw, ws).permute(2, 0, 4, 6, 1, 5, 7, 3)
        k, v = kv.reshape(2, B * nh * nw, heads, ws * ws, hd).unbind(0)
        q, _ = window_partition(q, ws)
        q = q.view(-1, ws * ws, heads, hd).transpose(1, 2)

        bias = self.rel_pos().to(q.dtype)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=bias, dropout_p=self.attn_drop if self.training else 0., scale=self.scale)
        # an explicit copy: the exporters' SDPA decomposition returns another layout than the CPU kernel,
        # and a reshape traced as a view of the kernel's layout fails there (issue 24)
        out = out.transpose(1, 2).clone(memory_format=torch.contiguous_format).view(-1, ws * ws, self.out_dim)
        out = window_reverse(out, ws, (Hp, Wp), (H, W))
        return self.proj_drop(self.proj(out))


def _conv_input(x: torch.Tensor) -> torch.Tensor:
    """A channels-last map as conv input: oneDNN (float32 / bf16 / fp16) convolves the permuted view
    natively; the native float64 path runs grouped convs many times slower on it, so it gets NCHW."""
    x = _nchw(x)
    return x.contiguous() if x.dtype == torch.float64 else x


torch.fx.wrap("_conv_input")  # fx: one call (its layout choice depends on the dtype)


def _window_grid(Hp: int, Wp: int, ws: int, device: torch.device, dtype: torch.dtype):
    """Window centres and in-window relative coordinates, ``(nh, ws, nw, ws, 2)`` each, (x, y) last."""
    nh, nw = Hp // ws, Wp // ws
    f64 = dict(device=device, dtype=torch.float64)

    def axis(n: int, nwin: int) -> Tuple[torch.Tensor, torch.Tensor]:
        centre = torch.linspace(-1, 1, n, **f64).view(nwin, ws).mean(-1)  # avg-pooled pixel grid
        rel = torch.arange(ws, **f64) * 2 * ws / ws / (n - 1)
        return centre, rel - rel.mean()

    cx, rx = axis(Wp, nw)
    cy, ry = axis(Hp, nh)
    centre = torch.stack(torch.broadcast_tensors(
        cx.view(1, 1, nw, 1), cy.view(nh, 1, 1, 1)), -1).expand(nh, ws, nw, ws, 2)
    rel = torch.stack(torch.broadcast_tensors(
        rx.view(1, 1, 1, ws), ry.view(1, ws, 1, 1)), -1).expand(nh, ws, nw, ws, 2)
    return (centre + rel).to(dtype).contiguous(), rel.to(dtype).contiguous()


def _offset_norm(x: torch.Tensor, H: int, W: int, ws: int) -> torch.Tensor:
    """The (x, y) divisor of the regressed offsets: windows per side of the unpadded map (at least 1)."""
    return x.new_tensor([max(W // ws, 1), max(H // ws, 1)])


def _prm_padding(size: int, kernel_size: int, stride: int, dilation: int) -> int:
    k, s = kernel_size, stride
    pad = math.ceil(((k - 1) * dilation + 1 - s) / 2)
    if size % s:
        out = (size + 2 * (pad + 1) - (k - 1) * dilation - 1) // s + 1
        if out == -(-size // s):
            pad += 1
    return pad


# fx records these as single calls: they compute sizes and grids from the map size
torch.fx.wrap("_window_grid")
torch.fx.wrap("_offset_norm")
torch.fx.wrap("_prm_padding")


class PyramidReductionModule(nn.Module):
    """ViTAEv2's PRM: parallel dilated convs (stride = downsample ratio) + GELU, concatenated in dilation order.

    Padding ``ceil(((k - 1) * d + 1 - stride) / 2)``, plus 1 on an axis whose size is not a multiple
    of the stride, as the official code does for its fixed ``img_size`` (decided here per input size
    and axis; the extra 1 is skipped where it would make the map larger than the PCM's, a size the
    official model cannot run).
    """

    def __init__(self, in_chs: int, embed_dim: int, kernel_size: int, stride: int, dilations: Sequence[int]):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.dilations = tuple(dilations)
        self.convs = nn.ModuleList([
            nn.Conv2d(in_chs, embed_dim, kernel_size, stride=stride, dilation=d) for d in self.dilations])
        self.out_chs = embed_dim * len(self.dilations)

    def _padding(self, size: int, dilation: int) -> int:
        return _prm_padding(size, self.kernel_size, self.stride, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        ys = []
        for conv, d in zip(self.convs, self.dilations):
            # the padding depends on the input size: zero-pad, then call the (unpadded) conv module
            ph, pw = self._padding(H, d), self._padding(W, d)
            ys.append(F.gelu(conv(F.pad(x, (pw, pw, ph, ph)))))
        return torch.cat(ys, dim=1)


class ReductionCell(nn.Module):
    """ViTAEv2 reduction cell with VSA: ``t = PRM(x)``, ``t = attn(norm1(t + CPE(t))) + PCM(x)``,
    ``t = t + mlp(norm2(t))`` (no residual from the PRM tokens; attention changes the width).

    LayerNorm eps 1e-5 (the official cell uses ``nn.LayerNorm`` defaults); MLP ratio 1. PCM strides:
    ``r = ratio // 2``, three times ``stride = 2 if r > 0 else 1; r //= 2``. Wide PCM widths
    ``in -> 2 * out -> 2 * out -> out``, else ``in -> embed -> embed -> out``.
    """

    def __init__(
            self,
            in_chs: int,
            embed_dim: int,
            out_dim: int,
            downsample_ratio: int = 4,
            kernel_size: int = 7,
            dilations: Sequence[int] = (1, 2, 3, 4),
            num_heads: int = 1,
            groups: int = 1,
            wide_pcm: bool = False,
            window_size: int = 7,
            mlp_ratio: float = 1.0,
            proj_drop: float = 0.,
            attn_drop: float = 0.,
            drop_path: float = 0.,
            padding_mode: str = "zeros",
    ):
        super().__init__()
        strides, r = [], downsample_ratio // 2
        for _ in range(3):
            strides.append(2 if r > 0 else 1)
            r //= 2
        if r:
            raise ValueError(f"downsample_ratio {downsample_ratio} needs more than three stride-2 convs in the PCM")
        mid = out_dim * 2 if wide_pcm else embed_dim
        self.pcm = nn.Sequential(
            nn.Conv2d(in_chs, mid, 3, strides[0], 1, groups=groups),
            nn.BatchNorm2d(mid),
            nn.SiLU(inplace=True),
            nn.Conv2d(mid, mid, 3, strides[1], 1, groups=groups),
            nn.BatchNorm2d(mid),
            nn.SiLU(inplace=True),
            nn.Conv2d(mid, out_dim, 3, strides[2], 1, groups=groups),
        )
        self.prm = PyramidReductionModule(in_chs, embed_dim, kernel_size, downsample_ratio, dilations)
        prm_chs = self.prm.out_chs
        self.pos = ConvPosEmbed(prm_chs, kernel_size=7)
        self.norm1 = nn.LayerNorm(prm_chs)
        self.attn = VaryingWindowAttention(
            prm_chs, num_heads, out_dim=out_dim, window_size=window_size, attn_drop=attn_drop,
            proj_drop=proj_drop, padding_mode=padding_mode)
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = nn.LayerNorm(out_dim)
        self.mlp = Mlp(out_dim, int(out_dim * mlp_ratio), out_dim, act_layer=nn.GELU, drop=proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` -> ``(B, H / ratio, W / ratio, out_dim)``."""
        xc = _conv_input(x)
        t = self.prm(xc)
        t = _nhwc(t + self.pos(t))
        t = self.attn(self.norm1(t))
        t = t + self.drop_path(_nhwc(self.pcm(xc)))
        return t + self.drop_path(self.mlp(self.norm2(t)))


class NormalCell(nn.Module):
    """ViTAEv2 normal cell with VSA: ``x = x + attn(norm1(x + CPE(x))) + PCM(x)``, ``x = x + mlp(norm2(x))``.

    The CPE (depthwise 7x7) feeds only the attention branch; PCM widths ``dim -> dim * mlp_ratio -> dim
    -> dim``, every conv with ``groups``. LayerNorm eps 1e-6.
    """

    def __init__(
            self,
            dim: int,
            num_heads: int,
            mlp_ratio: float = 4.,
            groups: int = 1,
            window_size: int = 7,
            proj_drop: float = 0.,
            attn_drop: float = 0.,
            drop_path: float = 0.,
            padding_mode: str = "zeros",
    ):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.pos = ConvPosEmbed(dim, kernel_size=7)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = VaryingWindowAttention(
            dim, num_heads, window_size=window_size, attn_drop=attn_drop, proj_drop=proj_drop,
            padding_mode=padding_mode)
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden, act_layer=nn.GELU, drop=proj_drop)
        self.pcm = nn.Sequential(
            nn.Conv2d(dim, hidden, 3, 1, 1, groups=groups),
            nn.BatchNorm2d(hidden),
            nn.SiLU(inplace=True),
            nn.Conv2d(hidden, dim, 3, 1, 1, groups=groups),
            nn.BatchNorm2d(dim),
            nn.SiLU(inplace=True),
            nn.Conv2d(dim, dim, 3, 1, 1, groups=groups),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xc = _conv_input(x)
        a = self.attn(self.norm1(x + _nhwc(self.pos(xc))))
        x = x + self.drop_path(a) + self.drop_path(_nhwc(self.pcm(xc)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class VSAStage(nn.Module):
    """One stage, channels-last in and out: an entry module (ViTAEv2's reduction cell, Swin's patch merging or
    nothing) that sets the stride and width, then the blocks."""

    def __init__(self, downsample: nn.Module, blocks: List[nn.Module]):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            for blk in self.blocks:
                x = checkpoint(blk, x)
        else:
            x = self.blocks(x)
        return x


def _official_stage_dpr(drop_path_rate: float, depths: Sequence[int]) -> List[List[float]]:
    """Per-stage drop-path rates with the official slicing quirk.

    The official model slices ``linspace(0, rate, sum(depths))`` from ``depths[i - 1]`` (the previous
    stage's depth, not the cumulative one), so later stages reuse early rates: ViTAEv2-S (2, 2, 8, 2)
    gives stage 2 the rates of blocks 2..9 and stage 3 those of blocks 8..9. Kept as is: it only
    matters for training, where it is what the released weights were trained with.
    """
    dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").tolist()
    out = []
    for i, d in enumerate(depths):
        start = 0 if i == 0 else depths[i - 1]
        out.append(dpr[start:start + d])
    return out


class _TrunkMixin:
    """The timm contract shared by the ViTAEv2-VSA and Swin-VSA trunks (channels-last stages)."""

    output_fmt = "NHWC"

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _init_weights(self, m: nn.Module):
        # timm's Linear init; the window regression starts at zero (plain window attention), as the
        # official ``VSAWindowAttention._reset_parameters`` does
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, VaryingWindowAttention):
            m.reset_sampling()

    @torch.jit.ignore
    def no_weight_decay(self):
        return {n for n, _ in self.named_parameters() if "relative_position_bias_table" in n}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        for s in self.stages:
            s.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        ref = next(self.parameters())
        self.num_classes = num_classes
        self.head.reset(num_classes, pool_type=global_pool)
        # the new classifier joins the model where it is (device, dtype, train/eval), as timm's models do
        self.head.to(device=ref.device, dtype=ref.dtype).train(self.training)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Stage outputs as NCHW maps (strides 4, 8, 16, 32), and the final channels-last features."""
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        check_input(x, model=self, in_chans=self.in_chans)
        intermediates = []
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        x = self._stem(x)
        last_idx = len(self.stages) - 1
        stages = self.stages if torch.jit.is_scripting() or not stop_early else self.stages[:max_index + 1]
        for feat_idx, stage in enumerate(stages):
            x = stage(x)
            if feat_idx in take_indices:
                x_inter = self.norm(x) if norm and feat_idx == last_idx else x
                intermediates.append(_nchw(x_inter).contiguous() if output_fmt == "NCHW" else x_inter)
        if intermediates_only:
            return intermediates
        if feat_idx == last_idx:
            x = self.norm(x)
        return x, intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ):
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        prune_end = max_index < len(self.stages) - 1
        self.stages = self.stages[:max_index + 1]
        if prune_norm or prune_end:
            self.norm = nn.Identity()
        if prune_end:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head or prune_end:
            self.head = ClassifierHead(self.num_features, 0, pool_type="avg", input_fmt="NHWC")
            self.num_classes = 0
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` -> channels-last ``(B, H / 32, W / 32, num_features)``."""
        check_input(x, model=self, in_chans=self.in_chans)
        x = self._stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=True) if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class ViTAEv2VSA(_TrunkMixin, nn.Module):
    """ViTAEv2 with varied-size window attention in every cell (official ``ViTAE_VSA_basic``).

    Four stages of (reduction cell, normal cells); no final norm; the head averages the tokens.
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "avg",
            embed_dims: Sequence[int] = (64, 64, 128, 256),
            token_dims: Sequence[int] = (64, 128, 256, 512),
            depths: Sequence[int] = (2, 2, 8, 2),
            num_heads: Sequence[int] = (2, 4, 8, 16),
            rc_heads: Sequence[int] = (2, 2, 4, 8),
            nc_groups: Sequence[int] = (1, 32, 64, 128),
            rc_groups: Sequence[int] = (1, 16, 32, 64),
            downsample_ratios: Sequence[int] = (4, 2, 2, 2),
            kernel_sizes: Sequence[int] = (7, 3, 3, 3),
            dilations: Sequence[Sequence[int]] = ((1, 2, 3, 4), (1, 2, 3), (1, 2), (1, 2)),
            wide_pcm: bool = False,
            window_size: int = 7,
            mlp_ratio: float = 4.,
            rc_mlp_ratio: float = 1.,
            padding_mode: str = "zeros",
            drop_rate: float = 0.,
            proj_drop_rate: float = 0.,
            attn_drop_rate: float = 0.,
            drop_path_rate: float = 0.,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.window_size = window_size
        self.grad_checkpointing = False
        dprs = _official_stage_dpr(drop_path_rate, depths)
        stages, self.feature_info = [], []
        in_chs, reduction = in_chans, 1
        for i in range(len(depths)):
            reduction *= downsample_ratios[i]
            rc = ReductionCell(
                in_chs, embed_dims[i], token_dims[i], downsample_ratio=downsample_ratios[i],
                kernel_size=kernel_sizes[i], dilations=dilations[i], num_heads=rc_heads[i], groups=rc_groups[i],
                wide_pcm=wide_pcm, window_size=window_size, mlp_ratio=rc_mlp_ratio, proj_drop=proj_drop_rate,
                attn_drop=attn_drop_rate, padding_mode=padding_mode)
            blocks = [
                NormalCell(
                    token_dims[i], num_heads[i], mlp_ratio=mlp_ratio, groups=nc_groups[i], window_size=window_size,
                    proj_drop=proj_drop_rate, attn_drop=attn_drop_rate, drop_path=dprs[i][j],
                    padding_mode=padding_mode)
                for j in range(depths[i])]
            stages.append(VSAStage(rc, blocks))
            in_chs = token_dims[i]
            self.feature_info.append(dict(num_chs=in_chs, reduction=reduction, module=f"stages.{i}"))
        self.stages = nn.Sequential(*stages)
        self.num_features = self.head_hidden_size = in_chs
        self.norm = nn.Identity()  # the official model has no final norm
        self.head = ClassifierHead(in_chs, num_classes, pool_type=global_pool, drop_rate=drop_rate, input_fmt="NHWC")
        self.apply(self._init_weights)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(
            stem=r"^stages\.0\.downsample",
            blocks=r"^stages\.(\d+)" if coarse else [
                (r"^stages\.(\d+)\.downsample", None),
                (r"^stages\.(\d+)\.blocks\.(\d+)", None),
            ],
        )

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        # the first reduction cell is the stem; a channels-last image keeps its convs (and their
        # concatenation) channels-last, so the tokens need no layout copy
        return _nhwc(x.contiguous(memory_format=torch.channels_last))


class SwinVSABlock(nn.Module):
    """Swin block with VSA in place of (shifted) window attention, and a CPE feeding the attention:
    ``x = x + attn(norm1(x + CPE(x)))``, ``x = x + mlp(norm2(x))`` (zoo-defined, as the paper describes)."""

    def __init__(
            self,
            dim: int,
            num_heads: int,
            window_size: int = 7,
            mlp_ratio: float = 4.,
            proj_drop: float = 0.,
            attn_drop: float = 0.,
            drop_path: float = 0.,
            padding_mode: str = "zeros",
    ):
        super().__init__()
        self.pos = ConvPosEmbed(dim, kernel_size=7)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = VaryingWindowAttention(
            dim, num_heads, window_size=window_size, attn_drop=attn_drop, proj_drop=proj_drop,
            padding_mode=padding_mode)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=proj_drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0. else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x + _nhwc(self.pos(_conv_input(x))))))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class SwinVSA(_TrunkMixin, nn.Module):
    """Swin Transformer (Liu et al. 2021) with every window attention replaced by VSA plus a CPE, no shifts.

    Zoo-defined from the paper's description (Sec. 4.1); the authors released neither code nor weights.
    Patch embedding 4x4 + LayerNorm, patch merging between stages, final LayerNorm, average pool.
    """

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "avg",
            embed_dim: int = 96,
            depths: Sequence[int] = (2, 2, 6, 2),
            num_heads: Sequence[int] = (3, 6, 12, 24),
            window_size: int = 7,
            mlp_ratio: float = 4.,
            padding_mode: str = "zeros",
            drop_rate: float = 0.,
            proj_drop_rate: float = 0.,
            attn_drop_rate: float = 0.,
            drop_path_rate: float = 0.1,
    ):
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.window_size = window_size
        self.grad_checkpointing = False
        self.patch_embed = PatchEmbed(
            img_size=None, patch_size=4, in_chans=in_chans, embed_dim=embed_dim, norm_layer=nn.LayerNorm,
            output_fmt="NHWC", strict_img_size=False, dynamic_img_pad=True)
        dpr = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").split(list(depths))
        stages, self.feature_info = [], []
        dim = embed_dim
        for i, depth in enumerate(depths):
            out_dim = embed_dim * 2 ** i
            downsample = nn.Identity() if i == 0 else PatchMerging(dim, out_dim)
            blocks = [
                SwinVSABlock(out_dim, num_heads[i], window_size=window_size, mlp_ratio=mlp_ratio,
                             proj_drop=proj_drop_rate, attn_drop=attn_drop_rate, drop_path=dpr[i][j].item(),
                             padding_mode=padding_mode)
                for j in range(depth)]
            stages.append(VSAStage(downsample, blocks))
            dim = out_dim
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2 ** i, module=f"stages.{i}"))
        self.stages = nn.Sequential(*stages)
        self.num_features = self.head_hidden_size = dim
        self.norm = nn.LayerNorm(dim)
        self.head = ClassifierHead(dim, num_classes, pool_type=global_pool, drop_rate=drop_rate, input_fmt="NHWC")
        self.apply(self._init_weights)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(
            stem=r"^patch_embed",
            blocks=r"^stages\.(\d+)" if coarse else [
                (r"^stages\.(\d+)\.downsample", (0,)),
                (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                (r"^norm", (99999,)),
            ],
        )

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.patch_embed(x)


_CONV_AS_LINEAR = re.compile(r"\.attn\.(qkv|proj|sampling_offsets|sampling_scales)\.weight$")


@register_checkpoint_filter("vsa")
def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Official ViTAE-VSA keys -> zoo keys; a no-op (besides unwrapping) on zoo keys.

    ``layers.i.RC`` -> ``stages.i.downsample``, ``layers.i.NC.j`` -> ``stages.i.blocks.j``; PCM/PRM
    lower-cased (the PRM's ``Sequential(conv, GELU)`` flattened); the attention's 1x1 convs become
    Linear weights; ``pos`` -> ``pos.proj``; the bias table moves into ``rel_pos`` (resized if the
    window differs) and ``relative_position_index`` is dropped (regenerated); ``head`` -> ``head.fc``.
    Checkpoint wrappers (``state_dict_ema`` preferred, then ``state_dict``) and ``module.`` go first.
    """
    state_dict = unwrap_state_dict(state_dict)
    target = model.state_dict()
    out = {}
    for k, v in state_dict.items():
        if k.endswith("relative_position_index"):
            continue
        k = re.sub(r"^layers\.(\d+)\.RC\.", r"stages.\1.downsample.", k)
        k = re.sub(r"^layers\.(\d+)\.NC\.(\d+)\.", r"stages.\1.blocks.\2.", k)
        k = k.replace(".PCM.", ".pcm.")
        k = re.sub(r"\.PRM\.convs\.(\d+)\.0\.", r".prm.convs.\1.", k)
        k = re.sub(r"\.pos\.(weight|bias)$", r".pos.proj.\1", k)
        k = re.sub(r"\.attn\.(sampling_offsets|sampling_scales)\.2\.", r".attn.\1.", k)
        k = k.replace(".attn.relative_position_bias_table", ".attn.rel_pos.relative_position_bias_table")
        if k in ("head.weight", "head.bias"):
            k = "head.fc." + k.split(".")[-1]
        if _CONV_AS_LINEAR.search(k) and v.ndim == 4:
            v = v.reshape(v.shape[0], -1)
        if k.endswith("relative_position_bias_table") and k in target and v.shape != target[k].shape:
            n = int(math.isqrt(target[k].shape[0]) + 1) // 2
            v = resize_rel_pos_bias_table(v, new_window_size=(n, n), new_bias_shape=tuple(target[k].shape))
        out[k] = v
    return out


def _create(cls: type, variant: str, pretrained: bool = False, **kwargs) -> nn.Module:
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3))
    return build_model_with_cfg(
        cls, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(feature_cls="getter", flatten_sequential=True, out_indices=out_indices),
        **kwargs)


# no Hub identifier fits: "other", with the README's words in every cfg's notes (see _cfg)
_RESEARCH_ONLY = "other"
_LICENCE = licence_note("research only", "https://github.com/ViTAE-Transformer/ViTAE-VSA#readme",
                        "no licence file; the README says 'This project is for research purpose only'")


def _cfg(url: str = "", **kwargs) -> Dict[str, Any]:
    return {
        "url": url,
        "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": .9, "interpolation": "bicubic", "fixed_input_size": False,
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stages.0.downsample.prm.convs.0", "classifier": "head.fc",
        "paper_ids": "arXiv:2204.08446", "paper_name": "VSA: Learning Varied-Size Window Attention in Vision Transformers",
        **kwargs,
        "notes": tuple(kwargs.get("notes") or ()) + (_LICENCE,),
    }


_ORIGIN = "https://github.com/ViTAE-Transformer/ViTAE-VSA"

default_cfgs = generate_default_cfgs({
    # Official weights are OneDrive shares (no direct download URL): download the file and load it with
    # zoo.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=PATH)).
    "vitaev2_vsa_small.in1k": _cfg(
        origin_url="https://1drv.ms/u/s!AimBgYV7JjTlgcgB0Xlyc3U4WO11AQ?e=AGRBDl", license=_RESEARCH_ONLY,
        notes=("official checkpoint: https://1drv.ms/u/s!AimBgYV7JjTlgcgB0Xlyc3U4WO11AQ?e=AGRBDl "
               "(OneDrive share link from the official README; timm CheckpointSaver file, EMA weights preferred)",)),
    "vitaev2_vsa_widepcm_48m.in1k": _cfg(
        origin_url="https://1drv.ms/u/s!AimBgYV7JjTlgcgCOt1UwhNQRfO0bw?e=rtEQJV", license=_RESEARCH_ONLY,
        notes=("official checkpoint: https://1drv.ms/u/s!AimBgYV7JjTlgcgCOt1UwhNQRfO0bw?e=rtEQJV "
               "(OneDrive share link from the official README; timm CheckpointSaver file, EMA weights preferred)",)),
    "vitaev2_vsa_widepcm_small": _cfg(origin_url=_ORIGIN, license=_RESEARCH_ONLY),
    "vitaev2_vsa_widepcm_base": _cfg(origin_url=_ORIGIN, license=_RESEARCH_ONLY),
    "vitaev2_vsa_widepcm_base_ws12": _cfg(origin_url=_ORIGIN, license=_RESEARCH_ONLY),
    "test_vsa": _cfg(input_size=(3, 96, 96), pool_size=(3, 3), origin_url=_ORIGIN, license=_RESEARCH_ONLY),
    "swin_vsa_tiny": _cfg(
        first_conv="patch_embed.proj", origin_url=_ORIGIN, license=_RESEARCH_ONLY,
        notes=("zoo-defined: Swin-T with VSA + CPE as the paper describes; no official code or weights",)),
    "swin_vsa_small": _cfg(
        first_conv="patch_embed.proj", origin_url=_ORIGIN, license=_RESEARCH_ONLY,
        notes=("zoo-defined: Swin-S with VSA + CPE as the paper describes; no official code or weights",)),
    "test_vsa_swin": _cfg(
        input_size=(3, 96, 96), pool_size=(3, 3), first_conv="patch_embed.proj", origin_url=_ORIGIN, license=_RESEARCH_ONLY),
})

_VSA_COMMON = dict(
    downsample_ratios=(4, 2, 2, 2), kernel_sizes=(7, 3, 3, 3), dilations=((1, 2, 3, 4), (1, 2, 3), (1, 2), (1, 2)),
    nc_groups=(1, 32, 64, 128), rc_groups=(1, 16, 32, 64), mlp_ratio=4.)


@register_model(
    family="vsa", task="classification", official_params=19_773_300, manifest="vsa/ViTAEv2_VSA_S",
    reported={"in1k": dict(metric="top1", value=82.7, dataset="imagenet-1k", source="official README (ViTAEv2*-S+VSA)")})
def vitaev2_vsa_small(pretrained: bool = False, **kwargs) -> ViTAEv2VSA:
    args = dict(embed_dims=(64, 64, 128, 256), token_dims=(64, 128, 256, 512), depths=(2, 2, 8, 2),
                num_heads=(2, 4, 8, 16), rc_heads=(2, 2, 4, 8), wide_pcm=False, window_size=7, **_VSA_COMMON)
    return _create(ViTAEv2VSA, "vitaev2_vsa_small", pretrained=pretrained, **dict(args, **kwargs))


@register_model(family="vsa", task="classification", official_params=20_342_442, manifest="vsa/ViTAEv2_VSA_widePCM_S")
def vitaev2_vsa_widepcm_small(pretrained: bool = False, **kwargs) -> ViTAEv2VSA:
    args = dict(embed_dims=(64, 64, 128, 256), token_dims=(64, 128, 256, 512), depths=(2, 2, 8, 2),
                num_heads=(2, 4, 8, 16), rc_heads=(2, 4, 8, 16), wide_pcm=True, window_size=7, **_VSA_COMMON)
    return _create(ViTAEv2VSA, "vitaev2_vsa_widepcm_small", pretrained=pretrained, **dict(args, **kwargs))


@register_model(
    family="vsa", task="classification", official_params=51_089_119, manifest="vsa/ViTAEv2_VSA_widePCM_48M",
    reported={"in1k": dict(metric="top1", value=83.9, dataset="imagenet-1k",
                           source="official README (ViTAEv2*-48M+VSA)")})
def vitaev2_vsa_widepcm_48m(pretrained: bool = False, **kwargs) -> ViTAEv2VSA:
    args = dict(embed_dims=(96, 96, 192, 384), token_dims=(96, 192, 384, 768), depths=(2, 2, 11, 2),
                num_heads=(3, 6, 12, 24), rc_heads=(3, 6, 12, 24), wide_pcm=True, window_size=7, **_VSA_COMMON)
    return _create(ViTAEv2VSA, "vitaev2_vsa_widepcm_48m", pretrained=pretrained, **dict(args, **kwargs))


@register_model(family="vsa", task="classification", official_params=93_711_532, manifest="vsa/ViTAEv2_VSA_widePCM_B")
def vitaev2_vsa_widepcm_base(pretrained: bool = False, **kwargs) -> ViTAEv2VSA:
    args = dict(embed_dims=(128, 128, 256, 512), token_dims=(128, 256, 512, 1024), depths=(2, 2, 12, 2),
                num_heads=(4, 8, 16, 32), rc_heads=(4, 8, 16, 32), wide_pcm=True, window_size=7, **_VSA_COMMON)
    return _create(ViTAEv2VSA, "vitaev2_vsa_widepcm_base", pretrained=pretrained, **dict(args, **kwargs))


@register_model(
    family="vsa", task="classification", official_params=93_833_932, manifest="vsa/ViTAEv2_VSA_widePCM_B_ws12")
def vitaev2_vsa_widepcm_base_ws12(pretrained: bool = False, **kwargs) -> ViTAEv2VSA:
    # the official factory omits wide_pcm, so the constructor default (True) applies
    args = dict(embed_dims=(128, 128, 256, 512), token_dims=(128, 256, 512, 1024), depths=(2, 2, 12, 2),
                num_heads=(4, 8, 16, 32), rc_heads=(4, 8, 16, 32), wide_pcm=True, window_size=12, **_VSA_COMMON)
    return _create(ViTAEv2VSA, "vitaev2_vsa_widepcm_base_ws12", pretrained=pretrained, **dict(args, **kwargs))


@register_model(family="vsa", task="classification", test_model=True, test_sizes=[(64, 64), (70, 95)])
def test_vsa(pretrained: bool = False, **kwargs) -> ViTAEv2VSA:
    args = dict(embed_dims=(8, 8, 16, 16), token_dims=(16, 16, 32, 32), depths=(1, 1, 1, 1),
                num_heads=(1, 2, 2, 2), rc_heads=(1, 1, 2, 2), nc_groups=(1, 4, 8, 8), rc_groups=(1, 4, 4, 8),
                wide_pcm=False, window_size=4, mlp_ratio=2., downsample_ratios=(4, 2, 2, 2),
                kernel_sizes=(7, 3, 3, 3), dilations=((1, 2, 3, 4), (1, 2, 3), (1, 2), (1, 2)))
    return _create(ViTAEv2VSA, "test_vsa", pretrained=pretrained, **dict(args, **kwargs))


@register_model(
    family="vsa", task="classification",
    reported={"paper": dict(metric="top1", value=82.24, dataset="imagenet-1k",
                            source="official README, Swin-T+VSA (weights announced, never released)")})
def swin_vsa_tiny(pretrained: bool = False, **kwargs) -> SwinVSA:
    args = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7, drop_path_rate=0.2)
    return _create(SwinVSA, "swin_vsa_tiny", pretrained=pretrained, **dict(args, **kwargs))


@register_model(
    family="vsa", task="classification",
    reported={"paper": dict(metric="top1", value=83.6, dataset="imagenet-1k",
                            source="official README, Swin-S+VSA (weights announced, never released)")})
def swin_vsa_small(pretrained: bool = False, **kwargs) -> SwinVSA:
    args = dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), window_size=7, drop_path_rate=0.3)
    return _create(SwinVSA, "swin_vsa_small", pretrained=pretrained, **dict(args, **kwargs))


@register_model(family="vsa", task="classification", test_model=True, test_sizes=[(64, 64), (70, 95)])
def test_vsa_swin(pretrained: bool = False, **kwargs) -> SwinVSA:
    args = dict(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4), window_size=4, drop_path_rate=0.)
    return _create(SwinVSA, "test_vsa_swin", pretrained=pretrained, **dict(args, **kwargs))


# old names keep working (timm warns and maps them; zoo.create_model resolves them too)
register_model_deprecations(__name__, {
    "vitaev2_vsa_s": "vitaev2_vsa_small",
    "vitaev2_vsa_widepcm_s": "vitaev2_vsa_widepcm_small",
    "vitaev2_vsa_widepcm_b_ws12": "vitaev2_vsa_widepcm_base_ws12",
    "vitaev2_vsa_widepcm_b": "vitaev2_vsa_widepcm_base",
    "vitaev2_vsa_test": "test_vsa",
    "swin_vsa_test": "test_vsa_swin",
})
