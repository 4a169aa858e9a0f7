"""Deployment: every test model (one or more per family, covering every block type: NAT/DiNAT neighbourhood
attention, UniFormer's MHRA and the light models' token pruning, Shunted, VSA, Swin-VSA, MixFormer,
ViTDet's windowed and global attention, MT-UNet, Restormer) goes through ``torch.export`` and both ONNX
exporters, and onnxruntime computes what eager PyTorch computes, within 1e-4 relative.
"""
import io
import warnings

import onnxruntime as ort
import pytest
import torch

import zoo
from zoo.models.uniformer import UniFormerLight, _order_by_score
from zoo.registry import model_entry, test_models

RTOL = 1e-4  # of the output's largest magnitude


def _model_and_input(name):
    model = zoo.create_model(name).eval()
    size = model_entry(name).test_sizes[0]
    if isinstance(model, UniFormerLight):
        # 14x14 tokens in stage 3, the size at which equal token scores once pruned other tokens in ONNX
        size = (224, 224)
    return model, torch.randn(2, 3, *size)


def _run_onnx(model_bytes: bytes, x: torch.Tensor):
    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    return torch.from_numpy(out)


def _assert_close(out, ref, what):
    assert out.shape == ref.shape, what
    err = (out - ref).abs().max().item()
    assert err <= RTOL * ref.abs().max().item(), f"{what}: max abs error {err:.3g}, output peak {ref.abs().max():.3g}"


@pytest.mark.parametrize("name", test_models())
def test_torch_export_and_dynamo_onnx_match_eager(name):
    model, x = _model_and_input(name)
    with torch.no_grad():
        ref = model(x)
    ep = torch.export.export(model, (x,))
    with torch.no_grad():
        _assert_close(ep.module()(x), ref, f"{name} torch.export")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(ep, (x,), dynamo=True, verbose=False)
    _assert_close(_run_onnx(program.model_proto.SerializeToString(), x), ref, f"{name} ONNX (dynamo) in onnxruntime")


@pytest.mark.parametrize("name", test_models())
def test_legacy_onnx_matches_eager(name):
    model, x = _model_and_input(name)
    with torch.no_grad():
        ref = model(x)
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), f, dynamo=False, opset_version=17)
    _assert_close(_run_onnx(f.getvalue(), x), ref, f"{name} ONNX (legacy) in onnxruntime")


def test_token_pruning_orders_equal_scores_by_position():
    """Equal scores (all of them, when the class token starts at zero) keep the lower token index first,
    as a stable sort and ONNX TopK do, so eager and exported models prune the same tokens."""
    score = torch.tensor([[0.5, 0.25, 0.25, 0.5, 0.1, 0.25], [1., 1., 1., 1., 1., 1.]])
    expected = [sorted(range(6), key=lambda i: -float(s[i])) for s in score]
    assert _order_by_score(score).tolist() == expected
    flat = torch.full((1, 196), 1 / 196)
    assert _order_by_score(flat).tolist() == [list(range(196))]
