"""Feature pyramids for dense heads: ViTDet's simple feature pyramid, a top-down FPN, and a factory.

* :class:`SimpleFeaturePyramid` (Li et al., "Exploring Plain Vision Transformer Backbones for Object
  Detection", ECCV 2022, arXiv:2203.16527, Sec. 3 and Fig. 2c) builds strides 4/8/16/32 from ONE
  stride-16 map: two 2x2 stride-2 transposed convs (LayerNorm + GELU between them) for x4, one for x2,
  the map itself for x1, a 2x2 max-pool for x0.5; each branch then gets a 1x1 and a 3x3 conv (no
  bias), each followed by a channels-first LayerNorm (eps 1e-6), and p6 is a stride-2 subsampling of
  p5 (detectron2's ``LastLevelMaxPool``). Submodule names follow detectron2 (``simfp_2`` .. ``simfp_5``,
  Sequential indices included) so its checkpoints load with a prefix change only.
* :class:`FPN` (Lin et al., CVPR 2017) merges a multi-scale backbone top-down: 1x1 laterals, nearest
  upsampling and addition, 3x3 output convs, and the same stride-2 ``pool`` level on top.
* :func:`create_pyramid` wraps any zoo (or timm) backbone so that its forward returns the ordered dict
  of NCHW maps ``"0".."3", "pool"`` that torchvision's detection models expect, and exposes
  ``out_channels``::

      from torchvision.models.detection import MaskRCNN
      detector = MaskRCNN(create_pyramid("vitdet_base_patch16"), num_classes=91)
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import nn
from timm.layers import LayerNorm2d

__all__ = ["ConvNorm", "SimpleFeaturePyramid", "FPN", "PyramidBackbone", "create_pyramid"]


class ConvNorm(nn.Conv2d):
    """A conv followed by a norm, keyed like detectron2's ``Conv2d(..., norm=...)`` (``weight``, ``norm.*``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, norm_eps: float = 1e-6):
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm = LayerNorm2d(out_channels, eps=norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(super().forward(x))


def _level_names(n: int, top_block: bool) -> List[str]:
    return [str(i) for i in range(n)] + (["pool"] if top_block else [])


class SimpleFeaturePyramid(nn.Module):
    """ViTDet's simple feature pyramid: one ``(B, C, H, W)`` map -> maps at ``scale_factors`` (+ p6).

    ``forward_levels`` returns the list ``[p2, p3, p4, p5(, p6)]`` (for the default scales, with the
    input at stride 16); ``forward`` returns them as an ordered dict ``"0".."3", "pool"``.
    """

    def __init__(
            self,
            in_channels: int,
            out_channels: int = 256,
            scale_factors: Sequence[float] = (4.0, 2.0, 1.0, 0.5),
            top_block: bool = True,
            in_stride: int = 16,
            norm_eps: float = 1e-6,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.scale_factors = tuple(float(s) for s in scale_factors)
        self.stage_names: List[str] = []
        self.strides: List[int] = []
        dim = in_channels
        for scale in self.scale_factors:
            if scale == 4.0:
                layers: List[nn.Module] = [
                    nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2),
                    LayerNorm2d(dim // 2, eps=norm_eps),
                    nn.GELU(),
                    nn.ConvTranspose2d(dim // 2, dim // 4, kernel_size=2, stride=2),
                ]
                width = dim // 4
            elif scale == 2.0:
                layers = [nn.ConvTranspose2d(dim, dim // 2, kernel_size=2, stride=2)]
                width = dim // 2
            elif scale == 1.0:
                layers = []
                width = dim
            elif scale == 0.5:
                layers = [nn.MaxPool2d(kernel_size=2, stride=2)]
                width = dim
            else:
                raise ValueError(f"SimpleFeaturePyramid supports scale factors 4, 2, 1 and 0.5, got {scale}")
            layers += [ConvNorm(width, out_channels, 1, norm_eps), ConvNorm(out_channels, out_channels, 3, norm_eps)]
            stride = int(round(in_stride / scale))
            name = f"simfp_{stride.bit_length() - 1}"  # detectron2 names the branch by log2(stride)
            self.add_module(name, nn.Sequential(*layers))
            self.stage_names.append(name)
            self.strides.append(stride)
        # p6: detectron2's LastLevelMaxPool / torchvision's "pool" level, a stride-2 subsampling of p5
        self.top_block = nn.MaxPool2d(kernel_size=1, stride=2) if top_block else None
        if top_block:
            self.strides.append(self.strides[-1] * 2)

    @property
    def num_levels(self) -> int:
        return len(self.strides)

    def forward_levels(self, x: torch.Tensor) -> List[torch.Tensor]:
        out = [getattr(self, name)(x) for name in self.stage_names]
        if self.top_block is not None:
            out.append(self.top_block(out[-1]))
        return out

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        levels = self.forward_levels(x)
        names = _level_names(len(self.stage_names), self.top_block is not None)
        return OrderedDict(zip(names, levels))


class FPN(nn.Module):
    """Top-down feature pyramid network over maps of increasing stride (finest first).

    ``out[i] = conv3x3(lateral_i(x_i) + upsample(inner_{i+1}))``; with ``top_block`` a ``"pool"`` level
    is added as a stride-2 subsampling of the coarsest output (as torchvision's ``LastLevelMaxPool``).
    """

    def __init__(
            self,
            in_channels_list: Sequence[int],
            out_channels: int = 256,
            top_block: bool = True,
            norm: bool = False,
    ):
        super().__init__()
        if not in_channels_list:
            raise ValueError("FPN needs at least one input level")
        self.out_channels = out_channels
        self.lateral_convs = nn.ModuleList()
        self.output_convs = nn.ModuleList()
        for c in in_channels_list:
            if norm:
                self.lateral_convs.append(ConvNorm(c, out_channels, 1))
                self.output_convs.append(ConvNorm(out_channels, out_channels, 3))
            else:
                self.lateral_convs.append(nn.Conv2d(c, out_channels, 1))
                self.output_convs.append(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.top_block = nn.MaxPool2d(kernel_size=1, stride=2) if top_block else None
        for m in self.modules():
            if type(m) is nn.Conv2d:
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)

    def forward_levels(self, features: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        if len(features) != len(self.lateral_convs):
            raise ValueError(f"FPN expects {len(self.lateral_convs)} maps, got {len(features)}")
        inner = self.lateral_convs[-1](features[-1])
        out = [self.output_convs[-1](inner)]
        for i in range(len(features) - 2, -1, -1):
            lateral = self.lateral_convs[i](features[i])
            inner = lateral + F.interpolate(inner, size=lateral.shape[-2:], mode="nearest")
            out.insert(0, self.output_convs[i](inner))
        if self.top_block is not None:
            out.append(self.top_block(out[-1]))
        return out

    def forward(self, features: Sequence[torch.Tensor]) -> "OrderedDict[str, torch.Tensor]":
        levels = self.forward_levels(features)
        return OrderedDict(zip(_level_names(len(self.lateral_convs), self.top_block is not None), levels))


class PyramidBackbone(nn.Module):
    """A backbone (``features_only``-style: ``forward`` returns a list of NCHW maps) plus a pyramid.

    ``forward(images)`` returns an ordered dict ``"0".."n-1"`` (+ ``"pool"``) of maps with
    ``out_channels`` channels each, ready for ``torchvision.models.detection`` heads. ``neck`` is an
    :class:`FPN`, a :class:`SimpleFeaturePyramid` (fed with the last map), or ``None`` when the
    backbone already returns a complete pyramid (ViTDet's own SFP).
    """

    def __init__(self, body: nn.Module, neck: Optional[nn.Module], out_channels: int, names: Sequence[str]):
        super().__init__()
        self.body = body
        self.neck = neck
        self.out_channels = out_channels
        self.names = list(names)

    def forward(self, x: torch.Tensor) -> "OrderedDict[str, torch.Tensor]":
        feats = self.body(x)
        if isinstance(feats, dict):
            feats = list(feats.values())
        if self.neck is None:
            levels = list(feats)
        elif isinstance(self.neck, SimpleFeaturePyramid):
            levels = self.neck.forward_levels(feats[-1])
        else:
            levels = self.neck.forward_levels(feats)
        return OrderedDict(zip(self.names, levels))


def _feature_meta(body: nn.Module) -> Tuple[List[int], List[int]]:
    info = getattr(body, "feature_info", None)
    if info is None:
        raise ValueError(f"{type(body).__name__} has no feature_info: pass a features_only model "
                         "(forward returns a list of NCHW maps) or a zoo model name")
    if hasattr(info, "channels") and hasattr(info, "reduction"):
        return list(info.channels()), list(info.reduction())
    return [int(f["num_chs"]) for f in info], [int(f["reduction"]) for f in info]


def create_pyramid(
        name_or_model: Union[str, nn.Module],
        out_channels: int = 256,
        *,
        pretrained: bool = False,
        num_levels: int = 4,
        **kwargs: Any,
) -> PyramidBackbone:
    """A zoo backbone turned into a feature pyramid for torchvision's detection models.

    ``name_or_model`` is a zoo model name (built with ``features_only=True``; ``pretrained`` and
    ``kwargs`` are passed on), or a module that follows timm's ``features_only`` contract
    (``feature_info`` with channels and reductions, ``forward`` returning NCHW maps, finest first).

    * ViTDet models bring their own simple feature pyramid (built with ``out_channels``): used as is.
    * Multi-scale backbones (several strides): the last ``num_levels`` maps go through an :class:`FPN`.
    * Single-scale backbones (one stride, e.g. a plain ViT): the last map goes through a
      :class:`SimpleFeaturePyramid` (its scale factors are derived from the map's stride).

    The result's ``forward`` returns ``OrderedDict`` ``"0".."3", "pool"`` and it has ``out_channels``.
    """
    if isinstance(name_or_model, str):
        from zoo.registry import create_model, model_entry

        entry = model_entry(name_or_model)
        if entry.task == "dense":
            kwargs.setdefault("pyramid_channels", out_channels)
        body = create_model(name_or_model, pretrained=pretrained, features_only=True, **kwargs)
    elif isinstance(name_or_model, nn.Module):
        if kwargs or pretrained:
            raise ValueError("pretrained/kwargs apply to model names only; build the module with them instead")
        body = name_or_model
    else:
        raise TypeError(f"create_pyramid expects a model name or an nn.Module, got {type(name_or_model).__name__}")

    chans, reductions = _feature_meta(body)
    n = len(reductions)
    # a complete pyramid already: strides doubling from 4, equal widths, last level the "pool" one
    if (n == num_levels + 1 and all(c == out_channels for c in chans)
            and all(reductions[i + 1] == 2 * reductions[i] for i in range(n - 1))):
        return PyramidBackbone(body, None, out_channels, _level_names(num_levels, True))
    if len(set(reductions)) > 1:
        take = min(num_levels, n)
        if take < n:
            body = _SelectLast(body, take)
        neck = FPN(chans[-take:], out_channels, top_block=True)
        return PyramidBackbone(body, neck, out_channels, _level_names(take, True))
    stride = reductions[-1]
    scales = tuple(stride / s for s in (4, 8, 16, 32)[:num_levels])
    neck = SimpleFeaturePyramid(chans[-1], out_channels, scale_factors=scales, top_block=True, in_stride=stride)
    return PyramidBackbone(body, neck, out_channels, _level_names(len(scales), True))


class _SelectLast(nn.Module):
    """Keep the last ``n`` maps of a features model (the coarsest ones)."""

    def __init__(self, body: nn.Module, n: int):
        super().__init__()
        self.body = body
        self.n = n

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        feats = self.body(x)
        if isinstance(feats, dict):
            feats = list(feats.values())
        return list(feats)[-self.n:]
