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
# torch.compile of every family's test model; DiNAT's is the dilated test_dinat (its NA index tensors are
# compile-time constants, so inductor compiles it about as fast as test_nat; issue 23)
COMPILE_CASES = list(ONE_PER_FAMILY)
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


@pytest.mark.parametrize("name", COMPILE_CASES)
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
DDP_MODELS = sorted(set(ONE_PER_FAMILY) | {n for n in TESTS if n in ("test_uniformer_light", "test_uniformer_light")})


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


# -- issue 22: a shared model is thread-safe, caches survive mode changes, empty batches, dtypes -----------

def _racy_nat_mask_cache() -> bool:
    """NAT's per-module mask cache before issue 23 (check, assign, read back: a race between threads)."""
    import inspect

    from zoo.layers import neighborhood_attention as na

    cls = getattr(na, "NeighborhoodAttention2d", None)
    return cls is not None and "self._mask_cache = (key, mask)" in inspect.getsource(cls)


# the family's plain test model (shortest name: test_nat rather than test_nat_isotropic)
PLAIN_PER_FAMILY = sorted({model_entry(n).family: n for n in sorted(TESTS, key=len, reverse=True)}.values())


def _thread_sizes(name):
    sizes = [tuple(s) for s in model_entry(name).test_sizes]
    sizes.append(tuple(s + 7 for s in sizes[0]))  # a size no test used before: new cache entries under load
    return list(dict.fromkeys(sizes))


@pytest.mark.parametrize("name", PLAIN_PER_FAMILY)
def test_one_model_shared_by_eight_threads_gives_the_single_thread_outputs(name, request):
    if model_entry(name).family == "nat" and _racy_nat_mask_cache():
        request.applymarker(pytest.mark.xfail(reason="NAT's mask cache race is fixed by issue 23", strict=False))
    model = zoo.create_model(name).eval()
    sizes = _thread_sizes(name)
    torch.manual_seed(0)
    inputs = [make_input(name, s, batch=1) for s in sizes]
    fresh = zoo.create_model(name).eval()
    fresh.load_state_dict(model.state_dict())
    with torch.no_grad():
        expected = [fresh(x) for x in inputs]  # another instance: its caches are not the shared model's

    def work(tid):
        errors = []
        for step in range(len(sizes)):  # every size once, each thread starting at another one
            i = (tid + step) % len(sizes)
            try:
                with torch.no_grad():
                    out = model(inputs[i])
                torch.testing.assert_close(out, expected[i], atol=1e-4, rtol=1e-4)
            except Exception as e:  # collected, so one failure does not hide the count
                errors.append(f"size {sizes[i]}: {type(e).__name__}: {str(e)[:120]}")
        return errors

    with ThreadPoolExecutor(8) as pool:
        errors = [e for errs in pool.map(work, range(8)) for e in errs]
    assert not errors, f"{name}: {len(errors)} of {8 * len(sizes)} shared forwards failed, e.g. {errors[:3]}"


@pytest.mark.parametrize("name", PLAIN_PER_FAMILY)
def test_training_after_inference_mode_at_the_same_size(name):
    # a cache filled under torch.inference_mode must not hand inference tensors to autograd
    model = zoo.create_model(name)
    x = make_input(name, model_entry(name).test_sizes[0])
    with torch.inference_mode():
        model.eval()(x)
    out = model.train()(x)
    out.float().mean().backward()
    assert any(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", TESTS)
def test_empty_batch_gives_an_empty_output(name, eval_models):
    model = eval_models(name)
    x = make_input(name, model_entry(name).test_sizes[0], batch=0)
    with torch.no_grad():
        out = model(x)
    check_task_output(name, model, x, out)
    assert out.shape[0] == 0


@pytest.mark.parametrize("name", TESTS)
def test_input_dtype_other_than_the_weights_is_named(name, eval_models):
    model = eval_models(name)
    size = model_entry(name).test_sizes[0]
    for dtype in (torch.float64, torch.float16, torch.bfloat16):
        x = make_input(name, size, batch=1).to(dtype)
        with pytest.raises(TypeError, match=rf"{name}.*float32.*{str(dtype).split('.')[-1]}"):
            model(x)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():  # autocast's own rules apply
        assert torch.isfinite(model(make_input(name, size, batch=1))).all()


# -- fuzzed numpy-pickle constructors: every file loads within its own size, or is one CheckpointError -------

@settings(max_examples=60, deadline=None, derandomize=True)
@given(shape=st.lists(st.integers(0, 2_000_000_000), min_size=0, max_size=3),
       dtype=st.sampled_from(["f4", "f8", "i8", "u1", "O"]),
       buffer=st.binary(max_size=64),
       offset=st.integers(-8, 72),
       strides=st.one_of(st.none(), st.lists(st.integers(-16, 16), min_size=0, max_size=3)),
       via=st.sampled_from(["ndarray", "reconstruct"]))
def test_fuzzed_numpy_constructors_are_bounded_by_the_file(tmp_path_factory, shape, dtype, buffer, offset, strides,
                                                           via):
    import pickle

    import numpy as np

    from zoo.checkpoint import CheckpointError, load_checkpoint

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct

    class Call:
        def __init__(self, fn, *args):
            self.fn, self.args = fn, args

        def __reduce__(self):
            return self.fn, self.args

    if via == "ndarray":
        obj = Call(np.ndarray, tuple(shape), np.dtype(dtype), buffer, offset,
                   None if strides is None else tuple(strides))
    else:
        obj = Call(_reconstruct, np.ndarray, tuple(shape), dtype)
    path = tmp_path_factory.mktemp("fuzz") / "f.pdparams"
    path.write_bytes(pickle.dumps({"w": obj}, protocol=2))
    try:
        out = load_checkpoint(path)
    except CheckpointError as e:
        assert str(path) in str(e)
        return
    w = out["w"]
    assert isinstance(w, torch.Tensor)
    assert w.numel() * w.element_size() <= 2 * path.stat().st_size + (1 << 16)
