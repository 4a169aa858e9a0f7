"""MT-UNet: official parity, checkpoint conversion, the vectorised Gaussian axial attention against
the official loop, and the model contract on the tiny test model."""
import re

import pytest
import torch
import torch.nn.functional as F

import zoo
from zoo.models.mtunet import (
    DROPPED_OFFICIAL_KEYS, GaussianAxialAttention, LocalGlobalGaussianAttention, checkpoint_filter_fn,
    pad_bottom_right_corner)

from _shared import bundle_state_dict, load_bundle, manifest, tolerance

VARIANTS = {"mtunet.synapse": "mtunet/mtunet_synapse", "mtunet.acdc": "mtunet/mtunet_acdc"}


# ---------------------------------------------------------------------------------------------
# references: the official formulations, re-written as plainly as possible
# ---------------------------------------------------------------------------------------------
def gaussian_axial_loop(x, qkv_weight, qkv_bias, shift, bias):
    """The official axial Attention + GaussianTrans: one Python iteration per grid position."""
    b, h, w, c = x.shape
    q, k, v = F.linear(x, qkv_weight, qkv_bias).chunk(3, dim=-1)
    scores_x = q @ k.transpose(-1, -2)  # (b, h, w, w): row r, query col c, key col j
    scores_y = q.transpose(1, 2) @ k.transpose(1, 2).transpose(-1, -2)  # (b, w, h, h)
    out = torch.zeros_like(v)
    for r in range(h):
        for col in range(w):
            dis_x = torch.tensor([(j - col) ** 2 for j in range(w)], dtype=x.dtype)
            dis_y = torch.tensor([(i - r) ** 2 for i in range(h)], dtype=x.dtype)
            ax = torch.softmax(-(shift * dis_x + bias) + scores_x[:, r, col, :], dim=-1)
            ay = torch.softmax(-(shift * dis_y + bias) + scores_y[:, col, r, :], dim=-1)
            out[:, r, col, :] = ((ax.unsqueeze(-1) * v[:, r, :, :]).sum(-2)
                                 + (ay.unsqueeze(-1) * v[:, :, col, :]).sum(-2))
    return out


@pytest.mark.parametrize("size", [(7, 7), (4, 4), (2, 2), (3, 5)])
def test_gaussian_axial_attention_equals_official_loop(size):
    torch.manual_seed(0)
    attn = GaussianAxialAttention(16).double()
    with torch.no_grad():
        attn.shift.fill_(0.37)
        attn.bias.fill_(-1.3)
    x = torch.randn(2, *size, 16, dtype=torch.float64)
    ref = gaussian_axial_loop(x, attn.qkv.weight, attn.qkv.bias, attn.shift, attn.bias)
    torch.testing.assert_close(attn(x), ref, rtol=0, atol=1e-12)


def test_gaussian_bias_cancels_but_gets_a_gradient():
    torch.manual_seed(0)
    attn = GaussianAxialAttention(8).double()
    x = torch.randn(1, 3, 3, 8, dtype=torch.float64)
    y0 = attn(x)
    with torch.no_grad():
        attn.bias.add_(5.0)
    torch.testing.assert_close(attn(x), y0, rtol=0, atol=1e-12)
    attn(x).sum().backward()
    assert attn.bias.grad is not None and attn.shift.grad is not None


def test_window_padding_copies_only_the_bottom_right_corner():
    x = torch.arange(1, 1 + 2 * 3 * 3 * 2, dtype=torch.float64).reshape(2, 3, 3, 2)
    y = pad_bottom_right_corner(x, 1, 1)
    assert y.shape == (2, 4, 4, 2)
    torch.testing.assert_close(y[:, :3, :3], x)
    torch.testing.assert_close(y[:, 3, 3], x[:, 2, 2])
    assert (y[:, 3, :3] == 0).all() and (y[:, :3, 3] == 0).all()


def test_local_global_attention_on_non_divisible_map_keeps_the_size():
    attn = LocalGlobalGaussianAttention(16, num_heads=2, window_size=4)
    assert attn(torch.randn(1, 7, 10, 16)).shape == (1, 7, 10, 16)


# ---------------------------------------------------------------------------------------------
# official parameter counts and checkpoint layout
# ---------------------------------------------------------------------------------------------
def _meta_model(name, **kwargs):
    with torch.device("meta"):
        return zoo.create_model(name, **kwargs)


def _dropped_official_elems(name):
    """Official tensors the official forward never uses (not built by zoo) and their element count."""
    shapes = manifest(VARIANTS[name])["state_dict"]
    dropped = {k: s for k, s in shapes.items() if any(re.match(p, k) for p in DROPPED_OFFICIAL_KEYS)}
    n = 0
    for s in dropped.values():
        n += torch.Size(s).numel()
    return dropped, n


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_param_count_is_official_minus_the_unused_axial_output_linear(name):
    m = _meta_model(name)
    want = manifest(VARIANTS[name])["_meta"]["n_params"]
    dropped, n_dropped = _dropped_official_elems(name)
    # one global_atten.out Linear (weight + bias) per Mixed Transformer block: 2 x (2 encoder stages +
    # bottleneck + 2 decoder stages) = 10 blocks
    assert len(dropped) == 2 * 10 and all(k.endswith(("out.weight", "out.bias")) for k in dropped)
    assert sum(p.numel() for p in m.parameters()) + n_dropped == want
    entry = zoo.registry.model_entry(name)
    # one architecture, two tags: the registry records the default tag's (synapse) official count
    assert sum(entry.dropped_params.values()) == n_dropped
    if name == "mtunet.synapse":
        assert entry.official_params == want


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_checkpoint_filter_maps_every_official_key(name):
    m = _meta_model(name)
    shapes = manifest(VARIANTS[name])["state_dict"]
    official = {k: torch.zeros(s, device="meta") for k, s in shapes.items()}
    out = checkpoint_filter_fn({"state_dict": official}, m)
    ours = m.state_dict()
    assert sorted(out) == sorted(ours)
    assert not any("global_attn.out" in k for k in out)  # the unused official Linear is dropped
    assert all(out[k].shape == ours[k].shape for k in ours)
    # a no-op on zoo keys
    again = checkpoint_filter_fn(out, m)
    assert again.keys() == out.keys() and all(again[k] is out[k] for k in out)


def test_checkpoint_filter_resizes_the_position_embedding():
    m = _meta_model("mtunet.synapse", img_size=256)
    official = {k: torch.zeros(s, device="meta") for k, s in manifest(VARIANTS["mtunet.synapse"])["state_dict"].items()}
    out = checkpoint_filter_fn(official, m)
    assert out["stem.pos_embed"].shape == (1, 32 * 32, 256)


def test_wrong_size_is_a_clear_error():
    m = _meta_model("mtunet.synapse")
    with pytest.raises(ValueError, match=r"mtunet .*224, 224.*dynamic_img_size"):
        m(torch.zeros(1, 1, 256, 256, device="meta"))
    with pytest.raises(ValueError, match="mtunet "):
        m(torch.zeros(1, 2, 224, 224, device="meta"))


# ---------------------------------------------------------------------------------------------
# official parity (float64): the whole official model, weights regenerated from the recipe
# ---------------------------------------------------------------------------------------------
def bundle_model_args(meta):
    """(registered name, constructor overrides) of the zoo model with the parity bundle's official config."""
    return "mtunet.synapse", dict(num_classes=meta["official_kwargs"]["out_ch"])


@pytest.fixture(scope="module")
def parity():
    bundle = load_bundle("mtunet", "mtunet_full_synapse")
    with torch.device("meta"):  # skip the random init of 79M parameters: every tensor comes from the bundle
        model = zoo.create_model("mtunet.synapse", num_classes=bundle["meta"]["output_shape"][1])
    model.load_state_dict(checkpoint_filter_fn(bundle_state_dict(bundle), model), strict=True, assign=True)
    model = model.double().eval()
    assert not any(t.is_meta for t in list(model.parameters()) + list(model.buffers()))
    return bundle, model


def test_parity_output_and_bottleneck(parity):
    bundle, model = parity
    x = torch.from_numpy(bundle["input"])
    assert x.shape[1] == 1  # the official model repeats a 1-channel slice to 3 channels
    with torch.no_grad():
        final, feats = model.forward_intermediates(x)
        out = model.forward_head(final)
    tol = tolerance(bundle)
    assert (out - torch.from_numpy(bundle["output"])).abs().max().item() <= tol
    bottleneck = feats[-1].flatten(2).transpose(1, 2)  # official layout (B, 49, 1024)
    assert (bottleneck - torch.from_numpy(bundle["features"]["bottleneck"])).abs().max().item() <= tol
    assert [f.shape[-1] for f in feats] == [224, 112, 56, 28, 14, 7]


# ---------------------------------------------------------------------------------------------
# the contract on the test model
# ---------------------------------------------------------------------------------------------
TEST_SIZES = [(64, 64), (50, 70)]


@pytest.mark.parametrize("size", TEST_SIZES)
def test_test_model_forward_backward_reaches_every_param(size):
    torch.manual_seed(0)
    m = zoo.create_model("test_mtunet")
    x = torch.randn(2, 3, *size)
    y = m(x)
    assert y.shape == (2, m.num_classes, *size)
    y.square().mean().backward()
    assert [n for n, p in m.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("size", TEST_SIZES)
def test_test_model_features_are_nchw_encoder_levels(size):
    m = zoo.create_model("test_mtunet", features_only=True)
    feats = m(torch.randn(2, 3, *size))
    info = m.feature_info
    assert [i["reduction"] for i in info.get_dicts()] == [1, 2, 4, 8, 16, 32]
    assert len(feats) == len(info.channels())
    for f, c, r in zip(feats, info.channels(), info.reduction()):
        assert f.shape[1] == c
        assert abs(f.shape[2] - size[0] / r) <= 1 and abs(f.shape[3] - size[1] / r) <= 1


def test_test_model_intermediates_and_one_channel_input():
    torch.manual_seed(0)
    m = zoo.create_model("test_mtunet").eval()
    x = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        final, feats = m.forward_intermediates(x)
        torch.testing.assert_close(final, m.forward_features(x))
        torch.testing.assert_close(m(x), m(x.repeat(1, 3, 1, 1)))
        only = m.forward_intermediates(x, indices=[1, 3], intermediates_only=True)
    assert len(only) == 2 and only[1].shape == feats[3].shape
    m1 = zoo.create_model("test_mtunet", in_chans=1)
    assert m1(x).shape == (1, 4, 64, 64)


def test_test_model_rejects_bad_input():
    m = zoo.create_model("test_mtunet")
    with pytest.raises(ValueError, match="test_mtunet"):
        m(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="test_mtunet"):
        m(torch.randn(1, 2, 64, 64))
    with pytest.raises(TypeError, match="test_mtunet"):
        m(torch.zeros(1, 3, 64, 64, dtype=torch.long))
    fixed = zoo.create_model("test_mtunet", dynamic_img_size=False)
    with pytest.raises(ValueError, match="test_mtunet.*dynamic_img_size"):
        fixed(torch.randn(1, 3, 50, 70))


def test_test_model_grad_checkpointing_and_reset():
    m = zoo.create_model("test_mtunet")
    m.set_grad_checkpointing()
    m(torch.randn(1, 3, 64, 64)).mean().backward()
    m.reset_classifier(2)
    assert m(torch.randn(1, 3, 64, 64)).shape == (1, 2, 64, 64)
    assert m.forward_head(m.forward_features(torch.randn(1, 3, 64, 64)), pre_logits=True).shape[1] == m.num_features


def _with_bn_statistics(m):
    torch.manual_seed(1)
    for mod in m.modules():  # non-trivial BN statistics
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
    return m


def test_eval_forward_calls_every_parameter_owning_module():
    """One code path in train and eval: no module is computed around through its weights."""
    m = _with_bn_statistics(zoo.create_model("test_mtunet"))
    owners = {n for n, mod in m.named_modules() if any(True for _ in mod.parameters(recurse=False))}
    for mode in (True, False):
        m.train(mode)
        called = set()
        handles = [mod.register_forward_hook(lambda mod, i, o, n=n: called.add(n))
                   for n, mod in m.named_modules() if n in owners]
        with torch.no_grad():
            m(torch.randn(1, 3, 50, 70))
        for h in handles:
            h.remove()
        assert owners - called == set(), f"train={mode}: {sorted(owners - called)[:5]}"


def test_fuse_folds_batchnorm_and_keeps_the_output():
    torch.manual_seed(0)
    m = _with_bn_statistics(zoo.create_model("test_mtunet")).eval()
    x = torch.randn(1, 3, 50, 70)
    with torch.no_grad():
        ref = m(x)
        fused = m.fuse()
        assert fused is m and not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.modules())
        torch.testing.assert_close(m(x), ref, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="eval"):
        zoo.create_model("test_mtunet").fuse()
