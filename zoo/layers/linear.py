"""Linear layers that run float32 CPU inference on PyTorch's oneDNN GEMM.

PyTorch's CPU ``F.linear`` calls the BLAS the wheel was built with (MKL in the official x86 wheels).
PyTorch also ships oneDNN, and its matmul (``torch.ops.mkldnn._linear_pointwise``, the kernel
inductor emits for frozen linears) is 1.7-2.6x faster than MKL's sgemm on the AMD EPYC CPUs of our
CI machines, at every shape the zoo's models use (``benchmarks/bench_linear.py``). Results are
ordinary float32 GEMMs (the same rounding class as MKL's, not bit-identical to it).

:func:`linear` takes that path only where it is a drop-in replacement for ``F.linear``:

* eager float32 on the CPU, plain tensors, oneDNN available and not switched off by the user
  (``torch.backends.mkldnn.flags(enabled=False)``);
* no autograd graph is being recorded through it (inference, ``torch.no_grad`` or parameters that
  do not require grad), since the oneDNN op has no backward;
* not under ``torch.compile``/``torch.export`` tracing, TorchScript, autocast, or any
  ``TorchDispatchMode`` (the FLOP counter, fake tensors): those see the standard ``aten.linear``.

Everything else, including float64 (the parity tests) and every GPU, goes to ``F.linear`` unchanged.
The models are built with :class:`Linear` (an ``nn.Linear`` subclass with the same parameters and
state-dict keys): :func:`use_onednn_linears` swaps every ``nn.Linear`` of a model to it, which the
zoo registry does for every model it creates.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["onednn_usable", "linear", "Linear", "use_onednn_linears"]

_HAVE_ONEDNN = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")

try:
    from torch.utils._python_dispatch import _get_current_dispatch_mode
except ImportError:  # pragma: no cover - older torch: no dispatch modes to respect
    def _get_current_dispatch_mode():
        return None


def onednn_usable(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> bool:
    """Whether ``x @ weight.T + bias`` (or a conv with these operands) may run on oneDNN's kernels
    here (see the module docstring)."""
    if not _HAVE_ONEDNN or torch.jit.is_scripting() or torch.compiler.is_compiling():
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


@torch.jit.unused
def _onednn_linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    if onednn_usable(x, weight, bias):
        return torch.ops.mkldnn._linear_pointwise(x, weight.contiguous(), bias, "none", [], "")
    return None


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, on oneDNN's GEMM for float32 CPU inference."""
    if not torch.jit.is_scripting():  # (TorchScript compiles only the F.linear below)
        y = _onednn_linear(x, weight, bias)
        if y is not None:
            return y
    return F.linear(x, weight, bias)


# fx (torchvision feature extraction, timm's feature_cls='fx') records one call, which picks the
# oneDNN or the ATen GEMM when the graph runs, as the module does: traced and eager outputs are equal
torch.fx.wrap("linear")


class Linear(nn.Linear):
    """``nn.Linear`` whose forward is :func:`linear` (same parameters, same state-dict keys)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)


def use_onednn_linears(module: nn.Module, enabled: bool = True) -> nn.Module:
    """Make every plain ``nn.Linear`` in ``module`` a :class:`Linear` (``enabled=False``: the reverse),
    in place; returns ``module``.

    Only the class changes (parameters, hooks and state-dict keys stay). Code that requires the exact
    ``nn.Linear`` class, such as ``torch.ao.quantization.quantize_dynamic``, needs
    ``use_onednn_linears(model, enabled=False)`` first.
    """
    src, dst = (nn.Linear, Linear) if enabled else (Linear, nn.Linear)
    for m in module.modules():
        if type(m) is src:
            m.__class__ = dst
    return module
