"""Multiply-accumulate counting (GMACs, the unit papers call "FLOPs").

Built on ``torch.utils.flop_counter.FlopCounterMode``, which counts matmuls and convolutions but
reports the CPU fused attention kernel of ``F.scaled_dot_product_attention`` as zero: its formula
is registered here, so attention through SDPA is counted like attention written out.
FlopCounterMode counts FLOPs = 2 x MACs; :func:`count_macs` returns MACs.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

__all__ = ["count_macs", "count_flops"]

aten = torch.ops.aten


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _custom_mapping():
    mapping = {}
    for name in ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_fused_attention_overrideable"):
        op = getattr(aten, name, None)
        if op is not None:
            mapping[op] = _sdpa_cpu_flop  # FlopCounterMode passes it the argument shapes
    return mapping


def count_flops(
        model: torch.nn.Module,
        inputs: Union[torch.Tensor, Sequence[torch.Tensor], None] = None,
        *,
        input_size: Optional[Sequence[int]] = None,
        batch_size: int = 1,
        device: Union[str, torch.device, None] = None,
) -> int:
    """Forward FLOPs (2 x MACs) of ``model`` on ``inputs`` or a zero tensor of ``input_size``."""
    if inputs is None:
        if not input_size:
            raise ValueError("count_flops needs inputs or input_size")
        if device is None:
            device = next(iter(model.parameters()), torch.empty(0)).device
        inputs = torch.zeros((batch_size, *input_size), device=device)
    if isinstance(inputs, torch.Tensor):
        inputs = (inputs,)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_custom_mapping()) as counter:
            model(*inputs)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def count_macs(model: torch.nn.Module, inputs=None, **kwargs) -> int:
    """Forward multiply-accumulates of ``model`` (the papers' "FLOPs"); see :func:`count_flops`."""
    return count_flops(model, inputs, **kwargs) // 2
