"""Input checks shared by every model: a clear error naming the model and the expected shape.

Models call :func:`check_input` at the top of ``forward_features`` / ``forward_intermediates``
so that a wrong tensor fails with a ``TypeError`` / ``ValueError`` that says what was expected,
never with a reshape error from deep inside. NaN values are not checked: they propagate.

Dtypes are not cast behind the user's back: a float64 / float16 / bfloat16 input to a float32
model (or the reverse) raises a ``TypeError`` saying which cast to make (casting silently would drop
precision the caller asked for, or hide a model left in the wrong dtype). Under ``torch.autocast``
the autocast rules apply and the check is skipped. An empty batch (B = 0) is valid input and
gives an empty batch of the task's output.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch

__all__ = ["check_input", "is_fx_tracing"]

_AXES = {4: "H, W", 5: "T, H, W"}


def is_fx_tracing() -> bool:
    """True while torch.fx traces a model symbolically (torchvision's feature extraction, timm's
    ``feature_cls='fx'``): input checks and shape-dependent branches must stand aside then."""
    return torch.fx._symbolic_trace.is_fx_symbolic_tracing()


def check_input(
        x: torch.Tensor,
        *,
        model: Union[str, torch.nn.Module],
        in_chans: Optional[int] = None,
        ndim: int = 4,
        min_size: Union[int, Sequence[int], None] = None,
        fixed_size: Optional[Sequence[int]] = None,
) -> None:
    """Validate a channels-first input ``(B, C, H, W)`` (``ndim=4``) or ``(B, C, T, H, W)`` (5).

    ``min_size`` bounds every spatial (and temporal) side from below (one int, or one per axis);
    ``fixed_size`` demands exact spatial sizes. ``model`` is a name or a module (its class name and
    ``pretrained_cfg['architecture']`` are used).
    """
    if is_fx_tracing() or isinstance(x, torch.fx.Proxy):
        # symbolic tracing (torchvision feature extraction, timm's feature_cls='fx') has no values
        # to check; the traced graph runs the model's ops, which fail on a wrong input anyway
        return
    name = model if isinstance(model, str) else _model_name(model)
    axes = _AXES.get(ndim, ", ".join(f"D{i}" for i in range(ndim - 2)))
    chans = "C" if in_chans is None else str(in_chans)
    expected = f"(B, {chans}, {axes})"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor of shape {expected}, got {type(x).__name__}")
    if not (x.is_floating_point() or x.is_complex()) or x.is_complex():
        raise TypeError(f"{name} expects a floating-point tensor of shape {expected}, got dtype {x.dtype}")
    if x.ndim != ndim:
        extra = ""
        if ndim == 5 and x.ndim == 4:
            extra = " (a video model: add the time axis)"
        elif ndim == 4 and x.ndim == 5:
            extra = " (an image model: fold the time axis into the batch)"
        elif ndim == 4 and x.ndim == 3:
            extra = " (add the batch axis: x[None])"
        raise ValueError(f"{name} expects input of shape {expected}, got {tuple(x.shape)}{extra}")
    if in_chans is not None and x.shape[1] != in_chans:
        raise ValueError(f"{name} expects input of shape {expected} with {in_chans} channels, "
                         f"got {tuple(x.shape)}")
    if isinstance(model, torch.nn.Module) and x.dtype != _param_dtype(model, x.dtype) and not _autocast(x):
        want = _param_dtype(model, x.dtype)
        raise TypeError(f"{name} has {want} weights, got a {x.dtype} input: cast the input "
                        f"(x.to({want})) or the model (model.to({x.dtype})), or run under torch.autocast")
    sizes = tuple(x.shape[2:])
    if fixed_size is not None and tuple(fixed_size) != sizes:
        raise ValueError(f"{name} expects input of shape (B, {chans}, {', '.join(map(str, fixed_size))}), "
                         f"got {tuple(x.shape)}")
    if min_size is not None:
        mins = (min_size,) * len(sizes) if isinstance(min_size, int) else tuple(min_size)
        if any(s < m for s, m in zip(sizes, mins)):
            need = " x ".join(map(str, mins))
            raise ValueError(f"{name} expects input of shape {expected} with {axes} at least {need}, "
                             f"got {tuple(x.shape)}")


def _param_dtype(model: torch.nn.Module, default: torch.dtype) -> torch.dtype:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return default


def _autocast(x: torch.Tensor) -> bool:
    try:
        return torch.is_autocast_enabled(x.device.type)
    except TypeError:  # torch < 2.4 has no device argument
        return torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()


def _model_name(model: torch.nn.Module) -> str:
    cfg = getattr(model, "pretrained_cfg", None) or {}
    arch = cfg.get("architecture") if isinstance(cfg, dict) else None
    return arch or type(model).__name__
