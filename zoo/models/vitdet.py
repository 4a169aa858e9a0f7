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

The blocks are timm's ``vision_transformer_sam.Block`` (the same computation: pad after ``norm1``,
windowed or global attention with decomposed relative position, MLP) whose attention is timm's SAM
``Attention`` run on 4-D ``(B, heads, N, d)`` tensors (:class:`VitDetAttention`: what fx and the
dynamo ONNX exporter follow), and the patch embedding is timm's ``PatchEmbed`` (zero-padding the
input at the bottom/right to a multiple of 16, as detectron2's data pipeline pads images);
state_dict keys are detectron2's.

What a zoo ViTDet returns:

* The registered model is the trunk: ``forward(x)`` / ``forward_features(x)`` give its stride-16 map
  ``(B, C, ceil(H/16), ceil(W/16))`` (no final norm); every parameter is used by ``forward``.
* ``features_only=True`` (and ``zoo.adapters.create_pyramid``) builds the trunk with its simple
  feature pyramid (``pyramid=True``) and returns the levels p2..p6 (NCHW, stride 4..64);
  ``features_only=True, pyramid=False`` gives per-block stride-16 maps (timm's plain-ViT convention).
* Official parameter counts (the detectron2 manifests) include the pyramid: trunk + pyramid =
  official; a detectron2 checkpoint loads its pyramid into the features model and the trunk model
  drops it with a log line.
"""
from __future__ import annotations

import logging
import math
from functools import partial
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import (
    DropPath, Mlp, PatchEmbed, calculate_drop_path_rates, resample_abs_pos_embed, resample_patch_embed, to_2tuple,
    trunc_normal_,
)
from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model_deprecations
from timm.models._features import feature_take_indices
from timm.models.vision_transformer_sam import Attention as SamAttention, Block

from zoo.adapters.pyramid import SimpleFeaturePyramid
from zoo.hub import load_into, unwrap_state_dict
from zoo.layers.padding import nchw_to_nhwc, nhwc_to_nchw
from zoo.layers.rel_pos import get_decomposed_rel_pos_bias, resize_decomposed_rel_pos
from zoo.registry import register_checkpoint_filter, register_family, register_model
from zoo.validation import check_input, is_fx_tracing

__all__ = ["VitDet", "VitDetAttention", "VitDetBlock", "checkpoint_filter_fn"]

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


def _resize_abs_pos(pos_embed: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """detectron2's ``get_abs_pos``: the square position grid (class slot dropped) resized bicubically to
    ``(1, h, w, C)``. Not timm's ``resample_abs_pos_embed``: that one always interpolates in float32
    (``posemb.float()``), which breaks the float64 parity of every input whose token grid is not the
    trained one; the checkpoint filter, where float32 is fine, uses it."""
    pos = pos_embed[:, 1:]
    g = int(math.sqrt(pos.shape[1]))
    pos = pos.reshape(1, g, g, -1)
    if (g, g) != (h, w):
        pos = nchw_to_nhwc(F.interpolate(nhwc_to_nchw(pos), size=(h, w), mode="bicubic", align_corners=False))
    return pos


torch.fx.wrap("_resize_abs_pos")  # fx: one call (whether to resize depends on the map size)


def _rel_pos_bias(q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """timm's decomposed relative-position bias (``get_decomposed_rel_pos_bias``, MViTv2 / ViTDet) for
    queries ``(B, heads, h * w, d)``, returned as the ``(B, heads, h * w, h * w)`` attention mask."""
    B, heads, N, d = q.shape
    bias = get_decomposed_rel_pos_bias(q.reshape(B * heads, N, d), rel_pos_h, rel_pos_w, (h, w), (h, w))
    return bias.view(B, heads, N, N)


# fx: one call (the tables are resized to the token grid in Python: timm's get_rel_pos), run with real sizes
torch.fx.wrap("_rel_pos_bias")


class VitDetAttention(SamAttention):
    """timm's SAM attention (its ``__init__``: the same parameters and state-dict keys) computed on 4-D
    ``(B, heads, N, d)`` tensors: ``scaled_dot_product_attention`` on 4-D inputs is what the dynamo ONNX
    exporter lowers (timm's forward folds the heads into the batch), and the relative-position bias is one
    fx-wrapped call (:func:`_rel_pos_bias`). Input and output ``(B, H, W, C)``, as timm's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, _ = x.shape
        N = H * W
        qkv = self.qkv(x.reshape(B, N, -1)).view(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (B, heads, N, d)
        q, k = self.q_norm(q), self.k_norm(k)
        attn_bias = _rel_pos_bias(q, self.rel_pos_h, self.rel_pos_w, H, W) if self.use_rel_pos else None
        if self.fused_attn:
            x = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_bias, dropout_p=self.attn_drop.p if self.training else 0.)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)
            if attn_bias is not None:
                attn = attn + attn_bias
            x = self.attn_drop(attn.softmax(dim=-1)) @ v
        # the copy made explicit: the dynamo ONNX exporter cannot follow transpose(1, 2).reshape
        x = x.transpose(1, 2).clone(memory_format=torch.contiguous_format).view(B, N, -1)
        return self.proj_drop(self.proj(x)).view(B, H, W, -1)


class VitDetBlock(Block):
    """timm's SAM ``Block`` (its forward: pad after ``norm1``, windowed or global attention, MLP) with
    :class:`VitDetAttention`. Its ``__init__`` builds the same submodules under the same names as timm's
    (which would build a ``vision_transformer_sam.Attention`` only to have it replaced)."""

    def __init__(
            self,
            dim: int,
            num_heads: int,
            mlp_ratio: float = 4.,
            qkv_bias: bool = True,
            proj_drop: float = 0.,
            attn_drop: float = 0.,
            drop_path: float = 0.,
            act_layer: type = nn.GELU,
            norm_layer: type = nn.LayerNorm,
            use_rel_pos: bool = False,
            window_size: int = 0,
            input_size: Optional[Tuple[int, int]] = None,
    ):
        nn.Module.__init__(self)
        self.window_size = window_size
        self.norm1 = norm_layer(dim)
        self.attn = VitDetAttention(
            dim, num_heads=num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop,
            norm_layer=norm_layer, use_rel_pos=use_rel_pos,
            input_size=input_size if window_size == 0 else (window_size, window_size))
        self.ls1 = nn.Identity()  # timm's LayerScale slot (ViTDet has none)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop)
        self.ls2 = nn.Identity()
        self.drop_path2 = DropPath(drop_path) if drop_path > 0. else nn.Identity()


class VitDet(nn.Module):
    """ViTDet backbone: plain ViT trunk (channels-last inside); with ``pyramid=True`` (what
    ``features_only=True`` builds) also its simple feature pyramid, which only the feature
    outputs (``forward_intermediates``) use."""

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
            pyramid: bool = False,
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
            pyramid: build the simple feature pyramid (the features_only / forward_intermediates
                levels; ``features_only=True`` sets it unless given). ``forward`` never uses it.
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

        self.patch_embed = PatchEmbed(
            img_size=img_size, patch_size=patch_size, in_chans=in_chans, embed_dim=embed_dim, flatten=False,
            output_fmt="NHWC", strict_img_size=False, dynamic_img_pad=True)
        num_pos = (pretrain_img_size // patch_size) ** 2
        self.pos_embed = nn.Parameter(torch.zeros(1, num_pos + 1, embed_dim))  # slot 0: the class token's
        img_h, img_w = to_2tuple(img_size)  # timm's config.json records sizes as [h, w]
        grid = (img_h // patch_size, img_w // patch_size)
        dpr = calculate_drop_path_rates(drop_path_rate, depth)  # linear decay, as detectron2
        self.blocks = nn.Sequential(*[
            VitDetBlock(
                embed_dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_path=dpr[i],
                norm_layer=partial(nn.LayerNorm, eps=1e-6), act_layer=nn.GELU, use_rel_pos=use_rel_pos,
                window_size=0 if i in self.global_block_indexes else window_size, input_size=grid,
                attn_drop=attn_drop_rate, proj_drop=proj_drop_rate)
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
        ref = next(self.parameters())
        # the new classifier joins the model where it is (device, dtype, train/eval), as timm's models do
        self.head = (nn.Linear(self.embed_dim, num_classes, device=ref.device, dtype=ref.dtype) if num_classes > 0
                     else nn.Identity()).train(self.training)

    def _abs_pos(self, h: int, w: int) -> torch.Tensor:
        """The 14x14 position grid (class slot dropped) resized bicubically to ``(1, h, w, C)``."""
        return _resize_abs_pos(self.pos_embed, h, w)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # (B, h, w, C), the input zero-padded to patch multiples
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
                intermediates.append(nhwc_to_nchw(x))
        if intermediates_only:
            return intermediates
        return nhwc_to_nchw(x), intermediates

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
        return nhwc_to_nchw(x)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_chans, H, W)`` -> the stride-16 map ``(B, embed_dim, ceil(H/16), ceil(W/16))``."""
        check_input(x, model=self, in_chans=self.in_chans, min_size=self.min_input_size)
        if not is_fx_tracing() and x.shape[0] == 0:
            # timm's SAM blocks reshape with a -1 that an empty batch leaves ambiguous: the empty
            # output takes its shape from one zero image
            return self._forward_trunk(x.new_zeros((1,) + tuple(x.shape[1:])))[:0]
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


@register_checkpoint_filter("vitdet")
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

    The registered model is the trunk: it does not build the simple feature pyramid that the
    official parameter counts include, and drops a checkpoint's pyramid tensors with a log message;
    ``features_only=True`` (or ``zoo.adapters.create_pyramid``) builds the pyramid and loads them.
    """
    if isinstance(state_dict, dict) and isinstance(state_dict.get("teacher"), dict):
        state_dict = state_dict["teacher"]
    sd = unwrap_state_dict(state_dict)
    target = model.state_dict()
    out: Dict[str, torch.Tensor] = {}
    pyramid_dropped = 0
    for k, v in sd.items():
        if not torch.is_tensor(v):
            continue
        k = _official_to_zoo_key(k)
        if k not in target and k.startswith(_DROP_PREFIXES):
            continue
        if k.startswith("pyramid.") and getattr(model, "pyramid", None) is None:
            pyramid_dropped += 1
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
                v = resize_decomposed_rel_pos(v, ref.shape[0])
            elif k.startswith("pyramid."):
                continue  # a pyramid of another width (pyramid_channels): initialized afresh below
        out[k] = v
    if pyramid_dropped:
        _logger.info("ViTDet trunk: %d simple-feature-pyramid tensors of the checkpoint not loaded (the pyramid "
                     "is built by features_only=True / zoo.adapters.create_pyramid)", pyramid_dropped)
    missing = [k for k in target if k not in out]
    filled = [k for k in missing if k.endswith(("rel_pos_h", "rel_pos_w")) or k.startswith("pyramid.")]
    if filled and len(filled) < len(target):
        for k in filled:
            out[k] = torch.zeros_like(target[k]) if "rel_pos" in k else target[k].detach().clone()
        _logger.info("checkpoint has no %d ViTDet-specific tensors (relative-position tables: zeros; "
                     "pyramid: fresh initialization): %s", len(filled), ", ".join(filled[:6]))
    return out


def _create_vitdet(variant: str, pretrained: bool = False, **kwargs: Any) -> VitDet:
    if kwargs.get("features_only"):
        kwargs.setdefault("pyramid", True)  # ViTDet's features are its simple feature pyramid
        feature_cls = kwargs.get("feature_cls", "getter")
        if isinstance(feature_cls, str) and feature_cls.lower() != "getter":
            # fx / hooks see forward, which runs the trunk only: no pyramid level, and block outputs NHWC
            raise ValueError(
                f"{variant}: features_only=True takes feature_cls='getter' (the default) only, got {feature_cls!r}: "
                "the features (the simple feature pyramid, or NCHW block maps with pyramid=False) come from "
                "forward_intermediates, which forward does not run. The model itself traces with fx "
                "(torchvision.models.feature_extraction.create_feature_extractor(model, ...)).")
    pyramid = kwargs.get("pyramid", False)
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
    # iBOT ImageNet-1k self-supervised teacher. Both files are named checkpoint_teacher.pth: (url, file name)
    # gives each its own cache file (timm caches a URL under its basename), which timm's download path honours
    # only with custom_load (the model's load_pretrained reads it with zoo's safe loader)
    "vitdet_base_patch16.ibot_in1k": _cfg(
        url=("https://lf3-nlp-opensource.bytetos.com/obj/nlp-opensource/archive/2022/ibot/vitb_16/checkpoint_teacher.pth",
             "ibot_vitb16_checkpoint_teacher.pth"), custom_load=True, **_IBOT),
    "vitdet_large_patch16.ibot_in1k": _cfg(
        url=("https://lf3-nlp-opensource.bytetos.com/obj/nlp-opensource/archive/2022/ibot/vitl_16/checkpoint_teacher.pth",
             "ibot_vitl16_checkpoint_teacher.pth"), custom_load=True, **_IBOT),
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
    family="vitdet", task="dense", official_params=91_449_024, dropped_params={"simfp_*": 5_560_000},  # the SFP (features_only=True)
    manifest="vitdet/vitdet_b_backbone_sfp",
    reported=_reported({"coco_mask_rcnn": (51.6, 45.9), "coco_cascade_mask_rcnn": (54.0, 46.7),
                        "lvis_mask_rcnn": (40.2, 38.2), "lvis_cascade_mask_rcnn": (43.0, 38.9)}))
def vitdet_base_patch16(pretrained: bool = False, **kwargs: Any) -> VitDet:
    """ViTDet-B: ViT-B/16, window 14, global blocks 2, 5, 8, 11, SFP 256."""
    args = dict(embed_dim=768, depth=12, num_heads=12, global_block_indexes=(2, 5, 8, 11))
    return _create_vitdet("vitdet_base_patch16", pretrained=pretrained, **dict(args, **kwargs))


@register_model(
    family="vitdet", task="dense", official_params=311_237_888, dropped_params={"simfp_*": 7_805_184},  # the SFP (features_only=True)
    manifest="vitdet/vitdet_l_backbone_sfp",
    reported=_reported({"coco_mask_rcnn": (55.5, 49.2), "coco_cascade_mask_rcnn": (57.6, 50.0),
                        "lvis_mask_rcnn": (46.1, 43.6), "lvis_cascade_mask_rcnn": (49.2, 44.5)}))
def vitdet_large_patch16(pretrained: bool = False, **kwargs: Any) -> VitDet:
    """ViTDet-L: ViT-L/16, window 14, global blocks 5, 11, 17, 23, SFP 256."""
    args = dict(embed_dim=1024, depth=24, num_heads=16, global_block_indexes=(5, 11, 17, 23))
    return _create_vitdet("vitdet_large_patch16", pretrained=pretrained, **dict(args, **kwargs))


@register_model(
    family="vitdet", task="dense", official_params=641_756_992, dropped_params={"simfp_*": 10_640_192},  # the SFP (features_only=True)
    manifest="vitdet/vitdet_h_backbone_sfp",
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
