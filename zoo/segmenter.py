"""Universal segmentation heads on zoo backbones, through Hugging Face transformers.

Mask2Former (arXiv 2112.01527) and MaskFormer (arXiv 2107.06278) are not written again: transformers
maintains faithful implementations that accept any timm backbone through ``TimmBackboneConfig``, and
after ``import zoo`` every zoo model is a timm model. :func:`create_segmenter` wires them together
offline (no Hub look-up) and, when asked, really loads the zoo backbone's pretrained weights:
transformers 5 ignores ``use_pretrained_backbone`` for timm backbones, so zoo loads them itself and
checks that they arrived.

The saved config of a segmenter names its backbone by its zoo model name (a string): reloading it
with ``from_pretrained`` needs ``import zoo`` first, so that timm knows the name.

Needs the optional extra ``zoo[seg]`` (transformers).
"""
from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import timm
import torch

from .registry import create_model, model_entry

__all__ = ["create_segmenter", "create_segmentation_processor", "segmenter_backbone"]

HEADS = ("mask2former", "maskformer")


def _require_transformers():
    try:
        import transformers
    except ImportError as e:  # pragma: no cover - exercised only without the extra
        raise ImportError("zoo.create_segmenter needs Hugging Face transformers: pip install 'zoo[seg]'") from e
    return transformers


def segmenter_backbone(model: torch.nn.Module) -> torch.nn.Module:
    """The zoo feature extractor inside a transformers segmenter (the timm model ``TimmBackbone`` wraps)."""
    from transformers.models.timm_backbone.modeling_timm_backbone import TimmBackbone

    for module in model.modules():
        if isinstance(module, TimmBackbone):
            return module._backbone
    raise ValueError(f"{type(model).__name__} has no timm backbone")


def create_segmenter(
        backbone: str,
        head: str = "mask2former",
        num_labels: int = 150,
        pretrained_backbone: bool = False,
        out_indices: Sequence[int] = (0, 1, 2, 3),
        checkpoint_path: Optional[os.PathLike] = None,
        **head_kwargs: Any,
):
    """A Mask2Former / MaskFormer model of transformers on the zoo backbone ``backbone``.

    ``out_indices`` choose the backbone levels (default the four of strides 4-32; ViTDet gives them
    through its simple feature pyramid). ``pretrained_backbone=True`` loads the backbone's default
    pretrained weights, ``checkpoint_path`` an official or zoo checkpoint file (as
    :func:`zoo.create_model`). ``head_kwargs`` go to ``Mask2FormerConfig`` / ``MaskFormerConfig``
    (``num_queries``, ``decoder_layers``, ``hidden_dim``, ...). Returns
    ``Mask2FormerForUniversalSegmentation`` or ``MaskFormerForInstanceSegmentation``; pair it with
    :func:`create_segmentation_processor` for pre- and post-processing.
    """
    _require_transformers()
    from transformers import (Mask2FormerConfig, Mask2FormerForUniversalSegmentation, MaskFormerConfig,
                              MaskFormerForInstanceSegmentation, TimmBackboneConfig)

    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {HEADS}")
    entry = model_entry(backbone)
    if not entry.supports_features:
        raise ValueError(f"{backbone} ({entry.task}) gives no feature pyramid to segment from")
    name = entry.name
    in_chans = timm.models.get_pretrained_cfg(name).input_size[0]
    backbone_config = TimmBackboneConfig(backbone=name, out_indices=list(out_indices), num_channels=in_chans,
                                         features_only=True)
    if head == "mask2former":
        config = Mask2FormerConfig(backbone_config=backbone_config, num_labels=num_labels,
                                   use_pretrained_backbone=False, **head_kwargs)
        model = Mask2FormerForUniversalSegmentation(config)
    else:
        config = MaskFormerConfig(backbone_config=backbone_config, num_labels=num_labels,
                                  use_pretrained_backbone=False, **head_kwargs)
        model = MaskFormerForInstanceSegmentation(config)

    if pretrained_backbone or checkpoint_path is not None:
        weights = create_model(name, pretrained=True, checkpoint_path=checkpoint_path, features_only=True,
                               out_indices=tuple(out_indices)).state_dict()
        target = segmenter_backbone(model)
        target.load_state_dict(weights, strict=True)
        for k, v in target.state_dict().items():  # transformers must not have re-initialised them
            if not torch.equal(v, weights[k]):
                raise RuntimeError(f"backbone weight {k} did not load into the {head} segmenter")
    return model


def create_segmentation_processor(head: str = "mask2former", **kwargs: Any):
    """The transformers image processor of ``head``: resizing/normalisation in, and
    ``post_process_semantic_segmentation`` / ``..._instance_...`` / ``..._panoptic_...`` out."""
    _require_transformers()
    from transformers import Mask2FormerImageProcessor, MaskFormerImageProcessor

    if head not in HEADS:
        raise ValueError(f"unknown head {head!r}; expected one of {HEADS}")
    cls = Mask2FormerImageProcessor if head == "mask2former" else MaskFormerImageProcessor
    return cls(**kwargs)
