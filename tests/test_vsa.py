"""VSA family: varied-size window attention, ViTAEv2-VSA (official parity) and Swin-VSA (zoo-defined)."""
import pytest
import torch

import zoo
from zoo.layers.window_attention import WindowAttention
from zoo.models.vsa import (
    NormalCell, VaryingWindowAttention, _official_stage_dpr, checkpoint_filter_fn)
from zoo.registry import model_entry

from _shared import bundle_state_dict, load_bundle, manifest, tolerance

VARIANTS = {
    "vitaev2_vsa_small": "vsa/ViTAEv2_VSA_S",
    "vitaev2_vsa_widepcm_small": "vsa/ViTAEv2_VSA_widePCM_S",
    "vitaev2_vsa_widepcm_48m": "vsa/ViTAEv2_VSA_widePCM_48M",
    "vitaev2_vsa_widepcm_base": "vsa/ViTAEv2_VSA_widePCM_B",
    "vitaev2_vsa_widepcm_base_ws12": "vsa/ViTAEv2_VSA_widePCM_B_ws12",
}


def _meta_model(name, **kwargs):
    with torch.device("meta"):
        return zoo.create_model(name, **kwargs)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_param_count_equals_official_manifest(name):
    m = _meta_model(name)
    n = sum(p.numel() for p in m.parameters())
    assert n == model_entry(name).official_params
    assert n == manifest(VARIANTS[name])["_meta"]["n_params"]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_checkpoint_filter_maps_every_official_key(name):
    shapes = manifest(VARIANTS[name])["state_dict"]
    with torch.device("meta"):
        official = {k: torch.empty(s, dtype=torch.long if k.endswith(("index", "num_batches_tracked")) else None)
                    for k, s in shapes.items()}
    m = _meta_model(name)
    target = m.state_dict()
    # a timm CheckpointSaver file: EMA weights preferred, DDP prefixes stripped
    ckpt = {"state_dict": {"module." + k: v for k, v in official.items()},
            "state_dict_ema": {"module." + k: v for k, v in official.items()}, "epoch": 299}
    converted = checkpoint_filter_fn(ckpt, m)
    assert sorted(converted) == sorted(target), (
        set(converted) ^ set(target))
    for k, v in converted.items():
        assert tuple(v.shape) == tuple(target[k].shape), k
    assert not any(k.endswith("relative_position_index") for k in target)  # regenerated, never loaded
    # a no-op on zoo keys
    again = checkpoint_filter_fn(target, m)
    assert sorted(again) == sorted(target)
    assert all(again[k] is target[k] for k in target)


def test_checkpoint_filter_prefers_ema_weights():
    m = zoo.create_model("test_vsa")
    sd = m.state_dict()
    ckpt = {"state_dict": {k: torch.zeros_like(v) for k, v in sd.items()}, "state_dict_ema": sd}
    out = checkpoint_filter_fn(ckpt, m)
    assert all(out[k] is sd[k] for k in sd)


def bundle_model_args(meta):
    """(registered name, constructor overrides) of the zoo model with a parity bundle's official config:
    a released variant (the official kernel sizes and dilations) with every size overridden."""
    kw = meta["official_kwargs"]
    return "vitaev2_vsa_small", dict(
        num_classes=kw["num_classes"], embed_dims=kw["embed_dims"], token_dims=kw["token_dims"],
        depths=kw["NC_depth"], num_heads=kw["NC_heads"], rc_heads=kw["RC_heads"], nc_groups=kw["NC_group"],
        rc_groups=kw["RC_group"], downsample_ratios=kw["downsample_ratios"], wide_pcm=kw["wide_pcm"],
        window_size=kw["window_size"], mlp_ratio=kw["mlp_ratio"])


@pytest.mark.parametrize("case", ["vsa_micro", "vsa_micro_widepcm"])
def test_parity_with_official_bundle(case):
    b = load_bundle("vsa", case)
    name, kwargs = bundle_model_args(b["meta"])
    model = zoo.create_model(name, **kwargs).double().eval()
    model.load_state_dict(checkpoint_filter_fn(bundle_state_dict(b), model), strict=True)
    x = torch.from_numpy(b["input"])
    tol = tolerance(b)
    with torch.no_grad():
        out = model(x)
        final, feats = model.forward_intermediates(x)
    assert (out - torch.from_numpy(b["output"])).abs().max().item() <= tol
    for i, f in enumerate(feats):
        ref = torch.from_numpy(b["features"][f"stage{i}"])  # (B, H*W, C) tokens
        assert (f.flatten(2).transpose(1, 2) - ref).abs().max().item() <= tol, f"stage{i}"


def _vsa_and_window_attention(dim=16, heads=2, ws=4, qkv_bias=True):
    torch.manual_seed(0)
    wa = WindowAttention(dim, heads, window_size=ws, qkv_bias=qkv_bias)
    with torch.no_grad():
        wa.rel_pos.relative_position_bias_table.normal_(std=0.5)
    vsa = VaryingWindowAttention(dim, heads, window_size=ws, qkv_bias=qkv_bias)
    missing, unexpected = vsa.load_state_dict(wa.state_dict(), strict=False)
    assert not unexpected and all(k.startswith(("sampling_offsets", "sampling_scales")) for k in missing)
    vsa.reset_sampling()
    return vsa.eval(), wa.eval()


@pytest.mark.parametrize("size", [(8, 12), (4, 4)])
def test_zero_scales_and_offsets_give_plain_window_attention(size):
    vsa, wa = _vsa_and_window_attention()
    x = torch.randn(2, *size, 16)
    with torch.no_grad():
        torch.testing.assert_close(vsa(x), wa(x), atol=1e-5, rtol=1e-5)


def test_zero_scales_and_offsets_give_window_attention_on_padded_maps():
    # VSA pads q/k/v with zeros after the projection (the official order); without a qkv bias that is the
    # same as padding the input, which is what WindowAttention does
    vsa, wa = _vsa_and_window_attention(qkv_bias=False)
    x = torch.randn(1, 7, 10, 16)
    with torch.no_grad():
        torch.testing.assert_close(vsa(x), wa(x), atol=1e-5, rtol=1e-5)


def test_gradients_reach_window_regression():
    vsa = VaryingWindowAttention(16, 2, window_size=4)  # zero-initialised regression, as trained from scratch
    x = torch.randn(2, 9, 11, 16, requires_grad=True)
    vsa(x).square().sum().backward()
    for lin in (vsa.sampling_offsets, vsa.sampling_scales):
        assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0
        assert lin.bias.grad is not None and lin.bias.grad.abs().sum() > 0


def test_sampling_grid_is_pixel_grid_at_zero_and_cached_per_size():
    vsa = VaryingWindowAttention(8, 2, window_size=3).double()
    vsa.reset_sampling()
    x = torch.randn(1, 6, 9, 8, dtype=torch.float64)
    grid = vsa.sampling_grid(x, (5, 8))
    ys = torch.linspace(-1, 1, 6, dtype=torch.float64)
    xs = torch.linspace(-1, 1, 9, dtype=torch.float64)
    expect = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), -1)
    torch.testing.assert_close(grid[0], expect, atol=1e-12, rtol=0)
    torch.testing.assert_close(grid[1], expect, atol=1e-12, rtol=0)
    assert (6, 9, "cpu", torch.float64, False) in vsa._grid_cache
    vsa.float().sampling_grid(torch.randn(1, 3, 3, 8), (2, 2))
    assert (3, 3, "cpu", torch.float32, False) in vsa._grid_cache


def test_attention_compiles_as_one_graph():
    """torch.compile sees VSA attention whole: a graph break in it (the grid cache's key once called
    torch.is_inference_mode_enabled()) made dynamo recompile the resumed frames with dynamic sizes, on which
    inductor failed (torch 2.14: "TensorReferenceAnalysis has no attribute python_mod")."""
    vsa = VaryingWindowAttention(16, 2, window_size=4).eval()
    x = torch.randn(1, 9, 11, 16)
    torch._dynamo.reset()
    try:
        with torch.no_grad():
            explanation = torch._dynamo.explain(vsa)(x)
    finally:
        torch._dynamo.reset()
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert not vsa._grid_cache  # compiled code recomputes the (static-size) grid instead of caching it


@pytest.mark.parametrize("size", [(1, 1), (2, 5), (7, 7), (13, 6)])
def test_any_map_size_including_smaller_than_window(size):
    cell = NormalCell(8, 2, mlp_ratio=2., groups=2, window_size=4).eval()
    with torch.no_grad():
        for lin in (cell.attn.sampling_offsets, cell.attn.sampling_scales):
            lin.weight.normal_(std=0.5)
    y = cell(torch.randn(2, *size, 8))
    assert y.shape == (2, *size, 8) and torch.isfinite(y).all()


@pytest.mark.parametrize("hw", [(61, 62), (63, 65), (32, 48)])
def test_input_sizes_not_multiple_of_strides(hw):
    m = zoo.create_model("test_vsa").eval()
    with torch.no_grad():
        feats = m.forward_intermediates(torch.randn(1, 3, *hw), intermediates_only=True)
    for f, r in zip(feats, (4, 8, 16, 32)):
        assert abs(f.shape[-2] - hw[0] / r) <= 1 and abs(f.shape[-1] - hw[1] / r) <= 1


def test_official_stochastic_depth_slicing_quirk():
    # ViTAEv2-S depths (2, 2, 8, 2): stages slice linspace(0, r, 14) from the *previous stage's depth*
    dpr = torch.linspace(0, 0.1, 14).tolist()
    got = _official_stage_dpr(0.1, (2, 2, 8, 2))
    assert got == [dpr[0:2], dpr[2:4], dpr[2:10], dpr[8:10]]
    m = _meta_model("vitaev2_vsa_small", drop_path_rate=0.1)
    assert m.stages[3].blocks[1].drop_path.drop_prob == pytest.approx(dpr[9])
    assert m.stages[2].blocks[0].drop_path.drop_prob == pytest.approx(dpr[2])


def test_vsa_test_model_contract_basics():
    for name in ("test_vsa", "test_vsa_swin"):
        m = zoo.create_model(name)
        x = torch.randn(2, 3, 70, 95)
        m(x).sum().backward()
        assert all(p.grad is not None for p in m.parameters()), name
        feats = zoo.create_model(name, features_only=True)(x)
        assert [f.shape[1] for f in feats] == [i["num_chs"] for i in m.feature_info]
        with pytest.raises(ValueError, match=name):
            m(torch.randn(3, 70, 95))


def test_official_checkpoint_file_loads_through_create_model(tmp_path):
    # a timm CheckpointSaver file of the official model (DDP prefixes, EMA + raw weights) -> pretrained=True
    b = load_bundle("vsa", "vsa_micro")
    kw = b["meta"]["official_kwargs"]
    official = bundle_state_dict(b)
    path = tmp_path / "official.pth.tar"
    torch.save({"epoch": 300, "state_dict": {"module." + k: torch.zeros_like(v) for k, v in official.items()},
                "state_dict_ema": {"module." + k: v for k, v in official.items()}}, path)
    model = zoo.create_model(
        "test_vsa", pretrained=True, pretrained_cfg_overlay=dict(file=str(path), num_classes=10),
        num_classes=10, embed_dims=kw["embed_dims"], token_dims=kw["token_dims"], depths=kw["NC_depth"],
        num_heads=kw["NC_heads"], rc_heads=kw["RC_heads"], nc_groups=kw["NC_group"], rc_groups=kw["RC_group"],
        wide_pcm=kw["wide_pcm"], window_size=kw["window_size"], mlp_ratio=kw["mlp_ratio"]).eval()
    with torch.no_grad():
        out = model(torch.from_numpy(b["input"]).float())
    torch.testing.assert_close(out.double(), torch.from_numpy(b["output"]), atol=1e-4, rtol=1e-4)
