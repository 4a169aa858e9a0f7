"""zoo.layers.window_attention against a naive per-window loop."""
import pytest
import torch
import torch.nn.functional as F

from zoo.layers.conv_pos_embed import ConvPosEmbed
from zoo.layers.rel_pos import gen_relative_position_index
from zoo.layers.window_attention import WindowAttention, window_partition, window_reverse


def naive_window_attention(module: WindowAttention, x: torch.Tensor) -> torch.Tensor:
    """Loop over windows of the zero-padded map; softmax written out; crop at the end."""
    B, H, W, C = x.shape
    wh, ww = module.window_size
    Hp, Wp = -(-H // wh) * wh, -(-W // ww) * ww
    xp = torch.zeros(B, Hp, Wp, C, dtype=x.dtype)
    xp[:, :H, :W] = x
    out = torch.zeros_like(xp)
    nh, hd = module.num_heads, module.head_dim
    table = module.rel_pos.relative_position_bias_table if module.rel_pos is not None else None
    index = gen_relative_position_index((wh, ww))
    for b in range(B):
        for i in range(0, Hp, wh):
            for j in range(0, Wp, ww):
                t = xp[b, i:i + wh, j:j + ww].reshape(-1, C)
                q, k, v = module.qkv(t).view(-1, 3, nh, hd).unbind(1)
                heads = []
                for h in range(nh):
                    logits = (q[:, h] * module.scale) @ k[:, h].T
                    if table is not None:
                        logits = logits + table[index, h]
                    heads.append(torch.softmax(logits, -1) @ v[:, h])
                y = module.proj(torch.cat(heads, -1))
                out[b, i:i + wh, j:j + ww] = y.view(wh, ww, C)
    return out[:, :H, :W]


@pytest.mark.parametrize("size", [(7, 7), (9, 13), (14, 5), (3, 3)])
@pytest.mark.parametrize("window", [7, (3, 4)])
@pytest.mark.parametrize("bias", [True, False])
def test_window_attention_matches_naive_loop(size, window, bias):
    torch.manual_seed(0)
    m = WindowAttention(16, 2, window, rel_pos_bias=bias).double().eval()
    if bias:
        torch.nn.init.normal_(m.rel_pos.relative_position_bias_table, std=0.5)
    x = torch.randn(2, *size, 16, dtype=torch.float64)
    torch.testing.assert_close(m(x), naive_window_attention(m, x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("size", [(8, 8), (5, 11)])
def test_partition_then_reverse_is_identity(size):
    x = torch.randn(3, *size, 4)
    windows, padded = window_partition(x, (4, 3))
    assert windows.shape[1:] == (12, 4)
    assert padded == (-(-size[0] // 4) * 4, -(-size[1] // 3) * 3)
    torch.testing.assert_close(window_reverse(windows, (4, 3), padded, size), x, atol=0, rtol=0)


def test_partition_pads_with_zeros_at_bottom_right():
    x = torch.ones(1, 5, 5, 1)
    windows, padded = window_partition(x, 4)
    assert padded == (8, 8)
    full = window_reverse(windows, 4, padded)
    assert full[:, :5, :5].eq(1).all() and full[:, 5:].eq(0).all() and full[:, :, 5:].eq(0).all()


def test_window_attention_gradients_reach_bias_table():
    m = WindowAttention(8, 2, 4)
    m(torch.randn(1, 6, 9, 8)).sum().backward()
    assert m.rel_pos.relative_position_bias_table.grad.abs().sum() > 0


@pytest.mark.parametrize("dims,shape", [(2, (2, 6, 9, 11)), (3, (2, 6, 4, 9, 11))])
def test_conv_pos_embed_is_a_same_size_depthwise_conv(dims, shape):
    m = ConvPosEmbed(6, 3, spatial_dims=dims).double()
    x = torch.randn(*shape, dtype=torch.float64)
    conv = F.conv2d if dims == 2 else F.conv3d
    ref = conv(x, m.proj.weight, m.proj.bias, padding=1, groups=6)
    assert m(x).shape == x.shape
    torch.testing.assert_close(m(x), ref, atol=0, rtol=0)


# ---------------------------------------------------------------------------------------------------
# zoo.layers.padding (the one padding helper) and the shared layer's options


def test_pad_to_multiple_zero_pads_bottom_right_in_both_layouts():
    from zoo.layers.padding import nchw_to_nhwc, nhwc_to_nchw, pad_to_multiple

    x = torch.randn(2, 3, 5, 7)
    y = pad_to_multiple(x, (4, 3))
    assert y.shape == (2, 3, 8, 9)
    assert torch.equal(y[..., :5, :7], x) and y[..., 5:, :].eq(0).all() and y[..., :, 7:].eq(0).all()
    assert torch.equal(pad_to_multiple(nchw_to_nhwc(x), (4, 3), channels_last=True), nchw_to_nhwc(y))
    assert torch.equal(nhwc_to_nchw(nchw_to_nhwc(x)), x)
    assert pad_to_multiple(x, 1) is x
    assert pad_to_multiple(x, 1, min_size=6).shape == (2, 3, 6, 7)


def test_pad_to_multiple_reflects_and_replicates_sides_too_short_to_reflect():
    from zoo.layers.padding import pad_to_multiple

    x = torch.arange(12.).reshape(1, 1, 3, 4)
    y = pad_to_multiple(x, (4, 8), mode="reflect")
    assert y.shape == (1, 1, 4, 8)
    torch.testing.assert_close(y[..., 3, :4], x[..., 1, :])  # reflected row (pad 1 < side 3)
    torch.testing.assert_close(y[..., :3, 4:], x[..., :, 3:].expand(1, 1, 3, 4))  # replicated (pad 4 >= side 4)
    with pytest.raises(ValueError, match="mode"):
        pad_to_multiple(x, 8, mode="circular")


def test_window_attention_options_no_projection_and_prepartitioned_windows():
    torch.manual_seed(0)
    full = WindowAttention(8, 2, 3, rel_pos_bias=False).double().eval()
    windows = WindowAttention(8, 2, 3, rel_pos_bias=False, partition=False).double().eval()
    bare = WindowAttention(8, 2, 3, rel_pos_bias=False, proj=False).double().eval()
    windows.load_state_dict(full.state_dict())
    bare.load_state_dict({k: v for k, v in full.state_dict().items() if not k.startswith("proj.")})
    assert not any(n.startswith("proj.") for n, _ in bare.named_parameters())
    x = torch.randn(2, 6, 9, 8, dtype=torch.float64)
    w, padded = window_partition(x, 3)
    torch.testing.assert_close(window_reverse(windows(w.view(2, -1, 9, 8)).reshape(-1, 9, 8), 3, padded), full(x))
    torch.testing.assert_close(full.proj(bare(x)), full(x))
