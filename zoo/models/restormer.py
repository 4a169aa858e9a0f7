"""Restormer: Efficient Transformer for High-Resolution Image Restoration.

Zamir, Arora, Khan, Hayat, Khan, Yang, CVPR 2022, arXiv:2111.09881.
Official code: https://github.com/swz30/Restormer (Academic Public License: non-commercial use).

A 4-level U-shaped encoder-decoder of transformer blocks whose attention runs across channels
rather than pixels (MDTA, Sec. 3.1), so its cost grows linearly with the image size, and whose
feed-forward network is gated by a depthwise-conv branch (GDFN, Sec. 3.2, in
:mod:`zoo.layers.ffn`). Refinement blocks at full resolution, and a global residual
``I_hat = I + R`` (except for dual-pixel defocus deblurring, 6 channels in, 3 out).

``forward(x)`` takes any ``H x W``: the image is reflect-padded right/bottom to a multiple of 8,
as the official test scripts do, and the output is cropped back. The output is not clamped; the
official scripts clamp to ``[0, 1]`` afterwards, which :func:`zoo.restore.restore` does by default
(and it restores large images tile by tile).
"""

import re
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn

from timm.layers import LayerNorm2d
from timm.models import build_model_with_cfg, checkpoint_seq, generate_default_cfgs, register_model_deprecations
from timm.models._features import feature_take_indices

from zoo.hub import licence_note, unwrap_state_dict
from zoo.layers.ffn import GatedDconvFFN
from zoo.layers.padding import pad_to_multiple
from zoo.registry import register_checkpoint_filter, register_family, register_model
from zoo.validation import check_input, is_fx_tracing

torch.fx.wrap("pad_to_multiple")  # fx: one call (whether and how much to pad depends on the map size)

__all__ = ["Restormer", "MultiDconvHeadTransposedAttention", "RestormerBlock", "RestormerBlocks", "BiasFreeLayerNorm2d",
           "channel_layer_norm"]

register_family(
    "restormer",
    title="Restormer: Efficient Transformer for High-Resolution Image Restoration",
    paper_ids=("arXiv:2111.09881",),
    official_repo="https://github.com/swz30/Restormer",
    code_license="Academic Public License (non-commercial use only)",
    description=(
        "U-shaped transformer for image restoration (deraining, motion and defocus deblurring, "
        "Gaussian and real denoising) with channel-wise transposed attention (MDTA) and a gated "
        "depthwise-conv feed-forward network (GDFN); any input size, tiled inference for large images."),
    citation=(
        "@inproceedings{Zamir2021Restormer,\n"
        "  title={Restormer: Efficient Transformer for High-Resolution Image Restoration},\n"
        "  author={Zamir, Syed Waqas and Arora, Aditya and Khan, Salman and Hayat, Munawar and "
        "Khan, Fahad Shahbaz and Yang, Ming-Hsuan},\n"
        "  booktitle={CVPR},\n  year={2022}\n}"),
    module=__name__,
)


class BiasFreeLayerNorm2d(nn.Module):
    """The official "BiasFree" norm of the denoisers, over the channels of each pixel of a
    ``(B, C, H, W)`` map: ``x / sqrt(var(x) + eps) * w`` (biased variance, eps 1e-5), which divides
    by the standard deviation but, unlike LayerNorm and unlike RMSNorm, does NOT subtract the mean.
    (The official "WithBias" norm is a standard LayerNorm: timm's ``LayerNorm2d``, see
    :func:`channel_layer_norm`.)
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # 1 / sqrt(biased var + eps) per pixel is the rstd that layer_norm computes anyway: its
        # kernel is ~6x faster than Tensor.var here. The product is made on a contiguous
        # channels-last copy, the layout LayerNorm2d hands on (leaving the map NCHW made the convs
        # after the norm 2x slower).
        x = x.permute(0, 2, 3, 1).contiguous()
        _, _, rstd = torch.native_layer_norm(x, (self.dim,), None, None, self.eps)
        return (x * (rstd * self.weight)).permute(0, 3, 1, 2)


def channel_layer_norm(dim: int, bias: bool = True, eps: float = 1e-5) -> nn.Module:
    """The per-pixel channel norm of a Restormer block: "WithBias" (``bias=True``) is timm's
    ``LayerNorm2d`` (eps 1e-5 as officially), "BiasFree" is :class:`BiasFreeLayerNorm2d`."""
    return LayerNorm2d(dim, eps=eps) if bias else BiasFreeLayerNorm2d(dim, eps=eps)


class MultiDconvHeadTransposedAttention(nn.Module):
    """MDTA (Sec. 3.1, Eq. 2-3): attention between channels, per head, over the whole image.

    ``Q, K, V = W_d W_p X`` (1x1 conv to 3C, then depthwise 3x3); heads are contiguous channel
    groups of ``C / h``; Q and K are L2-normalised along the flattened spatial axis and the
    ``(C/h) x (C/h)`` logits are scaled by a learned temperature per head:
    ``Attn = V softmax(K^T Q * t_h)``. The temperature is folded into Q so that the product runs in
    ``F.scaled_dot_product_attention`` with ``scale=1`` (queries = channels, embedding = pixels).
    """

    def __init__(self, dim: int, num_heads: int, bias: bool = False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"MDTA: dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, 1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, 3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        qkv = self.qkv_dwconv(self.qkv(x)).reshape(B, 3, self.num_heads, C // self.num_heads, H * W)
        q, k, v = qkv.unbind(1)
        # F.normalize semantics (norm clamped at 1e-12), with the temperature in the same pass
        q = q * (self.temperature / torch.linalg.vector_norm(q, dim=-1, keepdim=True).clamp_min(1e-12))
        k = k / torch.linalg.vector_norm(k, dim=-1, keepdim=True).clamp_min(1e-12)
        x = F.scaled_dot_product_attention(q, k, v, scale=1.0)
        return self.project_out(x.reshape(B, C, H, W))


class RestormerBlock(nn.Module):
    """Pre-norm transformer block: ``x + MDTA(LN(x))``, then ``x + GDFN(LN(x))``."""

    def __init__(
            self,
            dim: int,
            num_heads: int,
            ffn_expansion_factor: float = 2.66,
            bias: bool = False,
            norm_bias: bool = True,
    ):
        super().__init__()
        self.norm1 = channel_layer_norm(dim, bias=norm_bias)
        self.attn = MultiDconvHeadTransposedAttention(dim, num_heads, bias=bias)
        self.norm2 = channel_layer_norm(dim, bias=norm_bias)
        self.ffn = GatedDconvFFN(dim, ffn_expansion_factor, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        x = x + self.ffn(self.norm2(x))
        return x


class OverlapPatchEmbed(nn.Module):
    """The shallow feature extractor: one 3x3 conv, stride 1, no bias."""

    def __init__(self, in_chans: int = 3, embed_dim: int = 48, bias: bool = False):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, 3, padding=1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class Downsample(nn.Module):
    """Halve the resolution, double the channels: 3x3 conv to C/2, then pixel-unshuffle by 2."""

    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, dim // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Upsample(nn.Module):
    """Double the resolution, halve the channels: 3x3 conv to 2C, then pixel-shuffle by 2."""

    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, dim * 2, 3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class RestormerBlocks(nn.Sequential):
    """A run of :class:`RestormerBlock` at one level (keys ``<level>.<i>.*`` as in the official code)."""

    def __init__(self, depth: int, dim: int, num_heads: int, **kwargs: Any):
        super().__init__(*[RestormerBlock(dim, num_heads, **kwargs) for _ in range(depth)])
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self, x)  # runs the children, not this forward
        for blk in self:
            x = blk(x)
        return x


class Restormer(nn.Module):
    """Restormer image-restoration model (task ``restoration``: image in, image of the same size out).

    Levels run at ``embed_dim * (1, 2, 4, 8)`` channels and strides ``(1, 2, 4, 8)``; the level-1
    decoder and the refinement blocks run at ``2 * embed_dim`` and use ``num_heads[0]``. Module
    names follow the official code so that its checkpoints load with one rename (the LayerNorm's
    ``body`` wrapper).
    """

    def __init__(
            self,
            in_chans: int = 3,
            out_chans: Optional[int] = None,
            embed_dim: int = 48,
            depths: Sequence[int] = (4, 6, 6, 8),
            num_refinement_blocks: int = 4,
            num_heads: Sequence[int] = (1, 2, 4, 8),
            ffn_expansion_factor: float = 2.66,
            bias: bool = False,
            norm_bias: bool = True,
            dual_pixel_task: bool = False,
            pad_multiple: int = 8,
            num_classes: int = 0,
            **kwargs: Any,
    ):
        """
        Args:
            in_chans: image channels in (6 for dual-pixel: the left and right views stacked).
            out_chans: image channels out; defaults to ``in_chans`` (3 for dual-pixel).
            embed_dim: channels of level 1.
            depths: transformer blocks per level (encoder levels 1-3 and their decoders, latent).
            num_refinement_blocks: full-resolution blocks after the decoder.
            num_heads: MDTA heads per level.
            ffn_expansion_factor: GDFN hidden width is ``int(dim * ffn_expansion_factor)``.
            bias: biases of the convolutions inside the blocks (False in every release).
            norm_bias: True for the official "WithBias" LayerNorm, False for "BiasFree".
            dual_pixel_task: add a 1x1 ``skip_conv`` of the shallow features after refinement and
                no image residual (the input has 6 channels, the output 3).
            pad_multiple: inputs are reflect-padded right/bottom to a multiple of this (8: three
                pixel-unshuffles) and the output is cropped back.
            num_classes: must be 0 (a restoration model has no classifier; accepted for timm).
        """
        super().__init__()
        if kwargs:
            raise TypeError(f"Restormer got unexpected keyword arguments: {sorted(kwargs)}")
        if num_classes:
            raise ValueError(f"Restormer is a restoration model without a classifier; got num_classes={num_classes}")
        if len(depths) != 4 or len(num_heads) != 4:
            raise ValueError(f"Restormer needs 4 depths and 4 num_heads, got {depths} and {num_heads}")
        if out_chans is None:
            out_chans = 3 if dual_pixel_task else in_chans
        if not dual_pixel_task and out_chans != in_chans:
            raise ValueError(
                f"Restormer adds the input image to its output (global residual), so out_chans ({out_chans}) "
                f"must equal in_chans ({in_chans}) unless dual_pixel_task=True")
        self.in_chans = in_chans
        self.out_chans = out_chans
        self.num_classes = 0
        self.embed_dim = embed_dim
        self.dual_pixel_task = dual_pixel_task
        self.pad_multiple = pad_multiple
        self.num_features = self.head_hidden_size = embed_dim * 2
        self.grad_checkpointing = False
        dims = [embed_dim * 2 ** i for i in range(4)]
        blk = dict(ffn_expansion_factor=ffn_expansion_factor, bias=bias, norm_bias=norm_bias)

        self.patch_embed = OverlapPatchEmbed(in_chans, embed_dim)
        self.encoder_level1 = RestormerBlocks(depths[0], dims[0], num_heads[0], **blk)
        self.down1_2 = Downsample(dims[0])
        self.encoder_level2 = RestormerBlocks(depths[1], dims[1], num_heads[1], **blk)
        self.down2_3 = Downsample(dims[1])
        self.encoder_level3 = RestormerBlocks(depths[2], dims[2], num_heads[2], **blk)
        self.down3_4 = Downsample(dims[2])
        self.latent = RestormerBlocks(depths[3], dims[3], num_heads[3], **blk)

        self.up4_3 = Upsample(dims[3])
        self.reduce_chan_level3 = nn.Conv2d(dims[3], dims[2], 1, bias=bias)
        self.decoder_level3 = RestormerBlocks(depths[2], dims[2], num_heads[2], **blk)
        self.up3_2 = Upsample(dims[2])
        self.reduce_chan_level2 = nn.Conv2d(dims[2], dims[1], 1, bias=bias)
        self.decoder_level2 = RestormerBlocks(depths[1], dims[1], num_heads[1], **blk)
        self.up2_1 = Upsample(dims[1])
        # no channel reduction at level 1: the decoder works on the concatenation (2 * embed_dim)
        self.decoder_level1 = RestormerBlocks(depths[0], dims[1], num_heads[0], **blk)
        self.refinement = RestormerBlocks(num_refinement_blocks, dims[1], num_heads[0], **blk)
        self.skip_conv = nn.Conv2d(dims[0], dims[1], 1, bias=bias) if dual_pixel_task else None
        self.output = nn.Conv2d(dims[1], out_chans, 3, padding=1, bias=bias)

        self.feature_info = [
            dict(num_chs=dims[0], reduction=1, module="encoder_level1"),
            dict(num_chs=dims[1], reduction=2, module="encoder_level2"),
            dict(num_chs=dims[2], reduction=4, module="encoder_level3"),
            dict(num_chs=dims[3], reduction=8, module="latent"),
        ]
        self.last_level = len(self.feature_info) - 1  # the deepest level kept (prune_intermediate_layers)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> Dict[str, Any]:
        return dict(
            stem=r"^patch_embed",
            blocks=[
                (r"^encoder_level1|^down1_2", (0,)),
                (r"^encoder_level2|^down2_3", (1,)),
                (r"^encoder_level3|^down3_4", (2,)),
                (r"^latent", (3,)),
                (r"^up4_3|^reduce_chan_level3|^decoder_level3", (4,)),
                (r"^up3_2|^reduce_chan_level2|^decoder_level2", (5,)),
                (r"^up2_1|^decoder_level1", (6,)),
                (r"^refinement|^skip_conv|^output", (7,)),
            ],
        )

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable
        for m in self.modules():
            if isinstance(m, RestormerBlocks):
                m.grad_checkpointing = enable

    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return set()

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return nn.Identity()

    def reset_classifier(self, num_classes: int = 0, global_pool: Optional[str] = None) -> None:
        if num_classes:
            raise ValueError("Restormer is a restoration model without a classifier")

    @torch.jit.ignore
    def _check(self, x: torch.Tensor) -> None:
        check_input(x, model=self, in_chans=self.in_chans)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return pad_to_multiple(x, self.pad_multiple, mode="reflect")

    def _encode(self, x: torch.Tensor, max_index: int = 3) -> List[torch.Tensor]:
        """Shallow features and the outputs of encoder levels 1-3 and the latent level, up to level
        ``max_index`` (0: level 1, 3: latent)."""
        emb = self.patch_embed(x)
        levels = [emb, self.encoder_level1(emb)]
        if max_index >= 1:
            levels.append(self.encoder_level2(self.down1_2(levels[-1])))
        if max_index >= 2:
            levels.append(self.encoder_level3(self.down2_3(levels[-1])))
        if max_index >= 3:
            levels.append(self.latent(self.down3_4(levels[-1])))
        return levels

    def _final(self, levels: List[torch.Tensor], H: int, W: int) -> torch.Tensor:
        """forward_features' output from the encoder levels: the decoder's, cropped to (H, W); a model
        pruned without its decoder ends at its last kept level (cropped to that level's share of (H, W))."""
        if self.output is None:
            r = self.feature_info[self.last_level]["reduction"]
            return levels[self.last_level + 1][..., :-(-H // r), :-(-W // r)]
        return self._decode(levels)[..., :H, :W]

    def _decode(self, levels: List[torch.Tensor]) -> torch.Tensor:
        """Deep features F_r at full resolution (2 * embed_dim), what the output conv reads."""
        emb, enc1, enc2, enc3, latent = levels[0], levels[1], levels[2], levels[3], levels[4]
        x = self.reduce_chan_level3(torch.cat([self.up4_3(latent), enc3], dim=1))
        x = self.decoder_level3(x)
        x = self.reduce_chan_level2(torch.cat([self.up3_2(x), enc2], dim=1))
        x = self.decoder_level2(x)
        x = self.decoder_level1(torch.cat([self.up2_1(x), enc1], dim=1))
        x = self.refinement(x)
        if self.skip_conv is not None:
            x = x + self.skip_conv(emb)
        return x

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = "NCHW",
            intermediates_only: bool = False,
    ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """Encoder levels 1-3 and the latent level (strides 1/2/4/8, NCHW, cropped to
        ``ceil(H / stride) x ceil(W / stride)``), and, unless ``intermediates_only``, the final
        features of :meth:`forward_features`."""
        if output_fmt != "NCHW":
            raise ValueError(f"Restormer gives NCHW features only, got output_fmt={output_fmt!r}")
        self._check(x)
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        H, W = x.shape[-2:]
        levels = self._encode(self._pad(x), max_index if intermediates_only else self.last_level)
        intermediates = []
        for i in take_indices:
            r = self.feature_info[i]["reduction"]
            intermediates.append(levels[i + 1][..., :-(-H // r), :-(-W // r)])
        if intermediates_only:
            return intermediates
        return self._final(levels, H, W), intermediates

    def prune_intermediate_layers(
            self,
            indices: Union[int, List[int]] = 1,
            prune_norm: bool = False,
            prune_head: bool = True,
    ) -> List[int]:
        """With ``prune_head``, drop the decoder, the refinement, the output conv and every encoder part
        after the last wanted level: the pruned model is an encoder whose ``forward_features`` (and
        ``forward``) end at that level. Without it the decoder reads every encoder level, so nothing is
        dropped."""
        take_indices, max_index = feature_take_indices(len(self.feature_info), indices)
        if not prune_head:
            return take_indices
        for name in ("up4_3", "reduce_chan_level3", "decoder_level3", "up3_2", "reduce_chan_level2",
                     "decoder_level2", "up2_1", "decoder_level1", "refinement", "skip_conv", "output"):
            setattr(self, name, None)
        for level, names in ((1, ("down1_2", "encoder_level2")), (2, ("down2_3", "encoder_level3")),
                             (3, ("down3_4", "latent"))):
            if max_index < level:
                for name in names:
                    setattr(self, name, None)
        self.last_level = max_index
        return take_indices

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The refined deep features F_r (B, 2 * embed_dim, H, W) that the output conv reads
        (for dual-pixel, with the shallow-feature skip added); a model pruned with ``prune_head`` returns
        its last kept encoder level."""
        self._check(x)
        H, W = x.shape[-2:]
        # an empty batch: torch's pixel_(un)shuffle returns empty inputs unshaped (an fx graph is
        # recorded for a non-empty batch: it does not take this branch)
        if not is_fx_tracing() and x.shape[0] == 0:
            if self.output is None:
                info = self.feature_info[self.last_level]
                return x.new_zeros(0, info["num_chs"], -(-H // info["reduction"]), -(-W // info["reduction"]))
            return x.new_zeros(0, self.output.in_channels, H, W)
        return self._final(self._encode(self._pad(x), self.last_level), H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.output is None:  # pruned to an encoder (prune_intermediate_layers)
            return self.forward_features(x)
        self._check(x)
        H, W = x.shape[-2:]
        # an empty batch: torch's pixel_(un)shuffle returns empty inputs unshaped (an fx graph is
        # recorded for a non-empty batch: it does not take this branch)
        if not is_fx_tracing() and x.shape[0] == 0:
            return x.new_zeros(0, self.out_chans, H, W)
        x = self._pad(x)
        out = self.output(self._decode(self._encode(x)))
        if not self.dual_pixel_task:
            out = out + x
        return out[..., :H, :W]


@register_checkpoint_filter("restormer")
def checkpoint_filter_fn(state_dict: Dict[str, Any], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Official Restormer checkpoint (``torch.load(f)['params']``) -> zoo keys.

    The only rename is the official LayerNorm wrapper: ``normN.body.weight`` -> ``normN.weight``.
    Zoo keys pass unchanged.
    """
    state_dict = unwrap_state_dict(state_dict)
    out = {}
    for k, v in state_dict.items():
        out[re.sub(r"\.(norm[12])\.body\.", r".\1.", k)] = v
    return out


def _create_restormer(variant: str, pretrained: bool = False, **kwargs: Any) -> Restormer:
    return build_model_with_cfg(
        Restormer, variant, pretrained,
        pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(feature_cls="getter", flatten_sequential=True, out_indices=(0, 1, 2, 3)),
        **kwargs,
    )


_RELEASE = "https://github.com/swz30/Restormer/releases/download/v1.0/"


def _cfg(file: str = "", in_chans: int = 3, **kwargs: Any) -> Dict[str, Any]:
    return {
        "url": _RELEASE + file if file else "",
        "num_classes": 0,
        "input_size": (in_chans, 256, 256),
        "pool_size": (256, 256),  # forward_features keeps the input size
        "crop_pct": 1.0,
        "interpolation": "bicubic",
        "fixed_input_size": False,
        # images in [0, 1], no normalisation (the official scripts divide uint8 by 255)
        "mean": (0.0,) * in_chans,
        "std": (1.0,) * in_chans,
        "first_conv": "patch_embed.proj",
        "classifier": None,
        # the official repo's LICENSE.md: "Academic Public License", non-commercial use only (no Hub identifier)
        "license": "other",
        "notes": (licence_note("Academic Public License", "https://github.com/swz30/Restormer/blob/main/LICENSE.md",
                               "code and weights, non-commercial use only"),),
        "paper_ids": "arXiv:2111.09881",
        "paper_name": "Restormer: Efficient Transformer for High-Resolution Image Restoration",
        "origin_url": "https://github.com/swz30/Restormer",
        **kwargs,
    }


default_cfgs = generate_default_cfgs({
    # one architecture, a tag per task: WithBias LayerNorm, 3 channels in and out
    "restormer.rain13k": _cfg("deraining.pth"),
    "restormer.gopro": _cfg("motion_deblurring.pth"),
    "restormer.dpdd": _cfg("single_image_defocus_deblurring.pth"),
    # left and right views (6 channels) in, 3 out
    "restormer_dual_pixel.dpdd": _cfg("dual_pixel_defocus_deblurring.pth", in_chans=6),
    # BiasFree LayerNorm (denoising): real noise (SIDD) and Gaussian noise (blind, or one model per sigma)
    "restormer_bias_free.sidd": _cfg("real_denoising.pth"),
    "restormer_bias_free.blind": _cfg("gaussian_color_denoising_blind.pth"),
    "restormer_bias_free.sigma15": _cfg("gaussian_color_denoising_sigma15.pth"),
    "restormer_bias_free.sigma25": _cfg("gaussian_color_denoising_sigma25.pth"),
    "restormer_bias_free.sigma50": _cfg("gaussian_color_denoising_sigma50.pth"),
    "restormer_bias_free_gray.blind": _cfg("gaussian_gray_denoising_blind.pth", in_chans=1),
    "restormer_bias_free_gray.sigma15": _cfg("gaussian_gray_denoising_sigma15.pth", in_chans=1),
    "restormer_bias_free_gray.sigma25": _cfg("gaussian_gray_denoising_sigma25.pth", in_chans=1),
    "restormer_bias_free_gray.sigma50": _cfg("gaussian_gray_denoising_sigma50.pth", in_chans=1),
    "test_restormer": _cfg(input_size=(3, 32, 32), pool_size=(32, 32)),
})

# the architecture every release shares (official Options/*.yml and demo.py)
_BASE = dict(embed_dim=48, depths=(4, 6, 6, 8), num_refinement_blocks=4, num_heads=(1, 2, 4, 8),
             ffn_expansion_factor=2.66, bias=False)


def _psnr(value: float, dataset: str, source: str) -> Dict[str, Any]:
    # recorded from memory, not yet checked against the paper's tables (arXiv:2111.09881): the cards say so
    return dict(metric="psnr", value=value, dataset=dataset, source=source, verified=False)


@register_model(family="restormer", task="restoration", official_params=26_126_644,
                manifest="restormer/deraining",
                reported={
                    "rain13k": _psnr(33.96, "Test100/Rain100H/Rain100L/Test2800/Test1200 (mean, Y channel)",
                                     "paper, Table 1"),
                    "gopro": _psnr(32.92, "GoPro test", "paper, Table 2"),
                    "dpdd": _psnr(25.98, "DPDD test, combined (single image)", "paper, Table 3"),
                })
def restormer(pretrained: bool = False, **kwargs: Any) -> Restormer:
    """Restormer, WithBias LayerNorm: deraining (Rain13K), motion deblurring (GoPro), single-image
    defocus deblurring (DPDD) weights."""
    return _create_restormer("restormer", pretrained, **{**_BASE, "norm_bias": True, **kwargs})


@register_model(family="restormer", task="restoration", official_params=26_132_548,
                manifest="restormer/dual_pixel_defocus_deblurring",
                reported={"dpdd": _psnr(26.66, "DPDD test, combined (dual pixel)", "paper, Table 3")})
def restormer_dual_pixel(pretrained: bool = False, **kwargs: Any) -> Restormer:
    """Restormer for dual-pixel defocus deblurring: left and right views (6 channels) in, 3 out."""
    kwargs.setdefault("in_chans", 6)
    return _create_restormer(
        "restormer_dual_pixel", pretrained, **{**_BASE, "norm_bias": True, "dual_pixel_task": True, **kwargs})


@register_model(family="restormer", task="restoration", official_params=26_111_668,
                manifest="restormer/real_denoising",
                reported={
                    "sidd": _psnr(40.02, "SIDD validation (sRGB)", "paper, Table 6"),
                    "blind": _psnr(31.78, "CBSD68, sigma 25 (one model for all noise levels)", "paper, Table 5"),
                    "sigma15": _psnr(34.40, "CBSD68, sigma 15", "paper, Table 5"),
                    "sigma25": _psnr(31.79, "CBSD68, sigma 25", "paper, Table 5"),
                    "sigma50": _psnr(28.60, "CBSD68, sigma 50", "paper, Table 5"),
                })
def restormer_bias_free(pretrained: bool = False, **kwargs: Any) -> Restormer:
    """Restormer with BiasFree LayerNorm (denoising): real noise (SIDD), Gaussian color noise."""
    return _create_restormer("restormer_bias_free", pretrained, **{**_BASE, "norm_bias": False, **kwargs})


@register_model(family="restormer", task="restoration", official_params=26_109_076,
                manifest="restormer/gaussian_gray_denoising",
                reported={
                    "blind": _psnr(29.51, "BSD68, sigma 25 (one model for all noise levels)", "paper, Table 4"),
                    "sigma15": _psnr(31.96, "BSD68, sigma 15", "paper, Table 4"),
                    "sigma25": _psnr(29.52, "BSD68, sigma 25", "paper, Table 4"),
                    "sigma50": _psnr(26.62, "BSD68, sigma 50", "paper, Table 4"),
                })
def restormer_bias_free_gray(pretrained: bool = False, **kwargs: Any) -> Restormer:
    """Restormer for Gaussian grayscale denoising (1 channel in and out), BiasFree LayerNorm."""
    kwargs.setdefault("in_chans", 1)
    return _create_restormer("restormer_bias_free_gray", pretrained, **{**_BASE, "norm_bias": False, **kwargs})


@register_model(family="restormer", task="restoration", test_model=True, test_sizes=[(32, 32), (27, 45)])
def test_restormer(pretrained: bool = False, **kwargs: Any) -> Restormer:
    """A tiny Restormer with the full structure (4 levels, refinement, WithBias LN) for fast tests."""
    model_args = dict(embed_dim=8, depths=(1, 1, 1, 1), num_refinement_blocks=1, num_heads=(1, 2, 2, 4))
    return _create_restormer("test_restormer", pretrained, **{**model_args, **kwargs})


# old names keep working (timm warns and maps them; zoo.create_model resolves them too)
register_model_deprecations(__name__, {
    "restormer_deraining": "restormer.rain13k",
    "restormer_motion_deblurring": "restormer.gopro",
    "restormer_defocus_deblurring": "restormer.dpdd",
    "restormer_defocus_deblurring_dual_pixel": "restormer_dual_pixel.dpdd",
    "restormer_real_denoising": "restormer_bias_free.sidd",
    "restormer_denoising_color": "restormer_bias_free.blind",
    "restormer_denoising_gray": "restormer_bias_free_gray.blind",
    "restormer_test": "test_restormer",
})
