"""Shunted Transformer: official parameter counts, checkpoint conversion, float64 parity with the official
bundles, shunted attention against a naive reference (with and without padding), safe loading of the
DeiT-style official checkpoints, and the contract of the test model."""
import argparse
import os

import pytest
import timm
import torch
import torch.nn.functional as F

import zoo
from zoo.hub import UnsafeCheckpointError, load_checkpoint
from zoo.registry import model_entry
from zoo.models.shunted import (
    ShuntedAttention, checkpoint_filter_fn,
)

from _shared import bundle_state_dict, load_bundle, manifest, tolerance
from test_layers_ffn_shunted import naive_depthwise3x3

VARIANTS = {"shunted_tiny": 11_553_576, "shunted_small": 22_401_256, "shunted_base": 39_614_376}
CASES = ["shunted_micro_t", "shunted_micro_b"]


def _meta_model(name, **kwargs):
    with torch.device("meta"):
        return zoo.create_model(name, **kwargs)


# ---------------------------------------------------------------------------------------------
# variants and checkpoint conversion


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_has_official_param_count_on_meta(name):
    model = _meta_model(name)
    assert sum(p.numel() for p in model.parameters()) == VARIANTS[name]
    assert zoo.registry.model_entry(name).official_params == VARIANTS[name]


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_filter_maps_every_official_key_of_the_manifest(name):
    shapes = manifest(model_entry(name).manifest)["state_dict"]
    assert manifest(model_entry(name).manifest)["_meta"]["n_params"] == VARIANTS[name]
    official = {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    model = _meta_model(name)
    converted = checkpoint_filter_fn(official, model)
    expected = model.state_dict()
    assert set(converted) - set(expected) == set(), "unexpected keys"
    assert set(expected) - set(converted) == set(), "missing keys"
    for k, v in converted.items():
        assert tuple(v.shape) == tuple(expected[k].shape), k


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_filter_is_a_noop_on_zoo_keys(name):
    model = _meta_model(name)
    sd = model.state_dict()
    converted = checkpoint_filter_fn(sd, model)
    assert list(converted) == list(sd)


def test_filter_accepts_deit_wrapper_and_module_prefix():
    model = _meta_model("shunted_tiny")
    shapes = manifest("shunted/shunted_t")["state_dict"]
    wrapped = {"model": {"module." + k: torch.empty(s, device="meta") for k, s in shapes.items()},
               "epoch": 299, "optimizer": {}}
    assert set(checkpoint_filter_fn(wrapped, model)) == set(model.state_dict())


# ---------------------------------------------------------------------------------------------
# parity with the official implementation (float64 bundles)


def bundle_model_args(meta):
    """(registered name, constructor overrides) of the zoo model with a parity bundle's official config."""
    kw = meta["official_kwargs"]
    assert kw["norm_layer"]["kwargs"]["eps"] == 1e-6 and kw["qkv_bias"] and kw["patch_size"] == 4
    return "test_shunted", dict(
        depths=kw["depths"], embed_dims=kw["embed_dims"], num_heads=kw["num_heads"], mlp_ratios=kw["mlp_ratios"],
        sr_ratios=kw["sr_ratios"], num_conv=kw["num_conv"], num_classes=kw["num_classes"], qkv_bias=True)


def _bundle_model(meta):
    name, kwargs = bundle_model_args(meta)
    return zoo.create_model(name, **kwargs)


@pytest.mark.parametrize("case", CASES)
def test_parity_with_official_bundle(case):
    bundle = load_bundle("shunted", case)
    model = _bundle_model(bundle["meta"]).double().eval()
    model.load_state_dict(checkpoint_filter_fn(bundle_state_dict(bundle), model), strict=True)
    x = torch.from_numpy(bundle["input"])
    tol = tolerance(bundle)
    with torch.no_grad():
        out = model(x)
        final, feats = model.forward_intermediates(x)
    assert (out - torch.from_numpy(bundle["output"])).abs().max().item() <= tol
    assert len(feats) == 4
    for i, f in enumerate(feats):
        ref = torch.from_numpy(bundle["features"][f"stage{i + 1}"])  # (B, H*W, C) after norm{i+1}
        assert (f.flatten(2).transpose(1, 2) - ref).abs().max().item() <= tol, f"stage{i + 1}"
    assert torch.equal(final.flatten(1, 2), feats[-1].flatten(2).transpose(1, 2))


# ---------------------------------------------------------------------------------------------
# shunted attention against a naive reference


def _naive_aggregate(x_map, conv):
    """conv with kernel = stride = r on a map zero-padded to multiples of r, as explicit cell sums."""
    r = conv.stride[0]
    B, C, H, W = x_map.shape
    Hp, Wp = -(-H // r) * r, -(-W // r) * r
    xp = torch.zeros(B, C, Hp, Wp, dtype=x_map.dtype)
    xp[:, :, :H, :W] = x_map
    cells = xp.reshape(B, C, Hp // r, r, Wp // r, r).permute(0, 2, 4, 1, 3, 5).reshape(B, Hp // r, Wp // r, -1)
    out = cells @ conv.weight.reshape(conv.out_channels, -1).t() + conv.bias
    return out.permute(0, 3, 1, 2)  # (B, C, Hp / r, Wp / r)


def _naive_softmax_attention(q, k, v, scale):
    a = (q @ k.transpose(-2, -1)) * scale
    a = torch.exp(a - a.amax(-1, keepdim=True))
    return (a / a.sum(-1, keepdim=True)) @ v


def naive_shunted_attention(attn: ShuntedAttention, x: torch.Tensor) -> torch.Tensor:
    """The official token-layout computation (SSA.py's Attention), written out, with zero padding of the
    key/value map up to each group's rate when the map size is not a multiple of it."""
    B, H, W, C = x.shape
    h, hd = attn.num_heads, C // attn.num_heads
    tokens = x.reshape(B, H * W, C)
    q = attn.q(tokens).reshape(B, H * W, h, hd).permute(0, 2, 1, 3)
    gelu = torch.nn.GELU()
    if attn.sr_ratio > 1:
        x_map = tokens.transpose(1, 2).reshape(B, C, H, W)
        outs = []
        groups = [(attn.sr1, attn.norm1, attn.kv1, attn.local_conv1.proj, slice(0, h // 2)),
                  (attn.sr2, attn.norm2, attn.kv2, attn.local_conv2.proj, slice(h // 2, h))]
        for sr, norm, kv, local, heads in groups:
            red = _naive_aggregate(x_map, sr)
            hr, wr = red.shape[-2:]
            xr = gelu(norm(red.reshape(B, C, -1).transpose(1, 2)))
            kvr = kv(xr).reshape(B, -1, 2, h // 2, hd).permute(2, 0, 3, 1, 4)
            k, v = kvr[0], kvr[1]
            v_map = v.transpose(1, 2).reshape(B, -1, C // 2).transpose(1, 2).reshape(B, C // 2, hr, wr)
            local_v = naive_depthwise3x3(v_map, local.weight, local.bias)
            v = v + local_v.reshape(B, h // 2, hd, -1).transpose(-1, -2)
            outs.append(_naive_softmax_attention(q[:, heads], k, v, hd ** -0.5).transpose(1, 2).reshape(B, H * W, -1))
        out = torch.cat(outs, dim=-1)
    else:
        kv = attn.kv(tokens).reshape(B, H * W, 2, h, hd).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        out = _naive_softmax_attention(q, k, v, hd ** -0.5).transpose(1, 2).reshape(B, H * W, C)
        v_map = v.transpose(1, 2).reshape(B, H * W, C).transpose(1, 2).reshape(B, C, H, W)
        local_v = naive_depthwise3x3(v_map, attn.local_conv.proj.weight, attn.local_conv.proj.bias)
        out = out + local_v.reshape(B, C, -1).transpose(1, 2)
    return attn.proj(out).reshape(B, H, W, C)


def _random_attention(sr_ratio, dim=16, heads=4):
    torch.manual_seed(sr_ratio)
    attn = ShuntedAttention(dim, heads, sr_ratio=sr_ratio).double().eval()
    with torch.no_grad():
        for n, p in attn.named_parameters():
            p.normal_(1.0 if "norm" in n and n.endswith("weight") else 0.0, 0.3)
    return attn


@pytest.mark.parametrize("sr_ratio", [8, 4, 2, 1])
@pytest.mark.parametrize("size", [(8, 16), (16, 8)])
def test_attention_matches_naive_reference_without_padding(sr_ratio, size):
    attn = _random_attention(sr_ratio)
    x = torch.randn(2, *size, 16, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), naive_shunted_attention(attn, x), rtol=0, atol=1e-12)


@pytest.mark.parametrize("sr_ratio", [8, 4, 2])
@pytest.mark.parametrize("size", [(5, 7), (9, 3), (1, 1)])
def test_attention_pads_keys_and_values_only(sr_ratio, size):
    attn = _random_attention(sr_ratio)
    x = torch.randn(2, *size, 16, dtype=torch.float64)
    with torch.no_grad():
        y = attn(x)
        assert y.shape == x.shape
        torch.testing.assert_close(y, naive_shunted_attention(attn, x), rtol=0, atol=1e-12)


def test_padding_leaves_divisible_inputs_unchanged(monkeypatch):
    # a map whose sides are multiples of every rate goes through no F.pad at all, i.e. exactly the
    # official computation (checked against the naive reference above); a ragged one is padded
    attn = _random_attention(8)
    calls = []
    orig = F.pad

    def spy(*args, **kwargs):
        calls.append(args[1])
        return orig(*args, **kwargs)

    monkeypatch.setattr(F, "pad", spy)
    with torch.no_grad():
        attn(torch.randn(1, 16, 24, 16, dtype=torch.float64))
        assert calls == []
        attn(torch.randn(1, 15, 24, 16, dtype=torch.float64))
    assert calls == [(0, 0, 0, 0, 0, 1), (0, 0, 0, 0, 0, 1)]
    # a whole model at an input whose stage maps (16, 8, 4, 2) are multiples of the rates (8, 4, 2, 1)
    calls.clear()
    model = zoo.create_model("test_shunted").eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
    assert calls == []


def test_attention_rejects_odd_rates_and_head_counts():
    with pytest.raises(ValueError, match="even"):
        ShuntedAttention(16, 4, sr_ratio=3)
    with pytest.raises(ValueError, match="even"):
        ShuntedAttention(18, 3, sr_ratio=4)
    ShuntedAttention(18, 3, sr_ratio=1)  # plain MHSA takes any head count


# ---------------------------------------------------------------------------------------------
# official checkpoint files: DeiT-style, with an argparse.Namespace


def _official_keys(model):
    """The zoo model's state dict under official key names (the inverse of checkpoint_filter_fn)."""
    import re
    out = {}
    for k, v in model.state_dict().items():
        o = re.sub(r"^stem\.", "patch_embed1.", k)
        o = re.sub(r"^stages\.(\d+)\.downsample\.", lambda m: f"patch_embed{int(m[1]) + 1}.", o)
        o = re.sub(r"^stages\.(\d+)\.norm\.", lambda m: f"norm{int(m[1]) + 1}.", o)
        o = re.sub(r"^stages\.(\d+)\.blocks\.", lambda m: f"block{int(m[1]) + 1}.", o)
        o = o.replace("mlp.dwconv.", "mlp.dwconv.dwconv.")
        o = re.sub(r"(local_conv\d?)\.proj\.", r"\1.", o)
        o = o.replace("head.fc.", "head.")
        out[o] = v
    return out


@pytest.fixture()
def deit_file(tmp_path):
    torch.manual_seed(0)
    model = zoo.create_model("test_shunted").eval()
    official = _official_keys(model)
    assert set(checkpoint_filter_fn(official, model)) == set(model.state_dict())
    path = tmp_path / "shunted_test_official.pth"
    torch.save({"model": official, "epoch": 299,
                "args": argparse.Namespace(model="test_shunted", lr=1e-3, drop_path=0.1)}, path)
    return model, path


def test_deit_style_checkpoint_loads_through_checkpoint_path(deit_file):
    model, path = deit_file
    sd = load_checkpoint(path)
    assert "args" not in sd and "epoch" not in sd
    fresh = zoo.create_model("test_shunted", checkpoint_path=path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fresh(x), model(x), rtol=0, atol=0)


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_checkpoint_with_code_in_args_is_still_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"model": {}, "args": _Evil()}, path)
    with pytest.raises(UnsafeCheckpointError, match="evil.pth"):
        load_checkpoint(path)


# ---------------------------------------------------------------------------------------------
# the test model's contract (the general harness runs more after the merge)


@pytest.mark.parametrize("size", [(64, 64), (70, 95), (33, 20)])
def test_any_input_size_features_nchw_at_strides_4_to_32(size):
    model = timm.create_model("test_shunted", features_only=True).eval()
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        feats = model(x)
    assert [f.shape[1] for f in feats] == model.feature_info.channels()
    for f, r in zip(feats, model.feature_info.reduction()):
        assert f.is_contiguous()
        assert abs(f.shape[2] - size[0] / r) <= 1 and abs(f.shape[3] - size[1] / r) <= 1


def test_forward_backward_reaches_every_parameter():
    model = zoo.create_model("test_shunted")
    x = torch.randn(2, 3, 70, 95)
    model(x).sum().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    final, inter = model.forward_intermediates(x)
    torch.testing.assert_close(final, model.forward_features(x))
    assert len(inter) == 4


def test_grad_checkpointing_and_empty_stage():
    model = zoo.create_model("test_shunted", depths=(0, 1, 1, 1), drop_path_rate=0.1)
    model.set_grad_checkpointing()
    model(torch.randn(1, 3, 40, 48)).sum().backward()


def test_bad_input_names_the_model():
    model = zoo.create_model("test_shunted")
    with pytest.raises(ValueError, match="test_shunted"):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="test_shunted"):
        model(torch.randn(1, 3, 2, 64))
    with pytest.raises(TypeError, match="test_shunted"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.long))
