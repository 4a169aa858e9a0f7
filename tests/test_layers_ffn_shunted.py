"""DetailSpecificFFN (zoo.layers.ffn) against a naive, obviously-correct reference."""
import pytest
import torch
import torch.nn.functional as F

from zoo.layers.ffn import DetailSpecificFFN


def naive_depthwise3x3(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) depthwise 3x3 with zero padding 1, as a sum of nine shifted, scaled copies."""
    B, C, H, W = x.shape
    xp = F.pad(x, (1, 1, 1, 1))
    out = bias.view(1, C, 1, 1).expand(B, C, H, W).clone()
    for dy in range(3):
        for dx in range(3):
            out = out + weight[:, 0, dy, dx].view(1, C, 1, 1) * xp[:, :, dy:dy + H, dx:dx + W]
    return out


def naive_detail_specific_ffn(ffn: DetailSpecificFFN, x: torch.Tensor) -> torch.Tensor:
    """The official token-layout formulation: fc1 -> act(h + DW(h)) -> fc2 on (B, N, C) tokens."""
    B, H, W, C = x.shape
    tokens = x.reshape(B, H * W, C)
    h = tokens @ ffn.fc1.weight.t() + ffn.fc1.bias
    hidden = h.shape[-1]
    h_map = h.transpose(1, 2).reshape(B, hidden, H, W)
    detail = naive_depthwise3x3(h_map, ffn.dwconv.weight, ffn.dwconv.bias).reshape(B, hidden, H * W).transpose(1, 2)
    h = 0.5 * (h + detail) * (1.0 + torch.erf((h + detail) / 2.0 ** 0.5))  # exact GELU
    out = h @ ffn.fc2.weight.t() + ffn.fc2.bias
    return out.reshape(B, H, W, -1)


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (8, 8), (3, 10)])
def test_detail_specific_ffn_matches_naive_reference(size):
    torch.manual_seed(0)
    ffn = DetailSpecificFFN(6, 20).double().eval()
    for p in ffn.parameters():  # non-trivial biases too
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(2, *size, 6, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ffn(x), naive_detail_specific_ffn(ffn, x), rtol=0, atol=1e-12)


def test_detail_specific_ffn_shapes_and_gradients():
    ffn = DetailSpecificFFN(4, 8, out_features=5)
    x = torch.randn(1, 3, 4, 4, requires_grad=True)
    y = ffn(x)
    assert y.shape == (1, 3, 4, 5)
    y.sum().backward()
    assert all(p.grad is not None for p in ffn.parameters())
    assert x.grad is not None


def test_detail_specific_ffn_accepts_non_contiguous_input():
    torch.manual_seed(0)
    ffn = DetailSpecificFFN(4, 8).eval()
    x = torch.randn(2, 4, 5, 6).permute(0, 2, 3, 1)  # NHWC view of an NCHW tensor
    with torch.no_grad():
        torch.testing.assert_close(ffn(x), ffn(x.contiguous()))
