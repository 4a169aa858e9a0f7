"""DiNAT family: official parity (float64), official and Hub key conversion, parameter counts, ViT-rpb's
attention against the official formula, small-map padding, and the test models' contract."""
import re

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.models.dinat import GlobalAttentionRPB, checkpoint_filter_fn, dinat_dilations
from zoo.models.nat import NAT
from zoo.registry import model_entry

from _shared import bundle_state_dict, load_bundle, manifest, tolerance
from test_nat import _to_hf_layout as _nat_to_hf_layout

# official factory (manifests/dinat/<factory>.json) -> zoo name; the *_21k factories are tags of the same
# architecture, nat_isotropic_* live in the nat family
FACTORIES = {
    "dinat_mini": "dinat_mini", "dinat_tiny": "dinat_tiny", "dinat_small": "dinat_small", "dinat_base": "dinat_base",
    "dinat_large": "dinat_large", "dinat_large_21k": "dinat_large", "dinat_large_384": "dinat_large_384",
    "dinat_large_384_11x11": "dinat_large_11x11", "dinat_large_21k_11x11": "dinat_large_11x11",
    "dinat_s_tiny": "dinat_s_tiny", "dinat_s_small": "dinat_s_small", "dinat_s_base": "dinat_s_base",
    "dinat_s_large": "dinat_s_large", "dinat_s_large_21k": "dinat_s_large", "dinat_s_large_384": "dinat_s_large_384",
    "dinat_isotropic_small": "dinat_isotropic_small", "dinat_isotropic_base": "dinat_isotropic_base",
    "nat_isotropic_small": "nat_isotropic_small", "nat_isotropic_base": "nat_isotropic_base",
    "vitrpb_small": "vitrpb_small", "vitrpb_base": "vitrpb_base",
}
HF = {"dinat_mini": "dinat_mini", "dinat_tiny": "dinat_tiny", "dinat_small": "dinat_small",
      "dinat_base": "dinat_base", "dinat_large": "dinat_large", "dinat_large_384": "dinat_large_384",
      "dinat_large_384_11x11": "dinat_large_11x11"}


def _meta_model(name):
    with torch.device("meta"):
        return zoo.create_model(name)


def _manifest_state_dict(name):
    return {k: torch.empty(shape, device="meta") for k, shape in manifest(name)["state_dict"].items()}


def _assert_converts_exactly(sd, model, filter_fn=checkpoint_filter_fn):
    converted = filter_fn(sd, model)
    target = model.state_dict()
    assert set(converted) == set(target), (
        f"missing {sorted(set(target) - set(converted))[:5]}, unexpected {sorted(set(converted) - set(target))[:5]}")
    for k, v in converted.items():
        assert tuple(v.shape) == tuple(target[k].shape), k


@pytest.mark.parametrize("factory", sorted(FACTORIES))
def test_param_count_equals_official_manifest(factory):
    name = FACTORIES[factory]
    n = sum(p.numel() for p in _meta_model(name).parameters())
    assert n == model_entry(name).official_params == manifest(f"dinat/{factory}")["_meta"]["n_params"]


@pytest.mark.parametrize("factory", sorted(FACTORIES))
def test_filter_maps_every_official_key(factory):
    model = _meta_model(FACTORIES[factory])
    filter_fn = checkpoint_filter_fn
    if factory.startswith("nat_"):
        from zoo.models.nat import checkpoint_filter_fn as filter_fn
    _assert_converts_exactly(_manifest_state_dict(f"dinat/{factory}"), model, filter_fn)


@pytest.mark.parametrize("factory", sorted(HF))
def test_filter_maps_every_hugging_face_key(factory):
    _assert_converts_exactly(_manifest_state_dict(f"dinat_hf/{factory}"), _meta_model(HF[factory]))


@pytest.mark.parametrize("factory", sorted(FACTORIES))
def test_structure_follows_the_official_kwargs(factory):
    """Kernel, dilation schedule and widths of every block equal the official factory's."""
    kw = manifest(f"dinat/{factory}")["_meta"]["official_kwargs"]
    model = _meta_model(FACTORIES[factory])
    if isinstance(model, NAT):
        got = [[b.attn.dilation for b in s.blocks] for s in model.stages]
        assert got == kw["dilations"]
        assert {b.attn.kernel_size for s in model.stages for b in s.blocks} == {kw["kernel_size"]}
    elif kw["kernel_size"] is not None:
        assert [b.attn.dilation for b in model.blocks] == [1 if i % 2 == 0 else kw["dilation"] for i in range(12)]
    else:
        assert all(isinstance(b.attn, GlobalAttentionRPB) for b in model.blocks)


@pytest.mark.parametrize("name", ["dinat_base", "dinat_s_tiny", "dinat_isotropic_small", "vitrpb_small"])
def test_filter_is_a_noop_on_zoo_keys_and_unwraps(name):
    m = _meta_model(name)
    sd = m.state_dict()
    assert list(checkpoint_filter_fn(sd, m)) == list(sd)
    assert list(checkpoint_filter_fn({"model": {f"module.{k}": v for k, v in sd.items()}}, m)) == list(sd)


def _bundle_model(meta):
    """The zoo model with a parity bundle's official config (float64, eval)."""
    kw = meta["official_kwargs"]
    common = dict(embed_dim=kw["embed_dim"], num_heads=kw["num_heads"], mlp_ratio=kw["mlp_ratio"],
                  kernel_size=kw["kernel_size"], num_classes=kw["num_classes"])
    if meta["official_class"] == "isotropic.NATIsotropic":
        depth = kw["depth"]
        return zoo.create_model("test_dinat_isotropic", depth=depth, patch_size=kw["patch_size"],
                                dilations=[1 if i % 2 == 0 else kw["dilation"] for i in range(depth)], **common)
    common.update(depths=kw["depths"], dilations=kw["dilations"])
    if meta["official_class"] == "dinats.DiNAT_s":
        return zoo.create_model("test_dinat_s", **common)
    if kw.get("layer_scale") is None:  # timm drops None kwargs: take a variant without layer scale
        return zoo.create_model("dinat_mini", **common)
    return zoo.create_model("test_dinat", layer_scale=kw["layer_scale"], **common)


BUNDLES = ["dinat_micro", "dinat_micro_ls", "dinat_s_micro", "dinat_isotropic_micro"]


@pytest.mark.parametrize("case", BUNDLES)
def test_official_parity_float64(case):
    b = load_bundle("dinat", case)
    model = _bundle_model(b["meta"]).double().eval()
    model.load_state_dict(checkpoint_filter_fn(bundle_state_dict(b), model), strict=True)
    x = torch.from_numpy(b["input"])
    tol = tolerance(b)
    with torch.no_grad():
        out = model(x)
        _, feats = model.forward_intermediates(x, output_fmt="NHWC")
    assert (out - torch.from_numpy(b["output"])).abs().max().item() <= tol
    for name, ref in b["features"].items():  # levels (before the downsampler) / isotropic layers, channels-last
        i = int(re.search(r"\d+$", name)[0])
        assert (feats[i] - torch.from_numpy(ref)).abs().max().item() <= tol, name


def _to_hf_layout(sd):
    """Official DiNAT keys -> transformers' DinatForImageClassification keys (the inverse of the filter)."""
    return _nat_to_hf_layout(sd, prefix="dinat")


@pytest.mark.parametrize("case", ["dinat_micro", "dinat_micro_ls"])
def test_hugging_face_layout_gives_the_same_model(case):
    b = load_bundle("dinat", case)
    model = _bundle_model(b["meta"]).double()
    official = bundle_state_dict(b)
    hf = _to_hf_layout(official)
    assert set(hf) == set(_manifest_keys_like(hf)), "inverse layout drifted from the Hub manifests"
    a = checkpoint_filter_fn(official, model)
    h = checkpoint_filter_fn(hf, model)
    assert set(a) == set(h)
    for k in a:
        assert torch.equal(a[k], h[k]), k


def _manifest_keys_like(keys):
    """Every key pattern of the Hub manifest (dinat_base: layer scale) that ``keys`` should follow."""
    patterns = {re.sub(r"\.\d+\.", ".N.", k) for k in manifest("dinat_hf/dinat_base")["state_dict"]}
    return [k for k in keys if re.sub(r"\.\d+\.", ".N.", k) in patterns]


def test_vitrpb_attention_matches_the_official_formula():
    """rpb indexed by the official ``flipud(fliplr(query - key))`` index (= key - query) at the trained size."""
    torch.manual_seed(0)
    L, heads, dim = 5, 2, 8
    m = GlobalAttentionRPB(dim, heads, input_size=L).double().eval()
    with torch.no_grad():
        m.rpb.normal_()
    x = torch.randn(2, L, L, dim, dtype=torch.float64)
    coords = torch.stack(torch.meshgrid(torch.arange(L), torch.arange(L), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (L - 1)
    index = torch.flipud(torch.fliplr(rel[..., 0] * (2 * L - 1) + rel[..., 1]))
    qkv = m.qkv(x).reshape(2, L * L, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
    attn = (qkv[0] * m.scale) @ qkv[1].transpose(-2, -1)
    attn = attn + m.rpb.permute(1, 2, 0).flatten(0, 1)[index.view(-1)].view(L * L, L * L, heads).permute(2, 0, 1)
    ref = m.proj((attn.softmax(-1) @ qkv[2]).transpose(1, 2).reshape(2, L, L, dim))
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref, rtol=0, atol=1e-12)
        # a smaller map reads the centre of the same table; a larger one a resized table
        assert m(x[:, :3, :4]).shape == (2, 3, 4, dim)
        assert m(torch.randn(1, 7, 6, dim, dtype=torch.float64)).shape == (1, 7, 6, dim)


def test_dilation_schedules():
    assert dinat_dilations((3, 4, 6, 5), (8, 4, 2, 1)) == (
        (1, 8, 1), (1, 4, 1, 4), (1, 2, 1, 2, 1, 2), (1, 1, 1, 1, 1))
    assert dinat_dilations((2, 2, 2, 2), (13, 6, 3, 1)) == ((1, 13), (1, 6), (1, 3), (1, 1))


def test_small_map_is_zero_padded_after_norm_and_cropped_before_proj():
    """A DiNAT block on a map smaller than k * d equals the official rule written out by hand."""
    torch.manual_seed(0)
    m = zoo.create_model("test_dinat").double().eval()
    blk = m.stages[0].blocks[1]  # kernel 3, dilation 4: maps under 12 are padded
    x = torch.randn(1, 7, 10, blk.norm1.normalized_shape[0], dtype=torch.float64)
    a = blk.attn
    with torch.no_grad():
        y = F.pad(blk.norm1(x), (0, 0, 0, 2, 0, 5))
        B, H, W, C = y.shape
        q, k, v = a.qkv(y).view(B, H, W, 3, a.num_heads, a.head_dim).unbind(3)
        from zoo.layers.neighborhood_attention import na2d_reference
        att = na2d_reference(q, k, v, a.kernel_size, a.dilation, rpb=a.rpb, scale=a.scale)[:, :7, :10]
        ref = x + blk.gamma1 * a.proj(att.reshape(1, 7, 10, C))
        ref = ref + blk.gamma2 * blk.mlp(blk.norm2(ref))
        torch.testing.assert_close(blk(x), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["dinat_mini", "dinat_large_384", "dinat_large_11x11", "dinat_s_large",
                                  "dinat_isotropic_base", "vitrpb_small"])
def test_pretrained_cfgs_name_official_weights(name):
    for tag in [t for t in zoo.list_pretrained(f"{name}.*") if t.split(".")[0] == name]:
        import timm.models

        cfg = timm.models.get_pretrained_cfg(tag).to_dict()
        assert cfg["license"] == "mit" and cfg["paper_ids"] == "arXiv:2209.15001" and cfg["origin_url"]
        assert cfg["url"].startswith("https://shi-labs.com/projects/dinat/checkpoints/")
        assert cfg["min_input_size"] == (3, 1, 1)
    assert model_entry(name).reported


def test_hub_ids_of_the_transformers_copies():
    import timm.models

    hub = {t: timm.models.get_pretrained_cfg(t).hf_hub_id for t in zoo.list_pretrained("dinat*")}
    assert {v for v in hub.values() if v} == {
        "shi-labs/dinat-mini-in1k-224", "shi-labs/dinat-tiny-in1k-224", "shi-labs/dinat-small-in1k-224",
        "shi-labs/dinat-base-in1k-224", "shi-labs/dinat-large-in22k-in1k-224",
        "shi-labs/dinat-large-in22k-in1k-384", "shi-labs/dinat-large-11x11-in22k-in1k-384"}


@pytest.mark.parametrize("name", ["test_dinat", "test_dinat_s", "test_dinat_isotropic", "test_dinat_vitrpb"])
def test_any_input_size_runs_and_bad_input_names_the_model(name):
    m = zoo.create_model(name, num_classes=4).eval()
    with torch.no_grad():
        for H, W in [(9, 13), (33, 17), (64, 70)]:
            assert m(torch.randn(1, 3, H, W)).shape == (1, 4)
    with pytest.raises(ValueError, match=name):
        m(torch.randn(3, 32, 32))
    with pytest.raises(TypeError, match=name):
        m(torch.zeros(1, 3, 32, 32, dtype=torch.long))


@pytest.mark.parametrize("name", ["test_dinat", "test_dinat_s"])
def test_feature_pyramid_for_detection(name):
    """zoo.adapters.create_pyramid turns DiNAT / DiNAT_s into an FPN, as for NAT (odd, non-square input)."""
    from zoo.adapters import create_pyramid

    fpn = create_pyramid(name, out_channels=16)
    out = fpn(torch.randn(1, 3, 70, 95))
    assert list(out) == ["0", "1", "2", "3", "pool"]
    assert [tuple(v.shape[-2:]) for v in out.values()][:4] == [(18, 24), (9, 12), (5, 6), (3, 3)]
    assert all(v.shape[1] == 16 for v in out.values())
    sum(v.sum() for v in out.values()).backward()
    assert all(p.grad is not None for p in fpn.parameters() if p.requires_grad)


@pytest.mark.parametrize("layout", ["official", "transformers"])
def test_checkpoint_file_in_either_layout_loads_through_the_filter(tmp_path, layout):
    model = zoo.create_model("test_dinat")
    sd = model.state_dict()
    official = {}
    for k, v in sd.items():  # zoo -> official keys (the inverse of the filter), values shifted
        k = re.sub(r"^stages\.(\d+)\.downsample", lambda m: f"levels.{int(m[1]) - 1}.downsample", k)
        official[k.replace("stages.", "levels.").replace("head.fc.", "head.")] = v + 1
    path = tmp_path / "ck.pth"
    torch.save({"model": official} if layout == "official" else _to_hf_layout(official), path)
    loaded = zoo.create_model("test_dinat", checkpoint_path=str(path))
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, sd[k] + 1), k
