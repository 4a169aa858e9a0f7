"""GatedDconvFFN (Restormer's GDFN) against a naive, loop-based reference."""
import math

import pytest
import torch

from zoo.layers.ffn import GatedDconvFFN


def _conv1x1(x, weight, bias):
    # out[b, o, h, w] = sum_i weight[o, i] * x[b, i, h, w] + bias[o]
    out = torch.einsum("oi,bihw->bohw", weight[:, :, 0, 0], x)
    return out if bias is None else out + bias[None, :, None, None]


def _depthwise(x, weight, bias):
    # zero-padded "same" depthwise conv: one shifted copy of the padded map per kernel offset
    k = weight.shape[-1]
    p = k // 2
    B, C, H, W = x.shape
    xp = torch.zeros(B, C, H + 2 * p, W + 2 * p, dtype=x.dtype)
    xp[:, :, p:p + H, p:p + W] = x
    out = torch.zeros_like(x)
    for dy in range(k):
        for dx in range(k):
            out += weight[None, :, 0, dy, dx, None, None] * xp[:, :, dy:dy + H, dx:dx + W]
    return out if bias is None else out + bias[None, :, None, None]


def _gelu(x):
    return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))


def _naive_gdfn(m, x):
    def b(conv):
        return None if conv.bias is None else conv.bias

    h = _depthwise(_conv1x1(x, m.project_in.weight, b(m.project_in)), m.dwconv.weight, b(m.dwconv))
    n = h.shape[1] // 2
    return _conv1x1(_gelu(h[:, :n]) * h[:, n:], m.project_out.weight, b(m.project_out))


@pytest.mark.parametrize("chunked", [False, True], ids=["plain", "chunked"])
@pytest.mark.parametrize("dim,ratio,bias,size", [
    (6, 2.66, False, (7, 5)),     # hidden int(6 * 2.66) = 15: truncation, odd map, uneven chunks
    (8, 2.0, True, (1, 9)),       # a one-pixel-high map: every tap but the centre row is padding
    (5, 2.66, True, (12, 3)),
])
def test_gdfn_matches_naive_reference(dim, ratio, bias, size, chunked):
    torch.manual_seed(0)
    m = GatedDconvFFN(dim, ratio, bias=bias).double()
    m.chunk_min_pixels = 0 if chunked else None
    for p in m.parameters():
        torch.nn.init.uniform_(p, -0.5, 0.5)
    x = torch.randn(2, dim, *size, dtype=torch.float64)
    with torch.no_grad():
        assert (m(x) - _naive_gdfn(m, x)).abs().max().item() < 1e-12


def test_gdfn_chunks_only_large_maps_without_gradients():
    m = GatedDconvFFN(4, 2.66)
    calls = []
    m._forward_chunked = lambda x: calls.append(x.shape) or x
    x = torch.randn(1, 4, 128, 128)
    m(x)                      # gradients on: plain form
    with torch.no_grad():
        m(x[..., :64, :64])   # small map: plain form
        m(x)                  # large map without gradients: chunked
    assert calls == [x.shape]


def test_gdfn_hidden_width_truncates_like_official():
    m = GatedDconvFFN(48, 2.66)
    assert m.hidden_features == 127
    assert tuple(m.project_in.weight.shape) == (254, 48, 1, 1)
    assert tuple(m.dwconv.weight.shape) == (254, 1, 3, 3)
    assert tuple(m.project_out.weight.shape) == (48, 127, 1, 1)
    assert m.project_in.bias is None
