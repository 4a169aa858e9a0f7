"""The contract every registered model meets, parametrized over the registry.

Public variants are checked on the ``meta`` device (exact official parameter counts, feature_info,
pretrained cfgs), so even the largest cost nothing. The forward/backward/feature checks run on each
family's small test configuration (``test_model=True``) at its declared ``test_sizes``.
"""
from __future__ import annotations

import fnmatch
import math

import pytest
import timm
import torch

import zoo
from zoo.registry import model_entry, test_models

from _contract import check_task_output as _check_task_output, make_input as _make_input
from _shared import have_shared, manifest

PUBLIC = zoo.list_models()
TESTS = test_models()
TEST_CASES = [(name, size) for name in TESTS for size in model_entry(name).test_sizes]
TEST_FIRST = [(name, model_entry(name).test_sizes[0]) for name in TESTS]
FEATURE_CASES = [c for c in TEST_CASES if model_entry(c[0]).supports_features]
FEATURE_FIRST = [c for c in TEST_FIRST if model_entry(c[0]).supports_features]


def _ids(cases):
    return [f"{n}-{'x'.join(map(str, s))}" for n, s in cases]


# ---------------------------------------------------------------------------------------------
# every public variant, on the meta device


@pytest.mark.parametrize("name", [n for n in PUBLIC if model_entry(n).official_params is not None])
def test_builds_on_meta_with_official_param_count(name):
    entry = model_entry(name)
    with torch.device("meta"):
        model = timm.create_model(name)
    n = sum(p.numel() for p in model.parameters()) + entry.official_params_not_built
    assert n == entry.official_params, f"{name}: {n:,} params, official {entry.official_params:,}"


@pytest.mark.parametrize("name", [n for n in PUBLIC if model_entry(n).manifest])
def test_recorded_official_count_matches_manifest(name):
    if not have_shared():
        pytest.skip("../shared is absent: the recorded counts cannot be tied to the manifests")
    entry = model_entry(name)
    meta = manifest(entry.manifest)["_meta"]
    assert entry.official_params == meta["n_params"]


@pytest.mark.parametrize("name", PUBLIC)
def test_feature_info_describes_nchw_levels(name):
    with torch.device("meta"):
        model = timm.create_model(name)
    info = getattr(model, "feature_info", None)
    task = model_entry(name).task
    if task == "restoration" and not info:
        return  # DESIGN: restoration models need not hand out features
    assert info, f"{name} has no feature_info"
    reductions = [f["reduction"] for f in info]
    for f in info:
        assert {"num_chs", "reduction", "module"} <= set(f)
        assert f["num_chs"] > 0
    assert reductions == sorted(reductions)
    if task in ("classification", "video") and len(set(reductions)) > 1:
        assert reductions[-4:] == [4, 8, 16, 32], f"{name}: hierarchical strides {reductions}"


@pytest.mark.parametrize("name", PUBLIC)
def test_pretrained_cfgs_name_location_licence_and_paper(name):
    tags = zoo.registry.pretrained_tags(name)
    for tag, cfg in tags.items():
        where = f"{name}.{tag}"
        assert cfg.get("license"), f"{where}: no license"
        assert cfg.get("paper_ids"), f"{where}: no paper_ids"
        assert cfg.get("origin_url"), f"{where}: no origin_url"
        hub = cfg.get("hf_hub_id")
        assert cfg.get("url") or (hub and "/" in hub.strip("/")), f"{where}: no url or full hf_hub_id"
    data = timm.data.resolve_data_config(model=None, pretrained_cfg=timm.models.get_pretrained_cfg(name).to_dict())
    assert data["input_size"] == timm.models.get_pretrained_cfg(name).input_size


# ---------------------------------------------------------------------------------------------
# the test configuration of every family, for real


def test_models_without_official_count_have_no_official_weights():
    # zoo-defined variants (e.g. an architecture a paper reports but never released) carry no count;
    # anything with released weights has an official implementation to count against
    for name in PUBLIC:
        if model_entry(name).official_params is None:
            assert not zoo.registry.pretrained_tags(name), f"{name} has weights but no official param count"


def test_every_family_has_a_test_model():
    families = {model_entry(n).family for n in PUBLIC}
    with_tests = {model_entry(n).family for n in TESTS}
    assert families <= with_tests, f"families without a test model: {sorted(families - with_tests)}"
    for name in TESTS:
        assert model_entry(name).test_sizes, f"{name} declares no test_sizes"


@pytest.mark.parametrize("name,size", TEST_CASES, ids=_ids(TEST_CASES))
def test_forward_backward(name, size):
    model = zoo.create_model(name).train()
    x = _make_input(name, size)
    out = model(x)
    _check_task_output(name, model.eval(), x, out)
    out.float().square().mean().backward()
    allowed = tuple(getattr(model, "no_grad_params", ()))
    missing = [n for n, p in model.named_parameters()
               if p.requires_grad and p.grad is None and not any(fnmatch.fnmatchcase(n, pat) for pat in allowed)]
    assert not missing, f"{name}: no gradient reached {missing[:5]}"


@pytest.mark.parametrize("name,size", FEATURE_CASES, ids=_ids(FEATURE_CASES))
def test_features_only_gives_nchw_maps_at_declared_strides(name, size):
    model = zoo.create_model(name, features_only=True).eval()
    x = _make_input(name, size)
    with torch.no_grad():
        feats = model(x)
    info = model.feature_info
    assert isinstance(feats, (list, tuple)) and len(feats) == len(info.out_indices)
    for f, chs, red in zip(feats, info.channels(), info.reduction()):
        assert f.ndim == x.ndim, f"{name}: feature of shape {tuple(f.shape)} for input {tuple(x.shape)}"
        assert f.shape[1] == chs
        for got, side in zip(f.shape[-2:], x.shape[-2:]):
            assert abs(got - side / red) <= 1, f"{name}: {tuple(f.shape)} at reduction {red} of {tuple(x.shape)}"


@pytest.mark.parametrize("name,size", FEATURE_FIRST, ids=_ids(FEATURE_FIRST))
def test_forward_intermediates_ends_in_forward_features(name, size):
    model = zoo.create_model(name).eval()
    x = _make_input(name, size)
    with torch.no_grad():
        final, inters = model.forward_intermediates(x)
        ref = model.forward_features(x)
        only = model.forward_intermediates(x, intermediates_only=True)
    torch.testing.assert_close(final, ref, atol=1e-5, rtol=1e-5)
    assert len(inters) == len(only) > 0
    for a, b in zip(inters, only):
        assert a.ndim == x.ndim, f"{name}: intermediate {tuple(a.shape)} is not channels-first like the input"
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", TESTS)
def test_single_channel_input(name):
    model = zoo.create_model(name, in_chans=1).eval()
    x = _make_input(name, model_entry(name).test_sizes[0], in_chans=1)
    with torch.no_grad():
        out = model(x)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", [n for n in TESTS if model_entry(n).task in ("classification", "video")])
def test_classifier_api(name):
    size = model_entry(name).test_sizes[0]
    x = _make_input(name, size)
    model = zoo.create_model(name, num_classes=3).eval()
    with torch.no_grad():
        assert model(x).shape == (2, 3)
        feats = model.forward_features(x)
        assert model.forward_head(feats, pre_logits=True).shape == (2, model.head_hidden_size)
        model.reset_classifier(0)  # timm: the pooled pre-logits features remain
        assert model(x).shape == (2, model.head_hidden_size)
    assert model.get_classifier() is not None
    assert model.group_matcher()


@pytest.mark.parametrize("name", [n for n in TESTS if model_entry(n).task in ("classification", "video")])
def test_grad_checkpointing_forward_backward(name):
    model = zoo.create_model(name).train()
    model.set_grad_checkpointing(True)
    x = _make_input(name, model_entry(name).test_sizes[0])
    model(x).square().mean().backward()
    assert any(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", TESTS)
def test_bad_input_is_explained(name):
    model = zoo.create_model(name).eval()
    size = model_entry(name).test_sizes[0]
    x = _make_input(name, size)
    with pytest.raises(ValueError, match=name):
        model(x[0])  # batch axis missing
    with pytest.raises(ValueError, match=name):
        model(torch.randn(2, x.shape[1] + 1, *size))
    with pytest.raises(TypeError, match=name):
        model(torch.zeros(x.shape, dtype=torch.int64))


@pytest.mark.parametrize("name", TESTS)
def test_timm_create_model_returns_the_same_model(name):
    a = zoo.create_model(name)
    b = timm.create_model(name)
    assert type(a) is type(b)
    assert a.state_dict().keys() == b.state_dict().keys()


def test_test_sizes_are_small():
    for name in TESTS:
        for size in model_entry(name).test_sizes:
            assert math.prod(size) <= 256 * 256, f"{name}: test size {size} is too large for the default suite"


@pytest.mark.parametrize("name", TESTS)
def test_hub_folder_round_trip(name, tmp_path):
    """timm's save_for_hf -> local-dir: rebuilds the same model (its config.json records the sizes
    as lists, which every constructor must take) with the same outputs."""
    kwargs = {"num_classes": 3} if model_entry(name).task in ("classification", "video") else {}
    a = zoo.create_model(name, **kwargs).eval()
    timm.models.save_for_hf(a, str(tmp_path), safe_serialization=True)
    b = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    assert type(a) is type(b) and a.state_dict().keys() == b.state_dict().keys()
    x = _make_input(name, model_entry(name).test_sizes[0])
    with torch.no_grad():
        ya, yb = a(x), b(x)
    for u, v in zip(ya if isinstance(ya, (list, tuple)) else [ya], yb if isinstance(yb, (list, tuple)) else [yb]):
        torch.testing.assert_close(u, v, atol=0, rtol=0)
