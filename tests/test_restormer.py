"""Restormer: official parity, checkpoint conversion, any-size input, tiled restore, errors."""
import re

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.layers import LayerNorm2d

import zoo
from zoo.layers.ffn import GatedDconvFFN
from zoo.models.restormer import MultiDconvHeadTransposedAttention, Restormer, checkpoint_filter_fn
from zoo.registry import model_entry
from zoo.restore import restore, tile_starts

from _shared import bundle_state_dict, load_bundle, manifest, tolerance

VARIANTS = {
    "restormer.rain13k": "restormer/deraining",
    "restormer.gopro": "restormer/motion_deblurring",
    "restormer.dpdd": "restormer/single_image_defocus_deblurring",
    "restormer_dual_pixel.dpdd": "restormer/dual_pixel_defocus_deblurring",
    "restormer_bias_free.sidd": "restormer/real_denoising",
    "restormer_bias_free.blind": "restormer/gaussian_color_denoising",
    "restormer_bias_free_gray.blind": "restormer/gaussian_gray_denoising",
}
BUNDLES = ["restormer_micro_withbias", "restormer_micro_biasfree", "restormer_micro_dualpixel"]


def _zoo_kwargs(official):
    """The zoo constructor arguments equivalent to the official Restormer(**kwargs)."""
    return dict(
        in_chans=official["inp_channels"], out_chans=official["out_channels"], embed_dim=official["dim"],
        depths=official["num_blocks"], num_refinement_blocks=official["num_refinement_blocks"],
        num_heads=official["heads"], ffn_expansion_factor=official["ffn_expansion_factor"],
        bias=official["bias"], norm_bias=official["LayerNorm_type"] == "WithBias",
        dual_pixel_task=official["dual_pixel_task"])


def bundle_model_args(meta):
    """(registered name, constructor overrides) of the zoo model with a parity bundle's official config."""
    return "test_restormer", _zoo_kwargs(meta["official_kwargs"])


def _to_official_keys(state_dict):
    return {re.sub(r"\.(norm[12])\.", r".\1.body.", k): v for k, v in state_dict.items()}


def _test_model(**kwargs):
    torch.manual_seed(0)
    m = zoo.create_model("test_restormer", **kwargs).eval()
    with torch.no_grad():  # non-trivial temperatures and norms
        for n, p in m.named_parameters():
            if n.endswith("temperature") or ".norm" in n:
                p.add_(torch.rand_like(p) * 0.5)
    return m


# ---------------------------------------------------------------- registry / param counts

@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variant_has_official_param_count_on_meta(name):
    meta = manifest(VARIANTS[name])["_meta"]
    assert model_entry(name).official_params == meta["n_params"]
    with torch.device("meta"):
        m = zoo.create_model(name)
    assert sum(p.numel() for p in m.parameters()) == meta["n_params"]
    kw = _zoo_kwargs(meta["official_kwargs"])
    assert (m.in_chans, m.out_chans, m.dual_pixel_task) == (kw["in_chans"], kw["out_chans"], kw["dual_pixel_task"])
    # WithBias: timm's LayerNorm2d (eps 1e-5); BiasFree: weight only
    norm = m.latent[0].norm1
    assert isinstance(norm, LayerNorm2d) if kw["norm_bias"] else [n for n, _ in norm.named_parameters()] == ["weight"]
    assert norm.eps == 1e-5


@pytest.mark.parametrize("name", sorted(VARIANTS))
@pytest.mark.parametrize("wrapped", [False, True])
def test_checkpoint_filter_maps_every_official_key(name, wrapped):
    official = {k: torch.empty(s, device="meta") for k, s in manifest(VARIANTS[name])["state_dict"].items()}
    with torch.device("meta"):
        m = zoo.create_model(name)
    ckpt = {"params": official} if wrapped else official  # released files are torch.load(f)['params']
    converted = checkpoint_filter_fn(ckpt, m)
    expected = m.state_dict()
    assert set(converted) == set(expected), (set(converted) ^ set(expected))
    for k, v in converted.items():
        assert v.shape == expected[k].shape, k
    # a no-op on zoo keys
    assert list(checkpoint_filter_fn(expected, m)) == list(expected)


def test_pretrained_cfgs_name_official_releases_and_metrics():
    tags = set(timm.list_pretrained("restormer*"))
    expected = {
        "restormer.rain13k", "restormer.gopro", "restormer.dpdd", "restormer_dual_pixel.dpdd", "restormer_bias_free.sidd",
    } | {f"restormer_bias_free{c}.{t}" for c in ("", "_gray") for t in ("blind", "sigma15", "sigma25", "sigma50")}
    assert expected <= tags
    for name_tag in expected:
        name, tag = name_tag.split(".")
        cfg = timm.models.get_pretrained_cfg(name_tag).to_dict()
        assert cfg["url"].startswith("https://github.com/swz30/Restormer/releases/download/v1.0/"), name_tag
        assert cfg["url"].endswith(".pth")
        assert cfg["license"] and cfg["paper_ids"] == "arXiv:2111.09881" and cfg["origin_url"]
        assert model_entry(name).reported[tag]["metric"] == "psnr"
    assert timm.models.get_pretrained_cfg("restormer_bias_free_gray.sigma50").url.endswith(
        "gaussian_gray_denoising_sigma50.pth")
    assert timm.models.get_pretrained_cfg("restormer_dual_pixel.dpdd").input_size[0] == 6


# ---------------------------------------------------------------- official parity

def naive_mdta(m: MultiDconvHeadTransposedAttention, x: torch.Tensor) -> torch.Tensor:
    """MDTA as the paper writes it: per-head channel groups, L2-normalised Q and K over the pixels,
    an explicit (C/h x C/h) softmax(Q K^T * temperature) matrix, then V."""
    B, C, H, W = x.shape
    h = m.num_heads
    q, k, v = (t.reshape(B, h, C // h, H * W) for t in m.qkv_dwconv(m.qkv(x)).chunk(3, dim=1))
    q, k = F.normalize(q, dim=-1), F.normalize(k, dim=-1)
    attn = torch.softmax(q @ k.transpose(-2, -1) * m.temperature, dim=-1)
    return m.project_out((attn @ v).reshape(B, C, H, W))


@pytest.mark.parametrize("dim,heads,size", [(8, 1, (16, 16)), (24, 4, (9, 13)), (16, 2, (1, 5))])
def test_mdta_matches_the_naive_formulation(dim, heads, size):
    torch.manual_seed(0)
    m = MultiDconvHeadTransposedAttention(dim, heads, bias=True).double().eval()
    with torch.no_grad():
        m.temperature.uniform_(0.5, 2.0)
        x = torch.randn(2, dim, *size, dtype=torch.float64)
        assert (m(x) - naive_mdta(m, x)).abs().max().item() < 1e-12


@pytest.mark.parametrize("chunked_ffn", [False, True], ids=["plain", "chunked"])
@pytest.mark.parametrize("case", BUNDLES)
def test_parity_with_official_bundle(case, chunked_ffn):
    b = load_bundle("restormer", case)
    m = Restormer(**_zoo_kwargs(b["meta"]["official_kwargs"])).double().eval()
    for mod in m.modules():  # the low-memory GDFN path normally starts at 128x128 maps
        if isinstance(mod, GatedDconvFFN):
            mod.chunk_min_pixels = 0 if chunked_ffn else None
    m.load_state_dict(checkpoint_filter_fn(bundle_state_dict(b), m), strict=True)
    captured = {}
    for name in b["meta"].get("features", {}):
        getattr(m, name).register_forward_hook(lambda mod, i, o, name=name: captured.__setitem__(name, o))
    with torch.no_grad():
        out = m(torch.from_numpy(b["input"]))
    tol = tolerance(b)
    assert (out - torch.from_numpy(b["output"])).abs().max().item() <= tol
    for name in b["meta"].get("features", {}):
        assert (captured[name] - torch.from_numpy(b["features"][name])).abs().max().item() <= tol, name


def test_official_checkpoint_file_loads_through_create_model(tmp_path):
    src = _test_model()
    path = tmp_path / "official.pth"
    torch.save({"params": _to_official_keys(src.state_dict())}, path)
    m = zoo.create_model("test_restormer", checkpoint_path=path).eval()
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        assert torch.equal(m(x), src(x))


# ---------------------------------------------------------------- any size, channels, errors

@pytest.mark.parametrize("size", [(27, 45), (16, 16), (5, 3), (4, 9), (1, 1)])
def test_any_size_pads_reflect_and_crops_like_the_official_script(size):
    m = _test_model().double()
    x = torch.rand(2, 3, *size, dtype=torch.float64)
    with torch.no_grad():
        y = m(x)
        assert y.shape == x.shape
        H, W = size
        ph, pw = (-H) % 8, (-W) % 8
        if ph < H and pw < W:  # the official test scripts: reflect-pad, model, crop
            ref = m(F.pad(x, (0, pw, 0, ph), mode="reflect"))[..., :H, :W]
            assert (y - ref).abs().max().item() < 1e-12


def test_gray_and_in_chans_1_models_run():
    m = _test_model(in_chans=1)
    with torch.no_grad():
        assert m(torch.rand(1, 1, 20, 12)).shape == (1, 1, 20, 12)


def test_wrong_input_raises_clear_errors():
    with torch.device("meta"):
        gray = zoo.create_model("restormer_bias_free_gray.blind")
        dual = zoo.create_model("restormer_dual_pixel.dpdd")
    with pytest.raises(ValueError, match=r"restormer_bias_free_gray.*1 channels"):
        gray(torch.empty(1, 3, 16, 16, device="meta"))
    with pytest.raises(ValueError, match=r"restormer_dual_pixel.*6 channels"):
        dual(torch.empty(1, 3, 16, 16, device="meta"))
    with pytest.raises(ValueError, match="restormer_bias_free_gray"):
        gray(torch.empty(1, 16, 16, device="meta"))
    with pytest.raises(TypeError, match="restormer_bias_free_gray"):
        gray(torch.zeros(1, 1, 16, 16, dtype=torch.uint8, device="meta"))
    with pytest.raises(ValueError, match="num_classes"):
        zoo.create_model("test_restormer", num_classes=10)
    with pytest.raises(ValueError, match="out_chans"):
        Restormer(in_chans=3, out_chans=1)


def test_output_is_not_clamped():
    m = _test_model()
    with torch.no_grad():
        y = m(torch.full((1, 3, 8, 8), 0.999))
    assert (y > 1).any() or (y < 0).any()


def test_dual_pixel_has_no_image_residual():
    m = Restormer(in_chans=6, embed_dim=4, depths=(1, 1, 1, 1), num_refinement_blocks=1, num_heads=(1, 1, 1, 1),
                  dual_pixel_task=True).eval()
    for p in m.parameters():
        torch.nn.init.zeros_(p)
    with torch.no_grad():
        y = m(torch.rand(1, 6, 16, 16))
    assert y.shape == (1, 3, 16, 16) and torch.count_nonzero(y) == 0


def test_forward_intermediates_and_grad_checkpointing():
    m = _test_model()
    x = torch.rand(2, 3, 27, 45)
    final, inter = m.forward_intermediates(x)
    assert torch.equal(final, m.forward_features(x))
    assert final.shape == (2, 16, 27, 45)
    assert [t.shape[1:] for t in inter] == [(8, 27, 45), (16, 14, 23), (32, 7, 12), (64, 4, 6)]
    assert len(m.forward_intermediates(x, indices=[3], intermediates_only=True)) == 1
    m.train()
    m.set_grad_checkpointing()
    y = m(x)
    y.mean().backward()
    assert all(p.grad is not None for p in m.parameters())


# ---------------------------------------------------------------- tiled restore

def _naive_official_tiling(model, img, tile, overlap):
    """The official demo.py loop written out: pad to 8, tiles, sum / coverage, clamp, crop."""
    H, W = img.shape[-2:]
    x = F.pad(img, (0, (-W) % 8, 0, (-H) % 8), mode="reflect")
    h, w = x.shape[-2:]
    tile = min(tile, h, w)
    stride = tile - overlap
    acc = torch.zeros(img.shape[0], 3, h, w, dtype=img.dtype)
    cov = torch.zeros_like(acc)
    for i in list(range(0, h - tile, stride)) + [h - tile]:
        for j in list(range(0, w - tile, stride)) + [w - tile]:
            out = model(x[..., i:i + tile, j:j + tile])
            acc[..., i:i + tile, j:j + tile] += out
            cov[..., i:i + tile, j:j + tile] += torch.ones_like(out)
    return torch.clamp(acc / cov, 0, 1)[..., :H, :W]


def test_tiled_equals_untiled_when_the_image_fits_one_tile():
    m = _test_model().double()
    x = torch.rand(1, 3, 37, 38, dtype=torch.float64)  # padded to 40 x 40: one 40-pixel tile
    whole = restore(m, x)
    tiled = restore(m, x, tile=64, tile_overlap=16)
    assert whole.shape == x.shape
    assert (tiled - whole).abs().max().item() < 1e-12


def test_tiled_blending_is_sum_over_coverage_like_the_official_script():
    m = _test_model().double()
    x = torch.rand(2, 3, 45, 61, dtype=torch.float64)
    with torch.no_grad():
        ref = _naive_official_tiling(m, x, tile=24, overlap=8)
    got = restore(m, x, tile=24, tile_overlap=8)
    assert (got - ref).abs().max().item() < 1e-12


def test_tiled_equals_untiled_for_a_pixelwise_model():
    # a model without spatial context: any tiling must give back exactly the untiled result
    conv = torch.nn.Conv2d(3, 3, 1).double()
    x = torch.rand(1, 3, 50, 70, dtype=torch.float64)
    whole = restore(conv, x, clamp=False)
    for tile, overlap in [(16, 0), (16, 4), (24, 20), (8, 7)]:
        assert (restore(conv, x, tile=tile, tile_overlap=overlap, clamp=False) - whole).abs().max().item() < 1e-12


def test_restore_options_and_errors():
    m = _test_model()
    x = torch.rand(3, 20, 20)
    y = restore(m, x, clamp=False)
    assert y.shape == x.shape and not y.requires_grad
    assert restore(m, x).min() >= 0 and restore(m, x).max() <= 1
    assert tile_starts(40, 16, 12) == [0, 12, 24]
    assert tile_starts(16, 16, 8) == [0]
    with pytest.raises(ValueError, match="multiple of 8"):
        restore(m, x, tile=12)
    with pytest.raises(ValueError, match="tile_overlap"):
        restore(m, x, tile=16, tile_overlap=16)
    with pytest.raises(TypeError):
        restore(m, torch.zeros(3, 8, 8, dtype=torch.uint8))
