"""Test-session set-up.

huggingface_hub reads HF_HUB_OFFLINE / HF_HUB_CACHE when it is imported (timm imports it), so the
offline Hub cache that the tests build is configured here, before anything imports zoo or timm.
"""
import atexit
import os
import shutil
import tempfile

_HF_CACHE = tempfile.mkdtemp(prefix="zoo-test-hf-cache-")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_CACHE"] = _HF_CACHE
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
atexit.register(shutil.rmtree, _HF_CACHE, ignore_errors=True)
# zoo's key/shape tables for wrong-variant explanations (zoo.factory) go to a session folder too, so the
# suite never writes into the user's ~/.cache/zoo
_ZOO_CACHE = tempfile.mkdtemp(prefix="zoo-test-cache-")
os.environ["ZOO_CACHE_DIR"] = _ZOO_CACHE
atexit.register(shutil.rmtree, _ZOO_CACHE, ignore_errors=True)

import pytest  # noqa: E402
import torch  # noqa: E402

import zoo  # noqa: E402,F401
import toy_models  # noqa: E402,F401  (registers the test-only toy family)


@pytest.fixture(scope="session")
def hf_cache_dir() -> str:
    """The HF_HUB_CACHE this session uses (empty at start, offline)."""
    return _HF_CACHE


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
