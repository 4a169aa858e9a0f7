"""Neighborhood Attention Transformer (NAT) and its isotropic variants.

Papers:
* `Neighborhood Attention Transformer` (Hassani, Walton, Li, Li, Shi; CVPR 2023) - https://arxiv.org/abs/2204.07143
* `Dilated Neighborhood Attention Transformer` (Hassani, Shi; 2022) - https://arxiv.org/abs/2209.15001
  (the isotropic NAT models, ``NAT-iso-Small/Base``, are its ViT-like baselines)

Official code: https://github.com/SHI-Labs/Neighborhood-Attention-Transformer (MIT), which needs
NATTEN <= 0.17 for its relative positional bias. Here neighborhood attention is
``zoo.layers.neighborhood_attention`` (pure PyTorch, exact to NATTEN 0.17).

Hierarchical NAT: a stem of two overlapping 3x3 stride-2 convs + LayerNorm, four stages of NA blocks
(pre-norm: ``x + gamma1 * NA(LN(x))``, ``x + gamma2 * MLP(LN(x))``, gammas only with layer scale),
overlapping 3x3 stride-2 downsamplers (no bias) + LayerNorm between stages, final LayerNorm, mean
over tokens, Linear. Channels-last inside; features are handed out NCHW at strides 4 to 32.

Isotropic NAT: a 16x16 patch conv + LayerNorm, a flat stack of NA blocks at stride 16, final
LayerNorm, mean over tokens, Linear (the plain-ViT contract: one feature per block).

Official keys keep the official module names where the structure is the same; the official
``levels.i.downsample`` (run at the end of level i) becomes ``stages.{i+1}.downsample`` (run at the
start of stage i + 1), which is the same computation and gives timm's stage layout.
"""
from __future__ import annotations

import re
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ClassifierHead, DropPath, Mlp, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model_deprecations
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint_seq
from timm.models.swin_transformer import PatchMerging

from zoo.hub import unwrap_state_dict
from zoo.layers.neighborhood_attention import NeighborhoodAttention2d, na_min_size
from zoo.layers.padding import pad_to_multiple
from zoo.registry import register_checkpoint_filter, register_family, register_model
from zoo.validation import check_input

torch.fx.wrap("pad_to_multiple")  # fx: one call (whether and how much to pad depends on the map size)

__all__ = ["NAT", "NATIsotropic", "NATLayer", "checkpoint_filter_fn"]

register_family(
    "nat",
    title="Neighborhood Attention Transformer",
    paper_ids=("arXiv:2204.07143", "arXiv:2209.15001"),
    official_repo="https://github.com/SHI-Labs/Neighborhood-Attention-Transformer",
    code_license="MIT",
    description=(
        "Hierarchical vision transformer whose attention is restricted to the k x k neighbourhood of "
        "each token (neighborhood attention, windows clamped at borders, relative positional bias), "
        "with overlapping conv stem and downsamplers; plus the isotropic NAT models of the DiNAT paper."),
    citation=(
        "@inproceedings{hassani2023neighborhood,\n"
        "  title={Neighborhood Attention Transformer},\n"
        "  author={Hassani, Ali and Walton, Steven and Li, Jiachen and Li, Shen and Shi, Humphrey},\n"
        "  booktitle={CVPR},\n  year={2023}\n}"),
    module=__name__,
)

_LayerNorm = partial(nn.LayerNorm, eps=1e-5)


class ConvTokenizer(nn.Module):
    """Stem: conv3x3 s2 -> conv3x3 s2 (both with bias, no activation between), then LayerNorm; NCHW in, NHWC out."""

    def __init__(self, in_chans: int = 3, embed_dim: int = 64, norm_layer: Callable = _LayerNorm):
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(in_chans, embed_dim // 2, kernel_size=3, stride=2, padding=1),
            nn.Conv2d(embed_dim // 2, embed_dim, kernel_size=3, stride=2, padding=1),
        )
        self.norm = norm_layer(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class ConvDownsampler(nn.Module):
    """Overlapping downsampler: conv3x3 s2 without bias (dim -> out_dim), then LayerNorm; NHWC in and out."""

    def __init__(self, dim: int, out_dim: int, norm_layer: Callable = _LayerNorm):
        super().__init__()
        self.reduction = nn.Conv2d(dim, out_dim, kernel_size=3, stride=2, padding=1, bias=False)
        self.norm = norm_layer(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.reduction(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1))


class PatchEmbed16(nn.Module):
    """Patch stem (isotropic models: 16; DiNAT_s: 4): zero-pad right / bottom to the patch size, patch conv,
    LayerNorm; NCHW in, NHWC out."""

    def __init__(self, in_chans: int = 3, embed_dim: int = 384, patch_size: int = 16,
                 norm_layer: Callable = _LayerNorm):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = norm_layer(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_to_multiple(x, self.patch_size)
        return self.norm(self.proj(x).permute(0, 2, 3, 1))


class NATLayer(nn.Module):
    """NA block (paper Sec. 3.2): ``x + gamma1 * NA(LN(x))``, then ``x + gamma2 * MLP(LN(x))`` on (B, H, W, C).

    ``gamma1`` / ``gamma2`` exist only with ``layer_scale`` (NAT-Small / Base), as in the official code.
    """

    def __init__(
            self,
            dim: int,
            num_heads: int,
            kernel_size: int = 7,
            dilation: int = 1,
            mlp_ratio: float = 4.0,
            qkv_bias: bool = True,
            proj_drop: float = 0.0,
            attn_drop: float = 0.0,
            drop_path: float = 0.0,
            layer_scale: Optional[float] = None,
            pad_small: bool = False,
            attn_layer: Optional[Callable] = None,
            act_layer: Callable = nn.GELU,
            norm_layer: Callable = _LayerNorm,
    ):
        """``attn_layer``: a token mixer other than NA, built as ``attn_layer(dim, num_heads, qkv_bias=,
        attn_drop=, proj_drop=)`` (the global attention of DiNAT's isotropic ViT-rpb baseline)."""
        super().__init__()
        self.norm1 = norm_layer(dim)
        if attn_layer is None:
            self.attn = NeighborhoodAttention2d(
                dim, num_heads, kernel_size=kernel_size, dilation=dilation, qkv_bias=qkv_bias,
                rel_pos_bias=True, attn_drop=attn_drop, proj_drop=proj_drop, pad_small=pad_small)
        else:
            self.attn = attn_layer(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop)
        if layer_scale is not None:
            self.gamma1 = nn.Parameter(layer_scale * torch.ones(dim))
            self.gamma2 = nn.Parameter(layer_scale * torch.ones(dim))
        else:
            self.gamma1 = self.gamma2 = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gamma1 is None:
            x = x + self.drop_path(self.attn(self.norm1(x)))
            x = x + self.drop_path(self.mlp(self.norm2(x)))
        else:
            x = x + self.drop_path(self.gamma1 * self.attn(self.norm1(x)))
            x = x + self.drop_path(self.gamma2 * self.mlp(self.norm2(x)))
        return x


class NATStage(nn.Module):
    """Optional downsampler (from the previous stage), then NA blocks; NHWC in and out."""

    def __init__(
            self,
            dim: int,
            out_dim: int,
            depth: int,
            num_heads: int,
            kernel_size: int,
            dilations: Optional[Sequence[int]] = None,
            downsample: bool = True,
            mlp_ratio: float = 4.0,
            qkv_bias: bool = True,
            proj_drop: float = 0.0,
            attn_drop: float = 0.0,
            drop_path: Sequence[float] = (),
            layer_scale: Optional[float] = None,
            pad_small: bool = False,
            downsample_layer: Callable = ConvDownsampler,
            norm_layer: Callable = _LayerNorm,
    ):
        super().__init__()
        self.grad_checkpointing = False
        self.downsample = downsample_layer(dim, out_dim, norm_layer=norm_layer) if downsample else nn.Identity()
        drop_path = list(drop_path) or [0.0] * depth
        self.blocks = nn.Sequential(*[
            NATLayer(
                out_dim, num_heads, kernel_size=kernel_size,
                dilation=1 if dilations is None else dilations[i], mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                proj_drop=proj_drop, attn_drop=attn_drop, drop_path=drop_path[i], layer_scale=layer_scale,
                pad_small=pad_small, norm_layer=norm_layer)
            for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return x


def _min_input(sizes_needed: Sequence[Tuple[int, int]]) -> int:
    """Smallest input side such that ``ceil(side / stride) >= need`` for every (stride, need)."""
    return max(stride * (need - 1) + 1 for stride, need in sizes_needed)


def _prune_trunk(model: nn.Module, trunk: str, indices: Union[int, List[int]], prune_norm: bool,
                 prune_head: bool) -> List[int]:
    """Keep the ``trunk`` entries (stages or blocks) up to the last index asked for; optionally drop norm and head."""
    take_indices, max_index = feature_take_indices(len(getattr(model, trunk)), indices)
    setattr(model, trunk, getattr(model, trunk)[:max_index + 1])
    if prune_norm:
        model.norm = nn.Identity()
    if prune_head:
        model.reset_classifier(0, "")
    return take_indices


class NAT(nn.Module):
    """Hierarchical Neighborhood Attention Transformer (arXiv:2204.07143)."""

    def __init__(
            self,
            depths: Sequence[int] = (3, 4, 6, 5),
            embed_dim: int = 64,
            num_heads: Sequence[int] = (2, 4, 8, 16),
            mlp_ratio: float = 3.0,
            kernel_size: int = 7,
            dilations: Optional[Sequence[Sequence[int]]] = None,
            layer_scale: Optional[float] = None,
            qkv_bias: bool = True,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "avg",
            drop_rate: float = 0.0,
            proj_drop_rate: float = 0.0,
            attn_drop_rate: float = 0.0,
            drop_path_rate: float = 0.0,
            pad_small: bool = False,
            stem_type: str = "conv",
            downsample_type: str = "conv",
            norm_layer: Callable = _LayerNorm,
    ):
        """
        Args:
            depths: NA blocks per stage.
            embed_dim: stage-1 width; stage i has ``embed_dim * 2 ** i`` channels.
            num_heads: heads per stage.
            mlp_ratio: MLP hidden width over block width.
            kernel_size: neighbourhood side k (odd).
            dilations: optional per-stage, per-block dilations (DiNAT); all 1 for NAT.
            layer_scale: initial value of the gamma1 / gamma2 layer scales; None for no layer scale.
            pad_small: zero-pad maps smaller than ``kernel_size * dilation`` (NATTEN <= 0.14) instead of
                refusing them (NATTEN 0.17, the default).
            stem_type: 'conv' (two overlapping conv3x3 s2 + LN: NAT, DiNAT) or 'patch' (4x4 patch conv + LN,
                input zero-padded to a multiple of 4: DiNAT_s).
            downsample_type: 'conv' (conv3x3 s2 + LN: NAT, DiNAT) or 'merge' (Swin's 2x2 patch merging,
                LN(4C) + Linear(4C -> 2C), odd sides zero-padded: DiNAT_s).
        """
        super().__init__()
        if stem_type not in ("conv", "patch") or downsample_type not in ("conv", "merge"):
            raise ValueError(f"NAT: stem_type must be 'conv' or 'patch' and downsample_type 'conv' or 'merge', "
                             f"got {stem_type!r}, {downsample_type!r}")
        num_stages = len(depths)
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.kernel_size = kernel_size
        self.pad_small = pad_small
        self.output_fmt = "NHWC"
        dims = [int(embed_dim * 2 ** i) for i in range(num_stages)]
        self.num_features = self.head_hidden_size = dims[-1]
        self.drop_rate = drop_rate
        self.grad_checkpointing = False

        if stem_type == "conv":
            self.patch_embed = ConvTokenizer(in_chans, embed_dim, norm_layer)
        else:
            self.patch_embed = PatchEmbed16(in_chans, embed_dim, patch_size=4, norm_layer=norm_layer)
        downsample_layer = ConvDownsampler if downsample_type == "conv" else PatchMerging
        dpr = [x.tolist() for x in torch.linspace(0, drop_path_rate, sum(depths), device="cpu").split(list(depths))]
        self.stages = nn.Sequential()
        self.feature_info = []
        needed = []
        for i in range(num_stages):
            stage_dil = None if dilations is None else list(dilations[i])
            self.stages.append(NATStage(
                dims[max(i - 1, 0)], dims[i], depths[i], num_heads[i], kernel_size, dilations=stage_dil,
                downsample=i > 0, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, proj_drop=proj_drop_rate,
                attn_drop=attn_drop_rate, drop_path=dpr[i], layer_scale=layer_scale, pad_small=pad_small,
                downsample_layer=downsample_layer, norm_layer=norm_layer))
            reduction = 2 ** (i + 2)
            self.feature_info.append(dict(num_chs=dims[i], reduction=reduction, module=f"stages.{i}"))
            if depths[i]:
                needed.append((reduction, na_min_size(kernel_size, max(stage_dil or [1]))))
        self.min_input_size = 1 if pad_small or not needed else _min_input(needed)
        self.norm = norm_layer(self.num_features)
        self.head = ClassifierHead(self.num_features, num_classes, pool_type=global_pool, drop_rate=drop_rate,
                                   input_fmt="NHWC")
        self.apply(self._init_weights)

    def _init_weights(self, m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return {n for n, _ in self.named_parameters() if n.endswith("rpb")}

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
        """Stage outputs (before the next downsampler) as NCHW maps at strides 4, 8, 16, 32.

        Args:
            indices: take the last n stages if int, all if None, the listed ones if a sequence.
            norm: apply the final norm to the last stage's map.
            stop_early: stop after the last stage asked for.
            output_fmt: 'NCHW' (or 'NHWC', the trunk's own layout).
            intermediates_only: return only the list.
        """
        assert output_fmt in ("NCHW", "NHWC"), "output_fmt must be NCHW or NHWC"
        self._check(x)
        intermediates = []
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        num_stages = len(self.stages)
        stages = self.stages if torch.jit.is_scripting() or not stop_early else self.stages[:max_index + 1]
        x = self.patch_embed(x)
        last = 0
        for i, stage in enumerate(stages):
            x = stage(x)
            last = i
            if i in take_indices:
                x_inter = self.norm(x) if norm and i == num_stages - 1 else x
                if output_fmt == "NCHW":
                    x_inter = x_inter.permute(0, 3, 1, 2).contiguous()
                intermediates.append(x_inter)
        if intermediates_only:
            return intermediates
        if last == num_stages - 1:
            x = self.norm(x)
        return x, intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        return _prune_trunk(self, "stages", indices, prune_norm, prune_head)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        x = self.patch_embed(x)
        x = self.stages(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=True) if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class NATIsotropic(nn.Module):
    """Isotropic (ViT-like) NAT of the DiNAT paper (arXiv:2209.15001, Sec. 4.1, Table 9): 16x16 patches, flat NA stack."""

    def __init__(
            self,
            embed_dim: int = 384,
            depth: int = 12,
            num_heads: int = 12,
            mlp_ratio: float = 4.0,
            kernel_size: int = 7,
            dilations: Optional[Sequence[int]] = None,
            patch_size: int = 16,
            qkv_bias: bool = True,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "avg",
            drop_rate: float = 0.0,
            proj_drop_rate: float = 0.0,
            attn_drop_rate: float = 0.0,
            drop_path_rate: float = 0.0,
            pad_small: bool = False,
            attn_layer: Optional[Callable] = None,
            norm_layer: Callable = _LayerNorm,
    ):
        """
        Args:
            dilations: optional per-block dilations (DiNAT-iso alternates 1 and 2); all 1 for NAT-iso.
            pad_small: zero-pad token maps smaller than ``kernel_size * dilation`` instead of refusing them.
            attn_layer: a token mixer replacing NA in every block (see ``NATLayer``; ViT-rpb).
        """
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.patch_size = patch_size
        self.output_fmt = "NHWC"
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.num_prefix_tokens = 0
        self.grad_checkpointing = False
        self.patch_embed = PatchEmbed16(in_chans, embed_dim, patch_size, norm_layer)
        dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
        dilations = list(dilations) if dilations is not None else [1] * depth
        self.blocks = nn.Sequential(*[
            NATLayer(embed_dim, num_heads, kernel_size=kernel_size, dilation=dilations[i], mlp_ratio=mlp_ratio,
                     qkv_bias=qkv_bias, proj_drop=proj_drop_rate, attn_drop=attn_drop_rate, drop_path=dpr[i],
                     pad_small=pad_small, attn_layer=attn_layer, norm_layer=norm_layer)
            for i in range(depth)])
        self.feature_info = [dict(num_chs=embed_dim, reduction=patch_size, module=f"blocks.{i}") for i in range(depth)]
        self.min_input_size = 1 if pad_small or depth == 0 or attn_layer is not None else _min_input(
            [(patch_size, na_min_size(kernel_size, max(dilations)))])
        self.norm = norm_layer(embed_dim)
        self.head = ClassifierHead(embed_dim, num_classes, pool_type=global_pool, drop_rate=drop_rate,
                                   input_fmt="NHWC")
        self.apply(self._init_weights)

    _init_weights = NAT._init_weights
    no_weight_decay = NAT.no_weight_decay
    get_classifier = NAT.get_classifier
    reset_classifier = NAT.reset_classifier
    _check = NAT._check
    forward_head = NAT.forward_head

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(stem=r"^patch_embed", blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Block outputs as stride-16 maps (NCHW, or NHWC / NLC), like timm's vision transformers.

        Args:
            indices: take the last n blocks if int, all if None, the listed ones if a sequence.
            norm: apply the final norm to every intermediate.
            stop_early: stop after the last block asked for.
        """
        assert output_fmt in ("NCHW", "NHWC", "NLC"), "output_fmt must be NCHW, NHWC or NLC"
        self._check(x)
        intermediates = []
        take_indices, max_index = feature_take_indices(len(self.blocks), indices)
        blocks = self.blocks if torch.jit.is_scripting() or not stop_early else self.blocks[:max_index + 1]
        x = self.patch_embed(x)
        for i, blk in enumerate(blocks):
            x = blk(x)
            if i in take_indices:
                y = self.norm(x) if norm else x
                if output_fmt == "NCHW":
                    y = y.permute(0, 3, 1, 2).contiguous()
                elif output_fmt == "NLC":
                    y = y.flatten(1, 2)
                intermediates.append(y)
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        return _prune_trunk(self, "blocks", indices, prune_norm, prune_head)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        x = self.patch_embed(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_HF_BLOCK = {
    "layernorm_before": "norm1",
    "attention.self.rpb": "attn.rpb",
    "attention.output.dense": "attn.proj",
    "layernorm_after": "norm2",
    "intermediate.dense": "mlp.fc1",
    "output.dense": "mlp.fc2",
}


def _convert_hf(state_dict: Dict[str, torch.Tensor], prefix: str = "nat.") -> Dict[str, torch.Tensor]:
    """transformers' ``NatForImageClassification`` layout (the ``shi-labs/nat-*-in1k-224`` Hub copies) -> zoo.

    ``DinatForImageClassification`` (``shi-labs/dinat-*``) is the same layout under ``prefix="dinat."``.
    """
    out: Dict[str, torch.Tensor] = {}
    qkv: Dict[str, Dict[str, torch.Tensor]] = {}
    p = re.escape(prefix)
    for k, v in state_dict.items():
        if k.startswith(prefix + "embeddings.patch_embeddings.projection."):
            out["patch_embed.proj." + k[len(prefix + "embeddings.patch_embeddings.projection."):]] = v
        elif k.startswith(prefix + "embeddings.norm."):
            out["patch_embed.norm." + k[len(prefix + "embeddings.norm."):]] = v
        elif k.startswith(prefix + "layernorm."):
            out["norm." + k[len(prefix + "layernorm."):]] = v
        elif k.startswith("classifier."):
            out["head.fc." + k[len("classifier."):]] = v
        elif (m := re.match(p + r"encoder\.levels\.(\d+)\.downsample\.(.+)$", k)) is not None:
            out[f"stages.{int(m[1]) + 1}.downsample.{m[2]}"] = v
        elif (m := re.match(p + r"encoder\.levels\.(\d+)\.layers\.(\d+)\.(.+)$", k)) is not None:
            blk, rest = f"stages.{m[1]}.blocks.{m[2]}.", m[3]
            if rest == "layer_scale_parameters":
                out[blk + "gamma1"], out[blk + "gamma2"] = v[0], v[1]
            elif (q := re.match(r"attention\.self\.(query|key|value)\.(weight|bias)$", rest)) is not None:
                qkv.setdefault(blk + "attn.qkv." + q[2], {})[q[1]] = v
            else:
                for src, dst in _HF_BLOCK.items():
                    if rest.startswith(src + ".") or rest == src:
                        out[blk + dst + rest[len(src):]] = v
                        break
                else:
                    out[k] = v  # unknown: left for strict loading to report
        else:
            out[k] = v
    for key, parts in qkv.items():
        out[key] = torch.cat([parts["query"], parts["key"], parts["value"]], 0)
    return out


@register_checkpoint_filter("nat")
def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Official NAT / isotropic NAT checkpoints, or the Hugging Face transformers copies, to zoo keys.

    Official: ``levels.i.blocks.j`` -> ``stages.i.blocks.j``, ``levels.i.downsample`` ->
    ``stages.{i+1}.downsample``, isotropic ``layers.j`` -> ``blocks.j``, ``head`` -> ``head.fc``.
    transformers: see ``_convert_hf`` (separate query / key / value Linears are concatenated into qkv,
    ``layer_scale_parameters`` split into gamma1 / gamma2). A no-op on zoo keys.
    """
    state_dict = unwrap_state_dict(state_dict)
    if any(k.startswith("nat.") for k in state_dict):
        state_dict = _convert_hf(state_dict)
    out = {}
    for k, v in state_dict.items():
        if (m := re.match(r"levels\.(\d+)\.downsample\.(.+)$", k)) is not None:
            k = f"stages.{int(m[1]) + 1}.downsample.{m[2]}"
        elif k.startswith("levels."):
            k = "stages." + k[len("levels."):]
        elif k.startswith("layers."):
            k = "blocks." + k[len("layers."):]
        elif k in ("head.weight", "head.bias"):
            k = "head.fc." + k[len("head."):]
        out[k] = v
    return out


def _create_nat(variant: str, pretrained: bool = False, **kwargs) -> NAT:
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3))
    return build_model_with_cfg(
        NAT, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(flatten_sequential=True, out_indices=out_indices, feature_cls="getter"),
        **kwargs)


def _create_nat_isotropic(variant: str, pretrained: bool = False, **kwargs) -> NATIsotropic:
    out_indices = kwargs.pop("out_indices", 3)
    return build_model_with_cfg(
        NATIsotropic, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(out_indices=out_indices, feature_cls="getter"),
        **kwargs)


def _cfg(url: str = "", **kwargs) -> Dict[str, Any]:
    return {
        "url": url, "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.875, "interpolation": "bicubic", "fixed_input_size": False,
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed.proj.0", "classifier": "head.fc",
        "license": "mit", "paper_ids": "arXiv:2204.07143",
        "origin_url": "https://github.com/SHI-Labs/Neighborhood-Attention-Transformer",
        **kwargs,
    }


def _nat_cfg(size: str) -> Dict[str, Any]:
    return _cfg(
        url=f"https://shi-labs.com/projects/nat/checkpoints/CLS/nat_{size}.pth",
        hf_hub_id=f"shi-labs/nat-{size}-in1k-224", hf_hub_filename="pytorch_model.bin",
        # the 7x7 neighbourhoods need a 7x7 map at stride 32 (NAT.min_input_size)
        min_input_size=(3, 193, 193),
        paper_name="Neighborhood Attention Transformer")


def _iso_cfg(size: str) -> Dict[str, Any]:
    return _cfg(
        url=f"https://shi-labs.com/projects/dinat/checkpoints/isotropic/nat_isotropic_{size}_in1k_224.pth",
        first_conv="patch_embed.proj", pool_size=(14, 14), paper_ids="arXiv:2209.15001",
        min_input_size=(3, 97, 97),  # the 7x7 neighbourhoods need a 7x7 map at stride 16
        paper_name="Dilated Neighborhood Attention Transformer")


default_cfgs = generate_default_cfgs({
    "nat_mini.in1k": _nat_cfg("mini"),
    "nat_tiny.in1k": _nat_cfg("tiny"),
    "nat_small.in1k": _nat_cfg("small"),
    "nat_base.in1k": _nat_cfg("base"),
    "nat_isotropic_small.in1k": _iso_cfg("small"),
    "nat_isotropic_base.in1k": _iso_cfg("base"),
    "test_nat": _cfg(input_size=(3, 80, 80), pool_size=(3, 3), min_input_size=(3, 65, 65)),
    "test_nat_isotropic": _cfg(input_size=(3, 64, 64), pool_size=(4, 4), min_input_size=(3, 33, 33),
                               first_conv="patch_embed.proj"),
})


def _top1(value: float, source: str) -> Dict[str, Dict[str, Any]]:
    return {"in1k": dict(metric="top1", value=value, dataset="imagenet-1k", source=source)}


@register_model(family="nat", task="classification", official_params=19_984_174, manifest="nat/nat_mini",
                reported=_top1(81.8, "paper Table 2; classification/NAT.md"))
def nat_mini(pretrained: bool = False, **kwargs) -> NAT:
    args = dict(depths=(3, 4, 6, 5), embed_dim=64, num_heads=(2, 4, 8, 16), mlp_ratio=3.0, kernel_size=7)
    return _create_nat("nat_mini", pretrained, **dict(args, **kwargs))


@register_model(family="nat", task="classification", official_params=27_901_582, manifest="nat/nat_tiny",
                reported=_top1(83.2, "paper Table 2; classification/NAT.md"))
def nat_tiny(pretrained: bool = False, **kwargs) -> NAT:
    args = dict(depths=(3, 4, 18, 5), embed_dim=64, num_heads=(2, 4, 8, 16), mlp_ratio=3.0, kernel_size=7)
    return _create_nat("nat_tiny", pretrained, **dict(args, **kwargs))


@register_model(family="nat", task="classification", official_params=50_743_297, manifest="nat/nat_small",
                reported=_top1(83.7, "paper Table 2; classification/NAT.md"))
def nat_small(pretrained: bool = False, **kwargs) -> NAT:
    args = dict(depths=(3, 4, 18, 5), embed_dim=96, num_heads=(3, 6, 12, 24), mlp_ratio=2.0, kernel_size=7,
                layer_scale=1e-5)
    return _create_nat("nat_small", pretrained, **dict(args, **kwargs))


@register_model(family="nat", task="classification", official_params=89_769_652, manifest="nat/nat_base",
                reported=_top1(84.3, "paper Table 2; classification/NAT.md"))
def nat_base(pretrained: bool = False, **kwargs) -> NAT:
    args = dict(depths=(3, 4, 18, 5), embed_dim=128, num_heads=(4, 8, 16, 32), mlp_ratio=2.0, kernel_size=7,
                layer_scale=1e-5)
    return _create_nat("nat_base", pretrained, **dict(args, **kwargs))


@register_model(family="nat", task="classification", official_params=21_999_736,
                manifest="nat/nat_isotropic_small", feature_reductions=(16,) * 12,
                reported=_top1(80.0, "DiNAT paper Table 9; classification/DiNAT.md"))
def nat_isotropic_small(pretrained: bool = False, **kwargs) -> NATIsotropic:
    args = dict(embed_dim=384, depth=12, num_heads=12, mlp_ratio=4.0, kernel_size=7)
    return _create_nat_isotropic("nat_isotropic_small", pretrained, **dict(args, **kwargs))


@register_model(family="nat", task="classification", official_params=86_465_800,
                manifest="nat/nat_isotropic_base", feature_reductions=(16,) * 12,
                reported=_top1(81.6, "DiNAT paper Table 9; classification/DiNAT.md"))
def nat_isotropic_base(pretrained: bool = False, **kwargs) -> NATIsotropic:
    args = dict(embed_dim=768, depth=12, num_heads=24, mlp_ratio=4.0, kernel_size=7)
    return _create_nat_isotropic("nat_isotropic_base", pretrained, **dict(args, **kwargs))


@register_model(family="nat", task="classification", test_model=True, test_sizes=[(80, 80), (70, 95)])
def test_nat(pretrained: bool = False, **kwargs) -> NAT:
    """Tiny NAT (kernel 3, layer scale) for the general tests; smallest input 65x65."""
    args = dict(depths=(1, 1, 2, 1), embed_dim=8, num_heads=(1, 2, 2, 4), mlp_ratio=2.0, kernel_size=3,
                layer_scale=1e-5)
    return _create_nat("test_nat", pretrained, **dict(args, **kwargs))


@register_model(family="nat", task="classification", test_model=True, test_sizes=[(64, 64), (50, 75)],
                feature_reductions=(16,) * 3)
def test_nat_isotropic(pretrained: bool = False, **kwargs) -> NATIsotropic:
    """Tiny isotropic NAT (kernel 3) for the general tests; smallest input 33x33."""
    args = dict(embed_dim=16, depth=3, num_heads=2, mlp_ratio=2.0, kernel_size=3)
    return _create_nat_isotropic("test_nat_isotropic", pretrained, **dict(args, **kwargs))


# old names keep working (timm warns and maps them; zoo.create_model resolves them too)
register_model_deprecations(__name__, {
    "nat_isotropic_test": "test_nat_isotropic",
    "nat_test": "test_nat",
})
