"""Opt-in CPU acceleration: ``zoo.optimize_for_cpu(model)`` runs the ``nn.Linear`` layers of any model on
oneDNN's GEMM for float32 CPU inference; ``zoo.optimize_for_cpu(model, enabled=False)`` undoes it.

Why: PyTorch's CPU ``F.linear`` calls the BLAS the wheel was built with (MKL in the official x86
wheels). PyTorch also ships oneDNN, whose matmul (``torch.ops.mkldnn._linear_pointwise``, the kernel
inductor emits for frozen linears) measured 1.7-2.6x faster than MKL's sgemm on the AMD EPYC CPUs of
our CI machines at the shapes zoo's models use (``benchmarks/bench_linear.py``). Results are ordinary
float32 GEMMs (the same rounding class as MKL's, not bit-identical to it: expect ~1e-7 relative
differences against the default model).

That op is private to PyTorch, so nothing in zoo uses it unless asked: every registered model is built
from standard modules and public ops only. The call works on any ``nn.Module`` (zoo's, timm's, your
own) and only touches its ``nn.Linear`` layers (exact class; subclasses and ``F.linear`` calls on raw
weights are left alone).

How (and why not a class swap or hooks): each ``nn.Linear`` child is *replaced* by a
:class:`CPULinear` that holds the very same ``weight``/``bias`` Parameters (so the state-dict keys,
``parameters()``, optimizers and in-place weight loads are unchanged) and carries the Linear's forward
hooks; the original module is kept on it and put back by ``enabled=False``. The replacement is explicit
(``type(m)`` says what runs) and reversible, unlike an in-place ``__class__`` swap, which changed what
a plain ``nn.Linear`` is behind the user's back. A forward hook cannot skip the module's own GEMM, so
hooks could only add work. Consequences, all opt-in:

* a pickled *optimized* model needs ``zoo`` to unpickle (undo first, or save the state dict);
* ``torch.ao.quantization.quantize_dynamic`` (which matches the exact ``nn.Linear`` class), PEFT and
  other tools that look for ``nn.Linear`` need ``optimize_for_cpu(model, enabled=False)`` first;
* layers created after the call (``reset_classifier``) are plain ``nn.Linear``: call it again;
* :class:`CPULinear` takes the oneDNN path only where it is a drop-in replacement for ``F.linear``:
  eager float32 CPU tensors, oneDNN on (``torch.backends.mkldnn.flags(enabled=False)`` turns it off),
  no autograd being recorded (the op has no backward: training runs ``F.linear``), and not under
  ``torch.compile``/``torch.export``, TorchScript, autocast or a ``TorchDispatchMode`` (FLOP counter,
  fake tensors). Everything else runs ``F.linear``, so float64 and GPU results are bit-identical to
  the default model's; float32 CPU inference differs by GEMM rounding between ``torch.no_grad()`` and
  a grad-recording forward.

If the running PyTorch lacks the op, or its signature changed, ``optimize_for_cpu`` raises a
``RuntimeError`` that says so (it runs the op once on a small probe before changing anything).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["optimize_for_cpu", "CPULinear", "onednn_linear_available"]

_OP_NAME = "torch.ops.mkldnn._linear_pointwise"

try:
    from torch.utils._python_dispatch import _get_current_dispatch_mode
except ImportError:  # pragma: no cover - older torch: no dispatch modes to respect
    def _get_current_dispatch_mode():
        return None


def _onednn_op():
    """The private op, or None when this PyTorch build does not have it."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_linear_pointwise", None)


def _probe() -> Optional[str]:
    """Why the op cannot be used here (None: it can). Runs it once against ``F.linear``."""
    op = _onednn_op()
    if op is None:
        return (f"{_OP_NAME} is not available in torch {torch.__version__} "
                f"(oneDNN built: {torch.backends.mkldnn.is_available()})")
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(5, 16, generator=g), torch.randn(8, 16, generator=g), torch.randn(8, generator=g)
    try:
        with torch.no_grad():
            y = op(x, w, b, "none", [], "")
    except Exception as e:  # signature or schema changed
        return (f"{_OP_NAME}(x, weight, bias, 'none', [], '') failed in torch {torch.__version__} "
                f"(its signature may have changed): {type(e).__name__}: {e}")
    if not isinstance(y, torch.Tensor) or y.shape != (5, 8) or not torch.allclose(y, F.linear(x, w, b), atol=1e-4):
        return f"{_OP_NAME} no longer computes x @ weight.T + bias in torch {torch.__version__}"
    return None


_AVAILABLE: Optional[bool] = None


def onednn_linear_available() -> bool:
    """Whether :func:`optimize_for_cpu` can be used with this PyTorch build (the op exists and works)."""
    global _AVAILABLE
    if _AVAILABLE is None:
        _AVAILABLE = _probe() is None
    return _AVAILABLE


def _onednn_applies(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> bool:
    if torch.jit.is_scripting() or torch.compiler.is_compiling():
        return False
    operands = (x, weight) if bias is None else (x, weight, bias)
    if any(type(t) not in (torch.Tensor, nn.Parameter) or t.dtype != torch.float32 or t.device.type != "cpu"
           for t in operands):
        return False
    if not torch.backends.mkldnn.enabled or torch.is_autocast_enabled("cpu"):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in operands):
        return False
    return _get_current_dispatch_mode() is None


_HOOK_DICTS = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks",
               "_forward_hooks_with_kwargs", "_forward_hooks_always_called")


class CPULinear(nn.Module):
    """An ``nn.Linear`` replaced by :func:`optimize_for_cpu`: the same Parameters (and state-dict keys),
    computed on oneDNN's GEMM where that is a drop-in replacement (see the module docstring), else
    ``F.linear``. ``original`` is the ``nn.Linear`` it replaces (put back by ``enabled=False``)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self.train(linear.training)
        # hooks registered on the Linear keep firing (the dicts are shared, so their handles still work)
        for attr in _HOOK_DICTS:
            if hasattr(linear, attr):
                setattr(self, attr, getattr(linear, attr))
        self.__dict__["original"] = linear  # not a submodule: no duplicate parameters or keys

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _onednn_applies(x, self.weight, self.bias):
            return torch.ops.mkldnn._linear_pointwise(x, self.weight.contiguous(), self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)

    def to_linear(self) -> nn.Linear:
        """The ``nn.Linear`` this module replaced, holding this module's current Parameters."""
        lin = self.__dict__["original"]
        lin.weight, lin.bias = self.weight, self.bias
        lin.train(self.training)
        return lin

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, " \
               f"bias={self.bias is not None}, backend=oneDNN"


def optimize_for_cpu(model: nn.Module, enabled: bool = True) -> nn.Module:
    """Run every ``nn.Linear`` of ``model`` on oneDNN's GEMM for float32 CPU inference (in place).

    ``enabled=False`` puts the original ``nn.Linear`` modules back (same Parameters). Returns the model
    (a new module only when ``model`` itself is an ``nn.Linear``). Raises ``RuntimeError`` when this
    PyTorch lacks ``torch.ops.mkldnn._linear_pointwise`` or its signature changed; ``TypeError`` for a
    non-module. See :mod:`zoo.accel` for what changes and what does not.

        model = zoo.optimize_for_cpu(zoo.create_model("uniformer_small").eval())
        with torch.inference_mode():
            logits = model(x)
        zoo.optimize_for_cpu(model, enabled=False)  # e.g. before quantize_dynamic
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"optimize_for_cpu expects an nn.Module, got {type(model).__name__}")
    if enabled:
        reason = _probe() if not onednn_linear_available() else None
        if reason is not None:
            raise RuntimeError(f"zoo.optimize_for_cpu cannot accelerate this model: {reason}. "
                               "The model is unchanged and runs with PyTorch's default kernels.")

        def convert(m: nn.Module) -> Optional[nn.Module]:
            return CPULinear(m) if type(m) is nn.Linear else None
    else:
        def convert(m: nn.Module) -> Optional[nn.Module]:
            return m.to_linear() if type(m) is CPULinear else None

    done: Dict[int, nn.Module] = {}  # a module shared between parents is replaced once

    def visit(parent: nn.Module) -> None:
        for name, child in list(parent._modules.items()):
            if child is None:
                continue
            if id(child) in done:
                parent._modules[name] = done[id(child)]
                continue
            new = convert(child)
            if new is not None:
                done[id(child)] = new
                parent._modules[name] = new
            else:
                done[id(child)] = child
                visit(child)

    root = convert(model)
    if root is not None:
        return root
    visit(model)
    return model
