"""zoo.optimize_for_cpu: opt-in, reversible oneDNN GEMMs for any nn.Module; default models use public ops only."""
from __future__ import annotations

import pickle
import warnings

import pytest
import timm
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import zoo
import zoo.accel as accel
from zoo.accel import CPULinear, optimize_for_cpu

needs_onednn = pytest.mark.skipif(not accel.onednn_linear_available(),
                                  reason="this torch build has no working torch.ops.mkldnn._linear_pointwise")

PRIVATE_OP = "mkldnn::_linear_pointwise"


def _ops(fn):
    """Names of the aten/mkldnn ops ``fn`` ran (the profiler observes, it does not intercept)."""
    with torch.profiler.profile() as prof:
        fn()
    return {e.key for e in prof.key_averages()}


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(40, 24), nn.GELU(), nn.Linear(24, 8), nn.Identity()).eval()


def test_default_zoo_model_runs_no_private_op_and_no_grad_changes_nothing():
    name = zoo.registry.test_models(family="nat")[0]
    model = zoo.create_model(name).eval()
    assert not any(isinstance(m, CPULinear) for m in model.modules())
    x = torch.randn(1, 3, 80, 80)
    assert PRIVATE_OP not in _ops(lambda: model(x))
    with torch.no_grad():
        y0 = model(x)
    y1 = model(x)  # autograd recording: same kernels, so bit-identical
    assert torch.equal(y0, y1.detach())


@needs_onednn
@pytest.mark.filterwarnings("ignore:TF32 acceleration")
def test_optimize_swaps_linears_keeping_parameters_keys_hooks_and_outputs():
    net = _net()
    keys, params = list(net.state_dict()), list(net.parameters())
    x = torch.randn(3, 7, 40)
    with torch.no_grad():
        ref = net(x)
    fired = []
    net[0].register_forward_hook(lambda m, i, o: fired.append(o.shape))
    assert optimize_for_cpu(net) is net
    assert [type(m) for m in net] == [CPULinear, nn.GELU, CPULinear, nn.Identity]
    assert list(net.state_dict()) == keys and all(a is b for a, b in zip(net.parameters(), params))
    with torch.no_grad():
        assert PRIVATE_OP in _ops(lambda: net(x))
        y = net(x)
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)
    assert fired and fired[-1] == (3, 7, 24)
    # training records autograd: the standard op, which has a backward
    y = net(x)
    assert PRIVATE_OP not in _ops(lambda: net(x))
    y.sum().backward()
    assert net[0].weight.grad is not None
    # float64, the FLOP counter and oneDNN switched off see the standard op, exactly
    with torch.no_grad():
        x64 = x.double()
        net64 = optimize_for_cpu(_net().double())
        assert torch.equal(net64(x64), _net().double()(x64))
        with FlopCounterMode(display=False) as counter:
            net(x)
        assert counter.get_total_flops() == 2 * 3 * 7 * (40 * 24 + 24 * 8)
        with torch.backends.mkldnn.flags(enabled=False):
            assert PRIVATE_OP not in _ops(lambda: net(x))


@needs_onednn
def test_reversal_restores_plain_linears_for_quantization_and_pickling():
    net = _net()
    x = torch.randn(2, 40)
    with torch.no_grad():
        ref = net(x)
    optimize_for_cpu(net)
    optimize_for_cpu(net, enabled=False)
    assert type(net[0]) is nn.Linear and type(net[2]) is nn.Linear
    with torch.no_grad():
        assert torch.equal(net(x), ref)
    assert b"zoo" not in pickle.dumps(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        q = torch.ao.quantization.quantize_dynamic(net, {nn.Linear}, dtype=torch.qint8)
    assert type(q[0]).__module__.startswith("torch.ao.nn.quantized.dynamic")
    torch.testing.assert_close(q(x), ref, rtol=0.05, atol=0.05)


@needs_onednn
def test_works_on_timm_models_shared_modules_and_a_bare_linear():
    model = timm.create_model("test_vit").eval()
    x = torch.randn(1, 3, *model.pretrained_cfg["input_size"][1:])
    with torch.no_grad():
        ref = model(x)
        n_linear = sum(type(m) is nn.Linear for m in model.modules())
        optimize_for_cpu(model)
        assert sum(type(m) is CPULinear for m in model.modules()) == n_linear > 0
        torch.testing.assert_close(model(x), ref, rtol=1e-4, atol=1e-4)
    shared = nn.Linear(4, 4)
    seq = optimize_for_cpu(nn.Sequential(shared, nn.ReLU(), shared))
    assert seq[0] is seq[2] and type(seq[0]) is CPULinear
    assert optimize_for_cpu(seq, enabled=False)[0] is shared
    bare = optimize_for_cpu(shared)
    assert type(bare) is CPULinear and optimize_for_cpu(bare, enabled=False) is shared


def test_missing_or_changed_private_op_fails_clearly(monkeypatch):
    monkeypatch.setattr(accel, "_AVAILABLE", None)
    monkeypatch.setattr(accel, "_onednn_op", lambda: None)
    net = _net()
    with pytest.raises(RuntimeError, match="_linear_pointwise is not available"):
        optimize_for_cpu(net)
    assert type(net[0]) is nn.Linear  # unchanged

    def changed(*args):
        raise TypeError("_linear_pointwise() takes 4 arguments")

    monkeypatch.setattr(accel, "_AVAILABLE", None)
    monkeypatch.setattr(accel, "_onednn_op", lambda: changed)
    with pytest.raises(RuntimeError, match="signature may have changed"):
        optimize_for_cpu(net)
    with pytest.raises(TypeError, match="nn.Module"):
        optimize_for_cpu(lambda x: x)


def test_nan_propagates():
    net = _net()
    if accel.onednn_linear_available():
        optimize_for_cpu(net)
    x = torch.randn(2, 40)
    x[0, 0] = float("nan")
    with torch.no_grad():
        y = net(x)
    assert torch.isnan(y[0]).all() and not torch.isnan(y[1]).any()
