"""Shunted Transformer (shunted self-attention via multi-scale token aggregation).

Paper: `Shunted Self-Attention via Multi-Scale Token Aggregation` (Ren, Zhou, He, Feng, Wang;
CVPR 2022) - https://arxiv.org/abs/2111.15193

Official code: https://github.com/OliverRensu/Shunted-Transformer (``SSA.py``). The repository has
no licence file, so the terms of the official code and weights are unstated. Weights are in a
Google Drive folder (no direct file URL): see the pretrained cfgs' ``origin_url`` and ``notes``.

A four-stage pyramid (strides 4 to 32) in the PVTv2 mould:

* stem: conv7x7 s2 (no bias) + BN + ReLU, ``num_conv`` x [conv3x3 + BN + ReLU], conv2x2 s2, LN;
* stages 2-4 start with an overlapping conv3x3 s2 patch embedding + LN;
* blocks are pre-norm, ``x + SSA(LN(x))`` then ``x + DetailSpecificFFN(LN(x))``; every stage ends
  with a LayerNorm; the head averages the last stage's tokens.

Shunted self-attention (paper Sec. 3.2, Eq. 1-3): at a stage of spatial-reduction rate ``r > 1``
the heads are split into two equal groups. Group 1 takes its keys and values from the map
aggregated at rate ``r`` (a ``r x r`` stride-``r`` conv), group 2 from the map aggregated at rate
``r / 2``; each aggregated map goes through LN + GELU and a Linear giving K and V, and a depthwise
3x3 conv of V (local enhancement) is added to V. At ``r = 1`` (the last stage) attention is plain
multi-head self-attention and the depthwise conv of V is added to the attention output.

Any input size: the official code needs every stage's H, W to be divisible by the rate. Here
only the key/value branch is padded (zeros, bottom/right) up to a multiple of each group's rate
before its aggregation conv; queries, and so every output token, stay at the true map size, so
there is nothing to crop, and a map that is already divisible is not touched (the official
computation, exactly).

LayerNorm eps are those of the official code: 1e-6 in blocks and at the end of stages, 1e-5
(``nn.LayerNorm``'s default) in the stem, the patch embeddings and inside the attention.
Channels-last (B, H, W, C) inside; features are handed out NCHW.

Official checkpoints are DeiT-style training files (``{'model': ..., 'args': argparse.Namespace,
...}``); :func:`zoo.hub.load_checkpoint` (behind ``zoo.create_model(checkpoint_path=...)``) reads
them without unpickling anything but tensors, containers and the (code-free) ``Namespace``.
"""
from __future__ import annotations

import math
import re
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ClassifierHead, DropPath, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model_deprecations
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint_seq

from zoo.hub import licence_note, unwrap_state_dict
from zoo.layers.conv_pos_embed import ConvPosEmbed
from zoo.layers.ffn import DetailSpecificFFN
from zoo.layers.padding import pad_to_multiple
from zoo.registry import register_checkpoint_filter, register_family, register_model
from zoo.validation import check_input

torch.fx.wrap("pad_to_multiple")  # fx: one call (whether and how much to pad depends on the map size)

__all__ = [
    "ShuntedTransformer", "ShuntedAttention", "ShuntedBlock", "checkpoint_filter_fn",
]

_GDRIVE = "https://drive.google.com/drive/folders/15iZKXFT7apjUSoN2WUMAbb0tvJgyh3YP"
_BAIDU = "https://pan.baidu.com/s/1a9nVWpw2SzP0csCBCF8DNw"
_REPO = "https://github.com/OliverRensu/Shunted-Transformer"

register_family(
    "shunted",
    title="Shunted Self-Attention via Multi-Scale Token Aggregation",
    paper_ids=("arXiv:2111.15193",),
    official_repo=_REPO,
    code_license="none stated (the official repository has no licence file)",
    description=(
        "PVTv2-like four-stage pyramid whose attention splits the heads into two groups attending to keys "
        "and values aggregated at two rates (r and r/2) with a depthwise-conv local enhancement of V, a "
        "detail-specific FFN (depthwise conv added residually inside the MLP) and a convolutional stem."),
    citation=(
        "@inproceedings{ren2022shunted,\n"
        "  title={Shunted Self-Attention via Multi-Scale Token Aggregation},\n"
        "  author={Ren, Sucheng and Zhou, Daquan and He, Shengfeng and Feng, Jiashi and Wang, Xinchao},\n"
        "  booktitle={CVPR},\n  year={2022}\n}"),
    module=__name__,
)

# nn.LayerNorm's default, used by the official stem, patch embeddings and attention
_InnerNorm = partial(nn.LayerNorm, eps=1e-5)
# the official models' norm_layer, used by blocks and stage ends
_BlockNorm = partial(nn.LayerNorm, eps=1e-6)


def _nhwc_conv(conv: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply an NCHW conv to a (B, H, W, C) tensor through a channels_last view (no copies)."""
    return conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class ShuntedStem(nn.Module):
    """Official ``Head``: conv7x7 s2 (no bias) + BN + ReLU, ``num_conv`` x [conv3x3 (no bias) + BN + ReLU],
    conv2x2 s2 (bias), LayerNorm (eps 1e-5). NCHW in, NHWC out at stride 4.

    The Sequential is called ``conv`` and keeps the official indices (ReLUs included), so stem keys
    are the official ones with ``patch_embed1.`` replaced by ``stem.``.
    """

    def __init__(self, in_chans: int = 3, embed_dim: int = 64, num_conv: int = 0,
                 norm_layer: Callable = _InnerNorm):
        super().__init__()
        layers: List[nn.Module] = [
            nn.Conv2d(in_chans, embed_dim, 7, stride=2, padding=3, bias=False),
            nn.BatchNorm2d(embed_dim), nn.ReLU(inplace=True)]
        for _ in range(num_conv):
            layers += [nn.Conv2d(embed_dim, embed_dim, 3, stride=1, padding=1, bias=False),
                       nn.BatchNorm2d(embed_dim), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(embed_dim, embed_dim, 2, stride=2))
        self.conv = nn.Sequential(*layers)
        self.norm = norm_layer(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # channels_last convs are the fast path on CPU and hand the trunk an NHWC tensor for free
        x = self.conv(x.contiguous(memory_format=torch.channels_last))
        return self.norm(x.permute(0, 2, 3, 1))


class OverlapPatchEmbed(nn.Module):
    """Downsampler between stages: conv3x3 s2 padding 1 (bias), LayerNorm (eps 1e-5). NHWC in and out."""

    def __init__(self, dim: int, out_dim: int, norm_layer: Callable = _InnerNorm):
        super().__init__()
        self.proj = nn.Conv2d(dim, out_dim, 3, stride=2, padding=1)
        self.norm = norm_layer(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(_nhwc_conv(self.proj, x))


class ShuntedAttention(nn.Module):
    """Shunted self-attention (paper Sec. 3.2) on (B, H, W, C) maps.

    ``q = Linear(x)`` split into ``num_heads`` heads of ``hd = dim / num_heads``, scale ``hd ** -0.5``.

    ``sr_ratio = r > 1``: for group g in (1, 2) with rate ``r_1 = r``, ``r_2 = r / 2`` and heads
    ``[0, h/2)``, ``[h/2, h)``::

        x_g = GELU(LN_g(Conv_{r_g x r_g, stride r_g}(x)))           # (H / r_g) x (W / r_g) tokens
        K_g, V_g = split(kv_g(x_g))                                 # Linear d -> d: d/2 for K, d/2 for V
        V_g = V_g + DWConv3x3_g(V_g)                                # local enhancement, on the reduced map
        O_g = softmax(q_g K_g^T * scale) V_g
        out = proj(concat(O_1, O_2))

    ``sr_ratio = 1`` (last stage): ``K, V = split(kv(x))`` (Linear d -> 2d),
    ``out = proj(softmax(q K^T * scale) V + DWConv3x3(V))``.

    When H or W is not a multiple of ``r_g``, the map entering ``sr_g`` is zero-padded bottom/right
    to the next multiple (the queries are not padded).
    """

    def __init__(
            self,
            dim: int,
            num_heads: int,
            sr_ratio: int = 1,
            qkv_bias: bool = True,
            attn_drop: float = 0.0,
            proj_drop: float = 0.0,
            norm_layer: Callable = _InnerNorm,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        if sr_ratio > 1 and (sr_ratio % 2 or num_heads % 2):
            raise ValueError(
                f"shunted attention with sr_ratio {sr_ratio} needs an even rate and an even number of heads "
                f"(two head groups at rates r and r/2), got num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.sr_ratio = sr_ratio
        self.attn_drop = attn_drop
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        if sr_ratio > 1:
            self.act = nn.GELU()
            self.sr1 = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.norm1 = norm_layer(dim)
            self.sr2 = nn.Conv2d(dim, dim, sr_ratio // 2, stride=sr_ratio // 2)
            self.norm2 = norm_layer(dim)
            self.kv1 = nn.Linear(dim, dim, bias=qkv_bias)
            self.kv2 = nn.Linear(dim, dim, bias=qkv_bias)
            self.local_conv1 = ConvPosEmbed(dim // 2, 3)
            self.local_conv2 = ConvPosEmbed(dim // 2, 3)
        else:
            self.kv = nn.Linear(dim, dim * 2, bias=qkv_bias)
            self.local_conv = ConvPosEmbed(dim, 3)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B, h, w, n * hd) -> (B, n, h * w, hd), channel = head * hd + c (the official split)."""
        B, h, w, c = t.shape
        return t.reshape(B, h * w, c // self.head_dim, self.head_dim).transpose(1, 2)

    def _group(self, x: torch.Tensor, q: torch.Tensor, sr: nn.Conv2d, norm: nn.Module, kv: nn.Linear,
               local_conv: ConvPosEmbed) -> torch.Tensor:
        """One head group: keys / values aggregated at the rate of ``sr`` (its kernel = stride)."""
        rate = sr.stride[0]
        x = pad_to_multiple(x, rate, channels_last=True)
        # (group 2 at r = 2 is a 1x1 conv: on this channels-last view PyTorch runs it as fast as the
        # equivalent Linear, so the conv module is called as it is)
        x = _nhwc_conv(sr, x)
        x = self.act(norm(x))
        k, v = kv(x).chunk(2, dim=-1)
        v = v + _nhwc_conv(local_conv, v)
        drop = self.attn_drop if self.training else 0.0
        return F.scaled_dot_product_attention(q, self._heads(k), self._heads(v), dropout_p=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        q = self._heads(self.q(x))
        if self.sr_ratio > 1:
            half = self.num_heads // 2
            out1 = self._group(x, q[:, :half], self.sr1, self.norm1, self.kv1, self.local_conv1)
            out2 = self._group(x, q[:, half:], self.sr2, self.norm2, self.kv2, self.local_conv2)
            # concatenating token-major gives (B, N, h, hd) contiguous: one copy, and the reshape is a view
            x = torch.cat([out1.transpose(1, 2), out2.transpose(1, 2)], dim=2).reshape(B, H, W, C)
        else:
            k, v = self.kv(x).chunk(2, dim=-1)
            drop = self.attn_drop if self.training else 0.0
            x = F.scaled_dot_product_attention(q, self._heads(k), self._heads(v), dropout_p=drop)
            x = x.transpose(1, 2).reshape(B, H, W, C) + _nhwc_conv(self.local_conv, v)
        return self.proj_drop(self.proj(x))


class ShuntedBlock(nn.Module):
    """Pre-norm block: ``x + SSA(LN(x))``, then ``x + DetailSpecificFFN(LN(x))`` (LN eps 1e-6); NHWC."""

    def __init__(
            self,
            dim: int,
            num_heads: int,
            sr_ratio: int = 1,
            mlp_ratio: float = 4.0,
            qkv_bias: bool = True,
            proj_drop: float = 0.0,
            attn_drop: float = 0.0,
            drop_path: float = 0.0,
            act_layer: Callable = nn.GELU,
            norm_layer: Callable = _BlockNorm,
    ):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = ShuntedAttention(
            dim, num_heads, sr_ratio=sr_ratio, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        # int() truncation as in the official Block
        self.mlp = DetailSpecificFFN(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return x


class ShuntedStage(nn.Module):
    """Patch embedding (none in stage 1, which follows the stem), shunted blocks, LayerNorm; NHWC."""

    def __init__(
            self,
            dim: int,
            out_dim: int,
            depth: int,
            num_heads: int,
            sr_ratio: int,
            mlp_ratio: float,
            downsample: bool = True,
            qkv_bias: bool = True,
            proj_drop: float = 0.0,
            attn_drop: float = 0.0,
            drop_path: Sequence[float] = (),
            norm_layer: Callable = _BlockNorm,
    ):
        super().__init__()
        self.grad_checkpointing = False
        self.downsample = OverlapPatchEmbed(dim, out_dim) if downsample else nn.Identity()
        drop_path = list(drop_path) or [0.0] * depth
        self.blocks = nn.Sequential(*[
            ShuntedBlock(
                out_dim, num_heads, sr_ratio=sr_ratio, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                proj_drop=proj_drop, attn_drop=attn_drop, drop_path=drop_path[i], norm_layer=norm_layer)
            for i in range(depth)])
        self.norm = norm_layer(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.grad_checkpointing and len(self.blocks) and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return self.norm(x)


class ShuntedTransformer(nn.Module):
    """Shunted Transformer (arXiv:2111.15193): conv stem, four stages of shunted blocks, mean-pool head."""

    def __init__(
            self,
            depths: Sequence[int] = (1, 2, 4, 1),
            embed_dims: Sequence[int] = (64, 128, 256, 512),
            num_heads: Sequence[int] = (2, 4, 8, 16),
            mlp_ratios: Sequence[float] = (8, 8, 4, 4),
            sr_ratios: Sequence[int] = (8, 4, 2, 1),
            num_conv: int = 0,
            qkv_bias: bool = True,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "avg",
            drop_rate: float = 0.0,
            proj_drop_rate: float = 0.0,
            attn_drop_rate: float = 0.0,
            drop_path_rate: float = 0.0,
    ):
        """
        Args:
            depths: shunted blocks per stage (0 is allowed).
            embed_dims: width of each stage (the stem outputs ``embed_dims[0]``; 64 in every official model).
            num_heads: heads per stage (even where ``sr_ratios > 1``).
            mlp_ratios: FFN hidden width over block width, per stage.
            sr_ratios: key/value aggregation rate r per stage (even, or 1 for plain MHSA).
            num_conv: extra conv3x3 + BN + ReLU layers in the stem (T 0, S 1, B 2).
            drop_rate: dropout before the classifier.
            proj_drop_rate: dropout after the attention projection and in the FFN (the official ``drop_rate``).
        """
        super().__init__()
        num_stages = len(depths)
        if not (len(embed_dims) == len(num_heads) == len(mlp_ratios) == len(sr_ratios) == num_stages):
            raise ValueError("depths, embed_dims, num_heads, mlp_ratios and sr_ratios need one entry per stage")
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.output_fmt = "NHWC"
        self.num_features = self.head_hidden_size = embed_dims[-1]
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        # conv7x7 s2 p3 then conv2x2 s2 needs >= 2 rows after the first conv
        self.min_input_size = 3

        self.stem = ShuntedStem(in_chans, embed_dims[0], num_conv)
        dpr = [x.tolist() for x in torch.linspace(0, drop_path_rate, sum(depths), device="cpu").split(list(depths))]
        self.stages = nn.Sequential()
        self.feature_info = []
        for i in range(num_stages):
            self.stages.append(ShuntedStage(
                embed_dims[max(i - 1, 0)], embed_dims[i], depths[i], num_heads[i], sr_ratios[i], mlp_ratios[i],
                downsample=i > 0, qkv_bias=qkv_bias, proj_drop=proj_drop_rate, attn_drop=attn_drop_rate,
                drop_path=dpr[i]))
            self.feature_info.append(dict(num_chs=embed_dims[i], reduction=2 ** (i + 2), module=f"stages.{i}"))
        self.head = ClassifierHead(self.num_features, num_classes, pool_type=global_pool, drop_rate=drop_rate,
                                   input_fmt="NHWC")
        self.apply(self._init_weights)

    def _init_weights(self, m: nn.Module) -> None:
        # the official initialisation: trunc-normal Linear, fan-out normal convs, zero biases
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return set()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(
            stem=r"^stem",
            blocks=r"^stages\.(\d+)" if coarse else [
                (r"^stages\.(\d+)\.downsample", (0,)),
                (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                (r"^stages\.(\d+)\.norm", (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        for s in self.stages:
            s.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        ref = next(self.parameters())
        self.num_classes = num_classes
        self.head.reset(num_classes, pool_type=global_pool)
        # the new classifier joins the model where it is (device, dtype, train/eval), as timm's models do
        self.head.to(device=ref.device, dtype=ref.dtype).train(self.training)

    def _check(self, x: torch.Tensor) -> None:
        check_input(x, model=self, in_chans=self.in_chans, min_size=self.min_input_size)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Stage outputs (after each stage's LayerNorm) as NCHW maps at strides 4, 8, 16, 32.

        Args:
            indices: take the last n stages if int, all if None, the listed ones if a sequence.
            norm: accepted for timm compatibility; every stage already ends with its own LayerNorm.
            stop_early: stop after the last stage asked for.
            output_fmt: 'NCHW' (or 'NHWC', the trunk's own layout).
            intermediates_only: return only the list.
        """
        assert output_fmt in ("NCHW", "NHWC"), "output_fmt must be NCHW or NHWC"
        self._check(x)
        intermediates = []
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        stages = self.stages if torch.jit.is_scripting() or not stop_early else self.stages[:max_index + 1]
        x = self.stem(x)
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take_indices:
                intermediates.append(x.permute(0, 3, 1, 2).contiguous() if output_fmt == "NCHW" else x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[:max_index + 1]
        if prune_head:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        x = self.stem(x)
        return self.stages(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=True) if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_BLOCK_RE = re.compile(r"^block(\d+)\.(\d+)\.(.+)$")
_STAGE_RE = re.compile(r"^(patch_embed|norm)(\d+)\.(.+)$")
_LOCAL_CONV_RE = re.compile(r"^attn\.(local_conv\d?)\.(weight|bias)$")


def _convert_key(k: str) -> str:
    if k.startswith("patch_embed1."):
        return "stem." + k[len("patch_embed1."):]
    if (m := _BLOCK_RE.match(k)) is not None:
        rest = m[3]
        if rest.startswith("mlp.dwconv.dwconv."):
            rest = "mlp.dwconv." + rest[len("mlp.dwconv.dwconv."):]
        elif (lc := _LOCAL_CONV_RE.match(rest)) is not None:
            rest = f"attn.{lc[1]}.proj.{lc[2]}"
        return f"stages.{int(m[1]) - 1}.blocks.{m[2]}.{rest}"
    if (m := _STAGE_RE.match(k)) is not None:
        part = "downsample" if m[1] == "patch_embed" else "norm"
        return f"stages.{int(m[2]) - 1}.{part}.{m[3]}"
    if k in ("head.weight", "head.bias"):
        return "head.fc." + k[len("head."):]
    return k


@register_checkpoint_filter("shunted")
def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Official Shunted Transformer checkpoints (raw or DeiT-style ``{'model': ...}``) to zoo keys.

    ``patch_embed1.*`` -> ``stem.*``; ``patch_embed{i}.*`` (i >= 2) -> ``stages.{i-1}.downsample.*``;
    ``block{i}.{j}.*`` -> ``stages.{i-1}.blocks.{j}.*`` (``mlp.dwconv.dwconv`` -> ``mlp.dwconv``,
    ``attn.local_conv*`` -> ``attn.local_conv*.proj``); ``norm{i}`` -> ``stages.{i-1}.norm``;
    ``head`` -> ``head.fc``. A no-op on zoo keys.
    """
    state_dict = unwrap_state_dict(state_dict)
    return {_convert_key(k): v for k, v in state_dict.items()}


def _create_shunted(variant: str, pretrained: bool = False, **kwargs) -> ShuntedTransformer:
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3))
    return build_model_with_cfg(
        ShuntedTransformer, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(flatten_sequential=True, out_indices=out_indices, feature_cls="getter"),
        **kwargs)


def _cfg(url: str = "", **kwargs) -> Dict[str, Any]:
    return {
        "url": url, "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "min_input_size": (3, 3, 3),  # ShuntedTransformer.min_input_size
        "crop_pct": 0.875, "interpolation": "bicubic", "fixed_input_size": False,
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stem.conv.0", "classifier": "head.fc",
        "license": "other", "paper_ids": "arXiv:2111.15193", "origin_url": _REPO,
        **kwargs,
    }


def _official_cfg(size: str, top1: float) -> Dict[str, Any]:
    # no direct file URL exists: the weights sit in a Google Drive folder (and a Baidu Pan mirror)
    return _cfg(
        origin_url=_GDRIVE,
        paper_name="Shunted Self-Attention via Multi-Scale Token Aggregation",
        notes=(
            f"weights: Shunted-{size} in the Google Drive folder {_GDRIVE} (Baidu Pan mirror {_BAIDU}, code "
            "hazr); no direct URL, so download by hand and load with zoo.create_model(name, "
            "checkpoint_path=FILE) (a DeiT-style file with an argparse args entry)",
            licence_note("unstated", _REPO, "the official repository has no licence file; the terms of code and "
                                            "weights are unstated"),
        ))


default_cfgs = generate_default_cfgs({
    "shunted_tiny.in1k": _official_cfg("T", 79.8),
    "shunted_small.in1k": _official_cfg("S", 82.9),
    "shunted_base.in1k": _official_cfg("B", 84.0),
    "test_shunted": _cfg(input_size=(3, 96, 96), pool_size=(3, 3)),
})


def _top1(value: float) -> Dict[str, Dict[str, Any]]:
    return {"in1k": dict(metric="top1", value=value, dataset="imagenet-1k",
                         source="paper Table 2; official README")}


_COMMON = dict(embed_dims=(64, 128, 256, 512), num_heads=(2, 4, 8, 16), mlp_ratios=(8, 8, 4, 4),
               sr_ratios=(8, 4, 2, 1), qkv_bias=True)


@register_model(family="shunted", task="classification", official_params=11_553_576, manifest="shunted/shunted_t",
                reported=_top1(79.8))
def shunted_tiny(pretrained: bool = False, **kwargs) -> ShuntedTransformer:
    args = dict(_COMMON, depths=(1, 2, 4, 1), num_conv=0)
    return _create_shunted("shunted_tiny", pretrained, **dict(args, **kwargs))


@register_model(family="shunted", task="classification", official_params=22_401_256, manifest="shunted/shunted_s",
                reported=_top1(82.9))
def shunted_small(pretrained: bool = False, **kwargs) -> ShuntedTransformer:
    args = dict(_COMMON, depths=(2, 4, 12, 1), num_conv=1)
    return _create_shunted("shunted_small", pretrained, **dict(args, **kwargs))


@register_model(family="shunted", task="classification", official_params=39_614_376, manifest="shunted/shunted_b",
                reported=_top1(84.0))
def shunted_base(pretrained: bool = False, **kwargs) -> ShuntedTransformer:
    args = dict(_COMMON, depths=(3, 4, 24, 2), num_conv=2)
    return _create_shunted("shunted_base", pretrained, **dict(args, **kwargs))


@register_model(family="shunted", task="classification", test_model=True, test_sizes=[(64, 64), (70, 95)])
def test_shunted(pretrained: bool = False, **kwargs) -> ShuntedTransformer:
    """Tiny Shunted Transformer (one stem conv, every attention kind) for the general tests."""
    args = dict(depths=(1, 1, 1, 1), embed_dims=(16, 16, 24, 32), num_heads=(2, 2, 2, 4), mlp_ratios=(2, 2, 2, 2),
                sr_ratios=(8, 4, 2, 1), num_conv=1, qkv_bias=True)
    return _create_shunted("test_shunted", pretrained, **dict(args, **kwargs))


# old names keep working (timm warns and maps them; zoo.create_model resolves them too)
register_model_deprecations(__name__, {
    "shunted_t": "shunted_tiny",
    "shunted_s": "shunted_small",
    "shunted_b": "shunted_base",
    "shunted_test": "test_shunted",
})
