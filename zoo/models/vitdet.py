"""ViTDet: a plain ViT backbone with windowed attention and a simple feature pyramid.

Paper: Yanghao Li, Hanzi Mao, Ross Girshick, Kaiming He, "Exploring Plain Vision Transformer
Backbones for Object Detection", ECCV 2022, arXiv:2203.16527.
Official code: facebookresearch/detectron2, ``detectron2/modeling/backbone/vit.py`` and
``projects/ViTDet`` (Apache-2.0). Weights: detectron2 model zoo (CC BY-SA 3.0), MAE ImageNet-1k
pretraining (CC-BY-NC-4.0), iBOT (Apache-2.0).

The trunk is a ViT-B/L/H with patch 16 whose blocks attend inside non-overlapping 14x14 windows
(zero-padded at the bottom/right after ``norm1``), except four evenly spaced global blocks (Sec. 3,
"backbone adaptation"); every block adds MViTv2's decomposed relative position to its attention
logits, and the ImageNet absolute position embedding (a 14x14 grid with a class-token slot) is
resized bicubically to the token grid on every forward. The stride-16 output feeds the simple
feature pyramid (:class:`zoo.adapters.SimpleFeaturePyramid`), which gives strides 4, 8, 16, 32
and 64.

What a zoo ViTDet returns:

* ``forward(x)`` / ``forward_features(x)``: the trunk's stride-16 map ``(B, C, ceil(H/16), ceil(W/16))``
  (the input is zero-padded at the bottom/right to a multiple of 16, as detectron2's data pipeline
  pads images); the trunk has no final norm.
* ``features_only=True`` and ``forward_intermediates``: the pyramid levels p2..p6 (NCHW, stride
  4..64; built with ``pyramid=True``, the default), or per-block stride-16 maps for a trunk built
  with ``pyramid=False`` (the plain-ViT convention of timm's ViTs).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import (
    DropPath, Mlp, calculate_drop_path_rates, resample_abs_pos_embed, resample_patch_embed, to_2tuple, trunc_normal_,
)
from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model_deprecations
from timm.models._features import feature_take_indices

from zoo.adapters.pyramid import SimpleFeaturePyramid
from zoo.hub import load_into, unwrap_state_dict
from zoo.layers.rel_pos import get_rel_pos
from zoo.layers.window_attention import window_partition, window_reverse
from zoo.registry import register_family, register_model
from zoo.validation import check_input, is_fx_tracing

__all__ = ["VitDet", "RelPosAttention", "VitDetBlock", "checkpoint_filter_fn"]

_logger = logging.getLogger(__name__)

register_family(
    "vitdet",
    title="Exploring Plain Vision Transformer Backbones for Object Detection",
    paper_ids=("arXiv:2203.16527",),
    official_repo="https://github.com/facebookresearch/detectron2/tree/main/projects/ViTDet",
    code_license="Apache-2.0",
    description=(
        "Plain ViT backbone (patch 16) with 14x14 window attention in most blocks and a few global "
        "blocks, decomposed relative position, an interpolated absolute position embedding and a "
        "simple feature pyramid (strides 4-64) built from the last map only."),
    citation=(
        "@inproceedings{li2022exploring,\n"
        "  title={Exploring Plain Vision Transformer Backbones for Object Detection},\n"
        "  author={Li, Yanghao and Mao, Hanzi and Girshick, Ross and He, Kaiming},\n"
        "  booktitle={European Conference on Computer Vision (ECCV)},\n"
        "  year={2022}\n}"),
    module=__name__,
)


def _axis_one_hot(n_rows: int, n_cols: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(n_rows * n_cols, n_rows + n_cols)``: for each row-major token, one-hot of its row, then of its column."""
    rows = torch.eye(n_rows, device=device, dtype=dtype).repeat_interleave(n_cols, dim=0)
    cols = torch.eye(n_cols, device=device, dtype=dtype).repeat(n_rows, 1)
    return torch.cat([rows, cols], dim=1)


class RelPosAttention(nn.Module):
    """Multi-head self-attention with decomposed relative position (MViTv2, Li et al. 2022, Eq. 4).

    ``logits[q, k] = (q * scale) . k + q . R_h[qh - kh] + q . R_w[qw - kw]`` with ``R_h, R_w`` the
    axial tables ``rel_pos_h, rel_pos_w`` ((2 * size - 1, head_dim), linearly resized when the map
    differs from the size they were built for); the relative terms use the unscaled queries.

    The bias ``rel_h[..., :, None] + rel_w[..., None, :]`` goes to ``F.scaled_dot_product_attention`` as
    ``attn_mask`` (on CPU its fused kernel with a mask beats writing the softmax out). With
    ``fold_rel_pos = True`` the two terms are instead folded into one mask-free attention: queries
    are extended with ``[q . R_h, q . R_w]`` and keys with one-hot codes of their row and column, so
    ``q' . k'`` is exactly the logit above and no ``(N, N)`` bias is materialized. That saves the
    bias memory of the global blocks at high resolution (12 x 4096^2 floats per image for ViT-B at
    1024) but is slower on CPU, so it is off by default.
    """

    def __init__(
            self,
            dim: int,
            num_heads: int = 8,
            qkv_bias: bool = True,
            use_rel_pos: bool = True,
            input_size: Optional[Tuple[int, int]] = None,
            attn_drop: float = 0.,
            proj_drop: float = 0.,
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = attn_drop
        self.proj_drop = nn.Dropout(proj_drop)
        self.use_rel_pos = use_rel_pos
        # True: relative terms folded into q/k (no N x N bias, slower); False: additive bias as attn_mask
        self.fold_rel_pos = False
        if use_rel_pos:
            if input_size is None:
                raise ValueError("decomposed relative position needs the input size the tables are built for")
            self.rel_pos_h = nn.Parameter(torch.zeros(2 * input_size[0] - 1, self.head_dim))
            self.rel_pos_w = nn.Parameter(torch.zeros(2 * input_size[1] - 1, self.head_dim))

    def forward(self, x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
        """``(B, H * W, C)`` tokens of ``size = (H, W)`` maps (row-major) -> ``(B, H * W, C)``."""
        B, N, C = x.shape
        H, W = size
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        dropout_p = self.attn_drop if self.training else 0.
        if not self.use_rel_pos:
            x = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=self.scale)
        else:
            Rh = get_rel_pos(H, H, self.rel_pos_h).to(q.dtype)  # (H, H, hd): [query row, key row]
            Rw = get_rel_pos(W, W, self.rel_pos_w).to(q.dtype)
            r_q = q.reshape(B, self.num_heads, H, W, self.head_dim)
            rel_h = torch.einsum("bnhwc,hkc->bnhwk", r_q, Rh).reshape(B, self.num_heads, N, H)
            rel_w = torch.einsum("bnhwc,wkc->bnhwk", r_q, Rw).reshape(B, self.num_heads, N, W)
            if self.fold_rel_pos:
                q = torch.cat([q * self.scale, rel_h, rel_w], dim=-1)
                codes = _axis_one_hot(H, W, q.device, q.dtype).expand(B, self.num_heads, N, H + W)
                k = torch.cat([k, codes], dim=-1)
                # equal q/k/v widths keep SDPA on its fused kernel; the zero columns of v are dropped
                v = F.pad(v, (0, H + W))
                x = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=1.0)[..., :self.head_dim]
            else:
                bias = (rel_h.view(B, self.num_heads, N, H, 1) + rel_w.view(B, self.num_heads, N, 1, W))
                x = F.scaled_dot_product_attention(
                    q, k, v, attn_mask=bias.reshape(B, self.num_heads, N, N), dropout_p=dropout_p, scale=self.scale)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class VitDetBlock(nn.Module):
    """Pre-norm transformer block; windowed (``window_size > 0``) or global attention.

    Window blocks zero-pad the normed map at the bottom/right to window multiples, attend inside each
    window and crop back (detectron2's order: pad after ``norm1``, so padded tokens are zeros).
    """

    def __init__(
            self,
            dim: int,
            num_heads: int,
            mlp_ratio: float = 4.,
            qkv_bias: bool = True,
            drop_path: float = 0.,
            use_rel_pos: bool = True,
            window_size: int = 0,
            input_size: Tuple[int, int] = (64, 64),
            attn_drop: float = 0.,
            proj_drop: float = 0.,
            norm_eps: float = 1e-6,
    ):
        super().__init__()
        self.window_size = window_size
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = RelPosAttention(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, use_rel_pos=use_rel_pos,
            input_size=(window_size, window_size) if window_size > 0 else input_size,
            attn_drop=attn_drop, proj_drop=proj_drop)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=nn.GELU, drop=proj_drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0. else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, C)`` -> ``(B, H, W, C)``."""
        B, H, W, C = x.shape
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            ws = self.window_size
            windows, padded = window_partition(x, ws)
            windows = self.attn(windows, (ws, ws))
            x = window_reverse(windows, ws, padded, (H, W))
        else:
            x = self.attn(x.reshape(B, H * W, C), (H, W)).view(B, H, W, C)
        x = shortcut + self.drop_path1(x)
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return x


def _resize_abs_pos(pos_embed: torch.Tensor, h: int, w: int) -> torch.Tensor:
    pos = pos_embed[:, 1:]
    g = int(math.sqrt(pos.shape[1]))
    pos = pos.reshape(1, g, g, -1)
    if (g, g) != (h, w):
        pos = F.interpolate(pos.permute(0, 3, 1, 2), size=(h, w), mode="bicubic", align_corners=False)
        pos = pos.permute(0, 2, 3, 1)
    return pos


torch.fx.wrap("_resize_abs_pos")
torch.fx.wrap("get_rel_pos")  # one call in an fx graph: the resize depends on the map size


class VitDet(nn.Module):
    """ViTDet backbone: plain ViT trunk (channels-last inside) + optional simple feature pyramid."""

    # the pyramid only serves features_only / forward_intermediates; forward() returns the trunk map
    no_grad_params = ("pyramid.*",)

    def __init__(
            self,
            img_size: Union[int, Tuple[int, int]] = 1024,
            patch_size: int = 16,
            in_chans: int = 3,
            embed_dim: int = 768,
            depth: int = 12,
            num_heads: int = 12,
            mlp_ratio: float = 4.,
            qkv_bias: bool = True,
            window_size: int = 14,
            global_block_indexes: Sequence[int] = (2, 5, 8, 11),
            use_rel_pos: bool = True,
            pretrain_img_size: int = 224,
            pyramid: bool = True,
            pyramid_channels: int = 256,
            scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
            pyramid_top_block: bool = True,
            num_classes: int = 0,
            global_pool: str = "avg",
            drop_rate: float = 0.,
            attn_drop_rate: float = 0.,
            proj_drop_rate: float = 0.,
            drop_path_rate: float = 0.,
    ):
        """
        Args:
            img_size: input size the global blocks' relative-position tables are built for (1024).
            patch_size: patch (and trunk output) stride.
            window_size: window of the non-global blocks (14).
            global_block_indexes: blocks with global attention (B: 2, 5, 8, 11).
            pretrain_img_size: size of the absolute position grid (224 / 16 = 14, plus a class slot).
            pyramid: build the simple feature pyramid (features_only / forward_intermediates levels).
            pyramid_channels: width of every pyramid level (256).
            num_classes: optional linear classifier on the average-pooled trunk map (0: none, the
                dense default, ``forward`` returns the map).
        """
        super().__init__()
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.in_chans = in_chans
        self.patch_size = patch_size
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.grad_checkpointing = False
        self.global_block_indexes = tuple(global_block_indexes)

        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        num_pos = (pretrain_img_size // patch_size) ** 2
        self.pos_embed = nn.Parameter(torch.zeros(1, num_pos + 1, embed_dim))  # slot 0: the class token's
        img_h, img_w = to_2tuple(img_size)  # timm's config.json records sizes as [h, w]
        grid = (img_h // patch_size, img_w // patch_size)
        dpr = calculate_drop_path_rates(drop_path_rate, depth)  # linear decay, as detectron2
        self.blocks = nn.Sequential(*[
            VitDetBlock(
                embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=dpr[i],
                use_rel_pos=use_rel_pos, window_size=0 if i in self.global_block_indexes else window_size,
                input_size=grid, attn_drop=attn_drop_rate, proj_drop=proj_drop_rate)
            for i in range(depth)])

        if pyramid:
            self.pyramid = SimpleFeaturePyramid(
                embed_dim, pyramid_channels, scale_factors=scale_factors, top_block=pyramid_top_block,
                in_stride=patch_size)
            names = list(self.pyramid.stage_names) + (["top_block"] if pyramid_top_block else [])
            self.feature_info = [
                dict(num_chs=pyramid_channels, reduction=s, module=f"pyramid.{n}")
                for s, n in zip(self.pyramid.strides, names)]
        else:
            self.pyramid = None
            self.feature_info = [
                dict(num_chs=embed_dim, reduction=patch_size, module=f"blocks.{i}") for i in range(depth)]

        # the pyramid's stride-2 max-pool (official floor mode) needs a token map of at least 2 x 2
        self.min_input_size = patch_size + 1 if pyramid and 0.5 in tuple(scale_factors) else 1
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        trunc_normal_(self.pos_embed, std=.02)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if isinstance(self.head, nn.Linear):
            trunc_normal_(self.head.weight, std=.02)
            nn.init.zeros_(self.head.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> Set[str]:
        return {"pos_embed"} | {n for n, _ in self.named_parameters() if "rel_pos" in n}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(stem=r"^pos_embed|patch_embed", blocks=[(r"^blocks\.(\d+)", None), (r"^pyramid", (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = global_pool
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def _abs_pos(self, h: int, w: int) -> torch.Tensor:
        """The 14x14 position grid (class slot dropped) resized bicubically to ``(1, h, w, C)``."""
        return _resize_abs_pos(self.pos_embed, h, w)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[-2:]
        p = self.patch_size
        pad_h, pad_w = (p - H % p) % p, (p - W % p) % p
        if is_fx_tracing() or pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        x = self.patch_embed.proj(x).permute(0, 2, 3, 1)  # (B, h, w, C)
        return x + self._abs_pos(x.shape[1], x.shape[2]).to(x.dtype)

    def _pyramid_levels(self, x: torch.Tensor, size: Tuple[int, int]) -> List[torch.Tensor]:
        """SFP levels of the NCHW trunk map, cropped to ``ceil(input / stride)`` (padding-only rows dropped)."""
        assert self.pyramid is not None
        levels = self.pyramid.forward_levels(x)
        H, W = size
        return [f[..., :-(-H // s), :-(-W // s)] for f, s in zip(levels, self.pyramid.strides)]

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Pyramid levels p2..p6 (model with ``pyramid``) or per-block maps, all NCHW.

        Args:
            indices: which levels (or blocks): None for all, an int for the last n, or a list.
            norm: unused (the trunk has no final norm).
            stop_early: per-block mode only, stop after the last requested block.
        Returns:
            ``(final, intermediates)``, ``final`` the trunk's NCHW stride-16 map (as forward_features),
            or the list alone if ``intermediates_only``.
        """
        check_input(x, model=self, in_chans=self.in_chans, min_size=self.min_input_size)
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        size = (x.shape[-2], x.shape[-1])
        if self.pyramid is not None:
            take_indices, _ = feature_take_indices(len(self.feature_info), indices)
            final = self._forward_trunk(x)
            levels = self._pyramid_levels(final, size)
            intermediates = [levels[i] for i in take_indices]
            return intermediates if intermediates_only else (final, intermediates)

        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        x = self._embed(x)
        blocks = self.blocks if not (stop_early or intermediates_only) else self.blocks[:max_index + 1]
        intermediates = []
        for i, blk in enumerate(blocks):
            x = blk(x)
            if i in take_indices:
                intermediates.append(x.permute(0, 3, 1, 2))
        if intermediates_only:
            return intermediates
        return x.permute(0, 3, 1, 2), intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        """Drop what the requested intermediates do not need (blocks after the last one, the head)."""
        if self.pyramid is not None:
            take_indices, _ = feature_take_indices(len(self.feature_info), indices)
        else:
            take_indices, max_index = feature_take_indices(len(self.blocks), indices)
            self.blocks = self.blocks[:max_index + 1]
        if prune_head:
            self.reset_classifier(0)
        return take_indices

    def _forward_trunk(self, x: torch.Tensor) -> torch.Tensor:
        x = self._embed(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return x.permute(0, 3, 1, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, H, W)`` -> the stride-16 map ``(B, embed_dim, ceil(H/16), ceil(W/16))``."""
        check_input(x, model=self, in_chans=self.in_chans, min_size=self.min_input_size)
        return self._forward_trunk(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if self.num_classes == 0:
            return x  # the dense output is the map itself
        x = self.head_drop(x.mean(dim=(2, 3)))
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_pyramid(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The pyramid levels p2..p6 (NCHW), detectron2's ``SimpleFeaturePyramid`` output."""
        if self.pyramid is None:
            raise ValueError("this ViTDet was built with pyramid=False")
        return self.forward_intermediates(x, intermediates_only=True)

    def load_pretrained(self, path: str) -> None:
        """Load an official checkpoint file (detectron2 ``.pkl``, MAE / iBOT ``.pth``) through the filter."""
        load_into(self, path, checkpoint_filter_fn)


# ---------------------------------------------------------------------------------------------------
# checkpoints

_DROP_PREFIXES = (
    "cls_token", "mask_token", "masked_embed", "norm.", "fc_norm.", "head.", "decoder", "proposal_generator.",
    "roi_heads.", "pixel_mean", "pixel_std", "layernorm.", "pooler.",
)


def _official_to_zoo_key(k: str) -> str:
    # detectron2 (full detector or bare backbone), HF transformers VitDet, iBOT/DINO wrappers
    for p in ("backbone.", "vitdet.", "model."):
        if k.startswith(p) and not k.startswith("backbone.net.") and not k.startswith("backbone.simfp_"):
            k = k[len(p):]
            break
    if k.startswith("backbone.net."):
        k = k[len("backbone.net."):]
    elif k.startswith("backbone.simfp_"):
        k = "pyramid." + k[len("backbone."):]
    elif k.startswith("net."):
        k = k[len("net."):]
    if k.startswith("simfp_"):
        k = "pyramid." + k
    # HF transformers VitDetBackbone
    k = k.replace("embeddings.position_embeddings", "pos_embed")
    k = k.replace("embeddings.projection.projection.", "patch_embed.proj.")  # transformers < 5
    k = k.replace("embeddings.projection.", "patch_embed.proj.")
    if k.startswith("encoder.layer."):
        k = "blocks." + k[len("encoder.layer."):]
        k = k.replace(".attention.", ".attn.")
    return k


def _resize_rel_pos(table: torch.Tensor, length: int) -> torch.Tensor:
    if table.shape[0] == length:
        return table
    out = F.interpolate(table.t()[None].float(), size=length, mode="linear", align_corners=False)
    return out[0].t().to(table.dtype)


def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Official ViTDet-family checkpoints -> zoo keys; a no-op on zoo state dicts.

    Layouts: detectron2 ViTDet detectors and backbones (``backbone.net.*``, ``backbone.simfp_*``; the
    detector heads are dropped), MAE encoders (timm Hub ``vit_*_patch{16,14}_224.mae`` and the MAE /
    detectron2 ``mae_pretrain_vit_*.pth``: class token and final norm dropped, relative-position tables
    zero as in ViTDet's initialization, ViT-H/14 patch kernel resampled to 16 and its position grid to
    14x14), HF transformers ``VitDetBackbone`` and iBOT / DINO checkpoints (``teacher`` preferred,
    ``module.`` / ``backbone.`` prefixes, projection heads dropped). Keys the checkpoint lacks that a
    pretraining cannot have (relative-position tables, the pyramid) are filled from the model's own
    initialization, with a log message.
    """
    if isinstance(state_dict, dict) and isinstance(state_dict.get("teacher"), dict):
        state_dict = state_dict["teacher"]
    sd = unwrap_state_dict(state_dict)
    target = model.state_dict()
    out: Dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not torch.is_tensor(v):
            continue
        k = _official_to_zoo_key(k)
        if k not in target and k.startswith(_DROP_PREFIXES):
            continue
        if k.startswith("pyramid.") and getattr(model, "pyramid", None) is None:
            continue
        ref = target.get(k)
        if ref is not None and v.shape != ref.shape:
            if k == "patch_embed.proj.weight":
                v = resample_patch_embed(v.float(), list(ref.shape[-2:])).to(v.dtype)
            elif k == "pos_embed":
                n = v.shape[1]
                prefix = 0 if math.isqrt(n) ** 2 == n else 1
                g = math.isqrt(ref.shape[1] - 1)
                v = resample_abs_pos_embed(v.float(), [g, g], num_prefix_tokens=prefix, antialias=False).to(v.dtype)
                if prefix == 0:
                    v = torch.cat([v.new_zeros(1, 1, v.shape[-1]), v], dim=1)
            elif k.endswith(("rel_pos_h", "rel_pos_w")):
                v = _resize_rel_pos(v, ref.shape[0])
            elif k.startswith("pyramid."):
                continue  # a pyramid of another width (pyramid_channels): initialized afresh below
        out[k] = v
    missing = [k for k in target if k not in out]
    filled = [k for k in missing if k.endswith(("rel_pos_h", "rel_pos_w")) or k.startswith("pyramid.")]
    if filled and len(filled) < len(target):
        for k in filled:
            out[k] = torch.zeros_like(target[k]) if "rel_pos" in k else target[k].detach().clone()
        _logger.info("checkpoint has no %d ViTDet-specific tensors (relative-position tables: zeros; "
                     "pyramid: fresh initialization): %s", len(filled), ", ".join(filled[:6]))
    return out


def _create_vitdet(variant: str, pretrained: bool = False, **kwargs: Any) -> VitDet:
    pyramid = kwargs.get("pyramid", True)
    depth = kwargs.get("depth", 12)
    default_out = (0, 1, 2, 3, 4) if pyramid else (depth - 1,)
    if pyramid and not kwargs.get("pyramid_top_block", True):
        default_out = (0, 1, 2, 3)
    out_indices = kwargs.pop("out_indices", default_out)
    return build_model_with_cfg(
        VitDet, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(feature_cls="getter", flatten_sequential=True, out_indices=out_indices),
        **kwargs,
    )


def _cfg(url: str = "", **kwargs: Any) -> Dict[str, Any]:
    return {
        "url": url,
        "num_classes": 0,
        "input_size": (3, 1024, 1024),
        "pool_size": (64, 64),  # forward_features: stride 16
        "min_input_size": (3, 17, 17),  # the pyramid's stride-32 level needs two patches per side
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "fixed_input_size": False,
        "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj",
        "classifier": "head",
        "paper_ids": "arXiv:2203.16527",
        "origin_url": "https://github.com/facebookresearch/detectron2/tree/main/projects/ViTDet",
        **kwargs,
    }


_D2 = "https://dl.fbaipublicfiles.com/detectron2/ViTDet"
_D2_LICENSE = "cc-by-sa-3.0"
_MAE = dict(license="cc-by-nc-4.0", paper_ids=("arXiv:2111.06377", "arXiv:2203.16527"),
            origin_url="https://github.com/facebookresearch/mae")
_IBOT = dict(license="apache-2.0", paper_ids=("arXiv:2111.07832", "arXiv:2203.16527"),
             origin_url="https://github.com/bytedance/ibot")


def _d2(path: str, **kwargs: Any) -> Dict[str, Any]:
    return _cfg(url=f"{_D2}/{path}", custom_load=True, license=_D2_LICENSE, **kwargs)


default_cfgs = generate_default_cfgs({
    # detectron2 model zoo: COCO / LVIS Mask R-CNN and Cascade Mask R-CNN (backbone + SFP part)
    "vitdet_base_patch16.coco_mask_rcnn": _d2("COCO/mask_rcnn_vitdet_b/f325346929/model_final_61ccd1.pkl"),
    "vitdet_base_patch16.coco_cascade_mask_rcnn": _d2(
        "COCO/cascade_mask_rcnn_vitdet_b/f325358525/model_final_435fa9.pkl"),
    "vitdet_base_patch16.lvis_mask_rcnn": _d2("LVIS/mask_rcnn_vitdet_b/329225748/model_final_5251c5.pkl"),
    "vitdet_base_patch16.lvis_cascade_mask_rcnn": _d2(
        "LVIS/cascade_mask_rcnn_vitdet_b/329226874/model_final_df306f.pkl"),
    "vitdet_large_patch16.coco_mask_rcnn": _d2("COCO/mask_rcnn_vitdet_l/f325599698/model_final_6146ed.pkl"),
    "vitdet_large_patch16.coco_cascade_mask_rcnn": _d2(
        "COCO/cascade_mask_rcnn_vitdet_l/f328021305/model_final_1a9f28.pkl"),
    "vitdet_large_patch16.lvis_mask_rcnn": _d2("LVIS/mask_rcnn_vitdet_l/329211570/model_final_021b3a.pkl"),
    "vitdet_large_patch16.lvis_cascade_mask_rcnn": _d2(
        "LVIS/cascade_mask_rcnn_vitdet_l/329042206/model_final_3e81c2.pkl"),
    "vitdet_huge_patch16.coco_mask_rcnn": _d2("COCO/mask_rcnn_vitdet_h/f329145471/model_final_7224f1.pkl"),
    "vitdet_huge_patch16.coco_cascade_mask_rcnn": _d2(
        "COCO/cascade_mask_rcnn_vitdet_h/f328730692/model_final_f05665.pkl"),
    "vitdet_huge_patch16.lvis_mask_rcnn": _d2("LVIS/mask_rcnn_vitdet_h/332434656/model_final_866730.pkl"),
    "vitdet_huge_patch16.lvis_cascade_mask_rcnn": _d2(
        "LVIS/cascade_mask_rcnn_vitdet_h/332552778/model_final_11bbb7.pkl"),
    # MAE ImageNet-1k pretraining (trunk only; tables zero and pyramid fresh, as ViTDet fine-tuning starts)
    "vitdet_base_patch16.mae_in1k": _cfg(hf_hub_id="timm/vit_base_patch16_224.mae", **_MAE),
    "vitdet_large_patch16.mae_in1k": _cfg(hf_hub_id="timm/vit_large_patch16_224.mae", **_MAE),
    "vitdet_huge_patch16.mae_in1k": _cfg(hf_hub_id="timm/vit_huge_patch14_224.mae", **_MAE),
    "vitdet_base_patch16.mae_in1k_d2": _cfg(
        url="https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MAE/mae_pretrain_vit_base.pth", **_MAE),
    "vitdet_large_patch16.mae_in1k_d2": _cfg(
        url="https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MAE/mae_pretrain_vit_large.pth", **_MAE),
    "vitdet_huge_patch16.mae_in1k_d2": _cfg(
        url="https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/MAE/mae_pretrain_vit_huge_p14to16.pth",
        **_MAE),
    # iBOT ImageNet-1k self-supervised teacher
    "vitdet_base_patch16.ibot_in1k": _cfg(
        url="https://lf3-nlp-opensource.bytetos.com/obj/nlp-opensource/archive/2022/ibot/vitb_16/checkpoint_teacher.pth",
        **_IBOT),
    "vitdet_large_patch16.ibot_in1k": _cfg(
        url="https://lf3-nlp-opensource.bytetos.com/obj/nlp-opensource/archive/2022/ibot/vitl_16/checkpoint_teacher.pth",
        **_IBOT),
    "test_vitdet": _cfg(input_size=(3, 64, 64), pool_size=(4, 4)),
})

_D2_SOURCE = "detectron2 projects/ViTDet/README.md"


def _reported(box_mask: Dict[str, Tuple[float, float]]) -> Dict[str, Dict[str, Any]]:
    out = {}
    for tag, (box, mask) in box_mask.items():
        dataset = "coco-2017-val" if tag.startswith("coco") else "lvis-v1-val"
        out[tag] = dict(metric="box_ap", value=box, mask_ap=mask, dataset=dataset, source=_D2_SOURCE)
    return out


@register_model(
    family="vitdet", task="dense", official_params=91_449_024, manifest="vitdet/vitdet_b_backbone_sfp",
    reported=_reported({"coco_mask_rcnn": (51.6, 45.9), "coco_cascade_mask_rcnn": (54.0, 46.7),
                        "lvis_mask_rcnn": (40.2, 38.2), "lvis_cascade_mask_rcnn": (43.0, 38.9)}))
def vitdet_base_patch16(pretrained: bool = False, **kwargs: Any) -> VitDet:
    """ViTDet-B: ViT-B/16, window 14, global blocks 2, 5, 8, 11, SFP 256."""
    args = dict(embed_dim=768, depth=12, num_heads=12, global_block_indexes=(2, 5, 8, 11))
    return _create_vitdet("vitdet_base_patch16", pretrained=pretrained, **dict(args, **kwargs))


@register_model(
    family="vitdet", task="dense", official_params=311_237_888, manifest="vitdet/vitdet_l_backbone_sfp",
    reported=_reported({"coco_mask_rcnn": (55.5, 49.2), "coco_cascade_mask_rcnn": (57.6, 50.0),
                        "lvis_mask_rcnn": (46.1, 43.6), "lvis_cascade_mask_rcnn": (49.2, 44.5)}))
def vitdet_large_patch16(pretrained: bool = False, **kwargs: Any) -> VitDet:
    """ViTDet-L: ViT-L/16, window 14, global blocks 5, 11, 17, 23, SFP 256."""
    args = dict(embed_dim=1024, depth=24, num_heads=16, global_block_indexes=(5, 11, 17, 23))
    return _create_vitdet("vitdet_large_patch16", pretrained=pretrained, **dict(args, **kwargs))


@register_model(
    family="vitdet", task="dense", official_params=641_756_992, manifest="vitdet/vitdet_h_backbone_sfp",
    reported=_reported({"coco_mask_rcnn": (56.7, 50.2), "coco_cascade_mask_rcnn": (58.7, 51.0),
                        "lvis_mask_rcnn": (49.1, 46.0), "lvis_cascade_mask_rcnn": (51.5, 46.6)}))
def vitdet_huge_patch16(pretrained: bool = False, **kwargs: Any) -> VitDet:
    """ViTDet-H: ViT-H/16, window 14, global blocks 7, 15, 23, 31, SFP 256."""
    args = dict(embed_dim=1280, depth=32, num_heads=16, global_block_indexes=(7, 15, 23, 31))
    return _create_vitdet("vitdet_huge_patch16", pretrained=pretrained, **dict(args, **kwargs))


@register_model(family="vitdet", task="dense", test_model=True, test_sizes=[(64, 64), (80, 112), (70, 95)])
def test_vitdet(pretrained: bool = False, **kwargs: Any) -> VitDet:
    """Tiny ViTDet for tests: same structure (window 3 with padding, global blocks 1 and 3, SFP 16)."""
    args = dict(img_size=64, embed_dim=32, depth=4, num_heads=2, window_size=3, global_block_indexes=(1, 3),
                pyramid_channels=16)
    return _create_vitdet("test_vitdet", pretrained=pretrained, **dict(args, **kwargs))


# old names keep working (timm warns and maps them; zoo.create_model resolves them too)
register_model_deprecations(__name__, {
    "vitdet_test": "test_vitdet",
})
