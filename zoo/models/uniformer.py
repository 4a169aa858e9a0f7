"""UniFormer: unified convolution and self-attention, for images and videos.

Papers:
    * Li et al., "UniFormer: Unified Transformer for Efficient Spatiotemporal Representation Learning",
      ICLR 2022, arXiv:2201.04676 (video)
    * Li et al., "UniFormer: Unifying Convolution and Self-attention for Visual Recognition",
      TPAMI 2023, arXiv:2201.09450 (image, token labeling, light models)

Official code: https://github.com/Sense-X/UniFormer (Apache-2.0), commit 52a0415.

A UniFormer block is ``x = x + DPE(x); x = x + MHRA(Norm(x)); x = x + FFN(Norm(x))`` (paper eq. 1-3).
The relation aggregator (MHRA) is *local* in stages 1-2 (a depthwise 5x5 / 5x5x5 conv between two
1x1 convs, BatchNorm) and *global* in stages 3-4 (multi-head self-attention, LayerNorm). The dynamic
position embedding (DPE) is a depthwise 3x3 (3x3x3) conv added residually, ``zoo.layers.ConvPosEmbed``.

One model class serves the 2-D image and 3-D video networks (``spatial_dims``), the token-labeling
checkpoints (``aux_head``: logits are ``head(mean) + 0.5 * max_tokens(aux_head(tokens))``, as the official
inference) and the layer-scale variants. The light models (``uniformer_xxs``/``uniformer_xs``, official
``uniformer_light.py``) are :class:`UniFormerLight`, whose global blocks prune tokens (Evo-ViT).

Deviations from the official code, none of which changes an output:
    * any input size works (the official patch stem asserts the constructor's ``img_size``);
    * layer scale is a constructor argument (officially a module global that leaks between builds);
    * the light models pass the class token and token scores from block to block explicitly (officially
      module globals);
    * maps are kept channels-last in memory, and the video local blocks' 1x1x1 convs are ``nn.Linear``
      layers over the channel axis (same values; the converter flattens the official kernels);
    * the light models' class-token head (``norm_cls``/``head_cls``, unused by the official forward) is
      not built;
    * attention runs through ``F.scaled_dot_product_attention``;
    * the video model takes a tensor ``(B, C, T, H, W)`` (a one-element list, the official calling
      convention, is accepted too);
    * in training mode ``forward`` still returns the inference logits: the official token-labeling
      models return ``(cls, aux, bbox)`` and apply MixToken, the light models return
      ``(head, head_cls)``; these training-only outputs and the MixToken augmentation are not reproduced
      (``UniFormerLight.forward_features_with_cls`` gives the final class token).
"""

import warnings
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import Attention, ConvMlp, DropPath, Mlp, trunc_normal_
from timm.models import PretrainedCfg, build_model_with_cfg, generate_default_cfgs, register_model_deprecations
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint_seq

from zoo.hub import unwrap_state_dict
from zoo.layers.conv_pos_embed import ConvPosEmbed
from zoo.registry import register_checkpoint_filter, register_family, register_model
from zoo.validation import check_input

__all__ = [
    "UniFormer", "LocalBlock", "GlobalBlock", "PatchEmbed", "ConvStem", "ConvDownsample",
    "UniFormerStage", "UniFormerLight", "UniFormerLightStage", "EvoGlobalBlock", "checkpoint_filter_fn", "DROPPED_OFFICIAL_KEYS", "inflate_weights_2d_to_3d", "VARIANT_HEAD_DIMS",
]

register_family(
    "uniformer",
    title="UniFormer: Unifying Convolution and Self-attention for Visual Recognition",
    paper_ids=("arXiv:2201.09450", "arXiv:2201.04676"),
    official_repo="https://github.com/Sense-X/UniFormer",
    code_license="Apache-2.0 (the LICENSE file; the README and the Hub repos say MIT)",
    description="Local (depthwise-conv) relation aggregators in the shallow stages, global self-attention in "
                "the deep ones, a depthwise-conv dynamic position embedding before every block; image "
                "(2-D) and video (3-D) networks.",
    citation="@article{li2023uniformer,\n  title={UniFormer: Unifying Convolution and Self-attention for Visual "
             "Recognition},\n  author={Li, Kunchang and Wang, Yali and Zhang, Junhao and Gao, Peng and Song, "
             "Guanglu and Liu, Yu and Li, Hongsheng and Qiao, Yu},\n  journal={IEEE TPAMI},\n  year={2023}\n}\n"
             "@inproceedings{li2022uniformer,\n  title={UniFormer: Unified Transformer for Efficient "
             "Spatiotemporal Representation Learning},\n  author={Li, Kunchang and Wang, Yali and Gao, Peng "
             "and Song, Guanglu and Liu, Yu and Li, Hongsheng and Qiao, Yu},\n  booktitle={ICLR},\n  "
             "year={2022}\n}",
    module=__name__,
)


def _conv_cls(spatial_dims: int):
    return nn.Conv2d if spatial_dims == 2 else nn.Conv3d


def _bn_cls(spatial_dims: int):
    return nn.BatchNorm2d if spatial_dims == 2 else nn.BatchNorm3d


def _tokens_last(x: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """A channels-first map (B, C, *S) as (B, *S, C). On the channels-last maps the stages keep this is
    a free view, and a Linear over it is the 1x1 (1x1x1) conv as one GEMM that writes a channels-last
    result. Explicit non-negative permutations (the legacy ONNX exporter writes an invalid ``Transpose``
    for ``movedim(1, -1)``), chosen by the module's ``spatial_dims`` rather than the tensor's rank, which
    a symbolic (fx) trace does not know."""
    return x.permute(0, 2, 3, 1) if spatial_dims == 2 else x.permute(0, 2, 3, 4, 1)


def _channels_first(x: torch.Tensor, spatial_dims: int) -> torch.Tensor:
    """The inverse of :func:`_tokens_last`: (B, *S, C) -> (B, C, *S), a view."""
    return x.permute(0, 3, 1, 2) if spatial_dims == 2 else x.permute(0, 4, 1, 2, 3)


class LocalBlock(nn.Module):
    """UniFormer block with local MHRA (paper eq. 4-5), on a channels-first map.

    ``x = x + DPE(x)``; ``x = x + conv1x1(dwconv5(conv1x1(BN(x))))``; ``x = x + FFN(BN(x))``. The
    official code has no activation between the three convs of the relation aggregator.

    The 1x1 (1x1x1) convs ``conv1``, ``conv2`` and the FFN's ``fc1``/``fc2`` are convs, as officially
    (the 2-D FFN is timm's ``ConvMlp``), run on the channels-last maps the stages keep: PyTorch's CPU
    convolution (oneDNN) then reads and writes channels-last with the bias fused, measured 1.1-1.7x
    faster than ``nn.Linear`` over the same memory (MKL GEMM plus a pass to add the bias). The video
    model's 1x1x1 layers are ``nn.Linear`` over channels (there the CPU Conv3d is the slower one);
    ``checkpoint_filter_fn`` reshapes the kernels to whichever layout the model has.
    """

    def __init__(
            self,
            dim: int,
            mlp_ratio: float = 4.,
            proj_drop: float = 0.,
            drop_path: float = 0.,
            ls_init_value: Optional[float] = None,
            spatial_dims: int = 2,
            act_layer=nn.GELU,
    ):
        super().__init__()
        conv, bn = _conv_cls(spatial_dims), _bn_cls(spatial_dims)
        self.spatial_dims = spatial_dims
        self.pos_embed = ConvPosEmbed(dim, 3, spatial_dims=spatial_dims)
        self.norm1 = bn(dim)
        if spatial_dims == 2:
            self.conv1 = nn.Conv2d(dim, dim, 1)
            self.attn = conv(dim, dim, 5, padding=2, groups=dim)
            self.conv2 = nn.Conv2d(dim, dim, 1)
        else:
            self.conv1 = nn.Linear(dim, dim)
            self.attn = conv(dim, dim, 5, padding=2, groups=dim)
            self.conv2 = nn.Linear(dim, dim)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = bn(dim)
        if spatial_dims == 2:
            self.mlp = ConvMlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop)
        else:
            self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        # layer scale (official TL `large_ls`): one gain per channel, stored flat
        self.gamma_1 = nn.Parameter(ls_init_value * torch.ones(dim)) if ls_init_value is not None else None
        self.gamma_2 = nn.Parameter(ls_init_value * torch.ones(dim)) if ls_init_value is not None else None

    def _scale(self, gamma: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return y * gamma.reshape((-1,) + (1,) * self.spatial_dims)  # stored flat, applied per channel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.spatial_dims
        x = x + self.pos_embed(x)
        if d == 2:
            y = self.conv2(self.attn(self.conv1(self.norm1(x))))
        else:
            y = _channels_first(self.conv1(_tokens_last(self.norm1(x), d)), d)
            y = _channels_first(self.conv2(_tokens_last(self.attn(y), d)), d)
        if self.gamma_1 is not None:
            y = self._scale(self.gamma_1, y)
        x = x + self.drop_path1(y)
        if d == 2:
            y = self.mlp(self.norm2(x))
        else:
            y = _channels_first(self.mlp(_tokens_last(self.norm2(x), d)), d)
        if self.gamma_2 is not None:
            y = self._scale(self.gamma_2, y)
        x = x + self.drop_path2(y)
        return x


class GlobalBlock(nn.Module):
    """UniFormer block with global MHRA (paper eq. 6): DPE on the map, then a pre-norm transformer block
    over the flattened tokens (LayerNorm eps 1e-6), reshaped back to the map."""

    def __init__(
            self,
            dim: int,
            num_heads: int,
            mlp_ratio: float = 4.,
            qkv_bias: bool = True,
            proj_drop: float = 0.,
            attn_drop: float = 0.,
            drop_path: float = 0.,
            ls_init_value: Optional[float] = None,
            spatial_dims: int = 2,
            act_layer=nn.GELU,
    ):
        super().__init__()
        self.pos_embed = ConvPosEmbed(dim, 3, spatial_dims=spatial_dims)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        # the global MHRA is multi-head self-attention: timm's Attention, keys qkv/proj as officially
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.gamma_1 = nn.Parameter(ls_init_value * torch.ones(dim)) if ls_init_value is not None else None
        self.gamma_2 = nn.Parameter(ls_init_value * torch.ones(dim)) if ls_init_value is not None else None

    def forward_tokens(self, x: torch.Tensor) -> torch.Tensor:
        y = self.attn(self.norm1(x))
        if self.gamma_1 is not None:
            y = self.gamma_1 * y
        x = x + self.drop_path1(y)
        y = self.mlp(self.norm2(x))
        if self.gamma_2 is not None:
            y = self.gamma_2 * y
        return x + self.drop_path2(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.pos_embed(x)
        shape = x.shape
        x = self.forward_tokens(x.flatten(2).transpose(1, 2))
        return x.transpose(1, 2).reshape(shape)


class PatchEmbed(nn.Module):
    """Non-overlapping patch embedding: conv (kernel = stride), then LayerNorm over channels (eps 1e-5).

    The video stem is a Conv3d with kernel (3, p, p), stride (2, p, p) and temporal padding 1 (T is halved
    once); the later video embeds use kernel = stride = (1, p, p). Sizes that are not multiples of the
    patch are floored, as by the official conv.
    """

    def __init__(self, in_chans: int, embed_dim: int, patch_size: int, spatial_dims: int = 2,
                 temporal_stem: bool = False):
        super().__init__()
        self.spatial_dims = spatial_dims
        if spatial_dims == 2:
            self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)
        elif temporal_stem:
            self.proj = nn.Conv3d(in_chans, embed_dim, (3, patch_size, patch_size), stride=(2, patch_size, patch_size),
                                  padding=(1, 0, 0))
        else:
            self.proj = nn.Conv3d(in_chans, embed_dim, (1, patch_size, patch_size), stride=(1, patch_size, patch_size))
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        # the LayerNorm output is channels-last in memory: handed on as such (see UniFormerStage)
        return _channels_first(self.norm(_tokens_last(x, self.spatial_dims)), self.spatial_dims)


class ConvStem(nn.Module):
    """Overlapping stem of UniFormer-S-dagger (official ``head_embedding``): conv3x3 s2 -> BN -> GELU ->
    conv3x3 s2 -> BN, hidden width ``embed_dim // 2``."""

    def __init__(self, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(in_chans, embed_dim // 2, 3, stride=2, padding=1),
            nn.BatchNorm2d(embed_dim // 2),
            nn.GELU(),
            nn.Conv2d(embed_dim // 2, embed_dim, 3, stride=2, padding=1),
            nn.BatchNorm2d(embed_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class ConvDownsample(nn.Module):
    """Overlapping downsampler of the conv-stem models (official ``middle_embedding``): conv3x3 s2 -> BN."""

    def __init__(self, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(in_chans, embed_dim, 3, stride=2, padding=1),
            nn.BatchNorm2d(embed_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` (logically channels-first) stored channels-last: PyTorch's CPU depthwise and pointwise convs
    are several times faster on it, and the global blocks' ``flatten(2).transpose(1, 2)`` token view is
    then free. Logical shapes and values are unchanged. ONNX has no memory formats (and the legacy
    exporter has no symbolic for a ``channels_last_3d`` copy): an export records no copy."""
    if not torch.jit.is_scripting():  # TorchScript cannot compile is_in_onnx_export (it imports)
        if torch.onnx.is_in_onnx_export():
            return x
    return x.contiguous(memory_format=torch.channels_last if x.ndim == 4 else torch.channels_last_3d)


def _num_kept(n: int, ratio: float) -> int:
    return int(n * ratio)


def _blend_scores(score: torch.Tensor, cls_row: torch.Tensor, t: float) -> torch.Tensor:
    if score.shape[1] == cls_row.shape[1]:
        return (1 - t) * score + t * cls_row
    n = cls_row.shape[1] - 1
    return torch.cat([(1 - t) * score[:, :n] + t * cls_row[:, :n], score[:, n:]], dim=1)


torch.fx.wrap("_blend_scores")  # fx: which scores are blended depends on the token count
torch.fx.wrap("_channels_last")  # fx: the memory format depends on the input's rank
torch.fx.wrap("_num_kept")  # fx: the kept-token count depends on the map size


class UniFormerStage(nn.Module):
    """A downsampling embed followed by the stage's blocks (all local or all global)."""

    def __init__(self, downsample: nn.Module, blocks: Sequence[nn.Module]):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.Sequential(*blocks)
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _channels_last(self.downsample(x))
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.blocks, x)
        else:
            x = self.blocks(x)
        return x


class UniFormer(nn.Module):
    """UniFormer (image: ``spatial_dims=2``, video: ``spatial_dims=3``).

    Args:
        depths: blocks per stage; stages 1-2 are local, 3-4 global.
        embed_dims: widths of the four stages.
        head_dim: channels per attention head, ``num_heads = dim // head_dim``. It changes no tensor
            shape, so it must come from the variant (32 for S-dagger and the TL S/S-dagger/B, else 64).
        mlp_ratio: FFN expansion.
        qkv_bias: bias of the attention ``qkv`` Linear.
        conv_stem: overlapping conv stem and conv3x3 downsamplers instead of patch embeds.
        ls_init_value: layer-scale init; None disables layer scale.
        ls_local: layer scale in the local blocks too (official TL ``large_ls``), not only the global ones.
        aux_head: the token-labeling auxiliary head; logits become ``head(mean) + 0.5 * max(aux_head(tokens))``.
        spatial_dims: 2 for images ``(B, C, H, W)``, 3 for videos ``(B, C, T, H, W)``.
        in_chans, num_classes, global_pool: as in timm (``global_pool`` is 'avg' or '').
        drop_rate: dropout before the classifier.
        proj_drop_rate, attn_drop_rate, drop_path_rate: block dropouts and stochastic depth (linear decay).
    """

    def __init__(
            self,
            depths: Sequence[int] = (3, 4, 8, 3),
            embed_dims: Sequence[int] = (64, 128, 320, 512),
            head_dim: int = 64,
            mlp_ratio: float = 4.,
            qkv_bias: bool = True,
            conv_stem: bool = False,
            ls_init_value: Optional[float] = None,
            ls_local: bool = False,
            aux_head: bool = False,
            spatial_dims: int = 2,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "avg",
            drop_rate: float = 0.,
            proj_drop_rate: float = 0.,
            attn_drop_rate: float = 0.,
            drop_path_rate: float = 0.,
    ):
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 (image) or 3 (video), got {spatial_dims}")
        if conv_stem and spatial_dims == 3:
            raise ValueError("the conv stem exists only for the image models")
        if global_pool not in ("avg", ""):
            raise ValueError(f"global_pool must be 'avg' or '', got {global_pool!r}")
        if len(depths) != 4 or len(embed_dims) != 4:
            raise ValueError("UniFormer has four stages: depths and embed_dims need four entries")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.in_chans = in_chans
        self.spatial_dims = spatial_dims
        self.head_dim = head_dim
        self.conv_stem = conv_stem
        self.embed_dims = tuple(embed_dims)
        self.num_features = self.head_hidden_size = embed_dims[-1]
        self.drop_rate = drop_rate
        self.grad_checkpointing = False
        # smallest input side that keeps every stage non-empty (the patch convs floor, the conv stem pads)
        self.min_input_size = 1 if conv_stem else 32

        # stochastic depth decays linearly over all blocks (computed in Python: works on the meta device)
        total = sum(depths)
        rates = [drop_path_rate * i / (total - 1) if total > 1 else 0. for i in range(total)]
        dpr = [rates[sum(depths[:i]):sum(depths[:i + 1])] for i in range(len(depths))]
        stages = []
        self.feature_info = []
        in_dim = in_chans
        for i, (depth, dim) in enumerate(zip(depths, embed_dims)):
            if conv_stem:
                down = ConvStem(in_dim, dim) if i == 0 else ConvDownsample(in_dim, dim)
            else:
                down = PatchEmbed(in_dim, dim, 4 if i == 0 else 2, spatial_dims, temporal_stem=(i == 0))
            if i < 2:
                blocks = [
                    LocalBlock(dim, mlp_ratio, proj_drop=proj_drop_rate, drop_path=dpr[i][j],
                               ls_init_value=ls_init_value if ls_local else None, spatial_dims=spatial_dims)
                    for j in range(depth)]
            else:
                blocks = [
                    GlobalBlock(dim, dim // head_dim, mlp_ratio, qkv_bias=qkv_bias, proj_drop=proj_drop_rate,
                                attn_drop=attn_drop_rate, drop_path=dpr[i][j], ls_init_value=ls_init_value,
                                spatial_dims=spatial_dims)
                    for j in range(depth)]
            stages.append(UniFormerStage(down, blocks))
            self.feature_info.append(dict(num_chs=dim, reduction=2 ** (i + 2), module=f"stages.{i}"))
            in_dim = dim
        self.stages = nn.Sequential(*stages)
        self.norm = _bn_cls(spatial_dims)(self.num_features)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.aux_head = None
        if aux_head:
            self.aux_head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.apply(self._init_weights)

    def _init_weights(self, m: nn.Module) -> None:
        # as the official code: truncated normal Linear weights, zero biases, unit LayerNorms; convs keep
        # PyTorch's default init
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return set()

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(
            stem=r"^stages\.0\.downsample",
            blocks=r"^stages\.(\d+)" if coarse else [
                (r"^stages\.(\d+)\.downsample", (0,)),
                (r"^stages\.(\d+)\.blocks\.(\d+)", None),
                (r"^norm", (99999,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"global_pool must be 'avg' or '', got {global_pool!r}")
            self.global_pool = global_pool
        ref = next(self.parameters())
        device, dtype = ref.device, ref.dtype
        # the new classifier joins the model where it is (device, dtype, train/eval), as timm's models do
        self.head = (nn.Linear(self.num_features, num_classes, device=device, dtype=dtype)
                     if num_classes > 0 else nn.Identity()).train(self.training)
        if self.aux_head is not None:
            self.aux_head = (nn.Linear(self.num_features, num_classes, device=device, dtype=dtype)
                             if num_classes > 0 else nn.Identity()).train(self.training)

    @torch.jit.ignore
    def _check(self, x: torch.Tensor) -> None:
        min_size = None
        if self.min_input_size > 1:
            min_size = (1,) * (self.spatial_dims - 2) + (self.min_input_size,) * 2
        check_input(x, model=self, in_chans=self.in_chans, ndim=self.spatial_dims + 2, min_size=min_size)

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Stage outputs (after each stage's last block), channels-first (NCHW, or NCTHW for video).

        ``norm=True`` applies the final BatchNorm to the last stage's map.
        """
        if output_fmt not in ("NCHW", "NCTHW"):
            raise ValueError(f"output_fmt must be 'NCHW' (channels-first), got {output_fmt!r}")
        self._check(x)
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        last_idx = len(self.stages) - 1
        stages = self.stages if torch.jit.is_scripting() or not stop_early else self.stages[:max_index + 1]
        intermediates = []
        feat_idx = 0
        for feat_idx, stage in enumerate(stages):
            x = stage(x)
            if feat_idx in take_indices:
                intermediates.append(self.norm(x) if norm and feat_idx == last_idx else x)
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
    ) -> List[int]:
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        prune_end = max_index < len(self.stages) - 1
        self.stages = self.stages[:max_index + 1]
        if prune_norm or prune_end:
            self.norm = nn.Identity()
        if prune_end:
            self.num_features = self.head_hidden_size = self.feature_info[max_index]["num_chs"]
        if prune_head or prune_end:
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            x = checkpoint_seq(self.stages, x)
        else:
            x = self.stages(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pooled logits; with ``global_pool=''`` the unpooled map stays channels-first, as in timm:
        (B, C, *S) features (``pre_logits`` or no classifier), (B, classes, *S) per-position logits."""
        if self.global_pool != "avg":
            x = self.head_drop(x)
            if pre_logits or isinstance(self.head, nn.Identity):
                return x
            return _channels_first(self.head(_tokens_last(x, self.spatial_dims)), self.spatial_dims)
        tokens = x.flatten(2)  # (B, C, N)
        pooled = self.head_drop(tokens.mean(-1))
        if pre_logits:
            return pooled
        logits = self.head(pooled)
        if self.aux_head is not None:
            # token labeling at inference (official): class logits plus half the max over tokens of the
            # per-token logits
            logits = logits + 0.5 * self.aux_head(tokens.transpose(1, 2)).amax(1)
        return logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spatial_dims == 3 and isinstance(x, (list, tuple)) and len(x) == 1:
            x = x[0]  # the official video forward takes [x]
        x = self.forward_features(x)
        return self.forward_head(x)


class EvoGlobalMHRA(Attention):
    """timm's ``Attention`` that also returns the class token's attention to the other tokens, averaged
    over heads (the score the light models prune with)."""

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.)
        out = self.proj_drop(self.proj(self.norm(out.transpose(1, 2).reshape(B, N, C))))
        # only the class token's row of the attention matrix is needed: (B, heads, 1, N)
        cls_row = ((q[:, :, :1] @ k.transpose(-2, -1)) * self.scale).softmax(-1)
        return out, cls_row.mean(1)[:, 0, 1:]


def _order_by_score(score: torch.Tensor) -> torch.Tensor:
    """Token indices by descending score, equal scores in token order (a stable sort).

    The official ``argsort`` leaves the order of equal scores to the sort kernel, and which of them are
    kept then differs between PyTorch and an exported graph (ONNX ``TopK`` keeps the lower index first):
    a model whose class token starts at zero has all-equal scores in its first pruning block. Ranking by
    pairwise comparison fixes the order everywhere (``sort(stable=True)`` has no ONNX lowering); the
    (B, N, N) comparison is smaller than the attention matrix the block computes anyway.
    """
    N = score.shape[1]
    idx = torch.arange(N, device=score.device)
    s_i, s_j = score.unsqueeze(2), score.unsqueeze(1)
    ahead = (s_j > s_i) | ((s_j == s_i) & (idx.view(1, N) < idx.view(N, 1)))
    rank = ahead.sum(2)  # a permutation of 0..N-1 for every sample
    return torch.argsort(rank, dim=1)


class EvoGlobalBlock(nn.Module):
    """Global block of the light models: Evo-ViT style token pruning (official ``EvoSABlock``).

    The class token's attention, averaged over heads and blended across blocks (``trade_off``), ranks the
    patch tokens. With ``prune_ratio < 1`` only the top ``int(N * prune_ratio)`` tokens (plus the class
    token and one representative token, the score-weighted mean of the others) go through attention and
    FFN ("slow update"); the dropped tokens receive the representative token's attention + FFN update
    ("fast update"). Tokens are put back in their original order after the block. The last block of
    stage 3 average-pools the score map 2x2 (rescaled to keep its sum) for stage 4.
    """

    def __init__(
            self,
            dim: int,
            num_heads: int,
            mlp_ratio: float = 4.,
            qkv_bias: bool = True,
            prune_ratio: float = 1.,
            trade_off: float = 0.,
            downsample_score: bool = False,
            proj_drop: float = 0.,
            attn_drop: float = 0.,
            drop_path: float = 0.,
            ls_init_value: Optional[float] = None,
    ):
        super().__init__()
        self.prune_ratio = prune_ratio
        self.trade_off = trade_off
        self.downsample_score = downsample_score
        self.pos_embed = ConvPosEmbed(dim, 3, spatial_dims=2)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = EvoGlobalMHRA(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=proj_drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        use_ls = ls_init_value is not None
        self.gamma_1 = nn.Parameter(ls_init_value * torch.ones(dim)) if use_ls else None
        self.gamma_2 = nn.Parameter(ls_init_value * torch.ones(dim)) if use_ls else None
        self.gamma_3 = nn.Parameter(ls_init_value * torch.ones(dim)) if use_ls and prune_ratio != 1 else None

    def _blend(self, score: Optional[torch.Tensor], cls_row: torch.Tensor) -> torch.Tensor:
        """The official score update: the first scores are set, later ones blended with ``trade_off``.

        ``cls_row`` covers every key but the class token. When it has as many entries as ``score`` (no
        pruning, or a map so small that pruning keeps N-1 tokens) all scores are blended; otherwise the
        representative token's entry is left out and only the kept (leading) scores are updated.
        """
        if score is None:
            return cls_row
        return _blend_scores(score, cls_row, float(self.trade_off))

    def _residuals(self, z: torch.Tensor, score: Optional[torch.Tensor]):
        a, cls_row = self.attn(self.norm1(z))
        score = self._blend(score, cls_row)
        fast = a[:, -1:]
        z = z + self.drop_path1(a if self.gamma_1 is None else self.gamma_1 * a)
        m = self.mlp(self.norm2(z))
        fast = fast + m[:, -1:]
        z = z + self.drop_path2(m if self.gamma_2 is None else self.gamma_2 * m)
        return z, score, fast

    def forward(self, cls_token: torch.Tensor, x: torch.Tensor, score: Optional[torch.Tensor] = None):
        x = x + self.pos_embed(x)
        B, C, H, W = x.shape
        t = x.flatten(2).transpose(1, 2)
        N = t.shape[1]
        if self.prune_ratio == 1:
            z, score, _ = self._residuals(torch.cat([cls_token, t], dim=1), score)
            return z[:, :1], z[:, 1:].transpose(1, 2).reshape(B, C, H, W), score
        if score is None:
            raise ValueError("a pruning block needs the token scores of an earlier block")
        keep = _num_kept(N, float(self.prune_ratio))
        order = _order_by_score(score)
        t_sorted = torch.gather(t, 1, order.unsqueeze(-1).expand(-1, -1, C))
        score = torch.gather(score, 1, order)
        x_keep, x_drop = t_sorted[:, :keep], t_sorted[:, keep:]
        w = score[:, keep:]
        rep = ((w / w.sum(1, keepdim=True)).unsqueeze(-1) * x_drop).sum(1, keepdim=True)
        z, score, fast = self._residuals(torch.cat([cls_token, x_keep, rep], dim=1), score)
        if self.gamma_3 is not None:
            fast = self.gamma_3 * fast
        t_sorted = torch.cat([z[:, 1:-1], x_drop + fast], dim=1)
        # back to the original token order
        total = score.sum(1, keepdim=True)
        t = torch.scatter(torch.empty_like(t_sorted), 1, order.unsqueeze(-1).expand(-1, -1, C), t_sorted)
        score = torch.scatter(torch.empty_like(score), 1, order, score)
        if self.downsample_score:
            score = F.avg_pool2d(score.view(B, 1, H, W), 2).flatten(1)
            score = score * (total / score.sum(1, keepdim=True))
        return z[:, :1], t.transpose(1, 2).reshape(B, C, H, W), score


class UniFormerLightStage(nn.Module):
    """A stage of the light models; a global stage threads the class token and the token scores through
    its :class:`EvoGlobalBlock` s."""
    is_global: torch.jit.Final[bool]

    def __init__(self, downsample: nn.Module, blocks: Sequence[nn.Module], is_global: bool):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks) if is_global else nn.Sequential(*blocks)
        self.is_global = is_global
        self.grad_checkpointing = False

    def forward(
            self,
            x: torch.Tensor,
            cls_token: Optional[torch.Tensor] = None,
            score: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        x = _channels_last(self.downsample(x))
        if not self.is_global:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                x = checkpoint_seq(self.blocks, x)
            else:
                x = self.blocks(x)
            return x, cls_token, score
        if cls_token is None:
            raise ValueError("a global stage of the light models needs the class token")
        for blk in self.blocks:
            if self.grad_checkpointing and not torch.jit.is_scripting():
                cls_token, x, score = checkpoint(blk, cls_token, x, score, use_reentrant=False)
            else:
                cls_token, x, score = blk(cls_token, x, score)
        return x, cls_token, score


class UniFormerLight(nn.Module):
    """UniFormer-XXS / XS (official ``UniFormer_Light``): conv stem, patch-embed downsamplers with LN,
    local blocks in stages 1-2 and token-pruning global blocks (:class:`EvoGlobalBlock`) with a class
    token in stages 3-4 (``cls_upsample`` widens it between them).

    Logits are ``head(mean(BN(map)))`` as the official inference. The official class-token head
    (``norm_cls``, ``head_cls``: LayerNorm + Linear on the final class token) is used only by the
    official training loss, never by its forward: it is not built (every parameter here gets a gradient
    from ``forward``), ``checkpoint_filter_fn`` drops its weights (``DROPPED_OFFICIAL_KEYS``), and
    ``forward_features_with_cls`` hands out the final class token for whoever trains such a head.
    """

    def __init__(
            self,
            depths: Sequence[int] = (2, 5, 8, 2),
            embed_dims: Sequence[int] = (56, 112, 224, 448),
            head_dim: int = 28,
            mlp_ratio: float = 3.,
            qkv_bias: bool = True,
            prune_ratios: Sequence[Sequence[float]] = ((), (), (1,) + (0.5,) * 7, (0.5,) * 2),
            trade_offs: Sequence[Sequence[float]] = ((), (), (1,) + (0.5,) * 7, (0.5,) * 2),
            ls_init_value: Optional[float] = None,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "avg",
            drop_rate: float = 0.,
            proj_drop_rate: float = 0.,
            attn_drop_rate: float = 0.,
            drop_path_rate: float = 0.,
    ):
        super().__init__()
        if global_pool not in ("avg", ""):
            raise ValueError(f"global_pool must be 'avg' or '', got {global_pool!r}")
        for i in (2, 3):
            if len(prune_ratios[i]) != depths[i] or len(trade_offs[i]) != depths[i]:
                raise ValueError(f"stage {i + 1}: need one prune ratio and one trade-off per block")
        if depths[2] and prune_ratios[2][0] != 1:
            raise ValueError("the first block of stage 3 must not prune (it sets the token scores)")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.in_chans = in_chans
        self.spatial_dims = 2
        self.head_dim = head_dim
        self.embed_dims = tuple(embed_dims)
        self.num_features = self.head_hidden_size = embed_dims[-1]
        self.grad_checkpointing = False
        self.min_input_size = 29  # the conv stem pads, the patch embeds floor: stage 4 needs ceil(H/4) >= 8

        total = sum(depths)
        rates = [drop_path_rate * i / (total - 1) if total > 1 else 0. for i in range(total)]
        dpr = [rates[sum(depths[:i]):sum(depths[:i + 1])] for i in range(4)]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims[2]))
        self.cls_upsample = nn.Linear(embed_dims[2], embed_dims[3])
        stages = []
        self.feature_info = []
        in_dim = in_chans
        for i, (depth, dim) in enumerate(zip(depths, embed_dims)):
            down = ConvStem(in_dim, dim) if i == 0 else PatchEmbed(in_dim, dim, 2)
            if i < 2:
                blocks = [LocalBlock(dim, mlp_ratio, proj_drop=proj_drop_rate, drop_path=dpr[i][j],
                                     ls_init_value=ls_init_value) for j in range(depth)]
            else:
                blocks = [EvoGlobalBlock(
                    dim, dim // head_dim, mlp_ratio, qkv_bias=qkv_bias, prune_ratio=prune_ratios[i][j],
                    trade_off=trade_offs[i][j], downsample_score=(i == 2 and j == depth - 1),
                    proj_drop=proj_drop_rate, attn_drop=attn_drop_rate, drop_path=dpr[i][j],
                    ls_init_value=ls_init_value) for j in range(depth)]
            stages.append(UniFormerLightStage(down, blocks, is_global=i >= 2))
            self.feature_info.append(dict(num_chs=dim, reduction=2 ** (i + 2), module=f"stages.{i}"))
            in_dim = dim
        self.stages = nn.ModuleList(stages)  # stages pass (map, class token, scores) along
        self.norm = nn.BatchNorm2d(self.num_features)
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()
        self.aux_head = None  # no token-labeling head (shares UniFormer.reset_classifier)
        self.apply(UniFormer._init_weights.__get__(self))

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return {"cls_token"}

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        matcher = UniFormer.group_matcher(self, coarse)
        matcher["stem"] = r"^stages\.0\.downsample|^cls_token"
        if not coarse:
            matcher["blocks"] = matcher["blocks"][:-1] + [(r"^cls_upsample|^norm", (99999,))]
        return matcher

    set_grad_checkpointing = UniFormer.set_grad_checkpointing
    get_classifier = UniFormer.get_classifier
    reset_classifier = UniFormer.reset_classifier
    forward_head = UniFormer.forward_head
    _check = UniFormer._check

    def _stage_inputs(
            self, i: int, x: torch.Tensor, cls_token: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """The class token entering stage ``i``: created for stage 3, widened for stage 4."""
        if i == 2:
            # a copy, not a view: a view of a parameter made under no_grad confuses module hooks
            return self.cls_token.repeat(x.shape[0], 1, 1)
        if i == 3 and cls_token is not None:
            return self.cls_upsample(cls_token)
        return cls_token

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Stage outputs (NCHW); ``norm=True`` applies the final BatchNorm to the last one."""
        if output_fmt != "NCHW":
            raise ValueError(f"output_fmt must be 'NCHW', got {output_fmt!r}")
        self._check(x)
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        last_idx = len(self.stages) - 1
        cls_token: Optional[torch.Tensor] = None
        score: Optional[torch.Tensor] = None
        intermediates = []
        feat_idx = 0
        for i, stage in enumerate(self.stages):
            if stop_early and i > max_index:
                break
            feat_idx = i
            cls_token = self._stage_inputs(i, x, cls_token)
            x, cls_token, score = stage(x, cls_token, score)
            if i in take_indices:
                intermediates.append(self.norm(x) if norm and i == last_idx else x)
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
    ) -> List[int]:
        take_indices = UniFormer.prune_intermediate_layers(self, indices, prune_norm, prune_head)
        if len(self.stages) < 4:
            self.cls_upsample = nn.Identity()
        if len(self.stages) < 3:
            self.cls_token = None  # only the global stages read the class token
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._trunk(x)[1]

    def forward_features_with_cls(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The final class token and the normalised map (the token for the official training head)."""
        cls_token, x = self._trunk(x)
        if cls_token is None:
            raise ValueError("UniFormerLight pruned to its local stages (prune_intermediate_layers) has no class token")
        return cls_token, x

    def _trunk(self, x: torch.Tensor) -> Tuple[Optional[torch.Tensor], torch.Tensor]:
        """The final class token (None for a model pruned to its local stages) and the normalised map."""
        self._check(x)
        cls_token: Optional[torch.Tensor] = None
        score: Optional[torch.Tensor] = None
        for i, stage in enumerate(self.stages):
            cls_token = self._stage_inputs(i, x, cls_token)
            x, cls_token, score = stage(x, cls_token, score)
        return cls_token, self.norm(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# official head_dim of every zoo variant: head_dim changes no tensor shape, so a checkpoint of one
# variant loads silently into the other; the converter checks what a checkpoint declares against this
VARIANT_HEAD_DIMS: Dict[str, int] = {
    "uniformer_small": 64, "uniformer_small_plus": 32, "uniformer_small_plus_dim64": 64,
    "uniformer_base": 64, "uniformer_base_ls": 64,
    "uniformer_small_tl": 32, "uniformer_small_dim64_tl": 64, "uniformer_small_plus_tl": 32,
    "uniformer_small_plus_dim64_tl": 64, "uniformer_base_tl": 32, "uniformer_base_dim64_tl": 64,
    "uniformer_large_ls_tl": 64,
    "uniformer_small_video": 64, "uniformer_base_video": 64,
    "uniformer_xxs": 28, "uniformer_xs": 32,
}

# official parameters that the official forward never uses (UniFormer-XXS/XS's training-time class-token
# head): not built, dropped on load; the registry records their sizes (``dropped_params``)
DROPPED_OFFICIAL_KEYS = ("norm_cls.weight", "norm_cls.bias", "head_cls.weight", "head_cls.bias")

_POINTWISE_WEIGHTS = (".conv1.weight", ".conv2.weight", ".mlp.fc1.weight", ".mlp.fc2.weight")

# variants whose checkpoints are interchangeable shape for shape (they differ only in head_dim)
_HEAD_DIM_TWINS: Dict[str, str] = {}
for _a, _b in (("uniformer_small_plus", "uniformer_small_plus_dim64"), ("uniformer_small_tl", "uniformer_small_dim64_tl"),
               ("uniformer_small_plus_tl", "uniformer_small_plus_dim64_tl"), ("uniformer_base_tl", "uniformer_base_dim64_tl")):
    _HEAD_DIM_TWINS[_a], _HEAD_DIM_TWINS[_b] = _b, _a

_DECLARATION_KEYS = ("head_dim", "variant", "arch", "architecture", "model_name")


def _declared_head_dim(checkpoint: Any) -> Tuple[Optional[int], str]:
    """The head_dim a checkpoint declares (an explicit ``head_dim``, or a zoo variant name under
    ``variant``/``arch``/``architecture``/``model_name``, or in ``args``/``pretrained_cfg``), if any."""
    if not isinstance(checkpoint, Mapping):
        return None, ""
    sources = [checkpoint]
    for key in ("args", "pretrained_cfg", "config", "cfg"):
        inner = checkpoint.get(key)
        if isinstance(inner, Mapping):
            sources.append(inner)
        elif inner is not None and hasattr(inner, "__dict__"):
            sources.append(vars(inner))
    for src in sources:
        for key in _DECLARATION_KEYS:
            val = src.get(key)
            if key == "head_dim" and isinstance(val, (int, torch.Tensor)) and not isinstance(val, bool):
                return int(val), f"head_dim={int(val)}"
            if isinstance(val, str):
                name = val.split(".")[0]
                if name in VARIANT_HEAD_DIMS:
                    return VARIANT_HEAD_DIMS[name], f"{key}={val!r}"
    return None, ""


@register_checkpoint_filter("uniformer")
def checkpoint_filter_fn(state_dict: Mapping[str, Any], model: UniFormer) -> Dict[str, torch.Tensor]:
    """Convert an official UniFormer state dict (image, token-labeling or video) to zoo keys.

    ``patch_embed{i}`` -> ``stages.{i-1}.downsample``, ``blocks{i}.{j}`` -> ``stages.{i-1}.blocks.{j}``,
    ``pos_embed.*`` -> ``pos_embed.proj.*``, ``mlp.fc*`` keep their names; local-block layer scale
    ``(1, C, 1, 1)`` is flattened, and so are the local blocks' 1x1 conv kernels ``conv1``, ``conv2``,
    ``mlp.fc1``, ``mlp.fc2`` (``(out, in, 1, 1[, 1])`` -> ``(out, in)``: they are Linears over channels
    here). The light models' class-token head (``norm_cls.*``, ``head_cls.*``), which the official
    forward never uses, is dropped. Wrappers (``model``, ``model_state``, ``state_dict``) are peeled.
    A checkpoint that declares a variant (or a ``head_dim``) whose head_dim differs from the model's is
    refused: head_dim changes no shape, so it would otherwise load silently and give wrong outputs.
    Zoo checkpoints pass through unchanged.
    """
    declared, what = _declared_head_dim(state_dict)
    model_head_dim = getattr(model, "head_dim", None)
    if declared is not None and model_head_dim is not None and declared != model_head_dim:
        raise ValueError(
            f"checkpoint declares {what} (head_dim {declared}) but the model was built with head_dim "
            f"{model_head_dim}; build the matching variant (see zoo.models.uniformer.VARIANT_HEAD_DIMS)")
    state_dict = unwrap_state_dict(state_dict)
    model_keys = model.state_dict() if isinstance(model, nn.Module) else {}
    out = {}
    for k, v in state_dict.items():
        if not isinstance(v, torch.Tensor):
            continue
        if k.startswith("patch_embed"):
            i = int(k[len("patch_embed")]) - 1
            k = f"stages.{i}.downsample" + k[len("patch_embed") + 1:]
        elif k.startswith("blocks"):
            i = int(k[len("blocks")]) - 1
            k = f"stages.{i}.blocks" + k[len("blocks") + 1:]
            k = k.replace(".pos_embed.weight", ".pos_embed.proj.weight").replace(
                ".pos_embed.bias", ".pos_embed.proj.bias")
            if (k.endswith(".gamma_1") or k.endswith(".gamma_2")) and v.ndim > 1:
                v = v.reshape(-1)
        if k.startswith("stages.") and k.endswith(_POINTWISE_WEIGHTS) and k in model_keys \
                and v.shape != model_keys[k].shape and v.numel() == model_keys[k].numel():
            v = v.reshape(model_keys[k].shape)  # a 1x1 (1x1x1) kernel as the model's conv or Linear
        elif k.startswith("pre_logits"):
            continue  # an empty Identity officially; never has weights
        elif k in DROPPED_OFFICIAL_KEYS:
            continue  # the light models' training-only class-token head
        if k.startswith("aux_head.") and model_keys and not any(m.startswith("aux_head.") for m in model_keys):
            continue  # the auxiliary head switched off
        out[k] = v
    return out


def inflate_weights_2d_to_3d(
        state_dict: Mapping[str, Any],
        model: UniFormer,
        center: bool = False,
) -> Dict[str, torch.Tensor]:
    """Inflate an image UniFormer checkpoint (official or zoo keys) to a video model (I3D inflation).

    As the official ``Uniformer.inflate_weight`` / ``get_pretrained_model``: every 2-D conv kernel whose
    3-D counterpart in ``model`` has a time axis of length ``t`` is repeated ``t`` times along it and
    divided by ``t`` (``center=True``: placed at the middle time step, zeros elsewhere). Tensors whose
    shapes differ otherwise with <= 2 dims are dropped; the classifier is dropped when its class count
    differs from the model's. Returns a state dict for ``model.load_state_dict(..., strict=False)``.
    """
    if getattr(model, "spatial_dims", 3) != 3:
        raise ValueError("inflate_weights_2d_to_3d needs a video UniFormer (spatial_dims=3) as the target")
    sd = checkpoint_filter_fn(state_dict, model)
    target = model.state_dict()
    out = {}
    for k, v in sd.items():
        if k not in target:
            continue
        tgt = target[k]
        if v.shape != tgt.shape:
            if v.ndim == 4 and tgt.ndim == 5 and v.shape[:2] == tgt.shape[:2] and v.shape[2:] == tgt.shape[3:]:
                t = tgt.shape[2]
                if center:
                    w = v.new_zeros(v.shape[:2] + (t,) + v.shape[2:])
                    w[:, :, t // 2] = v
                else:
                    w = v.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
                v = w
            else:
                continue  # e.g. a classifier of another class count
        out[k] = v
    return out


def _create_uniformer(variant: str, pretrained: bool = False, model_cls=None, **kwargs) -> UniFormer:
    out_indices = kwargs.pop("out_indices", (0, 1, 2, 3))
    pinned = VARIANT_HEAD_DIMS.get(variant)
    overlay = kwargs.get("pretrained_cfg_overlay") or {}
    # weights of the user's own (checkpoint_path=, an overlay file, a local-dir:/hf-hub: folder whose
    # config.json recorded the model args) are theirs to describe; the released ones are pinned
    own_file = overlay.get("file") is not None or overlay.get("state_dict") is not None or \
        isinstance(kwargs.get("pretrained_cfg"), (dict, PretrainedCfg))
    if pretrained and not own_file and pinned is not None and kwargs.get("head_dim", pinned) != pinned:
        # head_dim changes no shape: the released weights would load silently and give wrong outputs
        raise ValueError(f"{variant}: its pretrained weights were trained with head_dim {pinned}, "
                         f"got head_dim={kwargs['head_dim']}")
    return build_model_with_cfg(
        model_cls or UniFormer, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(feature_cls="getter", flatten_sequential=True, out_indices=out_indices),
        **kwargs)


_REPO = "https://github.com/Sense-X/UniFormer"
# The repository's LICENSE file is Apache-2.0 (copyright 2022 SenseTime X-Lab) while its README says "released
# under the MIT license" and both Hub repos (Sense-X/uniformer_image, Sense-X/uniformer_video) are tagged MIT.
# The licence text actually shipped is Apache-2.0; following it also meets MIT's one condition, so that is
# what zoo records and what a user should assume.
LICENCE_NOTE = ("licence conflict: LICENSE is Apache-2.0, the README and the Hub repos say MIT; assume Apache-2.0 "
                "(the licence text shipped with the code; complying with it also satisfies MIT)")
# Evaluation statistics of the token-labeling code (token_labeling/tlt/models/uniformer.py sets every model's
# default_cfg to timm 0.4.12's vision_transformer._cfg(): crop_pct 0.9, mean = std = 0.5; its test.sh runs
# validate.py --no-test-pool, which keeps that crop_pct at 224 and at 384 alike)
TL_MEAN, TL_STD, TL_CROP_PCT = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 0.9
# Video statistics of the official SlowFast config (video_classification/slowfast/config/defaults.py:
# DATA.MEAN [0.45]*3, DATA.STD [0.225]*3; no exp config overrides them)
VIDEO_MEAN, VIDEO_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


def _cfg(url: str = "", min_side: int = 32, **kwargs) -> Dict[str, Any]:
    """``min_side``: the model's ``min_input_size`` (32 with the patch-embed stem, whose convs floor: stage 4
    needs a 1x1 map; 29 for the light models; 1, no minimum, with the padded conv stem)."""
    cfg = {
        "url": url, "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.875, "interpolation": "bicubic", "fixed_input_size": False,
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "stages.0.downsample.proj", "classifier": "head",
        "license": "apache-2.0", "paper_ids": "arXiv:2201.09450",
        "origin_url": f"{_REPO}/tree/main/image_classification",
        **kwargs,
    }
    if min_side > 1:  # a video cfg's sizes carry the time axis (any clip length works)
        cfg["min_input_size"] = (3,) + (1,) * (len(cfg["input_size"]) - 3) + (min_side, min_side)
    return cfg


def _gdrive(file_id: str) -> str:
    # a share page, not a file: Drive answers large downloads with an HTML confirmation page, so the weights
    # have no direct download (zoo's rule for every family: no `uc?export=download` URL as a cfg's `url`)
    return f"https://drive.google.com/file/d/{file_id}/view?usp=sharing"


def _notes(head_dim: int, *extra: str) -> Tuple[str, ...]:
    return (f"head_dim={head_dim} (pinned: it changes no tensor shape)",) + extra + (LICENCE_NOTE,)


_CONV_STEM = dict(first_conv="stages.0.downsample.proj.0", min_side=1)
_LIGHT = dict(_CONV_STEM, min_side=29)


def _hf_image(filename: str, head_dim: int, **kwargs) -> Dict[str, Any]:
    return _cfg(hf_hub_id="Sense-X/uniformer_image", hf_hub_filename=filename, notes=_notes(head_dim), **kwargs)


def _drive_image(file_id: str, head_dim: int, **kwargs) -> Dict[str, Any]:
    return _cfg(origin_url=_gdrive(file_id), notes=_notes(head_dim), **kwargs)


def _tl(file_id: str, head_dim: int, size: int = 224, **kwargs) -> Dict[str, Any]:
    return _cfg(origin_url=_gdrive(file_id), notes=_notes(head_dim), classifier=("head", "aux_head"),
                input_size=(3, size, size), pool_size=(size // 32, size // 32),
                crop_pct=TL_CROP_PCT, mean=TL_MEAN, std=TL_STD, **kwargs)


def _light(file_id: str, head_dim: int, size: int) -> Dict[str, Any]:
    return _cfg(origin_url=_gdrive(file_id), notes=_notes(head_dim), input_size=(3, size, size),
                pool_size=(size // 32,) * 2, **_LIGHT)


def _video(num_classes: int, frames: int, hub_file: str = "", drive_id: str = "", head_dim: int = 64) -> Dict[str, Any]:
    """A video tag. Kinetics (400/600 classes) evaluates one spatial crop of the 256 short side (crop 224/256,
    slowfast/datasets/kinetics.py with TEST.NUM_SPATIAL_CROPS 1); Something-Something (174 classes) scales the
    short side to 224 and takes 3 spatial crops (crop 1.0, slowfast/datasets/sth.py). The cfg gives the clip,
    ``input_size=(C, T, H, W)`` (see :mod:`zoo.registry`); ``pool_size[0] * 2`` is T too, and the notes say it."""
    if hub_file:  # one of the 8 files Sense-X/uniformer_video holds
        loc = dict(hf_hub_id="Sense-X/uniformer_video", hf_hub_filename=hub_file,
                   origin_url=f"{_REPO}/tree/main/video_classification")
    else:  # a Google Drive file listed in video_classification/README.md
        loc = dict(origin_url=_gdrive(drive_id))
    return _cfg(**loc, notes=_notes(head_dim, f"clip: {frames} frames, input (B, 3, {frames}, 224, 224)"),
                num_classes=num_classes, input_size=(3, frames, 224, 224), pool_size=(frames // 2, 7, 7),
                crop_pct=1.0 if num_classes == 174 else 224 / 256, interpolation="bilinear",
                mean=VIDEO_MEAN, std=VIDEO_STD, paper_ids="arXiv:2201.04676")


default_cfgs = generate_default_cfgs({
    "uniformer_small.in1k": _hf_image("uniformer_small_in1k.pth", 64),
    "uniformer_small_plus.in1k": _hf_image("uniformer_small_plus_in1k.pth", 32, **_CONV_STEM),
    "uniformer_small_plus_dim64.in1k": _drive_image("178ipRvMBKeAP_Fzy6fEr2HQkIQWdgEY6", 64, **_CONV_STEM),
    "uniformer_base.in1k": _hf_image("uniformer_base_in1k.pth", 64),
    "uniformer_base_ls.in1k": _drive_image("10FnwzMVgGL8bPO3EMZ7oG4vDvqnPoBK5", 64),

    "uniformer_small_tl.in1k": _tl("16wjfeyqQFZ2x9W91EXf0Py1bfv4Fydfr", 32),
    "uniformer_small_tl.in1k_384": _tl("16p4CXzuXC5J4_SJK67dsvnc8gTKmtKN1", 32, 384),
    "uniformer_small_dim64_tl.in1k": _tl("17NC5qqAWCT2gI_jY_cJnFTOqRQTSwsoz", 64),
    "uniformer_small_plus_tl.in1k": _tl("16rgtEVEeX3jVTQaiLsojBQP5sRaj_2aZ", 32, **_CONV_STEM),
    "uniformer_small_plus_tl.in1k_384": _tl("16wJT87vTc43Dt1q2sXrxZRUuEdrNdFdk", 32, 384, **_CONV_STEM),
    "uniformer_small_plus_dim64_tl.in1k": _tl("17OfoDWt2_nA0BYN0OuLPpG8mHJDTluQQ", 64, **_CONV_STEM),
    "uniformer_base_tl.in1k": _tl("16nsTjawiYZuoCHBRarr58zA7vCFcmQmL", 32),
    "uniformer_base_tl.in1k_384": _tl("16kZlIarIwf9ldkCdHVKTQfFmDgfkucQ7", 32, 384),
    "uniformer_base_dim64_tl.in1k": _tl("17MneG9CnZG6zBvXYUr4WUXoTYc4rjJj5", 64),
    "uniformer_large_ls_tl.in1k": _tl("173e2qaJhOwbuC_DbNQSH47Oo_04mSfDj", 64),
    "uniformer_large_ls_tl.in1k_384": _tl("174rcA6rNzYVG9Ya9ik-NwTGoxW1M79ez", 64, 384),

    # video: Kinetics-400/600 ({frames}x{sampling stride}), Something-Something V1/V2 ({frames}_pre{pretraining});
    # the first tag with a direct download is each architecture's default (timm's rule)
    "uniformer_small_video.k400_8x8": _video(400, 8, drive_id="1-kitVTkWErHXI_x-sLItvK9-sOmb53j6"),
    "uniformer_small_video.k400_16x4": _video(400, 16, drive_id="1-jGZIIuTM5IYIpqkNTojhGhfMc7Gu9Kt"),
    "uniformer_small_video.k400_16x8": _video(400, 16, hub_file="uniformer_small_k400_16x8.pth"),
    "uniformer_small_video.k600_16x4": _video(600, 16, drive_id="1-dqzjm5RZVspWHQLRD4S1vo4_6jyVltb"),
    "uniformer_small_video.k600_16x8": _video(600, 16, hub_file="uniformer_small_k600_16x8.pth"),
    "uniformer_small_video.sthv1_16_prek400": _video(174, 16, drive_id="1-bdFsmXt2Ztf43lrVgmqS8_VYJ8tub6J"),
    "uniformer_small_video.sthv1_16_prek600": _video(174, 16, hub_file="uniformer_small_sthv1_16_prek600.pth"),
    "uniformer_small_video.sthv1_32_prek400": _video(174, 32, drive_id="1-Y5ADssqM2C8o_1jix48fQM788mVGWQ3"),
    "uniformer_small_video.sthv1_32_prek600": _video(174, 32, drive_id="1-XEgaGqXGp1EGzFl63ctApnvU54X27WP"),
    "uniformer_small_video.sthv2_16_prek400": _video(174, 16, drive_id="1-Wq22024HB7tT8kPX6eSMn2GUNMI-_gY"),
    "uniformer_small_video.sthv2_16_prek600": _video(174, 16, hub_file="uniformer_small_sthv2_16_prek600.pth"),
    "uniformer_small_video.sthv2_32_prek400": _video(174, 32, drive_id="1-5Q5S-NRmHFkIBygaRYpJLT7aI9cpmky"),
    "uniformer_small_video.sthv2_32_prek600": _video(174, 32, drive_id="1-1K5R3Ed4t8d_DZnJ62xysIt1dBNmx96"),
    "uniformer_base_video.k400_8x8": _video(400, 8, drive_id="1hBxGU-QE8hGRBjSNCymJ7Au06LhluvTv"),
    "uniformer_base_video.k400_16x4": _video(400, 16, drive_id="15ipzFaZdTt-aHv7jcr_h_vgYD2X7D6AD"),
    "uniformer_base_video.k400_16x8": _video(400, 16, drive_id="1VoZcpFZbk9lEyRQ7gqRgT4CsnVt9g7uk"),
    "uniformer_base_video.k400_32x4": _video(400, 32, hub_file="uniformer_base_k400_32x4.pth"),
    "uniformer_base_video.k600_16x4": _video(600, 16, drive_id="1nBQCBCsCflhZ4OGUoGB3pAkc_GDau7vd"),
    "uniformer_base_video.k600_16x8": _video(600, 16, drive_id="1aidHdSd-h65-_EUkfNOdMMw0ZB8G5maY"),
    "uniformer_base_video.k600_32x4": _video(600, 32, hub_file="uniformer_base_k600_32x4.pth"),
    "uniformer_base_video.sthv1_16_prek400": _video(174, 16, drive_id="1uMq4W5lf17vOHUmccNjYLeTMqaWHSh6v"),
    "uniformer_base_video.sthv1_16_prek600": _video(174, 16, drive_id="1xpiL8zEDWYHFR55gOsbQiI41YEjTD89J"),
    "uniformer_base_video.sthv1_32_prek400": _video(174, 32, drive_id="18A3FuUUbdQ8ehMQ0D78qTTtm6YmIVWaO"),
    "uniformer_base_video.sthv1_32_prek600": _video(174, 32, hub_file="uniformer_base_sthv1_32_prek600.pth"),
    "uniformer_base_video.sthv2_16_prek400": _video(174, 16, drive_id="1s78JBpnykyJ7pYEGRDK8BZL9seIRIUlC"),
    "uniformer_base_video.sthv2_16_prek600": _video(174, 16, drive_id="16nCBGWzMM8n8Vr_EY0UmvgzLG0S_QYef"),
    "uniformer_base_video.sthv2_32_prek400": _video(174, 32, drive_id="1-rpMARXnyvyj6YUJkIvVqtna86egpjoS"),
    "uniformer_base_video.sthv2_32_prek600": _video(174, 32, hub_file="uniformer_base_sthv2_32_prek600.pth"),

    "uniformer_xxs.in1k": _light("1Cw9r_3c30N-esFI8RFYa6rQXJrr1rAHY", 28, 224),
    "uniformer_xxs.in1k_192": _light("1CjrCEnZCk2aLrN7nVG8vFvu3FAUL4_Y_", 28, 192),
    "uniformer_xxs.in1k_160": _light("1CsXCzfVFPyM2mY8BA_1fO3q_VBngnF44", 28, 160),
    "uniformer_xxs.in1k_128": _light("1Cr7uB5hUck1BHioEROWZjfLpYRwg4Zps", 28, 128),
    "uniformer_xs.in1k": _light("1CwQ91fjuAu3Rhn3zV4vjAmQ8v36AfYPT", 32, 224),
    "uniformer_xs.in1k_192": _light("1Ce2Dk9-k_-sHt5dXp-gfNOEK37Jdcffv", 32, 192),

    "test_uniformer": _cfg(input_size=(3, 64, 64), pool_size=(2, 2), num_classes=10, classifier=("head", "aux_head")),
    "test_uniformer_light": _cfg(input_size=(3, 64, 64), pool_size=(2, 2), num_classes=10, **_LIGHT),
    # a video cfg gives the clip: input_size (C, T, H, W), pool_size (T', H', W') (see zoo.registry)
    "test_uniformer_video": _cfg(input_size=(3, 4, 64, 64), pool_size=(2, 2, 2), num_classes=10),
})


def _light_dropped(dim: int, num_classes: int = 1000) -> Dict[str, int]:
    """Sizes of the official class-token head that is not built (``DROPPED_OFFICIAL_KEYS``)."""
    sizes = dict(zip(DROPPED_OFFICIAL_KEYS, (dim, dim, num_classes * dim, num_classes)))
    return sizes


def _top1(value: float, source: str, dataset: str = "imagenet-1k") -> Dict[str, Any]:
    return dict(metric="top1", value=value, dataset=dataset, source=source)


_IMG = "image_classification/README.md"
_TL = "image_classification/README.md (token labeling)"
_VID = "video_classification/README.md"

_S = dict(depths=(3, 4, 8, 3), embed_dims=(64, 128, 320, 512))
_S_PLUS = dict(depths=(3, 5, 9, 3), embed_dims=(64, 128, 320, 512), conv_stem=True)
_B = dict(depths=(5, 8, 20, 7), embed_dims=(64, 128, 320, 512))
_L = dict(depths=(5, 10, 24, 7), embed_dims=(128, 192, 448, 640))


def _build(variant: str, pretrained: bool, arch: Dict[str, Any], kwargs: Dict[str, Any]) -> UniFormer:
    overlay = kwargs.get("pretrained_cfg_overlay") or {}
    user_file = overlay.get("file") is not None or overlay.get("state_dict") is not None
    twin = _HEAD_DIM_TWINS.get(variant)
    if pretrained and user_file and twin and "head_dim" not in kwargs:
        # the file's shapes fit both variants; only its author knows which head_dim it was trained with
        warnings.warn(
            f"{variant}: a {twin} checkpoint (head_dim {VARIANT_HEAD_DIMS[twin]}) has the same tensor shapes and "
            f"would load here silently with wrong outputs; pass head_dim={arch['head_dim']} to confirm the file "
            f"is a {variant} checkpoint (or build {twin} for a head_dim {VARIANT_HEAD_DIMS[twin]} one)",
            UserWarning, stacklevel=4)
    return _create_uniformer(variant, pretrained=pretrained, **dict(arch, **kwargs))


@register_model(family="uniformer", task="classification", official_params=21_545_256,
                manifest="uniformer/uniformer_small", reported={"in1k": _top1(82.9, _IMG)})
def uniformer_small(pretrained: bool = False, **kwargs) -> UniFormer:
    """UniFormer-S (22M, 3.6G)."""
    return _build("uniformer_small", pretrained, dict(_S, head_dim=64), kwargs)


@register_model(family="uniformer", task="classification", official_params=24_032_552,
                manifest="uniformer/uniformer_small_plus", reported={"in1k": _top1(83.4, _IMG)})
def uniformer_small_plus(pretrained: bool = False, **kwargs) -> UniFormer:
    """UniFormer-S-dagger: conv stem, deeper, head_dim 32."""
    return _build("uniformer_small_plus", pretrained, dict(_S_PLUS, head_dim=32), kwargs)


@register_model(family="uniformer", task="classification", official_params=24_032_552,
                manifest="uniformer/uniformer_small_plus_dim64", reported={"in1k": _top1(83.4, _IMG)})
def uniformer_small_plus_dim64(pretrained: bool = False, **kwargs) -> UniFormer:
    """UniFormer-S-dagger retrained with head_dim 64."""
    return _build("uniformer_small_plus_dim64", pretrained, dict(_S_PLUS, head_dim=64), kwargs)


@register_model(family="uniformer", task="classification", official_params=49_776_552,
                manifest="uniformer/uniformer_base", reported={"in1k": _top1(83.8, _IMG)})
def uniformer_base(pretrained: bool = False, **kwargs) -> UniFormer:
    """UniFormer-B (50M, 8.3G)."""
    return _build("uniformer_base", pretrained, dict(_B, head_dim=64), kwargs)


@register_model(family="uniformer", task="classification", official_params=49_796_520,
                manifest="uniformer/uniformer_base_ls", reported={"in1k": _top1(83.9, _IMG)})
def uniformer_base_ls(pretrained: bool = False, **kwargs) -> UniFormer:
    """UniFormer-B with layer scale (init 1e-6) in the global blocks only."""
    return _build("uniformer_base_ls", pretrained, dict(_B, head_dim=64, ls_init_value=1e-6), kwargs)


@register_model(family="uniformer", task="classification", official_params=22_058_256,
                manifest="uniformer/uniformer_small_tl",
                reported={"in1k": _top1(83.4, _TL), "in1k_384": _top1(84.6, _TL)})
def uniformer_small_tl(pretrained: bool = False, **kwargs) -> UniFormer:
    """UniFormer-S trained with token labeling (head_dim 32, auxiliary token head)."""
    return _build("uniformer_small_tl", pretrained, dict(_S, head_dim=32, aux_head=True), kwargs)


@register_model(family="uniformer", task="classification", official_params=22_058_256,
                manifest="uniformer/uniformer_small_dim64_tl", reported={"in1k": _top1(83.4, _TL)})
def uniformer_small_dim64_tl(pretrained: bool = False, **kwargs) -> UniFormer:
    """UniFormer-S with token labeling, head_dim 64."""
    return _build("uniformer_small_dim64_tl", pretrained, dict(_S, head_dim=64, aux_head=True), kwargs)


@register_model(family="uniformer", task="classification", official_params=24_545_552,
                manifest="uniformer/uniformer_small_plus_tl",
                reported={"in1k": _top1(83.9, _TL), "in1k_384": _top1(84.9, _TL)})
def uniformer_small_plus_tl(pretrained: bool = False, **kwargs) -> UniFormer:
    """UniFormer-S-dagger with token labeling (head_dim 32)."""
    return _build("uniformer_small_plus_tl", pretrained, dict(_S_PLUS, head_dim=32, aux_head=True), kwargs)


@register_model(family="uniformer", task="classification", official_params=24_545_552,
                manifest="uniformer/uniformer_small_plus_dim64_tl", reported={"in1k": _top1(83.6, _TL)})
def uniformer_small_plus_dim64_tl(pretrained: bool = False, **kwargs) -> UniFormer:
    """UniFormer-S-dagger with token labeling, head_dim 64."""
    return _build("uniformer_small_plus_dim64_tl", pretrained, dict(_S_PLUS, head_dim=64, aux_head=True), kwargs)


@register_model(family="uniformer", task="classification", official_params=50_289_552,
                manifest="uniformer/uniformer_base_tl",
                reported={"in1k": _top1(85.1, _TL), "in1k_384": _top1(86.0, _TL)})
def uniformer_base_tl(pretrained: bool = False, **kwargs) -> UniFormer:
    """UniFormer-B with token labeling (head_dim 32)."""
    return _build("uniformer_base_tl", pretrained, dict(_B, head_dim=32, aux_head=True), kwargs)


@register_model(family="uniformer", task="classification", official_params=50_289_552,
                manifest="uniformer/uniformer_base_dim64_tl", reported={"in1k": _top1(84.8, _TL)})
def uniformer_base_dim64_tl(pretrained: bool = False, **kwargs) -> UniFormer:
    """UniFormer-B with token labeling, head_dim 64."""
    return _build("uniformer_base_dim64_tl", pretrained, dict(_B, head_dim=64, aux_head=True), kwargs)


@register_model(family="uniformer", task="classification", official_params=100_103_888,
                manifest="uniformer/uniformer_large_ls_tl",
                reported={"in1k": _top1(85.6, _TL), "in1k_384": _top1(86.3, _TL)})
def uniformer_large_ls_tl(pretrained: bool = False, **kwargs) -> UniFormer:
    """UniFormer-L with token labeling and layer scale in every block (local and global)."""
    return _build("uniformer_large_ls_tl", pretrained,
                  dict(_L, head_dim=64, aux_head=True, ls_init_value=1e-6, ls_local=True), kwargs)


_K = "kinetics-400"


@register_model(family="uniformer", task="video", official_params=21_400_400, num_frames=8,
                manifest="uniformer/uniformer_small_k400_video",
                reported={
                    "k400_8x8": _top1(78.4, _VID, _K), "k400_16x4": _top1(80.8, _VID, _K),
                    "k400_16x8": _top1(80.8, _VID, _K), "k600_16x4": _top1(82.8, _VID, "kinetics-600"),
                    "k600_16x8": _top1(82.7, _VID, "kinetics-600"),
                    "sthv1_16_prek400": _top1(57.2, _VID, "something-something-v1"),
                    "sthv1_16_prek600": _top1(57.6, _VID, "something-something-v1"),
                    "sthv1_32_prek400": _top1(58.8, _VID, "something-something-v1"),
                    "sthv1_32_prek600": _top1(59.9, _VID, "something-something-v1"),
                    "sthv2_16_prek400": _top1(67.7, _VID, "something-something-v2"),
                    "sthv2_16_prek600": _top1(69.4, _VID, "something-something-v2"),
                    "sthv2_32_prek400": _top1(69.0, _VID, "something-something-v2"),
                    "sthv2_32_prek600": _top1(70.4, _VID, "something-something-v2"),
                })
def uniformer_small_video(pretrained: bool = False, **kwargs) -> UniFormer:
    """Video UniFormer-S (3-D); input (B, 3, T, H, W). Datasets and clip lengths are pretrained tags."""
    return _build("uniformer_small_video", pretrained, dict(_S, head_dim=64, spatial_dims=3), kwargs)


@register_model(family="uniformer", task="video", official_params=49_813_200, num_frames=8,
                manifest="uniformer/uniformer_base_k400_video",
                reported={
                    "k400_8x8": _top1(79.8, _VID, _K), "k400_16x4": _top1(82.0, _VID, _K),
                    "k400_16x8": _top1(81.7, _VID, _K), "k400_32x4": _top1(82.9, _VID, _K),
                    "k600_16x4": _top1(84.0, _VID, "kinetics-600"), "k600_16x8": _top1(83.4, _VID, "kinetics-600"),
                    "k600_32x4": _top1(84.5, _VID, "kinetics-600"),
                    "sthv1_16_prek400": _top1(59.1, _VID, "something-something-v1"),
                    "sthv1_16_prek600": _top1(58.8, _VID, "something-something-v1"),
                    "sthv1_32_prek400": _top1(60.9, _VID, "something-something-v1"),
                    "sthv1_32_prek600": _top1(61.0, _VID, "something-something-v1"),
                    "sthv2_16_prek400": _top1(70.4, _VID, "something-something-v2"),
                    "sthv2_16_prek600": _top1(70.2, _VID, "something-something-v2"),
                    "sthv2_32_prek400": _top1(71.1, _VID, "something-something-v2"),
                    "sthv2_32_prek600": _top1(71.2, _VID, "something-something-v2"),
                })
def uniformer_base_video(pretrained: bool = False, **kwargs) -> UniFormer:
    """Video UniFormer-B (3-D); input (B, 3, T, H, W). Datasets and clip lengths are pretrained tags."""
    return _build("uniformer_base_video", pretrained, dict(_B, head_dim=64, spatial_dims=3), kwargs)


@register_model(family="uniformer", task="classification", test_model=True, test_sizes=[(64, 64), (70, 95)])
def test_uniformer(pretrained: bool = False, **kwargs) -> UniFormer:
    """Tiny image UniFormer for the general tests (patch stem, layer scale, token-labeling head)."""
    return _build("test_uniformer", pretrained,
                  dict(depths=(1, 1, 1, 1), embed_dims=(16, 32, 48, 64), head_dim=16, ls_init_value=1e-6,
                       aux_head=True), kwargs)


@register_model(family="uniformer", task="video", test_model=True, test_sizes=[(4, 64, 64), (3, 70, 95)])
def test_uniformer_video(pretrained: bool = False, **kwargs) -> UniFormer:
    """Tiny video UniFormer for the general tests."""
    return _build("test_uniformer_video", pretrained,
                  dict(depths=(1, 1, 1, 1), embed_dims=(16, 32, 48, 64), head_dim=16, spatial_dims=3), kwargs)


@register_model(family="uniformer", task="classification", official_params=10_215_280,
                manifest="uniformer/uniformer_xxs", dropped_params=_light_dropped(448),
                reported={"in1k_128": _top1(76.8, _IMG), "in1k_160": _top1(79.1, _IMG),
                          "in1k_192": _top1(79.9, _IMG), "in1k": _top1(80.6, _IMG)})
def uniformer_xxs(pretrained: bool = False, **kwargs) -> UniFormerLight:
    """UniFormer-XXS (light, token pruning in the global stages)."""
    arch = dict(depths=(2, 5, 8, 2), embed_dims=(56, 112, 224, 448), head_dim=28, mlp_ratio=3.,
                prune_ratios=((), (), (1,) + (0.5,) * 7, (0.5,) * 2),
                trade_offs=((), (), (1,) + (0.5,) * 7, (0.5,) * 2))
    return _create_uniformer("uniformer_xxs", pretrained, model_cls=UniFormerLight, **dict(arch, **kwargs))


@register_model(family="uniformer", task="classification", official_params=16_509_264,
                manifest="uniformer/uniformer_xs", dropped_params=_light_dropped(512),
                reported={"in1k_192": _top1(81.5, _IMG), "in1k": _top1(82.0, _IMG)})
def uniformer_xs(pretrained: bool = False, **kwargs) -> UniFormerLight:
    """UniFormer-XS (light, token pruning in the global stages)."""
    arch = dict(depths=(3, 5, 9, 3), embed_dims=(64, 128, 256, 512), head_dim=32, mlp_ratio=3.,
                prune_ratios=((), (), (1,) + (0.5,) * 8, (0.5,) * 3),
                trade_offs=((), (), (1,) + (0.5,) * 8, (0.5,) * 3))
    return _create_uniformer("uniformer_xs", pretrained, model_cls=UniFormerLight, **dict(arch, **kwargs))


@register_model(family="uniformer", task="classification", test_model=True, test_sizes=[(64, 64), (70, 95)])
def test_uniformer_light(pretrained: bool = False, **kwargs) -> UniFormerLight:
    """Tiny light UniFormer (token pruning, layer scale) for the general tests."""
    arch = dict(depths=(1, 1, 3, 2), embed_dims=(16, 32, 48, 64), head_dim=16, mlp_ratio=3.,
                prune_ratios=((), (), (1, 0.5, 0.5), (0.5, 0.5)), trade_offs=((), (), (1, 0.5, 0.5), (0.5, 0.5)),
                ls_init_value=1e-6)
    return _create_uniformer("test_uniformer_light", pretrained, model_cls=UniFormerLight, **dict(arch, **kwargs))


# old names keep working (timm warns and maps them; zoo.create_model resolves them too): the video
# architectures were first registered under their Kinetics-400 names, the test models as <family>_test
register_model_deprecations(__name__, {
    "uniformer_small_k400": "uniformer_small_video",
    "uniformer_base_k400": "uniformer_base_video",
    "uniformer_test": "test_uniformer",
    "uniformer_light_test": "test_uniformer_light",
    "uniformer_video_test": "test_uniformer_video",
})
