"""A tiny hierarchical family used only by the tests (never shipped in the package).

It exercises the registry, the checkpoint routing and the general contract harness with the same
code paths a real family uses: timm's ``build_model_with_cfg``, ``generate_default_cfgs``, a
``checkpoint_filter_fn`` that maps an "official" layout (``backbone.layer{i}.*``, ``fc.*``) to zoo keys.
"""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch
from torch import nn
from timm.layers import ClassifierHead
from timm.models import build_model_with_cfg, generate_default_cfgs
from timm.models._features import feature_take_indices

from zoo.hub import unwrap_state_dict
from zoo.registry import register_checkpoint_filter, register_family, register_model
from zoo.validation import check_input

TOY_FAMILY = "zoo_toy"
TOY_HUB_ID = "zoo-test/toy-net"

register_family(
    TOY_FAMILY, title="A toy family for the test suite", paper_ids=("arXiv:0000.00000",),
    official_repo="https://example.invalid/toy", code_license="apache-2.0", module=__name__)


class ToyStage(nn.Module):
    def __init__(self, in_chs: int, out_chs: int, stride: int):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, 3, stride=stride, padding=1)
        self.norm = nn.BatchNorm2d(out_chs)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class ToyNet(nn.Module):
    def __init__(self, widths: Tuple[int, ...] = (8, 16, 24, 32), in_chans: int = 3, num_classes: int = 10,
                 global_pool: str = "avg", drop_rate: float = 0.):
        super().__init__()
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.grad_checkpointing = False
        strides = (4, 2, 2, 2)
        chs = (in_chans,) + tuple(widths)
        self.stages = nn.Sequential(*[ToyStage(chs[i], chs[i + 1], strides[i]) for i in range(4)])
        self.feature_info = [dict(num_chs=widths[i], reduction=4 * 2 ** i, module=f"stages.{i}") for i in range(4)]
        self.num_features = self.head_hidden_size = widths[-1]
        self.head = ClassifierHead(widths[-1], num_classes, pool_type=global_pool, drop_rate=drop_rate)

    def set_grad_checkpointing(self, enable: bool = True):
        self.grad_checkpointing = enable

    def group_matcher(self, coarse: bool = False):
        return dict(stem=r"^stages\.0", blocks=r"^stages\.(\d+)")

    def get_classifier(self):
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        self.num_classes = num_classes
        self.head.reset(num_classes, global_pool)

    def forward_intermediates(self, x, indices: Union[int, List[int], None] = None, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = "NCHW", intermediates_only: bool = False):
        check_input(x, model=self, in_chans=self.in_chans, min_size=1)
        take, max_index = feature_take_indices(len(self.stages), indices)
        intermediates = []
        stages = self.stages if not stop_early else self.stages[:max_index + 1]
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take:
                intermediates.append(x)
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(self, indices=1, prune_norm: bool = False, prune_head: bool = True):
        take, max_index = feature_take_indices(len(self.stages), indices)
        self.stages = self.stages[:max_index + 1]
        if prune_head:
            self.reset_classifier(0, "")
        return take

    def forward_features(self, x):
        check_input(x, model=self, in_chans=self.in_chans, min_size=1)
        if self.grad_checkpointing and not torch.jit.is_scripting():
            from timm.models import checkpoint_seq
            return checkpoint_seq(self.stages, x)
        return self.stages(x)

    def forward_head(self, x, pre_logits: bool = False):
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


@register_checkpoint_filter(TOY_FAMILY)
def checkpoint_filter_fn(state_dict, model):
    """'Official' keys ``backbone.layer{i}.*`` and ``fc.*`` -> zoo keys; zoo keys pass unchanged."""
    state_dict = unwrap_state_dict(state_dict)
    out = {}
    for k, v in state_dict.items():
        if k.startswith("backbone.layer"):
            k = "stages." + k[len("backbone.layer"):]
        elif k.startswith("fc."):
            k = "head.fc." + k[len("fc."):]
        out[k] = v
    return out


def _create(variant: str, pretrained: bool = False, **kwargs):
    return build_model_with_cfg(
        ToyNet, variant, pretrained, pretrained_filter_fn=checkpoint_filter_fn,
        feature_cfg=dict(feature_cls="getter", flatten_sequential=True, out_indices=(0, 1, 2, 3)), **kwargs)


def _cfg(**kwargs):
    return dict(num_classes=10, input_size=(3, 32, 32), pool_size=(1, 1), mean=(0.5,) * 3, std=(0.5,) * 3,
                first_conv="stages.0.conv", classifier="head.fc", license="apache-2.0",
                paper_ids="arXiv:0000.00000", origin_url="https://example.invalid/toy", **kwargs)


default_cfgs = generate_default_cfgs({
    "zoo_toy_net.hub": _cfg(hf_hub_id=TOY_HUB_ID),
    "zoo_toy_net_test": _cfg(),
})


TOY_OFFICIAL_PARAMS = 25_418  # the count of zoo_toy_net, standing in for an official manifest


@register_model(family=TOY_FAMILY, official_params=TOY_OFFICIAL_PARAMS,
                reported={"hub": dict(metric="top1", value=12.5, dataset="toy", source="made up for tests")})
def zoo_toy_net(pretrained: bool = False, **kwargs):
    return _create("zoo_toy_net", pretrained, **dict(dict(widths=(8, 16, 32, 64)), **kwargs))


@register_model(family=TOY_FAMILY, test_model=True, test_sizes=[(32, 32), (29, 45)])
def zoo_toy_net_test(pretrained: bool = False, **kwargs):
    return _create("zoo_toy_net_test", pretrained, **kwargs)
