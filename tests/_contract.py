"""Inputs and output checks shared by the contract tests."""
from __future__ import annotations

import timm
import torch

from zoo.registry import model_entry


def make_input(name: str, size, batch: int = 2, in_chans: int | None = None) -> torch.Tensor:
    if in_chans is None:
        in_chans = timm.models.get_pretrained_cfg(name).input_size[0]
    return torch.randn(batch, in_chans, *size)


def check_task_output(name: str, model, x: torch.Tensor, out: torch.Tensor):
    task = model_entry(name).task
    B = x.shape[0]
    assert isinstance(out, torch.Tensor), f"{name}: forward returned {type(out).__name__}"
    assert torch.isfinite(out).all(), f"{name}: non-finite output"
    if task in ("classification", "video"):
        assert out.shape == (B, model.num_classes)
    elif task == "dense":
        assert out.ndim == 4 and out.shape[0] == B
        for got, side in zip(out.shape[2:], x.shape[2:]):
            assert abs(got - side / 16) <= 1, f"{name}: dense map {tuple(out.shape)} for input {tuple(x.shape)}"
    elif task == "segmentation":
        assert out.shape == (B, model.num_classes, *x.shape[2:])
    elif task == "restoration":
        assert out.shape[0] == B and out.shape[2:] == x.shape[2:]
    else:  # pragma: no cover
        raise AssertionError(f"unknown task {task}")


def fx_model(model):
    """``model`` symbolically traced as timm's own test suite does it (torchvision's feature extraction
    with timm's leaf modules and autowrapped functions), returning the final output."""
    from timm.models import get_notrace_functions, get_notrace_modules
    from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

    kwargs = dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions(),
                  param_shapes_constant=True)
    train_nodes, eval_nodes = get_graph_node_names(model, tracer_kwargs=kwargs)
    return create_feature_extractor(model, train_return_nodes=[train_nodes[-1]], eval_return_nodes=[eval_nodes[-1]],
                                    tracer_kwargs=kwargs)
