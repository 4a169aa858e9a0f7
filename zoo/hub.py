"""Checkpoint loading, kept under its historical name.

Everything here lives in :mod:`zoo.checkpoint` (reading, unwrapping, safe unpickling; it imports
nothing from zoo). ``guess_variant`` / ``explain_mismatch`` moved to :mod:`zoo.factory` and are
forwarded lazily, so this module does not import the registry.
"""
from __future__ import annotations

from typing import Any

from .checkpoint import (  # noqa: F401
    NUMPY_PICKLE_SUFFIXES, STRIP_PREFIXES, WRAPPER_KEYS, CheckpointError, NumpyOnlyUnpickler,
    UnsafeCheckpointError, load_checkpoint, load_into, load_numpy_pickle, strip_prefix, unwrap_state_dict,
)

__all__ = [
    "CheckpointError", "UnsafeCheckpointError", "NumpyOnlyUnpickler", "load_checkpoint",
    "load_numpy_pickle", "unwrap_state_dict", "strip_prefix", "load_into", "guess_variant", "explain_mismatch",
]

_MOVED = {"guess_variant": ("factory", "guess_variant"), "explain_mismatch": ("factory", "explain_mismatch"),
          "_family_filter": ("registry", "family_filter")}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        mod, attr = _MOVED[name]
        return getattr(importlib.import_module(f"zoo.{mod}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
