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

from _contract import check_task_output as _check_task_output, fx_model as _fx_model, make_input as _make_input
from _shared import have_shared, manifest
from toy_models import TOY_FAMILY

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
    n = sum(p.numel() for p in model.parameters())
    # official parameters the official forward never uses are not built (entry.dropped_params)
    assert n == entry.expected_params, f"{name}: {n:,} params, official {entry.official_params:,}, " \
        f"dropped {sum(entry.dropped_params.values()):,}"


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


def _cfg_sanity(name, model):
    """What timm's test_model_default_cfgs checks without running the model: cfg fields present and
    naming real parameters, the size fields shaped like the input (video: with the time axis)."""
    cfg = model.pretrained_cfg
    task = model_entry(name).task
    spatial = 3 if task == "video" else 2
    assert len(cfg["input_size"]) == 1 + spatial, f"{name}: input_size {cfg['input_size']}"
    assert cfg.get("pool_size") is not None and len(cfg["pool_size"]) == spatial, f"{name}: pool_size {cfg.get('pool_size')}"
    if cfg.get("min_input_size") is not None:
        assert len(cfg["min_input_size"]) == len(cfg["input_size"])
        assert all(m <= s for m, s in zip(cfg["min_input_size"], cfg["input_size"]))
    own_min = getattr(model, "min_input_size", 1)
    if own_min > 1:  # the model refuses smaller inputs: its cfg says so, so timm's tests pick a size it takes
        assert cfg.get("min_input_size") is not None and min(cfg["min_input_size"][-2:]) >= own_min, \
            f"{name}: model needs {own_min}, cfg min_input_size {cfg.get('min_input_size')}"
    keys = model.state_dict().keys()
    for conv in (cfg["first_conv"],) if isinstance(cfg["first_conv"], str) else cfg["first_conv"]:
        assert conv + ".weight" in keys, f"{name}: first_conv {conv} is not a parameter"
    if cfg.get("num_classes"):
        for head in (cfg["classifier"],) if isinstance(cfg["classifier"], str) else cfg["classifier"]:
            assert head + ".weight" in keys, f"{name}: classifier {head} is not a parameter"
    assert model.num_classes >= 0 and model.num_features > 0 and model.head_hidden_size > 0


@pytest.mark.parametrize("name", PUBLIC)
def test_default_cfg_describes_the_model(name):
    with torch.device("meta"):
        model = timm.create_model(name).eval()
    _cfg_sanity(name, model)
    # pool_size is the forward_features map at input_size (meta tensors: shapes only, no compute)
    if model_entry(name).task not in ("classification", "video"):
        return
    x = torch.empty(1, *model.pretrained_cfg["input_size"], device="meta")
    try:
        feats = model.forward_features(x)
    except NotImplementedError:  # an op without a meta kernel: the test models cover it for real
        return
    axes = (1, 2) if getattr(model, "output_fmt", "NCHW") == "NHWC" else tuple(range(2, feats.ndim))
    assert tuple(feats.shape[a] for a in axes) == tuple(model.pretrained_cfg["pool_size"])


@pytest.mark.parametrize("name", [n for n in TESTS if model_entry(n).task in ("classification", "video")])
def test_default_cfg_matches_a_forward_as_timm_checks_it(name):
    """timm's test_model_default_cfgs on the test model: unpooled features of pool_size, pre-logits of
    head_hidden_size, reset_classifier(0) pooled, reset_classifier(0, '') unpooled channels-first maps."""
    model = zoo.create_model(name).eval()
    _cfg_sanity(name, model)
    cfg = model.pretrained_cfg
    x = torch.randn(1, *cfg["input_size"])
    nhwc = getattr(model, "output_fmt", "NCHW") == "NHWC"
    with torch.no_grad():
        feats = model.forward_features(x)
        axes = (1, 2) if nhwc else tuple(range(2, feats.ndim))
        assert tuple(feats.shape[a] for a in axes) == tuple(cfg["pool_size"])
        assert feats.shape[-1 if nhwc else 1] == model.num_features
        assert model.forward_head(feats, pre_logits=True).shape == (1, model.head_hidden_size)
        model.reset_classifier(0)
        assert model(x).shape == (1, model.head_hidden_size)
        model.reset_classifier(0, "")
        out = model(x)
    assert out.ndim == x.ndim and tuple(out.shape[a] for a in axes) == tuple(cfg["pool_size"])


@pytest.mark.parametrize("name", [n for n in TESTS if model_entry(n).task == "video"])
def test_video_cfg_gives_the_clip_to_timm_data(name):
    model = zoo.create_model(name)
    size = tuple(timm.models.get_pretrained_cfg(name).input_size)
    assert len(size) == 4 and model.pretrained_cfg["input_size"] == size
    assert zoo.registry.input_shape(name) == size
    data = timm.data.resolve_data_config(model=model)
    assert data["input_size"] == size
    frame = timm.data.create_transform(**data)  # applied per frame: the (H, W) part of the clip size
    from PIL import Image
    assert tuple(frame(Image.new("RGB", (97, 80))).shape) == (size[0],) + size[2:]


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


@pytest.mark.parametrize("name,size", TEST_CASES, ids=_ids(TEST_CASES))
def test_fx_traced_model_equals_eager(name, size):
    """Symbolic tracing (torchvision feature extraction, timm's feature_cls='fx') works on every model
    and the traced graph computes exactly what the model computes, at every test size."""
    from torchvision.models.feature_extraction import get_graph_node_names

    model = zoo.create_model(name).eval()
    get_graph_node_names(model)  # plain torchvision, without timm's leaf lists
    x = _make_input(name, size, batch=1)
    with torch.inference_mode():
        ref = model(x)
        traced = _fx_model(model)
        out = next(iter(traced(x).values()))
    assert torch.equal(out, ref), f"{name}: traced output differs by {(out - ref).abs().max():.3g}"


@pytest.mark.parametrize("name", TESTS)
def test_fx_traced_model_trains(name):
    model = zoo.create_model(name).train()
    traced = _fx_model(model)
    out = next(iter(traced(_make_input(name, model_entry(name).test_sizes[0])).values()))
    out.float().square().mean().backward()
    allowed = tuple(getattr(model, "no_grad_params", ()))
    missing = [n for n, p in traced.named_parameters()
               if p.grad is None and not any(fnmatch.fnmatchcase(n, pat) for pat in allowed)]
    assert not missing, f"{name}: no gradient reached {missing[:5]} through the traced graph"


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


# ---------------------------------------------------------------------------------------------
# what timm 1.0.31's own tests/test_models.py checks beyond the above (issue 20), offline and cheap:
# the factory's device=/dtype= arguments, the API the optimizer factory reads, a new classifier that
# joins the model where it is, and prune_intermediate_layers' contract

# the families' test models (not the toy family of tests/toy_models.py, a fixture of the CLI/registry tests)
FAMILY_TESTS = [n for n in TESTS if model_entry(n).family != TOY_FAMILY]


def _floating(t):
    return t.is_floating_point()


@pytest.mark.parametrize("name", FAMILY_TESTS)
def test_factory_device_and_dtype_arguments(name):
    """timm.create_model(name, device=, dtype=) as timm passes them (its test_model_default_cfgs builds on
    meta this way): every parameter and buffer on that device, floating ones in that dtype."""
    model = timm.create_model(name, device="meta", dtype=torch.float64)
    tensors = [*model.named_parameters(), *model.named_buffers()]
    assert not [n for n, t in tensors if t.device.type != "meta"], f"{name}: tensors off the device"
    assert not [n for n, t in tensors if _floating(t) and t.dtype != torch.float64], f"{name}: tensors not float64"
    model = zoo.create_model(name, device="meta")
    assert all(p.is_meta for p in model.parameters())
    with pytest.raises(TypeError, match=name):
        timm.create_model(name, device="meta", dtype=torch.int64)


@pytest.mark.parametrize("name", FAMILY_TESTS)
def test_api_the_optimizer_factory_reads(name):
    """timm's _assert_model_api_contract: unknown arguments raise TypeError; reset_classifier keeps the
    pooling by default; group_matcher splits the parameters; every no_weight_decay entry names one."""
    import inspect

    from timm.models._manipulate import group_parameters

    with pytest.raises(TypeError):
        timm.create_model(name, device="meta", not_a_model_arg=1)
    model = timm.create_model(name, device="meta")
    param = inspect.signature(model.reset_classifier).parameters.get("global_pool")
    assert param is None or param.default is None, f"{name}: reset_classifier global_pool={param.default!r}"
    names = [n for n, _ in model.named_parameters()]
    groups = group_parameters(model, model.group_matcher(coarse=False), reverse=True)
    assert len(set(groups.values())) > 1, f"{name}: group_matcher puts every parameter in one group"
    for pattern in model.no_weight_decay():
        assert any(fnmatch.fnmatch(n, pattern) for n in names) or _optional_attr(model, pattern) is None, \
            f"{name}: no_weight_decay entry {pattern!r} matches no parameter"


def _optional_attr(model, pattern):
    obj = model
    for attr in pattern.split("."):
        obj = getattr(obj, attr, None)
        if obj is None:
            return None
    return obj


@pytest.mark.parametrize("name", [n for n in FAMILY_TESTS if model_entry(n).task in ("classification", "video", "dense")])
def test_new_classifier_joins_the_model_where_it_is(name):
    """reset_classifier builds the new head on the model's device and dtype, in the model's train/eval
    mode, and keeps a frozen model frozen (timm's test_model_default_cfgs helpers)."""
    model = timm.create_model(name, device="meta").eval().to(dtype=torch.float64)
    model.reset_classifier(0)
    model.reset_classifier(2)
    head = model.get_classifier()
    params = [p for h in (head if isinstance(head, (tuple, list)) else (head,)) for p in h.parameters()]
    assert params and all(p.is_meta and p.dtype == torch.float64 for p in params), \
        f"{name}: new classifier on {[(p.device.type, p.dtype) for p in params]}"
    assert not [n for n, m in model.named_modules() if m.training], f"{name}: new modules in train mode"
    model = timm.create_model(name, device="meta").requires_grad_(False)
    model.reset_classifier(0)
    model.reset_classifier(0, "")
    assert not [n for n, p in model.named_parameters() if p.requires_grad], f"{name}: frozen model unfrozen"


def _as_nchw(model, x):
    return x.permute(0, 3, 1, 2) if x.ndim == 4 and getattr(model, "output_fmt", "NCHW") == "NHWC" else x


@pytest.mark.parametrize("name", [n for n in FAMILY_TESTS if model_entry(n).supports_features])
def test_pruned_model_ends_at_the_tap_and_trains(name):
    """timm's test_prune_intermediate_layers_contract on the test model at its first test size: stop_early and
    pruned taps equal the full model's, a pruned model without its norm ends at the tap (forward_features),
    and every parameter left trains."""
    import copy

    torch.manual_seed(0)
    model = zoo.create_model(name).eval()
    x = _make_input(name, model_entry(name).test_sizes[0])
    n = len(model.feature_info)
    with torch.no_grad():
        taps = model.forward_intermediates(x, intermediates_only=True)
    for i in range(n):
        with torch.no_grad():
            tap = model.forward_intermediates(x, indices=[i], stop_early=True, intermediates_only=True)[0]
            torch.testing.assert_close(tap, taps[i], msg=f"{name}: stop_early tap {i}")
            pruned = copy.deepcopy(model)
            take = pruned.prune_intermediate_layers([i], prune_norm=True)
            tap = pruned.forward_intermediates(x, indices=take, intermediates_only=True)[0]
            torch.testing.assert_close(tap, taps[i], msg=f"{name}: pruned tap {i}")
            if i < n - 1:
                torch.testing.assert_close(_as_nchw(pruned, pruned.forward_features(x)), taps[i],
                                           msg=f"{name}: pruned to {i}, forward_features does not end at the tap")
        if i not in (0, n - 2):  # training a pruned model: the most pruned and the one-stage-short model suffice
            continue
        pruned.train()
        out = pruned.forward_intermediates(x, indices=take, intermediates_only=True) + [pruned.forward_features(x)]
        sum(o.float().sum() for o in out).backward()
        unused = [k for k, p in pruned.named_parameters() if p.requires_grad and p.grad is None]
        assert not unused, f"{name}: pruned to {i}, unused parameters {unused[:5]}"


@pytest.mark.parametrize("name", [n for n in FAMILY_TESTS if model_entry(n).supports_features])
def test_channels_last_maps_are_not_ambiguous_at_the_cfg_size(name):
    """timm's prune test tells an NHWC forward_features from an NCHW tap by shape alone: at the test model's
    cfg input_size no level may have H == W == C (then both layouts look alike)."""
    if getattr(timm.create_model(name, device="meta"), "output_fmt", "NCHW") != "NHWC":
        return
    model = timm.create_model(name, device="meta")
    size = model.pretrained_cfg["input_size"]
    for info in model.feature_info:
        side = -(-min(96, size[-1]) // info["reduction"])  # timm's suite runs test models at min(size, 96)
        assert not side == info["num_chs"], f"{name}: level {info['module']} is {side}x{side}x{info['num_chs']}"
