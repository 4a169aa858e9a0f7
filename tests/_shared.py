"""Access to ../shared/reference (manifests and parity bundles), skipping cleanly without it."""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any, Dict

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ZOO_SHARED", ROOT.parent / "shared"))
REFERENCE = SHARED / "reference"
SKIP_REASON = f"../shared/reference is absent ({REFERENCE}); official-parity fixtures are not available"


def have_shared() -> bool:
    return (REFERENCE / "bundle.py").is_file()


def require_shared() -> Path:
    if not have_shared():
        pytest.skip(SKIP_REASON)
    return REFERENCE


def manifest(name: str) -> Dict[str, Any]:
    """``manifest("nat/nat_tiny")`` -> {"_meta": ..., "state_dict": {key: shape}}."""
    path = require_shared() / "manifests" / f"{name}.json"
    with open(path) as f:
        return json.load(f)


def _bundle_module():
    spec = importlib.util.spec_from_file_location("zoo_shared_bundle", require_shared() / "bundle.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_bundle(family: str, case: str) -> Dict[str, Any]:
    """A parity bundle as numpy: meta, input, output, features, state_dict (official keys)."""
    path = require_shared() / "parity" / family / f"{case}.json"
    if not path.is_file():
        pytest.skip(f"parity bundle {family}/{case} is absent from {REFERENCE}")
    return _bundle_module().load_bundle(path)


def bundle_state_dict(bundle: Dict[str, Any]):
    """The bundle's official state dict as torch tensors."""
    import numpy as np
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bundle["state_dict"].items()}


def tolerance(bundle: Dict[str, Any]) -> float:
    return float(bundle["meta"].get("tolerance", {}).get("max_abs", 1e-8))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Import into a test module to run it on one thread: tiny tensors on a loaded 2-core machine make
    OpenMP threads spin against each other (~100x slower than one thread)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
