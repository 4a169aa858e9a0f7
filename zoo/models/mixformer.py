"""MixFormer: Mixing Features across Windows and Dimensions.

Chen, Wu, Wang, Hu, Hu, Ding, Cheng, Wang, CVPR 2022 (oral), https://arxiv.org/abs/2204.02557.
The official implementation exists only in PaddlePaddle, in PaddleClas
(``ppcls/arch/backbone/model_zoo/mixformer.py``, https://github.com/PaddlePaddle/PaddleClas,
Apache-2.0); this is a PyTorch re-implementation that loads its ``.pdparams`` weights.

A mixing block (Sec. 3.1, Fig. 2) runs, in parallel on one normalised map,
* local-window self-attention (7x7 windows, no shift, Swin relative position bias) on ``C/2``
  channels, and
* a 3x3 depthwise convolution on ``C`` channels, projected to ``C/2``,
with bi-directional interactions (Sec. 3.1, Eq. 2-3): the globally pooled conv branch gates the
attention values per channel (channel interaction), the attention output gates the conv branch per
position with a one-channel sigmoid map (spatial interaction). The two halves are normalised,
concatenated and projected back to ``C``; an MLP follows as in Swin. A three-conv stem (stride 4),
BatchNorm + 2x2 stride-2 conv downsampling between stages and a head that projects every token to
1280 channels before pooling complete the network.

The trunk is channels-last (``B, H, W, C``) throughout: the window attention and every
token-wise layer work on it directly, the convolutions see a channels-last NCHW view of it.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from timm.layers import DropPath, Mlp, resize_rel_pos_bias_table, to_2tuple, trunc_normal_
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model_deprecations
from timm.models._features import feature_take_indices
from timm.models._manipulate import checkpoint_seq

from zoo.hub import load_into, unwrap_state_dict
from zoo.layers.padding import nchw_to_nhwc, nhwc_to_nchw, pad_to_multiple
from zoo.layers.window_attention import WindowAttention
from zoo.registry import register_checkpoint_filter, register_family, register_model
from zoo.validation import check_input, is_fx_tracing

torch.fx.wrap("pad_to_multiple")  # fx: one call (whether and how much to pad depends on the map size)

__all__ = ["MixFormer", "MixingAttention", "MixingBlock", "checkpoint_filter_fn"]

# Paddle keeps the eps of its LayerNorm / BatchNorm as a float32 even in float64 models, so the
# official 1e-5 is effectively float(np.float32(1e-5)). Using it keeps float64 parity at 1e-8 and
# makes no difference in float32.
PADDLE_EPS = 9.999999747378752e-06
_LayerNorm = partial(nn.LayerNorm, eps=PADDLE_EPS)
_BatchNorm2d = partial(nn.BatchNorm2d, eps=PADDLE_EPS)

register_family(
    "mixformer",
    title="MixFormer: Mixing Features across Windows and Dimensions",
    paper_ids=("arXiv:2204.02557",),
    official_repo="https://github.com/PaddlePaddle/PaddleClas",
    code_license="Apache-2.0",
    description=(
        "Hybrid vision transformer whose blocks mix 7x7 window self-attention and a 3x3 depthwise "
        "convolution in parallel, with channel and spatial interactions between the two branches "
        "(CVPR 2022 oral). Official code and weights are PaddlePaddle (PaddleClas); zoo loads the "
        ".pdparams files without Paddle."),
    citation=(
        "@inproceedings{chen2022mixformer,\n"
        "  title={MixFormer: Mixing Features across Windows and Dimensions},\n"
        "  author={Chen, Qiang and Wu, Qiman and Wang, Jian and Hu, Qinghao and Hu, Tao and Ding, Errui "
        "and Cheng, Jian and Wang, Jingdong},\n"
        "  booktitle={IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},\n"
        "  year={2022}\n}"),
    module=__name__,
)


class ConvEmbed(nn.Module):
    """Convolutional stem: conv3x3 s2 + two conv3x3 s1 (each + BN + GELU), conv2x2 s2, LayerNorm.

    The input is zero-padded at the right/bottom to a multiple of the patch size (4), as the
    official stem does. Returns a channels-last map at stride 4.
    """

    def __init__(
            self,
            in_chans: int = 3,
            embed_dim: int = 96,
            patch_size: int = 4,
            act_layer: Callable[..., nn.Module] = nn.GELU,
    ):
        super().__init__()
        self.patch_size = patch_size
        mid = embed_dim // 2
        stride = patch_size // 2
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, mid, kernel_size=3, stride=stride, padding=1),
            _BatchNorm2d(mid),
            act_layer(),
            nn.Conv2d(mid, mid, kernel_size=3, stride=1, padding=1),
            _BatchNorm2d(mid),
            act_layer(),
            nn.Conv2d(mid, mid, kernel_size=3, stride=1, padding=1),
            _BatchNorm2d(mid),
            act_layer(),
        )
        self.proj = nn.Conv2d(mid, embed_dim, kernel_size=stride, stride=stride)
        self.norm = _LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_to_multiple(x, self.patch_size)
        # the stem's oneDNN convs run faster on channels-last maps, and its output is consumed
        # channels-last (values unchanged: only the memory layout differs)
        x = self.proj(self.stem(x.contiguous(memory_format=torch.channels_last)))
        return self.norm(nchw_to_nhwc(x))


class ConvMerging(nn.Module):
    """Downsampling between stages: BatchNorm, then a 2x2 stride-2 convolution (BN comes first).

    The official layer asserts even sides; here an odd side is zero-padded at the right/bottom
    (after the BN), giving the ``ceil(H / 2)`` size the official stage bookkeeping assumes.
    """

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.norm = _BatchNorm2d(dim)
        self.reduction = nn.Conv2d(dim, out_dim, kernel_size=2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(nhwc_to_nchw(x))
        x = pad_to_multiple(x, 2)
        return nchw_to_nhwc(self.reduction(x))


class MixingAttention(nn.Module):
    """Parallel window attention and depthwise convolution with bi-directional interactions.

    On a channels-last map ``x`` of ``C`` channels whose sides are window multiples (Sec. 3.1):

    * ``x_a = LN(W_a x)`` (``C/2`` channels) and ``x_c = LN(W_c x)`` (``C`` channels);
    * conv branch ``y_c = GELU(BN(DWConv3x3(x_c)))``;
    * channel interaction ``g = sigmoid(conv1x1(GELU(BN(conv1x1(avgpool(y_c))))))``, one gate per
      attention channel and image, multiplies the values ``V`` of the window attention;
    * attention branch ``y_a = softmax(q k^T / sqrt(d) + B) (V * g)`` in 7x7 windows;
    * spatial interaction ``s = sigmoid(conv1x1(GELU(BN(conv1x1(y_a)))))``, one value per position,
      gates the projected conv branch: ``z_c = BN(s * conv1x1(y_c))``;
    * output ``proj([LN(y_a), z_c])``.

    The gate ``g`` is constant over the tokens of an image, so ``softmax(.) (V * g)`` is computed as
    ``(softmax(.) V) * g``: the shared :class:`WindowAttention` does the attention unchanged.
    """

    def __init__(
            self,
            dim: int,
            num_heads: int,
            window_size: int = 7,
            dwconv_kernel_size: int = 3,
            qkv_bias: bool = True,
            attn_drop: float = 0.,
            proj_drop: float = 0.,
            act_layer: Callable[..., nn.Module] = nn.GELU,
    ):
        super().__init__()
        attn_dim = dim // 2
        self.dim = dim
        self.window_size = to_2tuple(window_size)

        self.proj_attn = nn.Linear(dim, attn_dim)
        self.proj_attn_norm = _LayerNorm(attn_dim)
        self.proj_cnn = nn.Linear(dim, dim)
        self.proj_cnn_norm = _LayerNorm(dim)

        self.dwconv3x3 = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=dwconv_kernel_size, padding=dwconv_kernel_size // 2, groups=dim),
            _BatchNorm2d(dim),
            act_layer(),
        )
        self.channel_interaction = nn.Sequential(
            nn.Conv2d(dim, dim // 8, kernel_size=1),
            _BatchNorm2d(dim // 8),
            act_layer(),
            nn.Conv2d(dim // 8, attn_dim, kernel_size=1),
        )
        self.projection = nn.Conv2d(dim, attn_dim, kernel_size=1)
        self.conv_norm = _BatchNorm2d(attn_dim)

        # MixFormer projects the concatenation of both branches (self.proj below), never the
        # attention half alone: the shared layer is built without an output projection
        self.window_attn = WindowAttention(
            attn_dim, num_heads, window_size=self.window_size, qkv_bias=qkv_bias, attn_drop=attn_drop, proj=False)
        self.spatial_interaction = nn.Sequential(
            nn.Conv2d(attn_dim, dim // 16, kernel_size=1),
            _BatchNorm2d(dim // 16),
            act_layer(),
            nn.Conv2d(dim // 16, 1, kernel_size=1),
        )
        self.attn_norm = _LayerNorm(attn_dim)

        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, Hp, Wp, C)`` with ``Hp, Wp`` window multiples -> same shape."""
        x_attn = self.proj_attn_norm(self.proj_attn(x))
        x_cnn = self.dwconv3x3(nhwc_to_nchw(self.proj_cnn_norm(self.proj_cnn(x))))
        gate = torch.sigmoid(self.channel_interaction(x_cnn.mean((2, 3), keepdim=True)))  # (B, C/2, 1, 1)
        x_cnn = self.projection(x_cnn)

        x_attn = self.window_attn(x_attn) * gate.flatten(1)[:, None, None, :]  # (B, 1, 1, C/2), also for an empty batch

        x_cnn = self.conv_norm(torch.sigmoid(self.spatial_interaction(nhwc_to_nchw(x_attn))) * x_cnn)
        x = torch.cat([self.attn_norm(x_attn), nchw_to_nhwc(x_cnn)], dim=-1)
        return self.proj_drop(self.proj(x))


class MixingBlock(nn.Module):
    """``x + MixingAttention(LN(x))`` (on the map padded to window multiples), then ``x + MLP(LN(x))``."""

    def __init__(
            self,
            dim: int,
            num_heads: int,
            window_size: int = 7,
            dwconv_kernel_size: int = 3,
            mlp_ratio: float = 4.,
            qkv_bias: bool = True,
            proj_drop: float = 0.,
            attn_drop: float = 0.,
            drop_path: float = 0.,
            act_layer: Callable[..., nn.Module] = nn.GELU,
    ):
        super().__init__()
        self.window_size = to_2tuple(window_size)
        self.norm1 = _LayerNorm(dim)
        self.attn = MixingAttention(
            dim, num_heads, window_size=window_size, dwconv_kernel_size=dwconv_kernel_size,
            qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop, act_layer=act_layer)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = _LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=act_layer, drop=proj_drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0. else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        H, W = x.shape[1], x.shape[2]
        # zero padding after norm1, as the official block: padded tokens still pass through the
        # branch projections (their LN(bias) values are seen by the attention, the conv and the pooling)
        y = pad_to_multiple(self.norm1(x), self.window_size, channels_last=True)
        y = self.attn(y)
        if is_fx_tracing() or y.shape[1] != H or y.shape[2] != W:
            y = y[:, :H, :W]
        x = x + self.drop_path1(y)
        return x + self.drop_path2(self.mlp(self.norm2(x)))


class MixFormerStage(nn.Module):
    """Optional :class:`ConvMerging` from the previous width, then mixing blocks (channels-last)."""

    def __init__(
            self,
            dim: int,
            out_dim: int,
            depth: int,
            num_heads: int,
            downsample: bool = True,
            window_size: int = 7,
            dwconv_kernel_size: int = 3,
            mlp_ratio: float = 4.,
            qkv_bias: bool = True,
            proj_drop: float = 0.,
            attn_drop: float = 0.,
            drop_path: Union[float, Sequence[float]] = 0.,
            act_layer: Callable[..., nn.Module] = nn.GELU,
    ):
        super().__init__()
        self.grad_checkpointing = False
        self.downsample = ConvMerging(dim, out_dim) if downsample else nn.Identity()
        dpr = list(drop_path) if isinstance(drop_path, (list, tuple)) else [drop_path] * depth
        self.blocks = nn.Sequential(*[
            MixingBlock(
                out_dim, num_heads, window_size=window_size, dwconv_kernel_size=dwconv_kernel_size,
                mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, proj_drop=proj_drop, attn_drop=attn_drop,
                drop_path=dpr[i], act_layer=act_layer)
            for i in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        return self.blocks(x)


class MixFormer(nn.Module):
    """MixFormer (Chen et al., CVPR 2022) with the official PaddleClas layout and head.

    Stages are timm-style (downsampling first), so stage ``i`` ends at stride ``4 * 2**i`` with
    ``embed_dim[i]`` channels. ``forward_features`` returns the normalised last map, channels-last;
    the head projects every token to ``head_hidden_size`` (1280) channels with GELU, averages them,
    then classifies.
    """
    output_fmt = "NHWC"

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = "avg",
            embed_dim: Union[int, Sequence[int]] = 96,
            depths: Sequence[int] = (2, 2, 6, 2),
            num_heads: Sequence[int] = (3, 6, 12, 24),
            window_size: int = 7,
            dwconv_kernel_size: int = 3,
            mlp_ratio: float = 4.,
            qkv_bias: bool = True,
            head_hidden_size: int = 1280,
            drop_rate: float = 0.,
            proj_drop_rate: float = 0.,
            attn_drop_rate: float = 0.,
            drop_path_rate: float = 0.1,
            act_layer: Callable[..., nn.Module] = nn.GELU,
    ):
        super().__init__()
        if global_pool not in ("avg", ""):
            raise ValueError(f"MixFormer supports global_pool 'avg' or '' (no pooling), got {global_pool!r}")
        num_stages = len(depths)
        if isinstance(embed_dim, int):
            embed_dim = [embed_dim * 2 ** i for i in range(num_stages)]
        embed_dim = [int(d) for d in embed_dim]
        if len(embed_dim) != num_stages or len(num_heads) != num_stages:
            raise ValueError("embed_dim, depths and num_heads must have one entry per stage")
        for d, h in zip(embed_dim, num_heads):
            if (d // 2) % h:
                raise ValueError(f"MixFormer attends on dim / 2 channels: {d // 2} is not divisible by {h} heads")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.window_size = to_2tuple(window_size)
        self.num_features = embed_dim[-1]
        self.head_hidden_size = head_hidden_size
        self.drop_rate = drop_rate
        self.grad_checkpointing = False

        self.patch_embed = ConvEmbed(in_chans, embed_dim[0], patch_size=4, act_layer=act_layer)

        dpr = [x.tolist() for x in torch.linspace(0, drop_path_rate, sum(depths), device="cpu").split(list(depths))]
        stages = []
        self.feature_info = []
        prev_dim = embed_dim[0]
        for i in range(num_stages):
            stages.append(MixFormerStage(
                prev_dim, embed_dim[i], depths[i], num_heads[i], downsample=i > 0,
                window_size=window_size, dwconv_kernel_size=dwconv_kernel_size, mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias, proj_drop=proj_drop_rate, attn_drop=attn_drop_rate, drop_path=dpr[i],
                act_layer=act_layer))
            prev_dim = embed_dim[i]
            self.feature_info.append(dict(num_chs=embed_dim[i], reduction=4 * 2 ** i, module=f"stages.{i}"))
        self.stages = nn.Sequential(*stages)

        self.norm = _LayerNorm(self.num_features)
        # head as in the official code: per-token projection to 1280 + GELU, then the mean over tokens
        self.last_proj = nn.Linear(self.num_features, head_hidden_size)
        self.head_act = act_layer()
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(head_hidden_size, num_classes) if num_classes > 0 else nn.Identity()

        self.apply(self._init_weights)

    def _init_weights(self, m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return {n for n, _ in self.named_parameters() if "relative_position_bias_table" in n}

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
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ValueError(f"MixFormer supports global_pool 'avg' or '', got {global_pool!r}")
            self.global_pool = global_pool
        self.num_classes = num_classes
        in_features = self.last_proj.out_features if isinstance(self.last_proj, nn.Linear) else self.num_features
        ref = next(self.parameters())
        # the new classifier joins the model where it is (device, dtype, train/eval), as timm's models do
        self.head = (nn.Linear(in_features, num_classes, device=ref.device, dtype=ref.dtype) if num_classes > 0
                     else nn.Identity()).train(self.training)

    def _check(self, x: torch.Tensor) -> None:
        check_input(x, model=self, in_chans=self.in_chans)
        if self.training and not is_fx_tracing() and x.shape[0] == 1:
            # the channel interaction's BatchNorm sees one pooled vector per image: batch statistics
            # need two images or more (torch's own error would come from deep inside the block)
            name = (getattr(self, "pretrained_cfg", None) or {}).get("architecture") or type(self).__name__
            raise ValueError(f"{name} in training mode needs a batch of 2 or more images (its channel-interaction "
                             f"BatchNorm normalises one pooled vector per image); got {tuple(x.shape)}. "
                             "Call model.eval() to run single images.")

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Stage outputs (strides 4, 8, 16, 32) as NCHW maps, and the final channels-last features.

        ``norm=True`` applies the final LayerNorm to the last stage's output.
        """
        if output_fmt not in ("NCHW", "NHWC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NHWC', got {output_fmt!r}")
        self._check(x)
        intermediates = []
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        last_idx = len(self.stages) - 1
        stages = self.stages if torch.jit.is_scripting() or not stop_early else self.stages[:max_index + 1]

        x = self.patch_embed(x)
        feat_idx = 0
        for feat_idx, stage in enumerate(stages):
            x = stage(x)
            if feat_idx in take_indices:
                x_inter = self.norm(x) if norm and feat_idx == last_idx else x
                intermediates.append(nhwc_to_nchw(x_inter).contiguous() if output_fmt == "NCHW" else x_inter)

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
            self.num_features = self.feature_info[max_index]["num_chs"]
        if prune_head or prune_end:
            # the 1280-channel projection and its GELU are part of the classifier head
            self.last_proj = nn.Identity()
            self.head_act = nn.Identity()
            self.head_hidden_size = self.num_features
            self.reset_classifier(0, "")
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        x = self.patch_embed(x)
        x = self.stages(x)
        return self.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_act(self.last_proj(x))
        if self.global_pool == "avg":
            x = x.mean(dim=(1, 2))
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def load_pretrained(self, path: str) -> None:
        """Load an official ``.pdparams`` (or any checkpoint zoo reads) through :func:`checkpoint_filter_fn`.

        timm calls this for pretrained cfgs with ``custom_load=True``: the official weights are numpy
        pickles, which timm's ``torch.load`` cannot (and must not) read.
        """
        load_into(self, path, checkpoint_filter_fn)


_BN_RENAMES = {"._mean": ".running_mean", "._variance": ".running_var"}


def _official_to_zoo_key(k: str) -> str:
    """One PaddleClas key -> the zoo key (layers.i.downsample belongs to stages.i+1 here)."""
    if k.startswith("layers."):
        _, i, rest = k.split(".", 2)
        i = int(i)
        if rest.startswith("downsample."):
            k = f"stages.{i + 1}.{rest}"
        else:
            k = f"stages.{i}.{rest}"
            rest = rest.split(".", 2)[-1]  # after blocks.j
            if rest.startswith("attn.qkv."):
                k = k.replace(".attn.qkv.", ".attn.window_attn.qkv.")
            elif rest == "attn.relative_position_bias_table":
                k = k.replace(".attn.relative_position_bias_table",
                              ".attn.window_attn.rel_pos.relative_position_bias_table")
    for old, new in _BN_RENAMES.items():
        if k.endswith(old):
            k = k[: -len(old)] + new
    return k


@register_checkpoint_filter("mixformer")
def checkpoint_filter_fn(state_dict: Dict[str, Any], model: MixFormer) -> Dict[str, torch.Tensor]:
    """Convert a PaddleClas MixFormer state dict (``.pdparams`` layout) to zoo keys and layouts.

    * ``layers.i.blocks.j`` -> ``stages.i.blocks.j``; ``layers.i.downsample`` -> ``stages.{i+1}.downsample``;
      ``attn.qkv`` / ``attn.relative_position_bias_table`` move into ``attn.window_attn``;
    * Paddle ``nn.Linear`` weights are ``[in, out]``: transposed (recognised by the target shape);
    * BatchNorm ``_mean`` / ``_variance`` -> ``running_mean`` / ``running_var`` (``num_batches_tracked``
      is left at the model's value); ``relative_position_index`` is recomputed, never loaded;
    * a relative position table trained for another window size is resized.

    Zoo keys pass through unchanged.
    """
    state_dict = unwrap_state_dict(state_dict)
    # the official layout is recognised as a whole (zoo files have stages.*, never layers.*)
    paddle = any(k.startswith("layers.") for k in state_dict)
    target = model.state_dict()
    out = {}
    for k, v in state_dict.items():
        if k.endswith("relative_position_index"):
            continue
        if not isinstance(v, torch.Tensor):
            # paddle.save adds a "StructuredToParameterName@@" name map (a dict of strings)
            continue
        if paddle:
            k = _official_to_zoo_key(k)
            if v.ndim == 2 and k.endswith(".weight"):
                v = v.t()  # every 2-D Paddle weight is a Linear's, stored [in, out]
        t = target.get(k)
        if k.endswith("relative_position_bias_table") and t is not None and v.shape != t.shape:
            v = resize_rel_pos_bias_table(v, new_window_size=model.window_size, new_bias_shape=t.shape)
        if t is not None and v.is_floating_point() and t.is_floating_point():
            v = v.to(t.dtype)
        out[k] = v.contiguous()
    # a model without its classifier (num_classes=0, features_only) ignores the official head
    for k in list(out):
        if k not in target and k.split(".")[0] in ("head", "last_proj"):
            del out[k]
    if paddle:
        # BN buffers Paddle does not have (only for Paddle files: a foreign dict gains no keys here)
        for k, t in target.items():
            if k.endswith("num_batches_tracked") and k not in out:
                out[k] = t
    return out


def _create_mixformer(variant: str, pretrained: bool = False, **kwargs: Any) -> MixFormer:
    depths = kwargs.get("depths", (2, 2, 6, 2))
    out_indices = kwargs.pop("out_indices", tuple(range(len(depths))))
    return build_model_with_cfg(
        MixFormer, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(feature_cls="getter", flatten_sequential=True, out_indices=out_indices),
        **kwargs)


def _cfg(url: str = "", **kwargs: Any) -> Dict[str, Any]:
    return {
        "url": url,
        "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7),
        "crop_pct": 0.875, "interpolation": "bicubic", "crop_mode": "center",
        "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
        "first_conv": "patch_embed.stem.0", "classifier": "head",
        "license": "apache-2.0",
        "paper_ids": "arXiv:2204.02557",
        "paper_name": "MixFormer: Mixing Features across Windows and Dimensions",
        "origin_url": "https://github.com/PaddlePaddle/PaddleClas",
        **kwargs,
    }


def _paddle_cfg(k: int) -> Dict[str, Any]:
    # numpy pickles: timm's torch.load cannot read them, MixFormer.load_pretrained does (safely)
    return _cfg(
        url=f"https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/MixFormer_B{k}_pretrained.pdparams",
        custom_load=True)


default_cfgs = generate_default_cfgs({
    "mixformer_b0": _cfg(),
    "mixformer_b1.in1k": _paddle_cfg(1),
    "mixformer_b2.in1k": _paddle_cfg(2),
    "mixformer_b3.in1k": _paddle_cfg(3),
    "mixformer_b4.in1k": _paddle_cfg(4),
    "mixformer_b5": _cfg(),
    "mixformer_b6.in1k": _paddle_cfg(6),
    "test_mixformer": _cfg(input_size=(3, 96, 96), pool_size=(3, 3)),
})


def _reported(top1: float) -> Dict[str, Dict[str, Any]]:
    return {"in1k": dict(metric="top1", value=top1, dataset="imagenet-1k",
                         source="paper (ImageNet-1K results), as listed under 'Reference top1' in "
                                "PaddleClas docs/en/models/MixFormer_en.md")}


@register_model(family="mixformer", task="classification", official_params=5_098_767, manifest="mixformer/mixformer_b0")
def mixformer_b0(pretrained: bool = False, **kwargs: Any) -> MixFormer:
    """MixFormer-B0 (76.5 top-1 reported, no released weights)."""
    model_args = dict(embed_dim=24, depths=(1, 2, 6, 6), num_heads=(3, 6, 12, 24), drop_path_rate=0.)
    return _create_mixformer("mixformer_b0", pretrained=pretrained, **dict(model_args, **kwargs))


@register_model(family="mixformer", task="classification", official_params=7_887_877, manifest="mixformer/mixformer_b1",
                reported=_reported(78.9))
def mixformer_b1(pretrained: bool = False, **kwargs: Any) -> MixFormer:
    model_args = dict(embed_dim=32, depths=(1, 2, 6, 6), num_heads=(2, 4, 8, 16), drop_path_rate=0.)
    return _create_mixformer("mixformer_b1", pretrained=pretrained, **dict(model_args, **kwargs))


@register_model(family="mixformer", task="classification", official_params=9_894_848, manifest="mixformer/mixformer_b2",
                reported=_reported(80.0))
def mixformer_b2(pretrained: bool = False, **kwargs: Any) -> MixFormer:
    model_args = dict(embed_dim=32, depths=(2, 2, 8, 8), num_heads=(2, 4, 8, 16), drop_path_rate=0.05)
    return _create_mixformer("mixformer_b2", pretrained=pretrained, **dict(model_args, **kwargs))


@register_model(family="mixformer", task="classification", official_params=16_747_808,
                manifest="mixformer/mixformer_b3", reported=_reported(81.7))
def mixformer_b3(pretrained: bool = False, **kwargs: Any) -> MixFormer:
    model_args = dict(embed_dim=48, depths=(2, 2, 8, 6), num_heads=(3, 6, 12, 24), drop_path_rate=0.1)
    return _create_mixformer("mixformer_b3", pretrained=pretrained, **dict(model_args, **kwargs))


@register_model(family="mixformer", task="classification", official_params=34_797_572,
                manifest="mixformer/mixformer_b4", reported=_reported(83.0))
def mixformer_b4(pretrained: bool = False, **kwargs: Any) -> MixFormer:
    model_args = dict(embed_dim=64, depths=(2, 2, 8, 8), num_heads=(4, 8, 16, 32), drop_path_rate=0.2)
    return _create_mixformer("mixformer_b4", pretrained=pretrained, **dict(model_args, **kwargs))


@register_model(family="mixformer", task="classification", official_params=61_692_403,
                manifest="mixformer/mixformer_b5")
def mixformer_b5(pretrained: bool = False, **kwargs: Any) -> MixFormer:
    """MixFormer-B5 (83.5 top-1 reported, no released weights)."""
    model_args = dict(embed_dim=96, depths=(1, 2, 8, 6), num_heads=(6, 12, 24, 48), drop_path_rate=0.3)
    return _create_mixformer("mixformer_b5", pretrained=pretrained, **dict(model_args, **kwargs))


@register_model(family="mixformer", task="classification", official_params=119_505_054,
                manifest="mixformer/mixformer_b6", reported=_reported(83.8))
def mixformer_b6(pretrained: bool = False, **kwargs: Any) -> MixFormer:
    model_args = dict(embed_dim=96, depths=(2, 4, 16, 12), num_heads=(6, 12, 24, 48), drop_path_rate=0.5)
    return _create_mixformer("mixformer_b6", pretrained=pretrained, **dict(model_args, **kwargs))


@register_model(family="mixformer", task="classification", test_model=True, test_sizes=[(64, 64), (70, 95)])
def test_mixformer(pretrained: bool = False, **kwargs: Any) -> MixFormer:
    """Tiny MixFormer (the structure of the parity bundle: widths 16-128, one block per stage)."""
    model_args = dict(embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8), drop_path_rate=0.)
    return _create_mixformer("test_mixformer", pretrained=pretrained, **dict(model_args, **kwargs))


# old names keep working (timm warns and maps them; zoo.create_model resolves them too)
register_model_deprecations(__name__, {
    "mixformer_test": "test_mixformer",
})
