"""Neighborhood attention (zoo.layers.neighborhood_attention) against a naive per-query loop."""
import pytest
import torch
import torch.nn.functional as F

from zoo.layers.neighborhood_attention import NeighborhoodAttention2d, na2d, na2d_reference


def _qkv(shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g, dtype=dtype) for _ in range(3)]


CASES = [
    # (H, W, kernel, dilation): odd / even / non-square maps, maps equal to the kernel (every query
    # sees the whole axis), maps large enough for several query tiles, dilation 1-3 with sides that
    # do and do not divide by the dilation
    (7, 7, 7, 1),
    (5, 9, 5, 1),
    (9, 11, 3, 1),
    (17, 23, 5, 1),
    (33, 26, 7, 1),
    (29, 18, 7, 1),
    (12, 15, 3, 2),
    (20, 16, 3, 2),
    (46, 23, 5, 2),  # 23-row sub-grids: tiled path with dilation
    (9, 9, 3, 3),
    (22, 25, 3, 3),
    # DiNAT: large dilations, sides that are not multiples of d (sub-grids of two lengths), and sides
    # exactly k * d (every query sees its whole sub-grid)
    (19, 22, 3, 4),
    (15, 13, 5, 2),
    (16, 17, 5, 3),
    (12, 15, 3, 4),
    # sides not multiples of d whose sub-grids need several query tiles (the strided layout with tiles,
    # halos clamped into the longer sub-grid and windows into each sub-grid's own length)
    (47, 45, 3, 2),
    (85, 30, 3, 4),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("H, W, k, d", CASES)
def test_na2d_matches_naive_loop(H, W, k, d, bias):
    q, kk, v = _qkv((2, H, W, 2, 4))
    rpb = torch.randn(2, 2 * k - 1, 2 * k - 1, dtype=torch.float64) if bias else None
    out = na2d(q, kk, v, k, d, rpb=rpb)
    ref = na2d_reference(q, kk, v, k, d, rpb=rpb)
    assert out.shape == q.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)


def test_na2d_custom_scale_and_float32():
    q, kk, v = _qkv((1, 19, 21, 3, 8), dtype=torch.float32, seed=1)
    rpb = torch.randn(3, 9, 9)
    out = na2d(q, kk, v, 5, rpb=rpb, scale=0.3)
    ref = na2d_reference(q.double(), kk.double(), v.double(), 5, rpb=rpb.double(), scale=0.3)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=0, atol=1e-5)


def test_na2d_kernel_equal_to_map_is_dense_attention_with_bias():
    # when k equals the map side every query sees every key: plain attention plus the bias rows
    H = W = 5
    q, kk, v = _qkv((1, H, W, 1, 4), seed=2)
    rpb = torch.randn(1, 9, 9, dtype=torch.float64)
    ys, xs = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    bias = rpb[0][(ys[None] - ys[:, None]) + 4, (xs[None] - xs[:, None]) + 4]
    dense = F.scaled_dot_product_attention(
        q.view(1, H * W, 1, 4).transpose(1, 2), kk.view(1, H * W, 1, 4).transpose(1, 2),
        v.view(1, H * W, 1, 4).transpose(1, 2), attn_mask=bias).transpose(1, 2).reshape(1, H, W, 1, 4)
    torch.testing.assert_close(na2d(q, kk, v, 5, rpb=rpb), dense, rtol=0, atol=1e-12)


@pytest.mark.parametrize("H, W, k, d", [(5, 6, 3, 1), (6, 7, 3, 2)])
def test_na2d_gradcheck_float64(H, W, k, d):
    q, kk, v = [t.requires_grad_() for t in _qkv((1, H, W, 2, 2), seed=3)]
    rpb = (0.5 * torch.randn(2, 2 * k - 1, 2 * k - 1, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: na2d(*a[:3], k, d, rpb=a[3]), (q, kk, v, rpb), fast_mode=True)


def test_na2d_gradients_match_naive_loop_on_tiled_map():
    q, kk, v = [t.requires_grad_() for t in _qkv((1, 21, 18, 2, 4), seed=4)]
    rpb = torch.randn(2, 13, 13, dtype=torch.float64, requires_grad=True)
    g = torch.randn(1, 21, 18, 2, 4, dtype=torch.float64)
    grads = torch.autograd.grad((na2d(q, kk, v, 7, rpb=rpb) * g).sum(), (q, kk, v, rpb))
    refs = torch.autograd.grad((na2d_reference(q, kk, v, 7, rpb=rpb) * g).sum(), (q, kk, v, rpb))
    for a, b in zip(grads, refs):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-11)


@pytest.mark.parametrize("H, W, k, d", [(6, 9, 7, 1), (9, 5, 3, 2), (8, 8, 3, 3)])
def test_na2d_too_small_map_raises_with_minimum(H, W, k, d):
    q, kk, v = _qkv((1, H, W, 1, 4))
    with pytest.raises(ValueError, match=f"at least {k * d}x{k * d}"):
        na2d(q, kk, v, k, d)


def test_na2d_rejects_bad_shapes():
    q, kk, v = _qkv((1, 8, 8, 2, 4))
    with pytest.raises(ValueError, match="rpb"):
        na2d(q, kk, v, 3, rpb=torch.zeros(2, 3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="odd"):
        na2d(q, kk, v, 4)
    with pytest.raises(ValueError, match="equal shape"):
        na2d(q, kk[:, :7], v, 3)


def _module_reference(m: NeighborhoodAttention2d, x: torch.Tensor) -> torch.Tensor:
    B, H, W, C = x.shape
    q, k, v = m.qkv(x).view(B, H, W, 3, m.num_heads, m.head_dim).unbind(3)
    out = na2d_reference(q, k, v, m.kernel_size, m.dilation, rpb=m.rpb, scale=m.scale)
    return m.proj(out.reshape(B, H, W, C))


@pytest.mark.parametrize("dilation", [1, 2])
def test_module_matches_reference(dilation):
    torch.manual_seed(0)
    m = NeighborhoodAttention2d(16, 2, kernel_size=5, dilation=dilation).double().eval()
    with torch.no_grad():
        m.rpb.normal_()
        x = torch.randn(2, 13, 17, 16, dtype=torch.float64)
        torch.testing.assert_close(m(x), _module_reference(m, x), rtol=0, atol=1e-12)


def test_module_without_bias_has_no_rpb():
    m = NeighborhoodAttention2d(8, 2, kernel_size=3, rel_pos_bias=False)
    assert m.rpb is None
    assert m(torch.randn(1, 4, 5, 8)).shape == (1, 4, 5, 8)


def test_module_pad_small_pads_to_kernel_times_dilation_and_crops():
    torch.manual_seed(0)
    m = NeighborhoodAttention2d(8, 2, kernel_size=3, dilation=2, pad_small=True).double().eval()
    x = torch.randn(1, 4, 7, 8, dtype=torch.float64)
    with torch.no_grad():
        out = m(x)
        # NATTEN <= 0.14: zero-pad the input (before qkv) at the bottom / right to k * d, crop after
        ref = _module_reference(m, F.pad(x, (0, 0, 0, 0, 0, 2)))[:, :4, :7]
    assert out.shape == x.shape
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    strict = NeighborhoodAttention2d(8, 2, kernel_size=3, dilation=2)
    with pytest.raises(ValueError, match="at least 6x6"):
        strict(x.float())


def test_module_builds_and_runs_on_meta():
    with torch.device("meta"):
        m = NeighborhoodAttention2d(32, 4, kernel_size=7)
        out = m(torch.empty(2, 30, 20, 32))
    assert out.shape == (2, 30, 20, 32) and out.device.type == "meta"


def test_index_cache_built_in_inference_mode_serves_autograd_later():
    q, kk, v = _qkv((1, 23, 26, 2, 4), dtype=torch.float32, seed=5)
    with torch.inference_mode():
        na2d(q, kk, v, 7)
    q.requires_grad_()
    na2d(q, kk, v, 7).sum().backward()
    assert q.grad is not None

    m = NeighborhoodAttention2d(8, 2, kernel_size=3)
    x = torch.randn(1, 24, 22, 8)
    with torch.inference_mode():
        a = m(x)
    with torch.no_grad():
        b = m(x)
    m(x).sum().backward()
    assert m.rpb.grad is not None
    torch.testing.assert_close(a, b)


def test_one_module_serves_concurrent_forwards_at_several_sizes():
    """Regression (issue 22.1): the per-size mask cache was check-then-assign-then-read on the module, so
    8 threads sharing one model at 4 input sizes got each other's masks (82 of 1,200 forwards crashed)."""
    import sys
    import threading

    from zoo.models.nat import NAT

    torch.manual_seed(0)
    model = NAT(depths=(1, 2, 1, 1), embed_dim=8, num_heads=(1, 2, 2, 2), mlp_ratio=1.0, kernel_size=3,
                dilations=((1,), (1, 2), (1,), (1,)), pad_small=True, num_classes=5).eval()
    sizes = [(40, 40), (36, 52), (48, 32), (56, 44)]
    inputs = [torch.randn(1, 3, h, w) for h, w in sizes]
    with torch.no_grad():
        expected = [model(x) for x in inputs]
    errors, wrong = [], []

    def worker(tid: int) -> None:
        try:
            with torch.no_grad():
                for i in range(40):
                    j = (tid + i) % len(sizes)
                    if not torch.allclose(model(inputs[j]), expected[j], rtol=0, atol=1e-5):
                        wrong.append((tid, i))
        except Exception as e:  # noqa: BLE001 - any failure in a thread is the defect under test
            errors.append(repr(e))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads often, so that an unsafe cache is caught every run
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(switch)
    assert errors == [] and wrong == [], (errors[:3], wrong[:3])


class _InterleavingNA(NeighborhoodAttention2d):
    """Runs another size's mask lookup right after each cache write: the interleaving a second thread
    produces when it is scheduled between this forward's write and its read of the cache."""

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        if name == "_mask_cache" and self.__dict__.get("other_size"):
            h, w = self.__dict__.pop("other_size")
            self._cached_mask(h, w, torch.float32, torch.device("cpu"))


def test_mask_cache_survives_a_write_between_lookup_and_use():
    torch.manual_seed(0)
    m = _InterleavingNA(8, 2, kernel_size=3).eval()
    x = torch.randn(1, 9, 13, 8)
    with torch.no_grad():
        expected = _module_reference(m, x)
        m.__dict__["other_size"] = (12, 8)
        out = m(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("H, W, d", [(16, 16, 4), (18, 23, 4), (9, 9, 1)])
def test_na2d_traces_for_torch_compile_without_index_construction(H, W, d):
    """torch.compile sees each map size's tiling as constants (one graph, no graph break, no arange):
    tracing the index construction cost inductor minutes per dilated layer (issue 23)."""
    q, kk, v = _qkv((1, H, W, 2, 4), dtype=torch.float32, seed=5)
    rpb = torch.randn(2, 5, 5)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(na2d)(q, kk, v, 3, d, rpb=rpb)
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    targets = {str(n.target) for g in explained.graphs for n in g.graph.nodes}
    assert not any("arange" in t for t in targets), targets
    compiled = torch.compile(na2d, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(q, kk, v, 3, d, rpb=rpb), na2d(q, kk, v, 3, d, rpb=rpb), rtol=0, atol=1e-6)
