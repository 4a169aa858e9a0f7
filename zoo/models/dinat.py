"""Dilated Neighborhood Attention Transformer (DiNAT), DiNAT_s, and the isotropic DiNAT / ViT-rpb models.

Paper: `Dilated Neighborhood Attention Transformer` (Hassani, Shi; 2022) - https://arxiv.org/abs/2209.15001

Official code: https://github.com/SHI-Labs/Neighborhood-Attention-Transformer (MIT, "Copyright (c) 2022-2023
SHI Lab"), ``classification/{dinat,dinats,isotropic}.py``. Its checkpoints need NATTEN with relative
positional bias (<= 0.17); here neighborhood attention is ``zoo.layers.neighborhood_attention``.

DiNAT is NAT with a dilation per block (paper Sec. 3): the blocks alternate plain NA (d = 1) and dilated
NA, whose d makes the neighbourhood span the whole map at 224 (56 = 7 * 8, 28 = 7 * 4, 14 = 7 * 2). The
models here *are* ``zoo.models.nat``'s, built with a dilation schedule:

* DiNAT: ``NAT`` (conv stem, conv downsamplers) with ``dilations``;
* DiNAT_s (the Swin-like variant): ``NAT`` with a 4x4 patch stem and Swin's patch merging, every block NA,
  d = 1 alternating with d > 1, no shift, no layer scale;
* isotropic DiNAT: ``NATIsotropic`` with d 1 / 2 alternating; isotropic ViT-rpb: ``NATIsotropic`` whose
  blocks run global self-attention with a relative positional bias (``GlobalAttentionRPB``).

Maps smaller than ``kernel_size * dilation`` (inputs under 224, dense tasks) are zero-padded bottom / right
after ``norm1`` to that size, run through qkv and NA, and cropped before ``proj``; the padded tokens are not
masked and the dilation is not lowered. That is what NATTEN <= 0.15 and transformers' ``DinatLayer`` do
(NATTEN 0.17 refuses such maps), so any input size runs.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs

from zoo.hub import unwrap_state_dict
from zoo.models.nat import NAT, NATIsotropic, _cfg as _nat_cfg, _convert_hf
from zoo.models.nat import checkpoint_filter_fn as _nat_filter
from zoo.registry import register_checkpoint_filter, register_family, register_model

__all__ = ["GlobalAttentionRPB", "checkpoint_filter_fn", "dinat_dilations", "dinat_s_dilations"]

register_family(
    "dinat",
    title="Dilated Neighborhood Attention Transformer",
    paper_ids=("arXiv:2209.15001",),
    official_repo="https://github.com/SHI-Labs/Neighborhood-Attention-Transformer",
    code_license="MIT",
    description=(
        "NAT with dilated neighborhood attention: blocks alternate local NA and dilated NA, whose "
        "neighbourhood spans the whole map at 224 px (global context at NA's cost); plus DiNAT_s (Swin-like "
        "layout) and the isotropic DiNAT / ViT-rpb baselines."),
    citation=(
        "@article{hassani2022dilated,\n"
        "  title={Dilated Neighborhood Attention Transformer},\n"
        "  author={Hassani, Ali and Shi, Humphrey},\n"
        "  journal={arXiv preprint arXiv:2209.15001},\n  year={2022}\n}"),
    module=__name__,
)


def _alternate(depth: int, dilation: int) -> Tuple[int, ...]:
    """d = 1 on even block indices, ``dilation`` on odd ones (every DiNAT schedule)."""
    return tuple(1 if i % 2 == 0 else dilation for i in range(depth))


def dinat_dilations(depths: Sequence[int], per_stage: Sequence[int]) -> Tuple[Tuple[int, ...], ...]:
    """Per-stage, per-block dilations: ``per_stage[i]`` on the odd blocks of stage i, 1 on the even ones.

    224 models use ``(8, 4, 2, 1)`` (map side / kernel), ``*_384`` models ``(13, 6, 3, 1)``.
    """
    return tuple(_alternate(d, s) for d, s in zip(depths, per_stage))


dinat_s_dilations = dinat_dilations  # same rule; DiNAT_s just has even depths


@lru_cache(maxsize=32)
def _rpb_index(height: int, width: int, table_h: int, table_w: int, device: torch.device) -> torch.Tensor:
    """Flat index ``[H * W, H * W]`` into a ``[2Lh - 1, 2Lw - 1]`` table: ``(ky - qy + Lh - 1, kx - qx + Lw - 1)``."""
    with torch.inference_mode(False):  # cached: must stay usable by autograd later
        ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
        ys, xs = ys.flatten(), xs.flatten()
        ch, cw = (table_h + 1) // 2 - 1, (table_w + 1) // 2 - 1
        return ((ys[None, :] - ys[:, None] + ch) * table_w + (xs[None, :] - xs[:, None] + cw)).to(device)


def _global_rpb(rpb: torch.Tensor, x: torch.Tensor, input_size: int) -> torch.Tensor:
    """The ``[heads, H * W, H * W]`` bias of a ``(B, H, W, C)`` map from a ``[heads, 2L - 1, 2L - 1]`` table
    (bicubically resized when the map is larger than ``L = input_size``)."""
    H, W = x.shape[1], x.shape[2]
    table = rpb
    if H > input_size or W > input_size:
        size = (2 * max(H, input_size) - 1, 2 * max(W, input_size) - 1)
        table = F.interpolate(table[None], size=size, mode="bicubic", align_corners=False)[0]
    index = _rpb_index(H, W, table.shape[1], table.shape[2], x.device)
    return table.flatten(1)[:, index].to(x.dtype)


# fx: one call (whether the table is resized, and the index, depend on the map size)
torch.fx.wrap("_global_rpb")


class GlobalAttentionRPB(nn.Module):
    """Global multi-head self-attention with a 2-D relative positional bias (DiNAT's ViT-rpb baseline).

    ``attn = softmax((q * hd^-0.5) k^T + rpb[h, ky - qy + L - 1, kx - qx + L - 1])`` over all tokens of a
    channels-last ``(B, H, W, C)`` map, with the ``[heads, 2L - 1, 2L - 1]`` table of the official model
    (L = 14 tokens at 224; its ``relative_position_index`` buffer is this same key-minus-query index and
    is rebuilt per map size instead of stored). Maps larger than L x L use the table resized bicubically.
    """

    def __init__(self, dim: int, num_heads: int, input_size: int = 14, qkv_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.input_size = input_size
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.rpb = nn.Parameter(torch.zeros(num_heads, 2 * input_size - 1, 2 * input_size - 1))
        trunc_normal_(self.rpb, std=0.02)
        self.attn_drop = float(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        bias = _global_rpb(self.rpb, x, self.input_size)  # [heads, N, N]
        q, k, v = self.qkv(x).view(B, H * W, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None], scale=self.scale,
                                           dropout_p=self.attn_drop if self.training else 0.0)
        # an explicit copy: the exporters' SDPA decomposition returns another layout than the CPU kernel,
        # and a reshape traced as a view of the kernel's layout fails there (issue 24)
        x = x.transpose(1, 2).clone(memory_format=torch.contiguous_format).view(B, H, W, C)
        return self.proj_drop(self.proj(x))

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, input_size={self.input_size}"


@register_checkpoint_filter("dinat")
def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Official DiNAT / DiNAT_s / isotropic checkpoints, or transformers' ``DinatForImageClassification``
    copies (``shi-labs/dinat-*``), to zoo keys. A no-op on zoo keys.

    DiNAT keys are NAT's (``levels.i`` -> ``stages.i``, see ``zoo.models.nat.checkpoint_filter_fn``);
    DiNAT_s ``layers.i.blocks.j`` -> ``stages.i.blocks.j`` and ``layers.i.downsample`` (run at the end of
    layer i) -> ``stages.{i+1}.downsample``; ViT-rpb's ``relative_position_index`` buffers are dropped (the
    index is rebuilt from the map size); transformers' separate query / key / value become one qkv.
    """
    state_dict = unwrap_state_dict(state_dict)
    if any(k.startswith("dinat.") for k in state_dict):
        state_dict = _convert_hf(state_dict, prefix="dinat.")
    out = {}
    hierarchical = isinstance(model, NAT)
    for k, v in state_dict.items():
        if k.endswith("attn.relative_position_index"):
            continue
        if hierarchical and (m := re.match(r"layers\.(\d+)\.(downsample|blocks)\.(.+)$", k)) is not None:
            i = int(m[1]) + (m[2] == "downsample")
            k = f"stages.{i}.{m[2]}.{m[3]}"
        out[k] = v
    return _nat_filter(out, model)


def _create_dinat(variant: str, pretrained: bool = False, **kwargs) -> NAT:
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3))
    return build_model_with_cfg(
        NAT, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(flatten_sequential=True, out_indices=out_indices, feature_cls="getter"),
        **kwargs)


def _create_dinat_isotropic(variant: str, pretrained: bool = False, **kwargs) -> NATIsotropic:
    out_indices = kwargs.pop("out_indices", 3)
    return build_model_with_cfg(
        NATIsotropic, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls="getter"),
        **kwargs)


_CKPT = "https://shi-labs.com/projects/dinat/checkpoints/"


def _cfg(url: str = "", size: int = 224, **kwargs) -> Dict[str, Any]:
    """timm cfg of one DiNAT checkpoint; top-1 values live in the registry's ``reported`` (one source)."""
    notes = kwargs.pop("notes", ())
    cfg = _nat_cfg(url, paper_ids="arXiv:2209.15001", paper_name="Dilated Neighborhood Attention Transformer",
                   min_input_size=(3, 1, 1), **kwargs)
    if size != 224:
        cfg.update(input_size=(3, size, size), pool_size=(size // 32, size // 32), crop_pct=1.0)
    if notes:
        cfg["notes"] = tuple(notes)
    return cfg


def _hub(name: str) -> Dict[str, Any]:
    return dict(hf_hub_id=f"shi-labs/{name}", hf_hub_filename="pytorch_model.bin")


_S_URL_NOTE = ("dinats.py's model_urls name this file dinat_s_*_in1k_*.pth, classification/DiNAT.md links "
               "dinat_s_*_1k_*.pth (used here); neither was downloaded")
_22K_NOTE = ("ImageNet-22k pre-training checkpoint; the official factory builds a 1000-class head for it "
             "(no top-1 reported)")
_ISO = dict(first_conv="patch_embed.proj", pool_size=(14, 14))

default_cfgs = generate_default_cfgs({
    "dinat_mini.in1k": _cfg(_CKPT + "imagenet1k/dinat_mini_in1k_224.pth", **_hub("dinat-mini-in1k-224")),
    "dinat_tiny.in1k": _cfg(_CKPT + "imagenet1k/dinat_tiny_in1k_224.pth", **_hub("dinat-tiny-in1k-224")),
    "dinat_small.in1k": _cfg(_CKPT + "imagenet1k/dinat_small_in1k_224.pth", **_hub("dinat-small-in1k-224")),
    "dinat_base.in1k": _cfg(_CKPT + "imagenet1k/dinat_base_in1k_224.pth", **_hub("dinat-base-in1k-224")),
    "dinat_large.in22k_ft_in1k": _cfg(
        _CKPT + "imagenet1k/dinat_large_in22k_in1k_224.pth",
        **_hub("dinat-large-in22k-in1k-224")),
    "dinat_large.in22k": _cfg(_CKPT + "imagenet22k/dinat_large_in22k_224.pth", notes=(_22K_NOTE,)),
    "dinat_large_384.in22k_ft_in1k": _cfg(
        _CKPT + "imagenet1k/dinat_large_in22k_in1k_384.pth", size=384,
        **_hub("dinat-large-in22k-in1k-384")),
    "dinat_large_11x11.in22k_ft_in1k_384": _cfg(
        _CKPT + "imagenet1k/dinat_large_in22k_in1k_384_11x11.pth", size=384,
        **_hub("dinat-large-11x11-in22k-in1k-384")),
    "dinat_large_11x11.in22k": _cfg(
        _CKPT + "imagenet22k/dinat_large_in22k_224_11x11interp.pth",
        notes=(_22K_NOTE, "the 7x7 rpb of dinat_large.in22k bicubically interpolated to 11x11 by the authors")),
    "dinat_s_tiny.in1k": _cfg(_CKPT + "imagenet1k/dinat_s_tiny_1k_224.pth", notes=(_S_URL_NOTE,), first_conv="patch_embed.proj"),
    "dinat_s_small.in1k": _cfg(_CKPT + "imagenet1k/dinat_s_small_1k_224.pth", notes=(_S_URL_NOTE,), first_conv="patch_embed.proj"),
    "dinat_s_base.in1k": _cfg(_CKPT + "imagenet1k/dinat_s_base_1k_224.pth", notes=(_S_URL_NOTE,), first_conv="patch_embed.proj"),
    "dinat_s_large.in22k_ft_in1k": _cfg(
        _CKPT + "imagenet1k/dinat_s_large_1k_224.pth", notes=(_S_URL_NOTE,), first_conv="patch_embed.proj"),
    "dinat_s_large.in22k": _cfg(_CKPT + "imagenet22k/dinat_s_large_in22k_224.pth", notes=(_22K_NOTE,),
                                first_conv="patch_embed.proj"),
    "dinat_s_large_384.in22k_ft_in1k": _cfg(
        _CKPT + "imagenet1k/dinat_s_large_1k_384.pth", size=384,
        notes=(_S_URL_NOTE,), first_conv="patch_embed.proj"),
    "dinat_isotropic_small.in1k": _cfg(_CKPT + "isotropic/dinat_isotropic_small_in1k_224.pth", **_ISO),
    "dinat_isotropic_base.in1k": _cfg(_CKPT + "isotropic/dinat_isotropic_base_in1k_224.pth", **_ISO),
    "vitrpb_small.in1k": _cfg(_CKPT + "isotropic/vitrpb_small_in1k_224.pth", **_ISO),
    "vitrpb_base.in1k": _cfg(_CKPT + "isotropic/vitrpb_base_in1k_224.pth", **_ISO),
    "test_dinat": _cfg(input_size=(3, 64, 64), pool_size=(2, 2)),
    "test_dinat_s": _cfg(input_size=(3, 64, 64), pool_size=(2, 2), first_conv="patch_embed.proj"),
    "test_dinat_isotropic": _cfg(input_size=(3, 64, 64), pool_size=(8, 8), first_conv="patch_embed.proj"),
    "test_dinat_vitrpb": _cfg(input_size=(3, 64, 64), pool_size=(8, 8), first_conv="patch_embed.proj"),
})


def _top1(value: float, tag: str = "in1k", size: int = 224, pre: str = "") -> Dict[str, Dict[str, Any]]:
    source = f"classification/DiNAT.md ({size} px{', ' + pre if pre else ''})"
    return {tag: dict(metric="top1", value=value, dataset="imagenet-1k", source=source)}


_D224, _D384 = (8, 4, 2, 1), (13, 6, 3, 1)
_MINI = dict(depths=(3, 4, 6, 5), embed_dim=64, num_heads=(2, 4, 8, 16), mlp_ratio=3.0)
_TINY = dict(depths=(3, 4, 18, 5), embed_dim=64, num_heads=(2, 4, 8, 16), mlp_ratio=3.0)
_SMALL = dict(depths=(3, 4, 18, 5), embed_dim=96, num_heads=(3, 6, 12, 24), mlp_ratio=2.0)
_BASE = dict(depths=(3, 4, 18, 5), embed_dim=128, num_heads=(4, 8, 16, 32), mlp_ratio=2.0, layer_scale=1e-5)
_LARGE = dict(depths=(3, 4, 18, 5), embed_dim=192, num_heads=(6, 12, 24, 48), mlp_ratio=2.0)
_S_TINY = dict(depths=(2, 2, 6, 2), embed_dim=96, num_heads=(3, 6, 12, 24))
_S_SMALL = dict(depths=(2, 2, 18, 2), embed_dim=96, num_heads=(3, 6, 12, 24))
_S_BASE = dict(depths=(2, 2, 18, 2), embed_dim=128, num_heads=(4, 8, 16, 32))
_S_LARGE = dict(depths=(2, 2, 18, 2), embed_dim=192, num_heads=(6, 12, 24, 48))
_IN22K = "ImageNet-22k pre-training"


def _dinat(variant: str, pretrained: bool, arch: Dict[str, Any], per_stage: Sequence[int] = _D224,
           kernel_size: int = 7, **kwargs) -> NAT:
    depths = kwargs.get("depths", arch["depths"])
    args = dict(arch, kernel_size=kernel_size, dilations=dinat_dilations(depths, per_stage), pad_small=True)
    return _create_dinat(variant, pretrained, **dict(args, **kwargs))


def _dinat_s(variant: str, pretrained: bool, arch: Dict[str, Any], per_stage: Sequence[int] = _D224,
             **kwargs) -> NAT:
    depths = kwargs.get("depths", arch["depths"])
    args = dict(arch, mlp_ratio=4.0, kernel_size=7, dilations=dinat_dilations(depths, per_stage),
                pad_small=True, stem_type="patch", downsample_type="merge")
    return _create_dinat(variant, pretrained, **dict(args, **kwargs))


def _isotropic(variant: str, pretrained: bool, dilation: Optional[int], **kwargs) -> NATIsotropic:
    depth = kwargs.get("depth", 12)
    args = dict(depth=depth, mlp_ratio=4.0, patch_size=16)
    if dilation is None:  # ViT-rpb: global attention with a 14 x 14 (224 px) bias table
        args.update(attn_layer=GlobalAttentionRPB)
    else:
        args.update(kernel_size=7, dilations=_alternate(depth, dilation), pad_small=True)
    return _create_dinat_isotropic(variant, pretrained, **dict(args, **kwargs))


@register_model(family="dinat", official_params=19_984_174, manifest="dinat/dinat_mini", reported=_top1(81.8))
def dinat_mini(pretrained: bool = False, **kwargs) -> NAT:
    return _dinat("dinat_mini", pretrained, _MINI, **kwargs)


@register_model(family="dinat", official_params=27_901_582, manifest="dinat/dinat_tiny", reported=_top1(82.7))
def dinat_tiny(pretrained: bool = False, **kwargs) -> NAT:
    return _dinat("dinat_tiny", pretrained, _TINY, **kwargs)


@register_model(family="dinat", official_params=50_719_681, manifest="dinat/dinat_small", reported=_top1(83.8))
def dinat_small(pretrained: bool = False, **kwargs) -> NAT:
    return _dinat("dinat_small", pretrained, _SMALL, **kwargs)


@register_model(family="dinat", official_params=89_769_652, manifest="dinat/dinat_base", reported=_top1(84.4))
def dinat_base(pretrained: bool = False, **kwargs) -> NAT:
    return _dinat("dinat_base", pretrained, _BASE, **kwargs)


@register_model(family="dinat", official_params=200_943_514, manifest="dinat/dinat_large",
                reported=_top1(86.6, "in22k_ft_in1k", pre=_IN22K))
def dinat_large(pretrained: bool = False, **kwargs) -> NAT:
    """DiNAT-Large, 224 dilation schedule (also the ``dinat_large_21k`` factory: tag ``in22k``)."""
    return _dinat("dinat_large", pretrained, _LARGE, **kwargs)


@register_model(family="dinat", official_params=200_943_514, manifest="dinat/dinat_large_384",
                reported=_top1(87.4, "in22k_ft_in1k", 384, pre=_IN22K))
def dinat_large_384(pretrained: bool = False, **kwargs) -> NAT:
    """DiNAT-Large with the 384 dilation schedule (13, 6, 3, 1): every dilated map side is ~k * d at 384."""
    return _dinat("dinat_large_384", pretrained, _LARGE, per_stage=_D384, **kwargs)


@register_model(family="dinat", official_params=201_144_250, manifest="dinat/dinat_large_384_11x11",
                reported=_top1(87.5, "in22k_ft_in1k_384", 384, pre=_IN22K))
def dinat_large_11x11(pretrained: bool = False, **kwargs) -> NAT:
    """DiNAT-Large with 11x11 neighbourhoods and the 224 dilation schedule (the ``dinat_large_384_11x11`` and
    ``dinat_large_21k_11x11`` factories: tags ``in22k_ft_in1k_384`` and ``in22k``)."""
    return _dinat("dinat_large_11x11", pretrained, _LARGE, kernel_size=11, **kwargs)


@register_model(family="dinat", official_params=28_288_354, manifest="dinat/dinat_s_tiny", reported=_top1(81.8))
def dinat_s_tiny(pretrained: bool = False, **kwargs) -> NAT:
    return _dinat_s("dinat_s_tiny", pretrained, _S_TINY, **kwargs)


@register_model(family="dinat", official_params=49_606_258, manifest="dinat/dinat_s_small", reported=_top1(83.5))
def dinat_s_small(pretrained: bool = False, **kwargs) -> NAT:
    return _dinat_s("dinat_s_small", pretrained, _S_SMALL, **kwargs)


@register_model(family="dinat", official_params=87_768_224, manifest="dinat/dinat_s_base", reported=_top1(83.8))
def dinat_s_base(pretrained: bool = False, **kwargs) -> NAT:
    return _dinat_s("dinat_s_base", pretrained, _S_BASE, **kwargs)


@register_model(family="dinat", official_params=196_532_476, manifest="dinat/dinat_s_large",
                reported=_top1(86.5, "in22k_ft_in1k", pre=_IN22K))
def dinat_s_large(pretrained: bool = False, **kwargs) -> NAT:
    """DiNAT_s-Large, 224 schedule (also the ``dinat_s_large_21k`` factory: tag ``in22k``)."""
    return _dinat_s("dinat_s_large", pretrained, _S_LARGE, **kwargs)


@register_model(family="dinat", official_params=196_532_476, manifest="dinat/dinat_s_large_384",
                reported=_top1(87.4, "in22k_ft_in1k", 384, pre=_IN22K))
def dinat_s_large_384(pretrained: bool = False, **kwargs) -> NAT:
    """DiNAT_s-Large with the 384 dilation schedule (13, 6, 3, 1)."""
    return _dinat_s("dinat_s_large_384", pretrained, _S_LARGE, per_stage=_D384, **kwargs)


@register_model(family="dinat", official_params=21_999_736, manifest="dinat/dinat_isotropic_small", feature_reductions=(16,) * 12,
                reported=_top1(80.8))
def dinat_isotropic_small(pretrained: bool = False, **kwargs) -> NATIsotropic:
    return _isotropic("dinat_isotropic_small", pretrained, 2, **dict(dict(embed_dim=384, num_heads=12), **kwargs))


@register_model(family="dinat", official_params=86_465_800, manifest="dinat/dinat_isotropic_base", feature_reductions=(16,) * 12,
                reported=_top1(82.1))
def dinat_isotropic_base(pretrained: bool = False, **kwargs) -> NATIsotropic:
    return _isotropic("dinat_isotropic_base", pretrained, 2, **dict(dict(embed_dim=768, num_heads=24), **kwargs))


@register_model(family="dinat", official_params=22_080_376, manifest="dinat/vitrpb_small", feature_reductions=(16,) * 12,
                reported=_top1(81.2))
def vitrpb_small(pretrained: bool = False, **kwargs) -> NATIsotropic:
    """Isotropic ViT with a relative positional bias (ViT-rpb-Small), the DiNAT paper's global-attention baseline."""
    return _isotropic("vitrpb_small", pretrained, None, **dict(dict(embed_dim=384, num_heads=12), **kwargs))


@register_model(family="dinat", official_params=86_627_080, manifest="dinat/vitrpb_base", feature_reductions=(16,) * 12,
                reported=_top1(82.5))
def vitrpb_base(pretrained: bool = False, **kwargs) -> NATIsotropic:
    """ViT-rpb-Base, the DiNAT paper's global-attention isotropic baseline."""
    return _isotropic("vitrpb_base", pretrained, None, **dict(dict(embed_dim=768, num_heads=24), **kwargs))


@register_model(family="dinat", test_model=True, test_sizes=[(64, 64), (70, 95)])
def test_dinat(pretrained: bool = False, **kwargs) -> NAT:
    """Tiny DiNAT (kernel 3, layer scale, dilations up to 4, small maps padded) for the general tests."""
    arch = dict(depths=(2, 2, 2, 1), embed_dim=8, num_heads=(1, 2, 2, 4), mlp_ratio=2.0, layer_scale=1e-5)
    return _dinat("test_dinat", pretrained, arch, **dict(dict(per_stage=(4, 2, 2, 1), kernel_size=3), **kwargs))


@register_model(family="dinat", test_model=True, test_sizes=[(64, 64), (70, 95)])
def test_dinat_s(pretrained: bool = False, **kwargs) -> NAT:
    """Tiny DiNAT_s (patch stem, patch merging with odd sizes, kernel 3) for the general tests."""
    arch = dict(depths=(2, 2, 2, 1), embed_dim=8, num_heads=(1, 2, 2, 4))
    return _dinat_s("test_dinat_s", pretrained, arch, **dict(dict(per_stage=(4, 2, 2, 1), kernel_size=3), **kwargs))


@register_model(family="dinat", test_model=True, test_sizes=[(64, 64), (50, 75)], feature_reductions=(8,) * 3)
def test_dinat_isotropic(pretrained: bool = False, **kwargs) -> NATIsotropic:
    """Tiny isotropic DiNAT (kernel 3, d 1 / 2) for the general tests."""
    return _isotropic("test_dinat_isotropic", pretrained, 2, **dict(
        dict(embed_dim=16, num_heads=2, depth=3, mlp_ratio=2.0, kernel_size=3, patch_size=8), **kwargs))


@register_model(family="dinat", test_model=True, test_sizes=[(64, 64), (50, 75)], feature_reductions=(8,) * 3)
def test_dinat_vitrpb(pretrained: bool = False, **kwargs) -> NATIsotropic:
    """Tiny ViT-rpb (global attention with relative bias) for the general tests."""
    return _isotropic("test_dinat_vitrpb", pretrained, None, **dict(
        dict(embed_dim=16, num_heads=2, depth=3, mlp_ratio=2.0, patch_size=8), **kwargs))
