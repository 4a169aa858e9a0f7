"""Deprecated: kept only while ``zoo/models/mtunet.py`` still imports it (issue 19 part B removes that
import; delete this file then). Public ops only: oneDNN acceleration is opt-in, see :mod:`zoo.accel`
(``zoo.optimize_for_cpu``)."""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["onednn_usable", "linear", "Linear"]

Linear = nn.Linear


def onednn_usable(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> bool:
    """Always False: no zoo model runs a private op unless the user calls ``zoo.optimize_for_cpu``."""
    return False


def linear(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    return F.linear(x, weight, bias)
