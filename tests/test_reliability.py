"""Reliability over every family's test configuration: fuzzed sizes, bf16 autocast, torch.compile,
torch.export, several threads, and DistributedDataParallel across two processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zoo
from zoo.registry import model_entry, test_models

from _contract import check_task_output, make_input

TESTS = test_models()
# one test configuration per family keeps the compiler tests within the suite's time budget
ONE_PER_FAMILY = list({model_entry(n).family: n for n in reversed(TESTS)}.values())
BF16_REL_TOL = 5e-2  # relative L2 distance between bf16-autocast and fp32 outputs


@pytest.fixture(scope="module")
def eval_models():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = zoo.create_model(name).eval()
        return cache[name]
    return get


@pytest.mark.parametrize("name", TESTS)
def test_fuzzed_sizes_run_or_raise_the_validation_error(name, eval_models):
    model = eval_models(name)
    default = model_entry(name).test_sizes[0]
    ndim = len(default)

    @settings(max_examples=6, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(batch=st.integers(1, 3), size=st.tuples(*[st.integers(max(1, s // 4), 2 * s) for s in default]))
    def check(batch, size):
        assert len(size) == ndim
        x = make_input(name, size, batch=batch)
        try:
            with torch.no_grad():
                out = model(x)
        except ValueError as e:  # the model's own validation: it must say which model and what shape
            assert name in str(e), f"{name}: a ValueError that does not name the model: {e}"
            return
        check_task_output(name, model, x, out)
        if model_entry(name).supports_features:
            with torch.no_grad():
                final, feats = model.forward_intermediates(x)
            assert all(f.shape[0] == batch for f in feats)

    check()


@pytest.mark.parametrize("name", TESTS)
def test_nan_input_propagates(name, eval_models):
    model = eval_models(name)
    x = make_input(name, model_entry(name).test_sizes[0])
    x[0] = float("nan")
    with torch.no_grad():
        out = model(x)
    assert torch.isnan(out[0]).any()


@pytest.mark.parametrize("name", TESTS)
def test_bf16_autocast_is_finite_and_close_to_fp32(name, eval_models):
    model = eval_models(name)
    x = make_input(name, model_entry(name).test_sizes[0])
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x)
    assert torch.isfinite(out).all()
    rel = (out.float() - ref).norm() / ref.norm().clamp_min(1e-6)
    assert rel < BF16_REL_TOL, f"{name}: bf16 relative error {rel:.3g}"


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_torch_compile(name, eval_models):
    model = eval_models(name)
    x = make_input(name, model_entry(name).test_sizes[0])
    compiled = torch.compile(model)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ONE_PER_FAMILY)
def test_torch_export(name, eval_models):
    model = eval_models(name)
    x = make_input(name, model_entry(name).test_sizes[0])
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x), atol=1e-5, rtol=1e-5)


def test_create_model_from_threads_gives_independent_models():
    name = TESTS[0]

    def build(seed):
        torch.manual_seed(seed)
        return zoo.create_model(name)

    with ThreadPoolExecutor(4) as pool:
        models = list(pool.map(build, range(8)))
    ptrs = [{p.data_ptr() for p in m.parameters()} for m in models]
    for i in range(len(ptrs)):
        for j in range(i + 1, len(ptrs)):
            assert not ptrs[i] & ptrs[j], "two models share parameter storage"
    keys = models[0].state_dict().keys()
    assert all(m.state_dict().keys() == keys for m in models)
    x = make_input(name, model_entry(name).test_sizes[0])
    with torch.no_grad():
        for m in models:
            check_task_output(name, m.eval(), x, m(x))


# one test model per family (and the light UniFormer, whose unused class-token head DDP once tripped on)
DDP_MODELS = sorted(set(ONE_PER_FAMILY) | {n for n in TESTS if n in ("uniformer_light_test", "test_uniformer_light")})


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    """One two-process gloo launch (one process group) training every DDP_MODELS entry in turn."""
    result = tmp_path_factory.mktemp("ddp") / "ddp.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(__file__).parents[1]), str(Path(__file__).parent)]))
    for attempt in range(2):
        proc = subprocess.run([sys.executable, str(Path(__file__).parent / "_ddp_worker.py"), str(result), *DDP_MODELS],
                              env=env, capture_output=True, text=True, timeout=900)
        # one retry, only for a worker killed by a signal: a CI run once saw gloo abort a rank
        # ("terminate called without an active exception", SIGABRT), never reproduced in 11 runs here
        if proc.returncode == 0 or "terminated with signal" not in proc.stderr:
            break
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(result.read_text())
    assert out["world_size"] == 2
    return out["models"]


@pytest.mark.parametrize("name", DDP_MODELS)
def test_ddp_two_processes_keep_replicas_identical(name, ddp_results):
    """DDP with its default find_unused_parameters=False: every parameter must get a gradient from
    forward, and the replicas stay bit-identical after a few steps on different data."""
    out = ddp_results[name]
    assert "error" not in out, out.get("error")
    assert out["steps"] >= 3
    assert out["max_param_diff"] == 0.0, out
    assert out["loss_changed"], out
