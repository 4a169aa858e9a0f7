"""zoo.layers.linear: oneDNN GEMM for float32 CPU inference, F.linear everywhere else."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import zoo
from zoo.layers.linear import Linear, linear, onednn_usable, use_onednn_linears

pytestmark = pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="this torch build has no oneDNN")


def _ops(fn):
    """Names of the aten/mkldnn ops ``fn`` ran (the profiler observes, it does not intercept)."""
    with torch.profiler.profile() as prof:
        fn()
    return {e.key for e in prof.key_averages()}


def _operands(dtype=torch.float32):
    torch.manual_seed(0)
    return torch.randn(3, 7, 40, dtype=dtype), torch.randn(24, 40, dtype=dtype) / 6, torch.randn(24, dtype=dtype)


def test_inference_runs_onednn_and_equals_f_linear_in_float32():
    x, w, b = _operands()
    ref = F.linear(x.double(), w.double(), b.double())
    with torch.no_grad():
        assert "mkldnn::_linear_pointwise" in _ops(lambda: linear(x, w, b))
        y = linear(x, w, b)
        assert y.shape == (3, 7, 24) and y.dtype == torch.float32
        assert (y.double() - ref).abs().max() < 1e-5
        # non-contiguous input and no bias
        xt = x.transpose(0, 1)
        torch.testing.assert_close(linear(xt, w), F.linear(xt, w), rtol=1e-5, atol=1e-5)


@pytest.mark.filterwarnings("ignore:TF32 acceleration")
def test_training_float64_autocast_and_switched_off_are_f_linear_exactly():
    x, w, b = _operands()
    wp = nn.Parameter(w.clone())
    y = linear(x, wp, b)  # grad recorded: the aten op, which has a backward
    assert "mkldnn::_linear_pointwise" not in _ops(lambda: linear(x, wp, b))
    assert torch.equal(y, F.linear(x, wp, b))
    y.sum().backward()
    assert wp.grad is not None
    with torch.no_grad():
        x64, w64, b64 = _operands(torch.float64)
        assert torch.equal(linear(x64, w64, b64), F.linear(x64, w64, b64))
        with torch.backends.mkldnn.flags(enabled=False):
            assert not onednn_usable(x, w, b)
            assert torch.equal(linear(x, w, b), F.linear(x, w, b))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert linear(x, w, b).dtype == torch.bfloat16


def test_flop_counter_and_meta_tensors_see_the_standard_op():
    x, w, b = _operands()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        linear(x, w, b)
    assert counter.get_total_flops() == 2 * 3 * 7 * 40 * 24
    with torch.no_grad():
        assert linear(x.to("meta"), w.to("meta"), b.to("meta")).shape == (3, 7, 24)


def test_nan_propagates():
    x, w, b = _operands()
    x[0, 0, 0] = float("nan")
    with torch.no_grad():
        y = linear(x, w, b)
    assert torch.isnan(y[0, 0]).all() and not torch.isnan(y[1]).any()


def test_swap_keeps_parameters_keys_and_outputs():
    net = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 4), nn.Conv2d(1, 1, 1))
    keys = list(net.state_dict())
    use_onednn_linears(net)
    assert [type(m) for m in net] == [Linear, nn.GELU, Linear, nn.Conv2d]
    assert list(net.state_dict()) == keys and isinstance(net[0], nn.Linear)


def test_every_registered_model_is_built_with_onednn_linears():
    for name in zoo.registry.test_models():
        model = zoo.create_model(name)
        assert not [n for n, m in model.named_modules() if type(m) is nn.Linear], name


def test_swap_back_for_code_that_needs_the_exact_class():
    import warnings

    net = use_onednn_linears(nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2)))
    use_onednn_linears(net, enabled=False)
    assert type(net[0]) is nn.Linear and type(net[2]) is nn.Linear
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice
        q = torch.ao.quantization.quantize_dynamic(net, {nn.Linear}, dtype=torch.qint8)
    assert type(q[0]).__module__.startswith("torch.ao.nn.quantized.dynamic")
