"""MixFormer: official parameter counts, PaddleClas checkpoint conversion, float64 parity with the
Paddle bundle, safe ``.pdparams`` loading, and the model contract on the tiny test model."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import timm
import torch

import zoo
from zoo.hub import UnsafeCheckpointError, load_checkpoint
from zoo.models.mixformer import MixingAttention, checkpoint_filter_fn
from zoo.registry import model_entry

from _shared import bundle_state_dict, load_bundle, manifest, tolerance

VARIANTS = [f"mixformer_b{i}" for i in range(7)]
WITH_WEIGHTS = ["mixformer_b1", "mixformer_b2", "mixformer_b3", "mixformer_b4", "mixformer_b6"]


def _meta_model(name: str, **kwargs):
    with torch.device("meta"):
        return timm.create_model(name, **kwargs)


def _manifest_state_dict(name: str):
    """Zeros in the official (Paddle) layout of a manifest, on the meta device."""
    shapes = manifest(f"mixformer/{name}")["state_dict"]
    return {k: torch.empty(s, dtype=torch.int64 if k.endswith("relative_position_index") else torch.float32,
                           device="meta") for k, s in shapes.items()}


def bundle_model_args(meta):
    """(registered name, constructor overrides) of the zoo model with a parity bundle's official config."""
    kw = meta["official_kwargs"]
    return "test_mixformer", dict(embed_dim=kw["embed_dim"], depths=kw["depths"], num_heads=kw["num_heads"],
                                  num_classes=kw["class_num"])


def _bundle_model(**kwargs):
    return zoo.create_model("test_mixformer", num_classes=10, **kwargs)


def _write_pdparams(path, state_dict, protocol=4):
    """A .pdparams as paddle.save writes it: a pickled dict of numpy arrays (protocol 4, paddle's
    default), plus the structured-name -> parameter-name map Paddle stores with a Layer's state dict."""
    params = {k: np.asarray(v) for k, v in state_dict.items()}
    params["StructuredToParameterName@@"] = {k: f"param_{i}" for i, k in enumerate(state_dict)}
    with open(path, "wb") as f:
        pickle.dump(params, f, protocol=protocol)


# ---------------------------------------------------------------------------------------------
# registry facts, on the meta device


@pytest.mark.parametrize("name", VARIANTS)
def test_param_count_equals_paddle_manifest(name):
    n_official = manifest(f"mixformer/{name}")["_meta"]["n_params"]
    assert model_entry(name).official_params == n_official
    model = _meta_model(name)
    assert sum(p.numel() for p in model.parameters()) == n_official


@pytest.mark.parametrize("name", VARIANTS)
def test_filter_converts_every_paddle_key(name):
    model = _meta_model(name)
    target = model.state_dict()
    converted = checkpoint_filter_fn(_manifest_state_dict(name), model)
    assert set(converted) == set(target), (
        f"missing {sorted(set(target) - set(converted))[:5]}, unexpected {sorted(set(converted) - set(target))[:5]}")
    wrong = [k for k, v in converted.items() if v.shape != target[k].shape]
    assert not wrong, f"shape mismatch for {wrong[:5]}"


def test_filter_is_a_noop_on_zoo_keys():
    model = _bundle_model()
    sd = model.state_dict()
    out = checkpoint_filter_fn(sd, model)
    assert out.keys() == sd.keys()
    assert all(torch.equal(out[k], sd[k]) for k in sd)


def test_filter_adds_nothing_to_a_foreign_state_dict():
    foreign = {"encoder.block.weight": torch.zeros(3, 3), "decoder.bias": torch.zeros(2)}
    assert checkpoint_filter_fn(foreign, _meta_model("mixformer_b0")).keys() == foreign.keys()


def test_pretrained_cfgs_point_at_the_official_pdparams():
    for name in WITH_WEIGHTS:
        cfg = timm.models.get_pretrained_cfg(f"{name}.in1k")
        k = name[-1]
        assert cfg.url == ("https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/"
                           f"MixFormer_B{k}_pretrained.pdparams")
        assert cfg.custom_load is True  # numpy pickles: never through timm's torch.load
        assert cfg.license == "apache-2.0" and cfg.paper_ids and cfg.origin_url
        assert model_entry(name).reported["in1k"]["metric"] == "top1"
    assert zoo.list_pretrained("mixformer*") == sorted(f"{n}.in1k" for n in WITH_WEIGHTS)


# ---------------------------------------------------------------------------------------------
# parity with the official Paddle model (float64)


@pytest.fixture(scope="module")
def bundle():
    return load_bundle("mixformer", "mixformer_micro")


@pytest.fixture(scope="module")
def bundle_model(bundle):
    model = _bundle_model().double().eval()
    model.load_state_dict(checkpoint_filter_fn(bundle_state_dict(bundle), model), strict=True)
    return model


def test_bundle_output_matches_paddle(bundle, bundle_model):
    with torch.no_grad():
        out = bundle_model(torch.from_numpy(bundle["input"]))
    err = (out - torch.from_numpy(bundle["output"])).abs().max().item()
    assert err <= tolerance(bundle), err


def test_bundle_stage_features_match_paddle(bundle, bundle_model):
    # Paddle's layers[i] (i < 3) return tokens AFTER their ConvMerging, i.e. zoo's stages[i+1].downsample;
    # layers[3] returns the last stage's tokens, zoo's last intermediate
    captured = {}
    hooks = [bundle_model.stages[i + 1].downsample.register_forward_hook(
        lambda m, inp, out, i=i: captured.__setitem__(f"layer{i}", out)) for i in range(3)]
    try:
        with torch.no_grad():
            _, inters = bundle_model.forward_intermediates(torch.from_numpy(bundle["input"]))
    finally:
        for h in hooks:
            h.remove()
    captured["layer3"] = inters[3].permute(0, 2, 3, 1)
    for name, ref in bundle["features"].items():
        ours = captured[name].flatten(1, 2)  # (B, H, W, C) -> tokens, row-major
        assert ours.shape == ref.shape, name
        err = (ours - torch.from_numpy(ref)).abs().max().item()
        assert err <= tolerance(bundle), f"{name}: {err}"


def test_bias_tables_are_resized_for_another_window(bundle):
    model = _bundle_model(window_size=5)
    sd = checkpoint_filter_fn(bundle_state_dict(bundle), model)
    model.load_state_dict(sd, strict=True)
    assert sd["stages.3.blocks.0.attn.window_attn.rel_pos.relative_position_bias_table"].shape == (81, 8)


def test_images_in_a_batch_do_not_mix(bundle, bundle_model):
    # the channel interaction gates V per image: image 1 alone gives its row of the batch output
    x = torch.from_numpy(bundle["input"])
    with torch.no_grad():
        alone = bundle_model(x[1:])
    assert (alone[0] - torch.from_numpy(bundle["output"][1])).abs().max().item() <= tolerance(bundle)


# ---------------------------------------------------------------------------------------------
# .pdparams files: genuine ones load, crafted ones are refused without running anything


class _Payload:
    """Unpickling this writes a marker file (what an attacker's os.system would do)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)


def _crafted_pdparams(path, marker):
    with open(path, "wb") as f:
        pickle.dump({"patch_embed.proj.bias": np.zeros(16, dtype=np.float32), "payload": _Payload(marker)}, f)


def test_crafted_pdparams_is_refused_and_runs_nothing(tmp_path):
    path, marker = tmp_path / "MixFormer_B1_pretrained.pdparams", tmp_path / "pwned"
    _crafted_pdparams(path, marker)
    with pytest.raises(UnsafeCheckpointError, match="MixFormer_B1_pretrained.pdparams") as e:
        load_checkpoint(path)
    assert "builtins.exec" in str(e.value)
    with pytest.raises(UnsafeCheckpointError, match="MixFormer_B1_pretrained.pdparams"):
        zoo.create_model("test_mixformer", checkpoint_path=path)
    with pytest.raises(UnsafeCheckpointError, match="MixFormer_B1_pretrained.pdparams"):
        _bundle_model().load_pretrained(path)
    assert not marker.exists()
    # the payload is real: a plain pickle.load would have run it
    with open(path, "rb") as f:
        pickle.load(f)
    assert marker.exists()


def test_genuine_pdparams_loads_through_create_model(bundle, tmp_path):
    path = tmp_path / "mixformer_micro.pdparams"
    _write_pdparams(path, bundle["state_dict"])
    # the overlay's num_classes keeps timm from discarding the 10-class head of the checkpoint as
    # "another dataset's classifier" (the registered cfg says 1000)
    model = zoo.create_model("test_mixformer", num_classes=10, checkpoint_path=path,
                             pretrained_cfg_overlay=dict(num_classes=10)).eval()
    ref = _bundle_model().eval()
    ref.load_state_dict(checkpoint_filter_fn(load_checkpoint(path), ref))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values()))
    with torch.no_grad():
        out = model(torch.from_numpy(bundle["input"]).float())
    assert (out.double() - torch.from_numpy(bundle["output"])).abs().max().item() < 1e-4  # float32 weights


def test_official_url_path_goes_through_load_pretrained(bundle, tmp_path, monkeypatch):
    # what pretrained=True does for mixformer_b*.in1k (custom_load), with the download faked offline
    path = tmp_path / "MixFormer_Bx_pretrained.pdparams"
    _write_pdparams(path, bundle["state_dict"])
    import timm.models._builder as builder

    urls = []
    monkeypatch.setattr(builder, "download_cached_file", lambda url, **kw: urls.append(url) or str(path))
    url = "https://paddle-imagenet-models-name.bj.bcebos.com/dygraph/MixFormer_Bx_pretrained.pdparams"
    model = timm.create_model("test_mixformer", pretrained=True, num_classes=10,
                              pretrained_cfg_overlay=dict(url=url, custom_load=True, num_classes=10)).double().eval()
    assert urls == [url]
    with torch.no_grad():
        out = model(torch.from_numpy(bundle["input"]))
    # float32 on load: the model was float32 when load_pretrained filled it
    assert (out - torch.from_numpy(bundle["output"])).abs().max().item() < 1e-4


# ---------------------------------------------------------------------------------------------
# the block and the model contract on the test model


def _naive_mixing_attention(m: MixingAttention, x: torch.Tensor) -> torch.Tensor:
    """The official order, written out: gate V before attention, explicit softmax, loop over windows."""
    B, Hp, Wp, C = x.shape
    wh, ww = m.window_size
    wa = m.window_attn
    xa = m.proj_attn_norm(m.proj_attn(x))
    xc = m.dwconv3x3(m.proj_cnn_norm(m.proj_cnn(x)).permute(0, 3, 1, 2))
    gate = torch.sigmoid(m.channel_interaction(xc.mean((2, 3), keepdim=True))).flatten(1)  # (B, C/2)
    xc = m.projection(xc)
    table = wa.rel_pos.relative_position_bias_table
    index = wa.rel_pos.relative_position_index.view(wh * ww, wh * ww)
    ya = torch.zeros_like(xa)
    nh, hd = wa.num_heads, wa.head_dim
    for b in range(B):
        for i in range(0, Hp, wh):
            for j in range(0, Wp, ww):
                t = xa[b, i:i + wh, j:j + ww].reshape(-1, C // 2)
                q, k, v = wa.qkv(t).view(-1, 3, nh, hd).unbind(1)
                v = v * gate[b].view(nh, hd)
                heads = [torch.softmax(q[:, h] * wa.scale @ k[:, h].T + table[index, h], -1) @ v[:, h]
                         for h in range(nh)]
                ya[b, i:i + wh, j:j + ww] = torch.cat(heads, -1).view(wh, ww, -1)
    s = torch.sigmoid(m.spatial_interaction(ya.permute(0, 3, 1, 2)))
    zc = m.conv_norm(s * xc).permute(0, 2, 3, 1)
    return m.proj(torch.cat([m.attn_norm(ya), zc], -1))


def test_mixing_attention_matches_naive_official_order():
    m = MixingAttention(32, num_heads=4, window_size=(3, 4)).double().eval()
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
    torch.nn.init.normal_(m.window_attn.rel_pos.relative_position_bias_table, std=0.5)
    x = torch.randn(2, 6, 8, 32, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), _naive_mixing_attention(m, x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("size", [(64, 64), (70, 95), (33, 130)])
def test_any_input_size_and_nchw_features(size):
    model = zoo.create_model("test_mixformer", features_only=True).eval()
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        feats = model(x)
    assert [f.shape[1] for f in feats] == [16, 32, 64, 128]
    for f, red in zip(feats, (4, 8, 16, 32)):
        assert f.is_contiguous()
        for got, side in zip(f.shape[-2:], size):
            assert abs(got - side / red) <= 1


def test_pruned_model_hands_out_stage_features():
    model = zoo.create_model("test_mixformer").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_intermediates(x, indices=[2], intermediates_only=True)[0]
        model.prune_intermediate_layers([2])
        assert model.num_features == model.head_hidden_size == 64
        # the head (1280 projection, GELU, pooling, classifier) is gone: the plain stage-3 map comes out
        torch.testing.assert_close(model(x).permute(0, 3, 1, 2), feats)


def test_classifier_head_and_pre_logits():
    model = zoo.create_model("test_mixformer", num_classes=3).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert model(x).shape == (2, 3)
        feats = model.forward_features(x)
        assert feats.shape == (2, 2, 2, model.num_features)  # channels-last, normalised
        assert model.forward_head(feats, pre_logits=True).shape == (2, model.head_hidden_size) == (2, 1280)
        model.reset_classifier(0)
        # as timm's MobileNetV3 keeps conv_head (and timm's own test_model_default_cfgs expects
        # head_hidden_size here): the pooled 1280-channel projection stays
        assert model(x).shape == (2, model.head_hidden_size)
        model.reset_classifier(0, "")
        assert model(x).shape == (2, 2, 2, 1280)  # unpooled, channels-last, cfg pool_size (2, 2)
        unpooled = zoo.create_model("test_mixformer", num_classes=0, global_pool="").eval()
        assert unpooled(x).ndim == 4


def test_bad_input_names_the_model():
    model = zoo.create_model("test_mixformer").eval()
    with pytest.raises(ValueError, match="test_mixformer"):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="test_mixformer"):
        model(torch.randn(1, 4, 64, 64))
    with pytest.raises(TypeError, match="test_mixformer"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    with pytest.raises(ValueError, match="test_mixformer in training mode needs a batch of 2"):
        model.train()(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="divisible"):
        zoo.create_model("test_mixformer", num_heads=(3, 2, 4, 8))
