"""NAT family: official parity, both checkpoint layouts, parameter counts, input errors, contract of the test models."""
import re

import pytest
import torch

import zoo
from zoo.models.nat import NAT, checkpoint_filter_fn
from zoo.registry import model_entry

from _shared import ROOT, bundle_state_dict, load_bundle, manifest, tolerance

VARIANTS = ["nat_mini", "nat_tiny", "nat_small", "nat_base", "nat_isotropic_small", "nat_isotropic_base"]
HF_VARIANTS = ["nat_mini", "nat_tiny", "nat_small", "nat_base"]


def _meta_model(name):
    with torch.device("meta"):
        return zoo.create_model(name)


@pytest.mark.parametrize("name", VARIANTS)
def test_param_count_equals_official_manifest(name):
    m = _meta_model(name)
    n = sum(p.numel() for p in m.parameters())
    assert n == model_entry(name).official_params == manifest(f"nat/{name}")["_meta"]["n_params"]


def _manifest_state_dict(name):
    return {k: torch.empty(shape, device="meta") for k, shape in manifest(name)["state_dict"].items()}


def _assert_converts_exactly(sd, model):
    converted = checkpoint_filter_fn(sd, model)
    target = model.state_dict()
    assert set(converted) == set(target), (
        f"missing {sorted(set(target) - set(converted))[:5]}, unexpected {sorted(set(converted) - set(target))[:5]}")
    for k, v in converted.items():
        assert tuple(v.shape) == tuple(target[k].shape), k


@pytest.mark.parametrize("name", VARIANTS)
def test_filter_maps_every_official_key(name):
    _assert_converts_exactly(_manifest_state_dict(f"nat/{name}"), _meta_model(name))


@pytest.mark.parametrize("name", HF_VARIANTS)
def test_filter_maps_every_hugging_face_key(name):
    _assert_converts_exactly(_manifest_state_dict(f"nat_hf/{name}"), _meta_model(name))


@pytest.mark.parametrize("name", ["nat_small", "nat_isotropic_base"])
def test_filter_is_a_noop_on_zoo_keys_and_unwraps(name):
    m = _meta_model(name)
    sd = m.state_dict()
    assert list(checkpoint_filter_fn(sd, m)) == list(sd)
    assert list(checkpoint_filter_fn({"model": {f"module.{k}": v for k, v in sd.items()}}, m)) == list(sd)


BUNDLES = {"nat_micro": False, "nat_micro_ls": True}


def bundle_model_args(meta):
    """(registered name, constructor overrides) of the zoo model with a parity bundle's official config.

    timm's create_model drops None arguments, so "no layer scale" comes from the base variant's default."""
    kw = meta["official_kwargs"]
    args = dict(depths=kw["depths"], embed_dim=kw["embed_dim"], num_heads=kw["num_heads"], mlp_ratio=kw["mlp_ratio"],
                kernel_size=kw["kernel_size"], num_classes=kw["num_classes"])
    if kw.get("layer_scale") is None:
        return "nat_mini", args
    return "test_nat", dict(args, layer_scale=kw["layer_scale"])


def _bundle_model(b):
    name, kwargs = bundle_model_args(b["meta"])
    return zoo.create_model(name, **kwargs)


@pytest.mark.parametrize("case", list(BUNDLES))
def test_official_parity_float64(case):
    b = load_bundle("nat", case)
    model = _bundle_model(b).double().eval()
    model.load_state_dict(checkpoint_filter_fn(bundle_state_dict(b), model), strict=True)
    x = torch.from_numpy(b["input"])
    tol = tolerance(b)
    with torch.no_grad():
        out = model(x)
        final, feats = model.forward_intermediates(x)
    assert (out - torch.from_numpy(b["output"])).abs().max().item() <= tol
    for i, f in enumerate(feats):  # the bundle's levels are channels-last, before the downsampler
        ref = torch.from_numpy(b["features"][f"level{i}"])
        assert (f.permute(0, 2, 3, 1) - ref).abs().max().item() <= tol, f"level{i}"


def _to_hf_layout(sd, prefix="nat"):
    """Official NAT (``prefix="nat"``) or DiNAT (``"dinat"``) keys -> transformers' ``NatForImageClassification``
    / ``DinatForImageClassification`` keys (the inverse of the filter)."""
    out = {}
    for k, v in sd.items():
        if k.startswith("patch_embed.proj."):
            out[f"{prefix}.embeddings.patch_embeddings.projection." + k[len("patch_embed.proj."):]] = v
        elif k.startswith("patch_embed.norm."):
            out[f"{prefix}.embeddings.norm." + k[len("patch_embed.norm."):]] = v
        elif k.startswith("norm."):
            out[f"{prefix}.layernorm." + k[5:]] = v
        elif k.startswith("head."):
            out["classifier." + k[5:]] = v
        elif (m := re.match(r"levels\.(\d+)\.downsample\.(.+)", k)):
            out[f"{prefix}.encoder.levels.{m[1]}.downsample.{m[2]}"] = v
        elif (m := re.match(r"levels\.(\d+)\.blocks\.(\d+)\.(.+)", k)):
            p, rest = f"{prefix}.encoder.levels.{m[1]}.layers.{m[2]}.", m[3]
            if rest == "gamma1":
                out[p + "layer_scale_parameters"] = torch.stack([v, sd[k[:-1] + "2"]])
            elif rest == "gamma2":
                continue
            elif rest.startswith("attn.qkv."):
                for name, part in zip(("query", "key", "value"), v.chunk(3, 0)):
                    out[p + f"attention.self.{name}." + rest.split(".")[-1]] = part
            else:
                for src, dst in (("norm1", "layernorm_before"), ("attn.rpb", "attention.self.rpb"),
                                 ("attn.proj", "attention.output.dense"), ("norm2", "layernorm_after"),
                                 ("mlp.fc1", "intermediate.dense"), ("mlp.fc2", "output.dense")):
                    if rest.startswith(src):
                        out[p + dst + rest[len(src):]] = v
                        break
                else:
                    raise AssertionError(k)
        else:
            raise AssertionError(k)
    return out


@pytest.mark.parametrize("case", list(BUNDLES))
def test_hugging_face_layout_gives_the_same_model(case):
    b = load_bundle("nat", case)
    model = _bundle_model(b).double()
    official = bundle_state_dict(b)
    a = checkpoint_filter_fn(official, model)
    h = checkpoint_filter_fn(_to_hf_layout(official), model)
    assert set(a) == set(h)
    for k in a:
        assert torch.equal(a[k], h[k]), k


def test_pretrained_file_goes_through_the_filter(tmp_path):
    model = zoo.create_model("test_nat")
    sd = model.state_dict()
    official = {k: v + 1 for k, v in _zoo_to_official(sd).items()}  # the file in the official layout
    path = tmp_path / "nat_test_official.pth"
    torch.save({"model": official}, path)
    loaded = zoo.create_model("test_nat", checkpoint_path=str(path))
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, sd[k] + 1), k


@pytest.mark.parametrize("name", VARIANTS)
def test_pretrained_cfgs_name_official_weights(name):
    cfg = _meta_model(name).pretrained_cfg
    assert cfg["license"] == "mit" and cfg["paper_ids"] and cfg["origin_url"]
    assert cfg["url"].startswith("https://shi-labs.com/projects/")
    if name in HF_VARIANTS:
        size = name.split("_")[1]
        assert cfg["hf_hub_id"] == f"shi-labs/nat-{size}-in1k-224" and cfg["hf_hub_filename"] == "pytorch_model.bin"
    assert model_entry(name).reported["in1k"]["value"] in (81.8, 83.2, 83.7, 84.3, 80.0, 81.6)


def test_minimum_input_sizes():
    assert _meta_model("nat_tiny").min_input_size == 193  # stem and downsamplers round up: ceil(193 / 32) = 7
    assert _meta_model("nat_isotropic_small").min_input_size == 97
    assert zoo.create_model("test_nat").min_input_size == 65


@pytest.mark.parametrize("name", ["test_nat", "test_nat_isotropic"])
def test_bad_input_raises_value_error_naming_the_model(name):
    m = zoo.create_model(name).eval()
    for bad in (torch.randn(3, 80, 80), torch.randn(1, 4, 80, 80), torch.randn(1, 3, 20, 80)):
        with pytest.raises(ValueError, match=name):
            m(bad)
    with pytest.raises(TypeError, match=name):
        m(torch.zeros(1, 3, 80, 80, dtype=torch.long))


def test_too_small_input_names_the_minimum():
    m = zoo.create_model("test_nat").eval()
    with pytest.raises(ValueError, match="at least 65 x 65"):
        m(torch.randn(1, 3, 64, 80))
    assert m(torch.randn(1, 3, 65, 65)).shape == (1, 1000)


def test_pad_small_accepts_small_inputs():
    m = zoo.create_model("test_nat", pad_small=True, num_classes=4).eval()
    assert m(torch.randn(1, 3, 33, 47)).shape == (1, 4)


@pytest.mark.parametrize("name", ["test_nat", "test_nat_isotropic"])
def test_test_model_contract(name):
    entry = model_entry(name)
    m = zoo.create_model(name, num_classes=3).eval()
    hier = isinstance(m, NAT)
    for H, W in entry.test_sizes:
        x = torch.randn(2, 3, H, W)
        with torch.no_grad():
            assert m(x).shape == (2, 3)
            final, inter = m.forward_intermediates(x)
            torch.testing.assert_close(final, m.forward_features(x))
            assert m.forward_head(final, pre_logits=True).shape == (2, m.num_features)
        assert len(inter) == len(m.feature_info)
        for f, info in zip(inter, m.feature_info):
            assert f.shape[1] == info["num_chs"]
            assert abs(f.shape[2] - H / info["reduction"]) <= 1 and abs(f.shape[3] - W / info["reduction"]) <= 1
    reductions = [i["reduction"] for i in m.feature_info]
    assert reductions == ([4, 8, 16, 32] if hier else [16] * len(m.feature_info))
    feats = zoo.create_model(name, features_only=True, out_indices=tuple(range(len(m.feature_info))))
    H, W = entry.test_sizes[-1]
    outs = feats(torch.randn(1, 3, H, W))
    assert [o.shape[1] for o in outs] == feats.feature_info.channels()
    m.train()
    m.set_grad_checkpointing()
    m(torch.randn(2, 3, H, W)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.reset_classifier(0)
    assert m(torch.randn(1, 3, H, W)).shape == (1, m.num_features)
    assert zoo.create_model(name, in_chans=1)(torch.randn(1, 1, H, W)).shape == (1, 1000)
    assert any(n.endswith("rpb") for n in m.no_weight_decay())


def _zoo_to_official(sd):
    out = {}
    for k, v in sd.items():
        k = re.sub(r"^stages\.(\d+)\.downsample", lambda m: f"levels.{int(m[1]) - 1}.downsample", k)
        out[k.replace("stages.", "levels.").replace("head.fc.", "head.")] = v
    return out


_HUB_SCRIPT = r"""
import os, sys, torch
os.environ["HF_HUB_CACHE"] = sys.argv[1]
os.environ["HF_HUB_OFFLINE"] = "1"
sys.path.insert(0, sys.argv[2])
import zoo
from test_nat import _to_hf_layout, _zoo_to_official
ref = zoo.create_model("test_nat", num_classes=10)
repo = os.path.join(sys.argv[1], "models--shi-labs--nat-test-in1k-224")
snap = os.path.join(repo, "snapshots", "0" * 40)
os.makedirs(snap)
os.makedirs(os.path.join(repo, "refs"))
with open(os.path.join(repo, "refs", "main"), "w") as f:
    f.write("0" * 40)
torch.save(_to_hf_layout(_zoo_to_official(ref.state_dict())), os.path.join(snap, "pytorch_model.bin"))
m = zoo.create_model("test_nat", pretrained=True, num_classes=10, pretrained_cfg_overlay=dict(
    hf_hub_id="shi-labs/nat-test-in1k-224", hf_hub_filename="pytorch_model.bin", url="", num_classes=10))
bad = [k for k, v in m.state_dict().items() if not torch.equal(v, ref.state_dict()[k])]
print("MISMATCH", bad) if bad else print("OK")
"""


def test_hugging_face_hub_file_loads_through_timm(tmp_path):
    """A transformers-layout pytorch_model.bin in a local (offline) Hub cache, loaded by timm's own hub path."""
    import os
    import subprocess
    import sys

    script = tmp_path / "hub_load.py"
    script.write_text(_HUB_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, str(script), str(tmp_path / "hub"), str(ROOT / "tests")],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0 and res.stdout.strip().endswith("OK"), res.stdout + res.stderr
