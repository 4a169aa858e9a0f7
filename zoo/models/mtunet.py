"""MT-UNet: Mixed Transformer U-Net for medical image segmentation.

Paper: "Mixed Transformer U-Net for Medical Image Segmentation", Hongyi Wang, Shiao Xie, Lanfen Lin,
Yutaro Iwamoto, Xian-Hua Han, Yen-Wei Chen, Ruofeng Tong (ICASSP 2022), arXiv:2111.04734.
Official code: https://github.com/Dootmaan/MT-UNet (MIT licence), commit fd3707b.

A CNN U-encoder (three residual double-conv levels) feeds a transformer U-Net whose blocks are
Mixed Transformer Modules (MTM): local-global Gaussian-weighted self-attention (LGG-SA: window
attention, a learned aggregation of every window to one token, and Gaussian-weighted axial
attention over those tokens) followed by external attention (EA) with shared memory units.

Differences from the official code, none of which changes the outputs at the official 224x224:
- the Gaussian-weighted axial attention is two ``scaled_dot_product_attention`` calls (rows and
  columns) with the Gaussian prior as an additive mask, instead of a Python loop over positions;
- no ``.cuda()``: every tensor is made on the input's device and dtype;
- the separate query/key/value Linears are fused into one ``qkv`` Linear (converted on load);
- the 1x1 "squeeze" conv after the local/global concatenation is two Linears, one per branch
  (``fuse_local``, ``fuse_global``; split on load), and the global one is applied before the
  bilinear upsampling (both are linear and the bilinear weights sum to one);
- the axial attention's output Linear (``global_atten.out``), which the official forward never
  calls, is not built: ``checkpoint_filter_fn`` drops its weights (``DROPPED_OFFICIAL_KEYS``);
- the local window attention is the shared ``zoo.layers.window_attention.WindowAttention``;
- BatchNorm stays a module at inference; ``MTUNet.fuse()`` folds it into the convs on request;
- inputs whose size differs from ``img_size`` are rejected unless ``dynamic_img_size=True``, which
  zero-pads the input to a multiple of 32, resizes the position embedding to the padded token grid
  and crops every output back.
"""
import logging
import re
from typing import Callable, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from timm.layers import ConvNormAct, DropPath, resample_abs_pos_embed, trunc_normal_
from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model_deprecations
from timm.models._features import feature_take_indices

from zoo.hub import unwrap_state_dict
from zoo.registry import register_checkpoint_filter, register_family, register_model
from zoo.layers.padding import nchw_to_nhwc, nhwc_to_nchw, pad_to_multiple
from zoo.layers.window_attention import WindowAttention, window_partition, window_reverse
from zoo.validation import check_input, is_fx_tracing

_logger = logging.getLogger(__name__)

__all__ = ["MTUNet", "DROPPED_OFFICIAL_KEYS", "GaussianAxialAttention", "LocalGlobalGaussianAttention", "ExternalAttention",
           "MixedTransformerBlock", "checkpoint_filter_fn"]

register_family(
    "mtunet",
    title="Mixed Transformer U-Net for Medical Image Segmentation",
    paper_ids=("arXiv:2111.04734",),
    official_repo="https://github.com/Dootmaan/MT-UNet",
    code_license="MIT",
    description="U-Net whose deep layers are Mixed Transformer Modules: local-global Gaussian-weighted "
                "self-attention plus external attention with shared memory units; CNN stem and decoder.",
    citation="@inproceedings{wang2022mixed,\n  title={Mixed Transformer U-Net for Medical Image Segmentation},\n"
             "  author={Wang, Hongyi and Xie, Shiao and Lin, Lanfen and Iwamoto, Yutaro and Han, Xian-Hua and "
             "Chen, Yen-Wei and Tong, Ruofeng},\n  booktitle={ICASSP 2022 - 2022 IEEE International Conference "
             "on Acoustics, Speech and Signal Processing (ICASSP)},\n  pages={2390--2394},\n  year={2022}\n}",
    module=__name__,
)


# official parameters the official forward never uses: not built, dropped by checkpoint_filter_fn
# (official names; one (dim, dim) Linear in each Mixed Transformer block's axial attention)
DROPPED_OFFICIAL_KEYS = (r".*\.CSAttention\.global_atten\.out\.(weight|bias)$",)


class DoubleConv(nn.Module):
    """Residual double conv of the U-encoder/decoder.

    ``y = BN(conv3x3(ReLU(BN(conv3x3(x)))))`` (no ReLU after the second BN),
    ``out = ReLU(y + BN(conv1x1(y)))``; the 3x3 convs have no bias, the 1x1 has one.
    """

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__()
        self.conv1 = ConvNormAct(in_chs, out_chs, 3, padding=1)
        self.conv2 = ConvNormAct(out_chs, out_chs, 3, padding=1, apply_act=False)
        self.conv3 = nn.Conv2d(out_chs, out_chs, 1)
        self.norm3 = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv2(self.conv1(x))
        return F.relu(x + self.norm3(self.conv3(x)))


def _fuse_conv_norm(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> nn.Conv2d:
    """``conv`` with the eval-mode BatchNorm ``norm`` folded into its weight and bias."""
    return torch.nn.utils.fusion.fuse_conv_bn_eval(conv.eval(), norm.eval())


class UNetEncoder(nn.Module):
    """The CNN stem (official ``Stem``): three DoubleConv levels with 2x2 max-pooling after each,
    a 1x1 conv-BN-ReLU to the transformer width, and an absolute position embedding on the
    stride-8 token grid (official ``(1, 784, 256)`` for 224x224)."""

    def __init__(self, in_chans: int, widths: Tuple[int, ...], embed_dim: int, grid_size: Tuple[int, int]):
        super().__init__()
        self.res1 = DoubleConv(in_chans, widths[0])
        self.res2 = DoubleConv(widths[0], widths[1])
        self.res3 = DoubleConv(widths[1], widths[2])
        self.proj = ConvNormAct(widths[2], embed_dim, 1, padding=0)
        self.grid_size = grid_size
        self.pos_embed = nn.Parameter(torch.zeros(1, grid_size[0] * grid_size[1], embed_dim))

    def forward(self, x: torch.Tensor, max_index: int = 3) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
        """The CNN levels up to ``max_index`` (NCHW, strides 1, 2, 4) and, from ``max_index`` 3 on, the
        stride-8 NHWC tokens with the position embedding added (a pruned stem stops at its last level)."""
        levels = [self.res1(x)]
        if max_index >= 1:
            levels.append(self.res2(F.max_pool2d(levels[-1], 2)))
        if max_index >= 2:
            levels.append(self.res3(F.max_pool2d(levels[-1], 2)))
        if max_index < 3:
            return levels, None
        x = nchw_to_nhwc(self.proj(F.max_pool2d(levels[-1], 2)))
        return levels, x + _pos_embed_for(self.pos_embed, tuple(self.grid_size), x.shape[1], x.shape[2])


def gaussian_prior(n: int, shift: torch.Tensor, bias: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """The Gaussian axial prior ``-(shift * (i - j)^2 + bias)`` as an (n, n) additive mask."""
    idx = torch.arange(n, device=ref.device, dtype=ref.dtype)
    dist = (idx[None, :] - idx[:, None]) ** 2
    return -(shift * dist + bias)


class GaussianAxialAttention(nn.Module):
    """Gaussian-weighted axial attention (paper Sec. 2.2, official ``Attention(axial=True)`` +
    ``GaussianTrans``).

    For the token at (r, c) of an (H, W) grid, single-head, with **no** 1/sqrt(d) scale::

        out[r, c] = sum_j softmax_j(q[r,c].k[r,j] - shift*(j-c)^2 - bias) v[r, j]
                  + sum_i softmax_i(q[r,c].k[i,c] - shift*(i-r)^2 - bias) v[i, c]

    ``bias`` cancels inside each softmax; it is kept as a parameter so official weights load (it
    still gets a zero gradient). The official layer's output Linear ``out`` is never called by the
    official forward: it is not built, and ``checkpoint_filter_fn`` drops it.
    """

    def __init__(self, dim: int):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.shift = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(-torch.ones(1))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The Gaussian-weighted row + column attention of projected (B, H, W, C) q, k, v."""
        _, h, w, _ = q.shape
        rows = F.scaled_dot_product_attention(
            q, k, v, attn_mask=gaussian_prior(w, self.shift, self.bias, q), scale=1.0)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        cols = F.scaled_dot_product_attention(
            q, k, v, attn_mask=gaussian_prior(h, self.shift, self.bias, q), scale=1.0)
        return rows + cols.transpose(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, H, W, C) -> (B, H, W, C)."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.attend(q, k, v)


def pad_bottom_right_corner(x: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Zero-pad (B, H, W, C) at the bottom/right, then fill only the bottom-right corner block
    with a copy of ``x[:, H - pad_h:, W - pad_w:]`` (official WinAttention quirk: the bottom and
    right strips stay zero)."""
    b, h, w, c = x.shape
    top = torch.cat([x, x.new_zeros(b, h, pad_w, c)], dim=2)
    if pad_h == 0:
        return top
    corner = x[:, h - pad_h:, w - pad_w:] if pad_w else x.new_zeros(b, pad_h, 0, c)
    bottom = torch.cat([x.new_zeros(b, pad_h, w, c), corner], dim=2)
    return torch.cat([top, bottom], dim=1)


def _pos_embed_for(pos: torch.Tensor, grid_size: Tuple[int, int], gh: int, gw: int) -> torch.Tensor:
    """The (1, N, C) position embedding of ``grid_size`` as a (1, gh, gw, C) map, resampled if the grid differs."""
    if (gh, gw) != tuple(grid_size):
        pos = resample_abs_pos_embed(pos, new_size=[gh, gw], old_size=list(grid_size), num_prefix_tokens=0)
    return pos.reshape(1, gh, gw, -1)


# fx records these as single calls: their padding depends on the map size
torch.fx.wrap("pad_bottom_right_corner")
torch.fx.wrap("pad_to_multiple")
torch.fx.wrap("_pos_embed_for")


class LocalGlobalGaussianAttention(nn.Module):
    """Local-global Gaussian-weighted self-attention (LGG-SA, official ``CSAttention``).

    Window attention (window ``ws``) -> each window aggregated to one token by a softmax over
    ``ws*ws`` learned weights of the window's mean (official ``DlightConv``) -> Gaussian axial
    attention on that token grid -> bilinear upsampling x ws (align_corners=True) ->
    1x1 conv of ``cat(global, local)`` -> crop to the input size.

    The local branch is the shared :class:`WindowAttention` (no relative position bias, heads as
    contiguous channel groups as in the official ``transpose_for_scores``) on windows cut here,
    since the official padding is not zeros. The official 1x1 conv ``queeze`` is two Linears,
    ``fuse_global`` (its first ``dim`` input channels, no bias) and ``fuse_local``: the global one
    runs on the small token grid, before the upsampling it commutes with.
    """

    def __init__(self, dim: int, num_heads: int = 8, window_size: int = 4):
        super().__init__()
        self.window_size = window_size
        self.local_attn = WindowAttention(dim, num_heads, window_size, rel_pos_bias=False, partition=False)
        self.aggregate = nn.Linear(dim, window_size * window_size)
        self.global_attn = GaussianAxialAttention(dim)
        self.fuse_global = nn.Linear(dim, dim, bias=False)
        self.fuse_local = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        ws = self.window_size
        pad_h, pad_w = (-h) % ws, (-w) % ws
        if is_fx_tracing() or pad_h or pad_w:
            x = pad_bottom_right_corner(x, pad_h, pad_w)
        win, (hp, wp) = window_partition(x, ws)  # (b * gh * gw, ws * ws, c), no padding left to add
        win = self.local_attn(win)

        weights = self.aggregate(win.mean(dim=-2)).softmax(dim=-1)
        tokens = (weights.unsqueeze(-1) * win).sum(dim=-2).reshape(b, hp // ws, wp // ws, c)
        glob = nhwc_to_nchw(self.fuse_global(self.global_attn(tokens)))
        glob = F.interpolate(glob, size=(hp, wp), mode="bilinear", align_corners=True)[:, :, :h, :w]
        local = window_reverse(win, ws, (hp, wp), (h, w))
        return self.fuse_local(local) + nchw_to_nhwc(glob)


class ExternalAttention(nn.Module):
    """Multi-head external attention with shared memory units (official ``MEAttention``).

    ``q = Linear(x)`` split into ``num_heads * expansion`` contiguous heads; ``a = q M_k^T``
    softmaxed over the tokens, then normalised over the memory units (``a / (1e-9 + sum)``);
    ``out = proj(a M_v)``.
    """

    def __init__(self, dim: int, num_heads: int = 8, expansion: int = 4, num_memory: int = 64):
        super().__init__()
        hidden = dim * expansion
        self.num_heads = num_heads * expansion
        self.head_dim = hidden // self.num_heads
        self.query = nn.Linear(dim, hidden)
        self.mem_k = nn.Linear(self.head_dim, num_memory)
        self.mem_v = nn.Linear(num_memory, self.head_dim)
        self.proj = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, _ = x.shape
        q = self.query(x).reshape(b, h * w, self.num_heads, self.head_dim)
        attn = self.mem_k(q).softmax(dim=1)
        attn = attn / (1e-9 + attn.sum(dim=-1, keepdim=True))
        x = self.mem_v(attn).reshape(b, h, w, self.num_heads * self.head_dim)
        return self.proj(x)


class MixedTransformerBlock(nn.Module):
    """Mixed Transformer Module (official ``EAmodule``): ``x + LGG-SA(LN(x))`` then ``x + EA(LN(x))``,
    LayerNorm eps 1e-6, NHWC in and out."""

    def __init__(
            self,
            dim: int,
            num_heads: int = 8,
            window_size: int = 4,
            ea_expansion: int = 4,
            num_memory: int = 64,
            drop_path: float = 0.,
            norm_layer: Callable = nn.LayerNorm,
    ):
        super().__init__()
        self.norm1 = norm_layer(dim, eps=1e-6)
        self.attn = LocalGlobalGaussianAttention(dim, num_heads, window_size)
        self.norm2 = norm_layer(dim, eps=1e-6)
        self.ext_attn = ExternalAttention(dim, num_heads, ea_expansion, num_memory)
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.ext_attn(self.norm2(x)))
        return x


class EncoderStage(nn.Module):
    """Mixed Transformer blocks, then conv2x2/s2-BN-ReLU; the skip is the map before the downsampling."""

    def __init__(self, dim: int, out_dim: int, depth: int, drop_path: List[float], **block_kwargs):
        super().__init__()
        self.grad_checkpointing = False
        self.blocks = nn.Sequential(*[
            MixedTransformerBlock(dim, drop_path=drop_path[i], **block_kwargs) for i in range(depth)])
        self.downsample = ConvNormAct(dim, out_dim, 2, stride=2, padding=0)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """NHWC in; returns (downsampled NHWC, skip NCHW)."""
        x = checkpoint_seq(self.blocks, x) if self.grad_checkpointing and not torch.jit.is_scripting() \
            else self.blocks(x)
        skip = nhwc_to_nchw(x)
        return nchw_to_nhwc(self.downsample(skip)), skip


class DecoderStage(nn.Module):
    """ConvT2x2 upsampling, ``cat(upsampled, skip)``, an optional 1x1 conv back to ``in_dim // 2``
    (a Linear over the channels-last pixels; the official conv weight is squeezed on load), then
    Mixed Transformer blocks."""

    def __init__(self, in_dim: int, skip_dim: int, fuse: bool, depth: int, drop_path: List[float],
                 **block_kwargs):
        super().__init__()
        self.grad_checkpointing = False
        up_dim = in_dim // 2
        self.upsample = nn.ConvTranspose2d(in_dim, up_dim, 2, stride=2)
        self.fuse = nn.Linear(up_dim + skip_dim, up_dim) if fuse else nn.Identity()
        self.out_dim = up_dim if fuse else up_dim + skip_dim
        self.blocks = nn.Sequential(*[
            MixedTransformerBlock(self.out_dim, drop_path=drop_path[i], **block_kwargs) for i in range(depth)])

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """x NHWC, skip NCHW -> NHWC."""
        x = self.upsample(x.permute(0, 3, 1, 2))
        x = self.fuse(nchw_to_nhwc(torch.cat([x, skip], dim=1)))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)


class UNetDecoder(nn.Module):
    """The CNN decoder (official ``DecoderStem``): ConvT2x2, ``cat(encoder_feature, upsampled)``,
    DoubleConv, three times."""

    def __init__(self, in_dim: int, widths: Tuple[int, ...]):
        super().__init__()
        w1, w2, w3 = widths[2], widths[1], widths[0]
        self.up1 = nn.ConvTranspose2d(in_dim, w1, 2, stride=2)
        self.res1 = DoubleConv(2 * w1, w1)
        self.up2 = nn.ConvTranspose2d(w1, w2, 2, stride=2)
        self.res2 = DoubleConv(2 * w2, w2)
        self.up3 = nn.ConvTranspose2d(w2, w3, 2, stride=2)
        self.res3 = DoubleConv(2 * w3, w3)

    def forward(self, x: torch.Tensor, features: List[torch.Tensor]) -> torch.Tensor:
        x = self.res1(torch.cat([features[2], self.up1(x)], dim=1))
        x = self.res2(torch.cat([features[1], self.up2(x)], dim=1))
        x = self.res3(torch.cat([features[0], self.up3(x)], dim=1))
        return x


class MTUNet(nn.Module):
    """Mixed Transformer U-Net.

    forward(x) returns per-pixel logits (B, num_classes, H, W). A 1-channel input given to a
    3-channel model is repeated to 3 channels, as officially. The position embedding fixes the
    input to ``img_size`` unless ``dynamic_img_size=True``.
    """

    def __init__(
            self,
            img_size: Union[int, Tuple[int, int]] = 224,
            in_chans: int = 3,
            num_classes: int = 9,
            stem_widths: Tuple[int, ...] = (64, 128, 256),
            embed_dims: Tuple[int, ...] = (256, 512, 1024),
            depth: int = 2,
            num_heads: int = 8,
            window_size: int = 4,
            ea_expansion: int = 4,
            num_memory: int = 64,
            dynamic_img_size: bool = False,
            drop_rate: float = 0.,
            drop_path_rate: float = 0.,
            global_pool: str = "",
    ):
        """
        Args:
            img_size: input size the position embedding is made for (a multiple of 32).
            in_chans: channels of the first conv (1-channel inputs are repeated when it is 3).
            num_classes: segmentation classes (9 Synapse, 4 ACDC).
            stem_widths: widths of the three CNN levels (stride 1, 2, 4); the CNN decoder mirrors them.
            embed_dims: transformer encoder stage widths, the last one is the bottleneck's.
            depth: Mixed Transformer blocks per encoder stage, bottleneck and decoder stage.
            num_heads: window-attention heads (external attention uses ``num_heads * ea_expansion``).
            window_size: LGG-SA window; also the bilinear upsampling factor of the global branch.
            ea_expansion: width expansion of external attention's query.
            num_memory: external-attention memory units.
            dynamic_img_size: accept any input size: pad to a multiple of 32, resize the position
                embedding, crop back (not the official behaviour; off by default).
            drop_rate: dropout before the segmentation head.
            drop_path_rate: stochastic depth over the transformer blocks (0 officially).
            global_pool: unused, for timm's create_model interface.
        """
        super().__init__()
        img_size = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
        self.reduction = 2 ** (2 + len(embed_dims))  # stride of the bottleneck
        if img_size[0] % self.reduction or img_size[1] % self.reduction:
            raise ValueError(f"MTUNet img_size {img_size} must be a multiple of {self.reduction}")
        self.img_size = img_size
        self.in_chans = in_chans
        self.num_classes = num_classes
        self.dynamic_img_size = dynamic_img_size
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        block_kwargs = dict(num_heads=num_heads, window_size=window_size, ea_expansion=ea_expansion,
                            num_memory=num_memory)

        num_stages = len(embed_dims) - 1
        n_blocks = depth * (2 * num_stages + 1)
        rates = [drop_path_rate * i / max(n_blocks - 1, 1) for i in range(n_blocks)]
        dpr = [rates[i * depth:(i + 1) * depth] for i in range(2 * num_stages + 1)]

        self.stem = UNetEncoder(in_chans, stem_widths, embed_dims[0], (img_size[0] // 8, img_size[1] // 8))
        self.feature_info = [
            dict(num_chs=stem_widths[0], reduction=1, module="stem.res1"),
            dict(num_chs=stem_widths[1], reduction=2, module="stem.res2"),
            dict(num_chs=stem_widths[2], reduction=4, module="stem.res3"),
        ]
        self.stages = nn.ModuleList()
        for i in range(num_stages):
            self.stages.append(EncoderStage(embed_dims[i], embed_dims[i + 1], depth, dpr[i], **block_kwargs))
            self.feature_info.append(dict(num_chs=embed_dims[i], reduction=8 * 2 ** i, module=f"stages.{i}"))
        self.bottleneck = nn.Sequential(*[
            MixedTransformerBlock(embed_dims[-1], drop_path=dpr[num_stages][i], **block_kwargs) for i in range(depth)])
        self.feature_info.append(dict(num_chs=embed_dims[-1], reduction=self.reduction, module="bottleneck"))
        self.last_level = len(self.feature_info) - 1  # the deepest level kept (prune_intermediate_layers)

        self.decoder = nn.ModuleList()
        dim = embed_dims[-1]
        for j in range(num_stages):
            stage = DecoderStage(dim, embed_dims[-2 - j], j < num_stages - 1, depth, dpr[num_stages + 1 + j],
                                 **block_kwargs)
            self.decoder.append(stage)
            dim = stage.out_dim
        self.decoder_stem = UNetDecoder(dim, stem_widths)
        self.num_features = self.head_hidden_size = stem_widths[0]
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Conv2d(self.num_features, num_classes, 1) if num_classes > 0 else nn.Identity()

        self.apply(self._init_weights)

    def _init_weights(self, m: nn.Module):
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, UNetEncoder):
            trunc_normal_(m.pos_embed, std=.02)
        elif isinstance(m, GaussianAxialAttention):
            # the official init: shift = |N(0, 1)|, bias = -|N(0, 1)|
            with torch.no_grad():
                m.shift.normal_().abs_()
                m.bias.normal_().abs_().neg_()

    @torch.no_grad()
    def fuse(self) -> "MTUNet":
        """Fold every BatchNorm into the conv before it, for inference; returns the model.

        An explicit, one-way step (the forward never folds anything by itself): call it on an
        eval-mode model whose statistics are final. Outputs are unchanged up to rounding; the
        state_dict loses the BatchNorm entries, so save/load the unfused model.
        """
        if self.training:
            raise ValueError(f"{type(self).__name__}.fuse() folds the BatchNorm running statistics: call .eval() first")
        for m in list(self.modules()):
            if isinstance(m, ConvNormAct) and isinstance(m.bn, nn.BatchNorm2d):
                m.conv = _fuse_conv_norm(m.conv, m.bn)
                m.bn = nn.Sequential(m.bn.drop, m.bn.act)
            elif isinstance(m, DoubleConv) and isinstance(m.norm3, nn.BatchNorm2d):
                m.conv3 = _fuse_conv_norm(m.conv3, m.norm3)
                m.norm3 = nn.Identity()
        return self

    @torch.jit.ignore
    def no_weight_decay(self):
        return {"stem.pos_embed"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False):
        return dict(
            stem=r"^stem",
            blocks=[
                (r"^stages\.(\d+)" if coarse else r"^stages\.(\d+)\.blocks\.(\d+)", None),
                (r"^stages\.(\d+)\.downsample", (0,)),
                (r"^bottleneck", (90,)),
                (r"^decoder\.(\d+)", (100,)),
                (r"^decoder_stem", (200,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        self.grad_checkpointing = enable
        for s in list(self.stages) + list(self.decoder if self.decoder is not None else []):
            s.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        self.num_classes = num_classes
        ref = next(self.parameters())
        # the new classifier joins the model where it is (device, dtype, train/eval), as timm's models do
        self.head = (nn.Conv2d(self.num_features, num_classes, 1, device=ref.device, dtype=ref.dtype)
                     if num_classes > 0 else nn.Identity()).train(self.training)

    def _check_and_pad(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        if is_fx_tracing():
            # an fx graph is recorded for inputs of this model's configuration (in_chans channels);
            # a dynamic-size model pads in one recorded call
            h, w = x.shape[-2], x.shape[-1]
            if self.dynamic_img_size:
                x = pad_to_multiple(x, self.reduction, min_size=2 * self.reduction)
            return x.contiguous(memory_format=torch.channels_last), (h, w)
        check_input(x, model=self)
        name = (getattr(self, "pretrained_cfg", None) or {}).get("architecture") or type(self).__name__
        c = x.shape[1]
        if c != self.in_chans and not (c == 1 and self.in_chans == 3):
            allowed = "3 (or 1, repeated to 3)" if self.in_chans == 3 else str(self.in_chans)
            raise ValueError(f"{name} expects input of shape (B, {allowed}, H, W), got {tuple(x.shape)}")
        if c == 1 and self.in_chans == 3:
            x = x.repeat(1, 3, 1, 1)
        h, w = x.shape[-2:]
        if (h, w) != self.img_size:
            if not self.dynamic_img_size:
                raise ValueError(
                    f"{name} expects input of shape (B, {self.in_chans}, {self.img_size[0]}, {self.img_size[1]}) "
                    f"(its position embedding fixes the size), got {tuple(x.shape)}; create it with "
                    f"img_size={h if h == w else (h, w)} (for a multiple of {self.reduction}) or "
                    f"dynamic_img_size=True to resize the position embedding")
            # padded sides are multiples of the reduction and at least two reduction steps, the
            # smallest map whose deepest level still has the 2x2 tokens the decoder upsamples from
            x = pad_to_multiple(x, self.reduction, min_size=2 * self.reduction)
        # channels-last convs are much faster on CPU (oneDNN), and the transformer stages then
        # get their NHWC tokens by a free permute
        return x.contiguous(memory_format=torch.channels_last), (h, w)

    def _encode(self, x: torch.Tensor, max_index: int) -> List[torch.Tensor]:
        """The encoder levels (NCHW, padded size) up to ``max_index``."""
        levels, x = self.stem(x, max_index)
        if x is None:
            return levels
        for i, stage in enumerate(self.stages):
            x, skip = stage(x)
            levels.append(skip)
            if max_index < 4 + i:
                return levels
        if self.bottleneck is None:
            return levels
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.bottleneck, x)
        else:
            x = self.bottleneck(x)
        levels.append(x.permute(0, 3, 1, 2))
        return levels

    def _decode(self, levels: List[torch.Tensor], h: int, w: int) -> torch.Tensor:
        """The CNN decoder's output cropped to (h, w); a model pruned without its decoder ends at its
        last kept encoder level instead (cropped to that level's share of (h, w))."""
        if self.decoder_stem is None:
            r = self.feature_info[self.last_level]["reduction"]
            return levels[self.last_level][:, :, :-(-h // r), :-(-w // r)]
        n = len(self.stages)
        x = levels[-1].permute(0, 2, 3, 1)
        for j, stage in enumerate(self.decoder):
            x = stage(x, levels[2 + n - j])
        return self.decoder_stem(x.permute(0, 3, 1, 2), levels[:3])[:, :, :h, :w]

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Encoder levels (NCHW, strides 1, 2, 4, 8, 16, 32), and the decoder output unless
        ``intermediates_only``. The U-Net decoder needs every level, so ``stop_early`` only
        takes effect with ``intermediates_only``."""
        assert output_fmt == "NCHW", "Output format must be NCHW."
        x, (h, w) = self._check_and_pad(x)
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        levels = self._encode(x, max_index if intermediates_only else self.last_level)
        intermediates = []
        for i in take_indices:
            r = self.feature_info[i]["reduction"]
            intermediates.append(levels[i][:, :, :-(-h // r), :-(-w // r)])
        if intermediates_only:
            return intermediates
        return self._decode(levels, h, w), intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        """With ``prune_head``, drop the decoder, the head and every encoder part after the last wanted
        level: the pruned model is an encoder whose ``forward_features`` ends at that level. Without it the
        decoder reads every encoder level, so nothing is dropped."""
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        if not prune_head:
            return take_indices
        n = len(self.stages)
        self.decoder = None
        self.decoder_stem = None
        self.reset_classifier(0)
        if max_index < 3 + n:
            self.bottleneck = None
        self.stages = self.stages[:max(0, max_index - 2)]
        if 3 <= max_index < 3 + n:
            self.stages[-1].downsample = nn.Identity()  # the tap is the skip before it
        if max_index < 3:
            self.stem.proj = None
            self.stem.pos_embed = None
        if max_index < 2:
            self.stem.res3 = None
        if max_index < 1:
            self.stem.res2 = None
        self.last_level = max_index
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The CNN decoder's output (B, stem_widths[0], H, W); a model pruned with ``prune_head`` returns its
        last kept encoder level (NCHW)."""
        x, (h, w) = self._check_and_pad(x)
        return self._decode(self._encode(x, self.last_level), h, w)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_DOUBLE_CONV = {"conv.0": "conv1", "conv.1": "conv2", "conv1": "conv3", "bn": "norm3"}
_BLOCK = [
    ("SlayerNorm.", "norm1."),
    ("ElayerNorm.", "norm2."),
    ("CSAttention.win_atten.attention.query_layer.", "attn.local_attn.q."),
    ("CSAttention.win_atten.attention.key_layer.", "attn.local_attn.k."),
    ("CSAttention.win_atten.attention.value_layer.", "attn.local_attn.v."),
    ("CSAttention.win_atten.attention.out.", "attn.local_attn.proj."),
    ("CSAttention.dlightconv.linear.", "attn.aggregate."),
    ("CSAttention.global_atten.query_layer.", "attn.global_attn.q."),
    ("CSAttention.global_atten.key_layer.", "attn.global_attn.k."),
    ("CSAttention.global_atten.value_layer.", "attn.global_attn.v."),
    ("CSAttention.gaussiantrans.", "attn.global_attn."),
    ("CSAttention.queeze.", "attn.fuse."),
    ("EAttention.query_liner.", "ext_attn.query."),
    ("EAttention.linear_0.", "ext_attn.mem_k."),
    ("EAttention.linear_1.", "ext_attn.mem_v."),
    ("EAttention.proj.", "ext_attn.proj."),
]


def _rename_official(key: str, fused_decoders: set) -> str:
    key = re.sub(r"^stem\.model\.", "stem.", key)
    key = key.replace("stem.trans_dim.", "stem.proj.").replace("stem.position_embedding", "stem.pos_embed")
    key = re.sub(r"^decoder_stem\.block\.trans(\d)\.", r"decoder_stem.up\1.", key)
    key = re.sub(r"^decoder_stem\.block\.", "decoder_stem.", key)
    key = re.sub(r"(res\d)\.(conv\.0|conv\.1|conv1|bn)\.", lambda m: f"{m[1]}.{_DOUBLE_CONV[m[2]]}.", key)
    key = re.sub(r"^encoder\.(\d+)\.block\.2\.", r"stages.\1.downsample.", key)
    key = re.sub(r"^encoder\.(\d+)\.block\.(\d+)\.", r"stages.\1.blocks.\2.", key)
    key = re.sub(r"^decoder\.(\d+)\.block\.0\.", r"decoder.\1.upsample.", key)

    def _dec(m):
        i, k = int(m[1]), int(m[2])
        if i in fused_decoders:
            return f"decoder.{i}.fuse." if k == 1 else f"decoder.{i}.blocks.{k - 2}."
        return f"decoder.{i}.blocks.{k - 1}."

    key = re.sub(r"^decoder\.(\d+)\.block\.(\d+)\.", _dec, key)
    key = key.replace("SegmentationHead.", "head.")
    for old, new in _BLOCK:
        if old in key:
            key = key.replace(old, new)
            break
    return key


@register_checkpoint_filter("mtunet")
def checkpoint_filter_fn(state_dict, model: MTUNet):
    """Official MT-UNet state_dict (plain, or wrapped) -> zoo keys; a no-op on zoo keys.

    Renames the modules, fuses the query/key/value Linears into ``qkv``, splits the 1x1 ``queeze``
    conv into the ``fuse_global`` / ``fuse_local`` Linears, squeezes the decoder's 1x1 conv to a
    Linear weight, drops the official parameters the official forward never uses
    (``DROPPED_OFFICIAL_KEYS``, logged), and resizes the position embedding when the model's token
    grid differs from the checkpoint's.
    """
    state_dict = unwrap_state_dict(state_dict)
    dropped = [k for k in state_dict if any(re.match(p, k) for p in DROPPED_OFFICIAL_KEYS)
               or re.search(r"\.attn\.global_attn\.out\.(weight|bias)$", k)]  # also in older zoo checkpoints
    if dropped:
        _logger.info("MT-UNet: dropping %d official tensors the official forward never uses (%s, ...)",
                     len(dropped), dropped[0])
        state_dict = {k: v for k, v in state_dict.items() if k not in set(dropped)}
    official = any(k.startswith(("stem.model.", "SegmentationHead.", "encoder.")) for k in state_dict)
    if official:
        fused = {int(m[1]) for k in state_dict for m in [re.match(r"^decoder\.(\d+)\.block\.1\.weight$", k)] if m}
        out = {}
        for k, v in state_dict.items():
            out[_rename_official(k, fused)] = v
        for k in [k for k in out if re.search(r"\.(local_attn|global_attn)\.q\.(weight|bias)$", k)]:
            base, kind = k.rsplit(".q.", 1)
            out[f"{base}.qkv.{kind}"] = torch.cat(
                [out.pop(f"{base}.q.{kind}"), out.pop(f"{base}.k.{kind}"), out.pop(f"{base}.v.{kind}")], dim=0)
        state_dict = out
    if any(k.endswith(".attn.fuse.weight") or (k.endswith(".fuse.weight") and state_dict[k].ndim == 4)
           for k in state_dict):
        out = {}
        for k, v in state_dict.items():
            if k.endswith(".fuse.weight") and v.ndim == 4:
                v = v[:, :, 0, 0]
            if k.endswith(".attn.fuse.weight"):
                w_glob, w_local = v.split(v.shape[0], dim=1)  # the official cat(global, local) order
                out[k.replace(".fuse.", ".fuse_global.")] = w_glob
                out[k.replace(".fuse.", ".fuse_local.")] = w_local
            elif k.endswith(".attn.fuse.bias"):
                out[k.replace(".fuse.", ".fuse_local.")] = v
            else:
                out[k] = v
        state_dict = out
    pos = state_dict.get("stem.pos_embed")
    grid = model.stem.grid_size
    if pos is not None and pos.shape[1] != grid[0] * grid[1]:
        state_dict = dict(state_dict)
        state_dict["stem.pos_embed"] = resample_abs_pos_embed(pos, new_size=list(grid), num_prefix_tokens=0)
    return state_dict


def _create_mtunet(variant: str, pretrained: bool = False, **kwargs) -> MTUNet:
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3, 4, 5))
    return build_model_with_cfg(
        MTUNet, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(feature_cls="getter", flatten_sequential=True, out_indices=out_indices),
        **kwargs,
    )


def _cfg(url: str = "", **kwargs):
    return {
        "url": url,
        "num_classes": 9,
        # official models take 3 channels (a 1-channel slice is repeated to 3 inside forward)
        "input_size": (3, 224, 224),
        "pool_size": (224, 224),  # forward_features: the decoder map at the input size
        "crop_pct": 1.0,
        "interpolation": "bicubic",
        "fixed_input_size": True,
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
        "first_conv": "stem.res1.conv1.conv",
        "classifier": "head",
        "license": "mit",
        "paper_ids": "arXiv:2111.04734",
        "paper_name": "Mixed Transformer U-Net for Medical Image Segmentation",
        "origin_url": "https://github.com/Dootmaan/MT-UNet",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    # The official weights are plain state_dicts on Google Drive and Zenodo (no direct URL);
    # download them by hand and load with pretrained_cfg_overlay=dict(file=...).
    "mtunet.synapse": _cfg(
        num_classes=9,
        notes=("Official weights: Zenodo record https://zenodo.org/records/18831591, Google Drive id "
               "1frQAK05UtiAO8rvKG9y5GXABaH70_-Hu (README 2022/01/04 update).",
               "Input: one CT slice (B, 1, 224, 224) or repeated (B, 3, 224, 224), preprocessed as in "
               "TransUNet's Synapse data.")),
    "mtunet.acdc": _cfg(
        num_classes=4,
        notes=("Official weights: Zenodo record https://zenodo.org/records/18831591, Google Drive id "
               "1eo6d-d_kR0qbHBIHq49TQ1CFpPLypJUT (README 2022/01/05 update).",
               "Input: one MR slice (B, 1, 224, 224) or repeated to 3 channels; the authors' own ACDC split.")),
    "test_mtunet": _cfg(num_classes=4, input_size=(3, 64, 64), pool_size=(64, 64), fixed_input_size=False,
                        mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
})


# dropped_params: the 10 unused global_atten.out Linears (DROPPED_OFFICIAL_KEYS)
@register_model(family="mtunet", task="segmentation", official_params=79_075_389, dropped_params={"*.CSAttention.global_atten.out.*": 3_806_720},
                manifest="mtunet/mtunet_synapse",
                reported={"synapse": dict(metric="dsc", value=79.20, dataset="synapse",
                                          source="official README (2022/01/04 update); paper 78.59"),
                          "acdc": dict(metric="dsc", value=91.61, dataset="acdc",
                                       source="official README (2022/01/05 update)")})
def mtunet(pretrained: bool = False, **kwargs) -> MTUNet:
    """MT-UNet: Synapse multi-organ CT (9 classes incl. background) and ACDC cardiac MR (4 classes) weights;
    ``num_classes`` follows the tag's cfg (``mtunet.acdc``: 4, 79,075,064 parameters as the official model)."""
    return _create_mtunet("mtunet", pretrained=pretrained, **kwargs)


@register_model(family="mtunet", task="segmentation", test_model=True, test_sizes=[(64, 64), (50, 70)])
def test_mtunet(pretrained: bool = False, **kwargs) -> MTUNet:
    """Tiny MT-UNet for tests: same structure, small widths, 64x64 position grid, any input size."""
    model_args = dict(img_size=64, num_classes=4, stem_widths=(8, 8, 16), embed_dims=(16, 32, 64),
                      num_heads=2, num_memory=8, dynamic_img_size=True)
    return _create_mtunet("test_mtunet", pretrained=pretrained, **dict(model_args, **kwargs))


# old names keep working (timm warns and maps them; zoo.create_model resolves them too)
register_model_deprecations(__name__, {
    "mtunet_synapse": "mtunet.synapse",
    "mtunet_acdc": "mtunet.acdc",
    "mtunet_test": "test_mtunet",
})
