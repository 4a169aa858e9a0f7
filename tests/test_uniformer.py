"""UniFormer: official parity (float64 bundles), checkpoint conversion of every manifest, family specifics."""
from __future__ import annotations

import pytest
import timm
import torch

import zoo
from zoo.models import uniformer as U
from tests._shared import REFERENCE, bundle_state_dict, have_shared, load_bundle, manifest, tolerance
from tests._shared import one_thread  # noqa: F401  (autouse: one thread)



MANIFESTS = sorted(p.stem for p in (REFERENCE / "manifests" / "uniformer").glob("*.json")) if have_shared() else []
# official manifest name -> zoo variant
ZOO_NAME = {"uniformer_small_k400_video": "uniformer_small_video", "uniformer_base_k400_video": "uniformer_base_video"}


def _zoo_kwargs_from_bundle(meta) -> dict:
    kw = meta["official_kwargs"]
    if "cfg" in kw:  # the slowfast video config
        c = kw["cfg"]["__namespace__"]
        u = c["UNIFORMER"]["__namespace__"]
        return dict(depths=u["DEPTH"], embed_dims=u["EMBED_DIM"], head_dim=u["HEAD_DIM"], mlp_ratio=u["MLP_RATIO"],
                    qkv_bias=u["QKV_BIAS"], num_classes=c["MODEL"]["__namespace__"]["NUM_CLASSES"], spatial_dims=3)
    glb = meta.get("official_module_globals") or {}
    return dict(depths=kw["depth"], embed_dims=kw["embed_dim"], head_dim=kw["head_dim"], mlp_ratio=kw["mlp_ratio"],
                qkv_bias=kw["qkv_bias"], num_classes=kw["num_classes"], conv_stem=kw.get("conv_stem", False),
                ls_init_value=glb.get("init_value") if glb.get("layer_scale") else None)


def bundle_model_args(meta):
    """(registered name, constructor overrides) of the zoo model with a parity bundle's official config.

    timm's create_model drops None arguments, so "no layer scale" comes from the base variant's default."""
    kwargs = {k: v for k, v in _zoo_kwargs_from_bundle(meta).items() if v is not None}
    if kwargs.get("spatial_dims") == 3:
        return "test_uniformer_video", kwargs
    return ("test_uniformer" if "ls_init_value" in kwargs else "uniformer_small"), dict(kwargs, aux_head=False)


@pytest.mark.parametrize("case", ["uniformer_micro_patch", "uniformer_micro_convstem_ls", "uniformer_micro_video"])
def test_parity_with_official_bundle_float64(case):
    b = load_bundle("uniformer", case)
    meta = b["meta"]
    model = U.UniFormer(**_zoo_kwargs_from_bundle(meta)).double().eval()
    sd = U.checkpoint_filter_fn(bundle_state_dict(b), model)
    model.load_state_dict(sd, strict=True)
    x = torch.from_numpy(b["input"])
    tol = tolerance(b)
    with torch.no_grad():
        out = model(x)
        _, feats = model.forward_intermediates(x)
    assert (out - torch.from_numpy(b["output"])).abs().max().item() <= tol
    for i, f in enumerate(feats):
        ref = torch.from_numpy(b["features"][f"stage{i + 1}"])
        assert f.shape == ref.shape
        assert (f - ref).abs().max().item() <= tol, f"stage{i + 1}"


def test_video_accepts_official_list_input():
    b = load_bundle("uniformer", "uniformer_micro_video")
    model = U.UniFormer(**_zoo_kwargs_from_bundle(b["meta"])).double().eval()
    model.load_state_dict(U.checkpoint_filter_fn(bundle_state_dict(b), model))
    x = torch.from_numpy(b["input"])
    with torch.no_grad():
        assert torch.equal(model([x]), model(x))


def _zeros_state_dict(shapes: dict) -> dict:
    out = {}
    for k, s in shapes.items():
        dtype = torch.int64 if k.endswith("num_batches_tracked") else torch.float32
        out[k] = torch.zeros(s, dtype=dtype)
    return out


def _meta_model(name: str):
    with torch.device("meta"):
        return zoo.create_model(name)


@pytest.mark.parametrize("official", MANIFESTS)
def test_every_official_key_converts(official):
    m = manifest(f"uniformer/{official}")
    name = ZOO_NAME.get(official, official)
    model = _meta_model(name)
    # official count = zoo count + the official parameters the official forward never uses (not built)
    dropped = {k: s for k, s in m["state_dict"].items() if k in U.DROPPED_OFFICIAL_KEYS}
    n_dropped = sum(torch.Size(s).numel() for s in dropped.values())
    assert sum(p.numel() for p in model.parameters()) + n_dropped == m["_meta"]["n_params"]
    entry = zoo.registry.model_entry(name)
    assert entry.official_params == m["_meta"]["n_params"]
    assert entry.dropped_params == {k: torch.Size(s).numel() for k, s in dropped.items()}
    official_sd = _zeros_state_dict(m["state_dict"])
    converted = U.checkpoint_filter_fn(official_sd, model)
    target = model.state_dict()
    assert set(converted) == set(target), (sorted(set(target) - set(converted))[:5],
                                           sorted(set(converted) - set(target))[:5])
    for k, v in converted.items():
        assert tuple(v.shape) == tuple(target[k].shape), k
    # a no-op on zoo keys
    again = U.checkpoint_filter_fn(converted, model)
    assert set(again) == set(converted) and all(again[k] is converted[k] for k in converted)


@pytest.mark.parametrize("wrapper", [None, "model", "model_state", "state_dict"])
def test_converter_accepts_checkpoint_wrappers(wrapper):
    b = load_bundle("uniformer", "uniformer_micro_patch")
    model = U.UniFormer(**_zoo_kwargs_from_bundle(b["meta"])).double().eval()
    sd = bundle_state_dict(b)
    ckpt = sd if wrapper is None else {wrapper: sd, "epoch": 3}
    model.load_state_dict(U.checkpoint_filter_fn(ckpt, model), strict=True)


def test_converter_refuses_checkpoint_declaring_another_head_dim():
    model = U.UniFormer(depths=(1, 1, 1, 1), embed_dims=(16, 32, 64, 64), head_dim=32)
    sd = model.state_dict()
    with pytest.raises(ValueError, match="head_dim"):
        U.checkpoint_filter_fn({"model": sd, "head_dim": 16}, model)
    with pytest.raises(ValueError, match="uniformer_small"):
        U.checkpoint_filter_fn({"model": sd, "args": {"model": "x", "variant": "uniformer_small"}}, model)
    U.checkpoint_filter_fn({"model": sd, "variant": "uniformer_small_plus"}, model)  # head_dim 32: accepted


def test_pretrained_tags_pin_head_dim():
    with pytest.raises(ValueError, match="head_dim 32"):
        zoo.create_model("uniformer_small_plus", pretrained=True, head_dim=64)
    for name in ("uniformer_small_plus", "uniformer_small_tl", "uniformer_base_tl", "uniformer_small"):
        with torch.device("meta"):
            m = zoo.create_model(name)
        assert m.head_dim == U.VARIANT_HEAD_DIMS[name]
        assert all(blk.attn.head_dim == m.head_dim for s in list(m.stages)[2:] for blk in s.blocks)


def test_token_labeling_head_is_official_and_switchable():
    torch.manual_seed(0)
    m = zoo.create_model("test_uniformer", num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        feats = m.forward_features(x)
        tokens = feats.flatten(2).transpose(1, 2)
        expected = m.head(tokens.mean(1)) + 0.5 * m.aux_head(tokens).max(1)[0]
        assert torch.allclose(m(x), expected, atol=1e-6)
    off = zoo.create_model("test_uniformer", num_classes=5, aux_head=False).eval()
    assert off.aux_head is None
    sd = U.checkpoint_filter_fn(m.state_dict(), off)  # the aux weights are dropped, the rest loads
    off.load_state_dict(sd, strict=True)
    with torch.no_grad():
        assert torch.allclose(off(x), m.head(m.forward_features(x).flatten(2).mean(-1)), atol=1e-6)


def test_layer_scale_is_per_instance():
    with torch.device("meta"):
        ls = zoo.create_model("uniformer_base_ls")
        plain = zoo.create_model("uniformer_base")  # the official module global would leak layer scale here
        large = zoo.create_model("uniformer_large_ls_tl")
    assert ls.stages[2].blocks[0].gamma_1 is not None and ls.stages[0].blocks[0].gamma_1 is None
    assert all(b.gamma_1 is None for s in plain.stages for b in s.blocks)
    assert large.stages[0].blocks[0].gamma_1 is not None


@pytest.mark.parametrize("size", [(64, 64), (70, 95), (33, 129)])
def test_patch_stem_takes_any_input_size(size):
    m = U.UniFormer(depths=(1, 1, 1, 1), embed_dims=(16, 32, 48, 64), head_dim=16, num_classes=3).eval()
    with torch.no_grad():
        assert m(torch.randn(1, 3, *size)).shape == (1, 3)


def test_inflate_2d_to_3d_matches_official_rule():
    torch.manual_seed(0)
    img = U.UniFormer(depths=(1, 1, 1, 1), embed_dims=(16, 32, 48, 64), head_dim=16, num_classes=10)
    vid = U.UniFormer(depths=(1, 1, 1, 1), embed_dims=(16, 32, 48, 64), head_dim=16, num_classes=7, spatial_dims=3)
    sd2 = img.state_dict()
    sd3 = U.inflate_weights_2d_to_3d(sd2, vid)
    missing, unexpected = vid.load_state_dict(sd3, strict=False)
    assert not unexpected and set(missing) == {"head.weight", "head.bias"}
    w2 = sd2["stages.0.blocks.0.attn.weight"]
    w3 = sd3["stages.0.blocks.0.attn.weight"]
    assert w3.shape == (16, 1, 5, 5, 5) and torch.allclose(w3.sum(2), w2)
    assert torch.allclose(sd3["stages.0.downsample.proj.weight"], sd2["stages.0.downsample.proj.weight"][:, :, None]
                          .expand(-1, -1, 3, -1, -1) / 3)
    centre = U.inflate_weights_2d_to_3d(sd2, vid, center=True)["stages.0.blocks.0.pos_embed.proj.weight"]
    assert torch.equal(centre[:, :, 1], sd2["stages.0.blocks.0.pos_embed.proj.weight"])
    assert centre[:, :, 0].abs().sum() == 0
    # I3D: on a static clip (every frame the same) an inflated conv gives the 2-D conv's response away
    # from the temporal border
    import torch.nn.functional as F
    frame = torch.randn(1, 16, 8, 8)
    clip = frame[:, :, None].expand(-1, -1, 5, -1, -1)
    for key, pad in [("stages.0.blocks.0.pos_embed.proj", 1), ("stages.0.blocks.0.attn", 2)]:
        out3 = F.conv3d(clip, sd3[key + ".weight"], sd3[key + ".bias"], padding=pad, groups=16)
        out2 = F.conv2d(frame, sd2[key + ".weight"], sd2[key + ".bias"], padding=pad, groups=16)
        assert torch.allclose(out3[:, :, 2], out2, atol=1e-5)


@pytest.mark.parametrize("name,shape,err", [
    ("test_uniformer", (2, 3, 4, 64, 64), ValueError),       # 5-D to an image model
    ("test_uniformer_video", (2, 3, 64, 64), ValueError),    # 4-D to a video model
    ("test_uniformer", (2, 4, 64, 64), ValueError),          # wrong channels
    ("test_uniformer", (2, 3, 16, 16), ValueError),          # too small for the patch stem
])
def test_bad_input_raises_clear_error(name, shape, err):
    m = zoo.create_model(name)
    with pytest.raises(err, match=name):
        m(torch.randn(*shape))


def test_integer_input_raises_type_error():
    m = zoo.create_model("test_uniformer_video")
    with pytest.raises(TypeError, match="test_uniformer_video"):
        m(torch.zeros(1, 3, 4, 64, 64, dtype=torch.uint8))


def _naive_evo_block(blk, cls_token, x, score):
    """The token-pruning block written out per sample with an explicit attention matrix (reference)."""
    import torch.nn.functional as F
    x = x + blk.pos_embed(x)
    B, C, H, W = x.shape
    cls_out, maps, scores = [], [], []
    g = (lambda name: getattr(blk, name) if getattr(blk, name) is not None else 1.)
    for b in range(B):
        tok = x[b].flatten(1).t()  # (N, C)
        N = tok.shape[0]

        def attend(z):
            a = blk.attn
            qkv = a.qkv(blk.norm1(z)).view(z.shape[0], 3, a.num_heads, a.head_dim)
            q, k, v = qkv[:, 0].transpose(0, 1), qkv[:, 1].transpose(0, 1), qkv[:, 2].transpose(0, 1)
            att = ((q @ k.transpose(-2, -1)) * a.head_dim ** -0.5).softmax(-1)  # (heads, M, M)
            out = a.proj((att @ v).transpose(0, 1).reshape(z.shape[0], -1))
            return out, att.mean(0)[0, 1:]

        if blk.prune_ratio == 1:
            z = torch.cat([cls_token[b], tok])
            a, row = attend(z)
            sc = row if score is None else (1 - blk.trade_off) * score[b] + blk.trade_off * row
            z = z + g("gamma_1") * a
            z = z + g("gamma_2") * blk.mlp(blk.norm2(z))
            cls_out.append(z[:1]); maps.append(z[1:].t().reshape(C, H, W)); scores.append(sc)
            continue
        keep = int(N * blk.prune_ratio)
        order = sorted(range(N), key=lambda i: -float(score[b, i]))
        kept, dropped = order[:keep], order[keep:]
        w = score[b, dropped] / score[b, dropped].sum()
        rep = (w[:, None] * tok[dropped]).sum(0, keepdim=True)
        z = torch.cat([cls_token[b], tok[kept], rep])
        a, row = attend(z)
        sc = score[b].clone()
        if row.shape[0] == N:  # so few tokens that nothing is left out of the blend (official branch)
            sc[order] = (1 - blk.trade_off) * score[b, order] + blk.trade_off * row
        else:
            sc[kept] = (1 - blk.trade_off) * score[b, kept] + blk.trade_off * row[:keep]
        fast = a[-1:]
        z = z + g("gamma_1") * a
        m = blk.mlp(blk.norm2(z))
        fast = fast + m[-1:]
        z = z + g("gamma_2") * m
        new = tok.clone()
        new[kept] = z[1:-1]
        new[dropped] = tok[dropped] + g("gamma_3") * fast
        if blk.downsample_score:
            total = sc.sum()
            sc = F.avg_pool2d(sc.view(1, 1, H, W), 2).flatten()
            sc = sc * total / sc.sum()
        cls_out.append(z[:1]); maps.append(new.t().reshape(C, H, W)); scores.append(sc)
    return torch.stack(cls_out), torch.stack(maps), torch.stack(scores)


@pytest.mark.parametrize("hw", [(6, 5), (2, 1), (1, 1), (4, 4)])
@pytest.mark.parametrize("ls", [None, 0.5])
def test_token_pruning_block_matches_naive_reference(hw, ls):
    torch.manual_seed(0)
    dim = 16
    blocks = [U.EvoGlobalBlock(dim, 2, 3., prune_ratio=1, trade_off=1, ls_init_value=ls),
              U.EvoGlobalBlock(dim, 2, 3., prune_ratio=0.5, trade_off=0.5, ls_init_value=ls),
              U.EvoGlobalBlock(dim, 2, 3., prune_ratio=0.5, trade_off=0.5, ls_init_value=ls,
                               downsample_score=hw[0] % 2 == 0 and hw[1] % 2 == 0)]
    x = torch.randn(2, dim, *hw, dtype=torch.float64)
    cls = torch.randn(2, 1, dim, dtype=torch.float64)
    fast_state = ref_state = (cls, x, None)
    with torch.no_grad():
        for blk in blocks:
            blk.double().eval()
            for p in blk.parameters():
                p.add_(0.1 * torch.randn_like(p))
            fast_state = blk(*fast_state)
            ref_state = _naive_evo_block(blk, *ref_state)
            for f, r in zip(fast_state, ref_state):
                assert f.shape == r.shape
                assert (f - r).abs().max().item() < 1e-12


def test_light_model_logits_are_the_official_inference_head():
    m = zoo.create_model("test_uniformer_light").eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        cls_token, feats = m.forward_features_with_cls(x)
        assert torch.allclose(m(x), m.head(feats.mean((2, 3))), atol=1e-6)
        assert cls_token.shape == (2, 1, m.num_features)
    # the official class-token head is unused by the official forward: not built, dropped on load
    assert not hasattr(m, "norm_cls") and not hasattr(m, "head_cls")
    sd = dict(m.state_dict(), **{"norm_cls.weight": torch.ones(64), "head_cls.bias": torch.zeros(10)})
    m.load_state_dict(U.checkpoint_filter_fn(sd, m), strict=True)


@pytest.mark.parametrize("name", ["test_uniformer", "test_uniformer_video", "test_uniformer_light"])
def test_test_model_contract(name):
    entry = zoo.registry.model_entry(name)
    for size in entry.test_sizes:
        m = zoo.create_model(name)
        x = torch.randn(2, 3, *size)
        out = m(x)
        assert out.shape == (2, m.num_classes)
        out.sum().backward()
        assert not hasattr(m, "no_grad_params")
        for n, p in m.named_parameters():
            assert p.grad is not None, n
        final, inter = m.forward_intermediates(x)
        assert torch.allclose(final, m.forward_features(x), atol=1e-5)
        assert len(inter) == 4
        f = zoo.create_model(name, features_only=True)
        feats = f(x)
        for fi, info in zip(feats, f.feature_info.get_dicts()):
            assert fi.ndim == x.ndim and fi.shape[1] == info["num_chs"]
            assert abs(fi.shape[-1] - size[-1] / info["reduction"]) <= 1
        m1 = zoo.create_model(name, in_chans=1)
        m1(torch.randn(1, 1, *size))
        m.set_grad_checkpointing()
        m(x).sum().backward()
        assert m.forward_head(m.forward_features(x), pre_logits=True).shape == (2, m.num_features)
        m.reset_classifier(0)
        assert m(x).shape == (2, m.num_features)
        # unpooled, as in timm: the channels-first map, not tokens
        m.reset_classifier(0, "")
        feats = m.forward_features(x)
        assert m(x).shape == feats.shape and m(x).shape[:2] == (2, m.num_features)
        m.reset_classifier(5, "")
        assert m(x).shape == (2, 5) + feats.shape[2:]


def test_official_file_loads_through_create_model(tmp_path):
    """The real loading path: an official-layout .pth wrapped in {'model': ...} via checkpoint_path."""
    b = load_bundle("uniformer", "uniformer_micro_convstem_ls")
    f = tmp_path / "official.pth"
    torch.save({"model": bundle_state_dict(b), "epoch": 300}, f)
    m = zoo.create_model("test_uniformer", checkpoint_path=str(f), conv_stem=True, head_dim=8, aux_head=False,
                         num_classes=10)
    m = m.double().eval()
    with torch.no_grad():
        out = m(torch.from_numpy(b["input"]))
    # the model was built in float32, so the loaded weights were rounded to float32 (hence not 1e-8)
    assert (out - torch.from_numpy(b["output"])).abs().max().item() <= 1e-5


def test_video_tags_carry_their_class_counts_and_clip_lengths():
    for tag, n, frames in [("k400_8x8", 400, 8), ("k600_16x4", 600, 16), ("sthv2_16_prek400", 174, 16),
                           ("sthv1_32_prek600", 174, 32)]:
        with torch.device("meta"):
            m = zoo.create_model(f"uniformer_small_video.{tag}")
        cfg = m.pretrained_cfg
        assert m.num_classes == n and cfg["pool_size"][0] * 2 == frames and f"clip: {frames} frames" in cfg["notes"][1]


def test_a_checkpoint_of_the_head_dim_twin_is_not_loaded_silently(tmp_path):
    # uniformer_small_plus (head_dim 32) and uniformer_small_plus_dim64 share every tensor shape
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in zoo.create_model("uniformer_small_plus").state_dict().items()}
    path = tmp_path / "file.pth"
    torch.save({"model": {k: torch.zeros(s) for k, s in shapes.items()}}, path)
    with pytest.warns(UserWarning, match=r"uniformer_small_plus checkpoint \(head_dim 32\).*pass head_dim=64"):
        zoo.create_model("uniformer_small_plus_dim64", checkpoint_path=str(path))
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # naming the variant's head_dim confirms the file
        zoo.create_model("uniformer_small_plus_dim64", checkpoint_path=str(path), head_dim=64)


def test_old_video_names_still_build():
    with pytest.warns(UserWarning, match="uniformer_small_video"), torch.device("meta"):
        m = timm.create_model("uniformer_small_k400")
    assert m.pretrained_cfg["architecture"] == "uniformer_small_video"


@pytest.mark.parametrize("name", ["test_uniformer", "test_uniformer_video", "test_uniformer_light"])
def test_torchscript_matches_eager(name):
    m = zoo.create_model(name).eval()
    size = zoo.registry.model_entry(name).test_sizes[-1]
    x = torch.randn(1, 3, *size)
    with torch.no_grad():
        assert torch.allclose(torch.jit.script(m)(x), m(x), atol=1e-6)


@pytest.mark.parametrize("name,input_size,views,reported_g", [
    ("uniformer_small", (3, 224, 224), 1, 3.6),            # image README: 3.6G
    ("uniformer_base", (3, 224, 224), 1, 8.3),
    ("uniformer_xxs", (3, 224, 224), 1, 1.3),
    ("uniformer_small_video", (3, 16, 224, 224), 4, 167),   # video README: 16x1x4 views, 167G
    ("uniformer_base_video", (3, 16, 224, 224), 4, 387),
])
def test_macs_match_the_papers(name, input_size, views, reported_g):
    from zoo.flops import count_macs
    with torch.device("meta"):
        m = zoo.create_model(name)
    gmacs = count_macs(m, torch.zeros(1, *input_size, device="meta")) * views / 1e9
    assert abs(gmacs - reported_g) / reported_g < 0.02, gmacs


def test_local_pointwise_kernels_load_in_conv_and_linear_layout():
    """The 2-D local blocks' 1x1 convs are ``nn.Conv2d`` (official layout ``(out, in, 1, 1)``, run on the
    channels-last maps); a state dict holding them as ``(out, in)`` Linear weights (zoo before issue 19's
    speed work) converts to the same model, and the video blocks' Linears take the official kernels."""
    torch.manual_seed(0)
    m = zoo.create_model("test_uniformer", aux_head=False).eval()
    assert type(m.stages[0].blocks[0].conv1) is torch.nn.Conv2d
    sd = m.state_dict()
    flat = {k: v.flatten(1) if k.endswith(U._POINTWISE_WEIGHTS) and v.ndim == 4 else v for k, v in sd.items()}
    assert sum(v.ndim == 2 and sd[k].ndim == 4 for k, v in flat.items()) >= 4
    m2 = zoo.create_model("test_uniformer", aux_head=False).eval()
    m2.load_state_dict(U.checkpoint_filter_fn(flat, m2))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(m(x), m2(x))
    video = zoo.create_model("test_uniformer_video").eval()
    vsd = video.state_dict()
    official = {k: v[..., None, None, None] if k.endswith(U._POINTWISE_WEIGHTS) and k.startswith("stages.0") else v
                for k, v in vsd.items()}
    converted = U.checkpoint_filter_fn(official, video)
    assert all(converted[k].shape == v.shape for k, v in vsd.items())
