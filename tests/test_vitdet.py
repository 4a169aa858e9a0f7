"""ViTDet: parameter counts, checkpoint layouts (detectron2, MAE, HF, iBOT), parity bundles, contract."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import timm
import torch

import zoo
from zoo.layers.rel_pos import get_rel_pos, resize_decomposed_rel_pos
from zoo.models.vitdet import VitDetAttention, checkpoint_filter_fn
from _shared import bundle_state_dict, load_bundle, manifest, tolerance

VARIANTS = {
    "vitdet_base_patch16": "vitdet/vitdet_b_backbone_sfp",
    "vitdet_large_patch16": "vitdet/vitdet_l_backbone_sfp",
    "vitdet_huge_patch16": "vitdet/vitdet_h_backbone_sfp",
}


def _n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _meta_state_dict(shapes, prefix=""):
    return {prefix + k: torch.empty(v, device="meta") for k, v in shapes.items()}


def bundle_model_args(meta):
    """(registered name, constructor overrides) of the zoo model with a parity bundle's official config:
    the detectron2 backbone is trunk + simple feature pyramid, so the pyramid is built too."""
    kw = meta["official_kwargs"]
    net = kw["net"]["kwargs"]
    glob = tuple(sorted(set(range(net["depth"])) - set(net["window_block_indexes"])))
    return "test_vitdet", dict(img_size=net["img_size"], embed_dim=net["embed_dim"], depth=net["depth"],
                               num_heads=net["num_heads"], window_size=net["window_size"],
                               global_block_indexes=glob, pyramid=True, pyramid_channels=kw["out_channels"])


def _bundle_model(bundle, **kwargs):
    """The zoo model (trunk, or with ``pyramid=True`` trunk + pyramid) with the bundle's official
    configuration, float64, eval."""
    name, model_args = bundle_model_args(bundle["meta"])
    return zoo.create_model(name, **dict(model_args, **kwargs)).double().eval()


# ---------------------------------------------------------------------------------------------------
# parameter counts


@pytest.mark.parametrize("name", list(VARIANTS))
def test_param_count_trunk_plus_pyramid_equals_manifest(name):
    meta = manifest(VARIANTS[name])["_meta"]
    with torch.device("meta"):
        model = zoo.create_model(name)  # the registered model is the trunk
        features = zoo.create_model(name, features_only=True)
        pyramid = features.model.pyramid if hasattr(features, "model") else features.pyramid
    assert model.pyramid is None
    assert _n_params(model) == meta["n_params_vit_only"]
    assert _n_params(model) + _n_params(pyramid) == meta["n_params"] == zoo.registry.model_entry(name).official_params
    assert _n_params(features) == meta["n_params"]
    assert zoo.registry.model_entry(name).dropped_params == {"simfp_*": _n_params(pyramid)}


@pytest.mark.parametrize("name", list(VARIANTS))
def test_features_only_is_the_pyramid_with_strides_4_to_64(name):
    with torch.device("meta"):
        features = zoo.create_model(name, features_only=True)
    assert features.feature_info.reduction() == [4, 8, 16, 32, 64]
    assert features.feature_info.channels() == [256] * 5


# ---------------------------------------------------------------------------------------------------
# checkpoint layouts


@pytest.mark.parametrize("name", list(VARIANTS))
@pytest.mark.parametrize("prefix", ["", "backbone."])
def test_filter_maps_every_detectron2_key(name, prefix):
    shapes = manifest(VARIANTS[name])["state_dict"]
    with torch.device("meta"):
        model = zoo.create_model(name, pyramid=True)
        trunk = zoo.create_model(name)
    sd = checkpoint_filter_fn(_meta_state_dict(shapes, prefix), model)
    target = model.state_dict()
    assert set(sd) == set(target)
    assert all(sd[k].shape == target[k].shape for k in sd)
    assert len(sd) == len(shapes)  # nothing filled in: every tensor came from the checkpoint
    # the trunk model takes the trunk part and drops the pyramid
    sd = checkpoint_filter_fn(_meta_state_dict(shapes, prefix), trunk)
    assert set(sd) == set(trunk.state_dict()) and not any(k.startswith("pyramid.") for k in sd)


def test_filter_drops_detector_heads_of_a_full_detectron2_checkpoint():
    shapes = manifest("vitdet/mask_rcnn_vitdet_b_full_model")["state_dict"]
    with torch.device("meta"):
        model = zoo.create_model("vitdet_base_patch16", pyramid=True)
        trunk = zoo.create_model("vitdet_base_patch16")
    sd = checkpoint_filter_fn({"model": _meta_state_dict(shapes)}, model)
    assert set(sd) == set(model.state_dict())
    sd = checkpoint_filter_fn({"model": _meta_state_dict(shapes)}, trunk)
    assert set(sd) == set(trunk.state_dict())


@pytest.mark.parametrize("name,timm_name", [
    ("vitdet_base_patch16", "vit_base_patch16_224.mae"),
    ("vitdet_large_patch16", "vit_large_patch16_224.mae"),
])
def test_filter_maps_mae_hub_keys_with_zero_rel_pos(name, timm_name):
    import timm

    with torch.device("meta"):
        mae = timm.create_model(timm_name)
        model = zoo.create_model(name, pyramid=False)
    sd = checkpoint_filter_fn(mae.state_dict(), model)
    target = model.state_dict()
    assert set(sd) == set(target)
    assert all(sd[k].shape == target[k].shape for k in sd)
    rel = [k for k in target if "rel_pos" in k]
    assert len(rel) == 2 * len(model.blocks)
    # every other tensor came from the MAE checkpoint
    assert len(target) - len(rel) == len([k for k in mae.state_dict() if k not in ("cls_token", "norm.weight",
                                                                                   "norm.bias")])


def _tiny_vit_state_dict(patch_size=16, embed_dim=32, depth=4, num_heads=2):
    import timm

    vit = timm.models.VisionTransformer(
        img_size=224, patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
        num_classes=0, global_pool="token")
    return vit.state_dict()


def test_filter_loads_mae_vit_h_patch14_by_resampling_kernel_and_grid():
    # ViT-H MAE is patch 14 (16x16 grid): the kernel goes 14 -> 16 and the grid 16x16 -> 14x14
    sd = _tiny_vit_state_dict(patch_size=14)
    assert sd["patch_embed.proj.weight"].shape[-1] == 14 and sd["pos_embed"].shape[1] == 257
    model = zoo.create_model("test_vitdet", pyramid=True)
    missing = model.load_state_dict(checkpoint_filter_fn({"model": sd}, model), strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    assert model.patch_embed.proj.weight.shape[-1] == 16
    assert torch.all(model.blocks[0].attn.rel_pos_h == 0)


def test_filter_loads_ibot_teacher_with_prefixes():
    sd = _tiny_vit_state_dict()
    teacher = {f"module.backbone.{k}": v for k, v in sd.items()}
    teacher["module.backbone.masked_embed"] = torch.zeros(32)
    teacher["module.head.mlp.0.weight"] = torch.zeros(8, 32)
    student = {k: torch.full_like(v, 7.0) for k, v in teacher.items()}
    model = zoo.create_model("test_vitdet", pyramid=False)
    out = checkpoint_filter_fn({"teacher": teacher, "student": student, "epoch": 3}, model)
    model.load_state_dict(out, strict=True)
    assert torch.equal(model.blocks[1].attn.qkv.weight, sd["blocks.1.attn.qkv.weight"])


def test_filter_keeps_the_trunk_of_a_checkpoint_with_another_pyramid_width():
    source = zoo.create_model("test_vitdet", pyramid=True)
    model = zoo.create_model("test_vitdet", pyramid=True, pyramid_channels=8)
    model.load_state_dict(checkpoint_filter_fn(source.state_dict(), model), strict=True)
    assert torch.equal(model.blocks[3].attn.rel_pos_h, source.blocks[3].attn.rel_pos_h)


def test_filter_is_a_noop_on_zoo_state_dicts():
    model = zoo.create_model("test_vitdet", num_classes=3)
    sd = model.state_dict()
    out = checkpoint_filter_fn(sd, model)
    assert list(out) == list(sd)
    assert all(out[k] is sd[k] for k in sd)


def test_hf_transformers_vitdet_backbone_converts_and_matches():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.VitDetConfig(
        hidden_size=32, num_hidden_layers=4, num_attention_heads=2, image_size=64, pretrain_image_size=224,
        window_block_indices=[0, 2], window_size=3, use_relative_position_embeddings=True,
        out_features=["stage4"])
    torch.manual_seed(0)
    hf = transformers.VitDetBackbone(cfg).double().eval()
    with torch.no_grad():  # HF initializes the tables to zero: give them values so they are tested
        for n, p in hf.named_parameters():
            if "rel_pos" in n:
                p.normal_()
    model = zoo.create_model("test_vitdet", img_size=64, global_block_indexes=(1, 3), pyramid=False).double().eval()
    model.load_state_dict(checkpoint_filter_fn(hf.state_dict(), model), strict=True)
    x = torch.randn(2, 3, 80, 112, dtype=torch.float64)
    with torch.no_grad():
        want = hf(x).feature_maps[-1]
        got = model(x)
    assert (got - want).abs().max().item() < 1e-8


# ---------------------------------------------------------------------------------------------------
# official parity


@pytest.mark.parametrize("case", ["vitdet_micro", "vitdet_micro_pad"])
def test_parity_bundle_trunk_and_pyramid(case):
    bundle = load_bundle("vitdet", case)
    model = _bundle_model(bundle)
    model.load_state_dict(checkpoint_filter_fn(bundle_state_dict(bundle), model), strict=True)
    x = torch.from_numpy(bundle["input"])
    with torch.no_grad():
        final, levels = model.forward_intermediates(x)
    ours = dict(zip(["p2", "p3", "p4", "p5", "p6"], levels), **{"net.last_feat": final})
    assert set(bundle["features"]) == set(ours)
    for k, v in bundle["features"].items():
        assert ours[k].shape == v.shape, k
        assert (ours[k] - torch.from_numpy(v)).abs().max().item() <= tolerance(bundle), k
    with torch.no_grad():
        assert (final - model(x)).abs().max().item() <= tolerance(bundle)
    # the registered trunk model, loaded from the same detectron2 state dict (pyramid dropped)
    trunk = _bundle_model(bundle, pyramid=False)
    trunk.load_state_dict(checkpoint_filter_fn(bundle_state_dict(bundle), trunk), strict=True)
    with torch.no_grad():
        got = trunk(x)
    assert (got - torch.from_numpy(bundle["features"]["net.last_feat"])).abs().max().item() <= tolerance(bundle)


def test_detectron2_pkl_loads_through_the_numpy_unpickler(tmp_path):
    bundle = load_bundle("vitdet", "vitdet_micro")
    path = tmp_path / "model_final_test.pkl"
    payload = {"model": {f"backbone.{k}": np.asarray(v) for k, v in bundle["state_dict"].items()},
               "__author__": "Detectron2 Model Zoo", "matching_heuristics": True}
    payload["model"]["roi_heads.box_predictor.cls_score.weight"] = np.zeros((81, 4))
    with open(path, "wb") as f:
        pickle.dump(payload, f)
    model = _bundle_model(bundle)
    model.load_pretrained(str(path))
    x = torch.from_numpy(bundle["input"])
    with torch.no_grad():
        got = model(x)
    assert (got - torch.from_numpy(bundle["features"]["net.last_feat"])).abs().max().item() <= tolerance(bundle)


def test_create_model_with_checkpoint_path_converts_detectron2_pkl_for_features(tmp_path):
    bundle = load_bundle("vitdet", "vitdet_micro")
    path = tmp_path / "model_final_test.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": {f"backbone.{k}": np.asarray(v) for k, v in bundle["state_dict"].items()}}, f)
    net = bundle["meta"]["official_kwargs"]["net"]["kwargs"]
    features = zoo.create_model(
        "test_vitdet", checkpoint_path=str(path), features_only=True, img_size=net["img_size"],
        embed_dim=net["embed_dim"], depth=net["depth"], num_heads=net["num_heads"],
        window_size=net["window_size"], global_block_indexes=(1, 3),
        pyramid_channels=bundle["meta"]["official_kwargs"]["out_channels"]).double().eval()
    with torch.no_grad():
        p2 = features(torch.from_numpy(bundle["input"]))[0]
    # the weights went through the float32 model that create_model builds: float32 agreement only
    assert (p2 - torch.from_numpy(bundle["features"]["p2"])).abs().max().item() < 1e-5


def test_mae_file_loads_with_fresh_pyramid_and_zero_tables(tmp_path):
    from safetensors.torch import save_file

    sd = _tiny_vit_state_dict()
    path = tmp_path / "mae_tiny.safetensors"
    save_file(sd, str(path))
    model = zoo.create_model("test_vitdet", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    assert torch.equal(model.blocks[2].mlp.fc1.weight, sd["blocks.2.mlp.fc1.weight"])
    assert torch.equal(model.pos_embed, sd["pos_embed"])
    assert all(torch.all(b.attn.rel_pos_w == 0) for b in model.blocks)


# ---------------------------------------------------------------------------------------------------
# layers and contract (the general harness runs the full contract on test_vitdet)


@pytest.mark.parametrize("old,new", [(27, 13), (7, 13), (13, 13)])
def test_rel_pos_resized_on_load_is_what_get_rel_pos_interpolates(old, new):
    torch.manual_seed(0)
    table = torch.randn(old, 8, dtype=torch.float64)
    resized = resize_decomposed_rel_pos(table, new)
    n = (new + 1) // 2
    assert resized.shape == (new, 8)
    torch.testing.assert_close(get_rel_pos(n, n, resized), get_rel_pos(n, n, table.float()).double(),
                               rtol=0, atol=1e-6)


def test_blocks_are_timms_sam_blocks_and_every_param_is_trained():
    from timm.models.vision_transformer_sam import Attention, Block

    model = zoo.create_model("test_vitdet")
    assert all(isinstance(b, Block) and type(b).forward is Block.forward for b in model.blocks)
    assert all(isinstance(b.attn, Attention) for b in model.blocks) and model.pyramid is None
    model(torch.randn(2, 3, 70, 95)).square().mean().backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("grid,table", [((3, 3), (3, 3)), ((5, 7), (4, 4)), ((6, 4), (8, 8))])
def test_attention_computes_what_timms_sam_attention_computes(grid, table, fused):
    """VitDetAttention (4-D SDPA, the rel-pos bias as one fx-wrapped call) is timm's SAM attention: same
    state-dict keys, same output in float64, on the tables' own grid and on grids they are resized to."""
    from timm.models.vision_transformer_sam import Attention

    torch.manual_seed(0)
    ref = Attention(16, num_heads=2, use_rel_pos=True, input_size=table).double().eval()
    ours = VitDetAttention(16, num_heads=2, use_rel_pos=True, input_size=table).double().eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_()
    ours.load_state_dict(ref.state_dict(), strict=True)
    ref.fused_attn = ours.fused_attn = fused
    x = torch.randn(3, *grid, 16, dtype=torch.float64)
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert got.shape == want.shape == x.shape
    assert (got - want).abs().max().item() <= 1e-12


def test_dynamo_onnx_matches_eager_with_padding_and_resized_tables():
    """tests/test_export.py exports test_vitdet at its first test size (64 x 64: no padding, the global
    tables' own grid); here a non-square input with window padding and global tables resized to 5 x 6."""
    import warnings

    import onnxruntime as ort

    torch.manual_seed(0)
    model = zoo.create_model("test_vitdet").eval()
    x = torch.randn(2, 3, 70, 95)
    with torch.no_grad():
        ref = model(x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(torch.export.export(model, (x,)), (x,), dynamo=True, verbose=False)
    sess = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    out = torch.from_numpy(sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0])
    assert out.shape == ref.shape == (2, 32, 5, 6)
    assert (out - ref).abs().max().item() <= 1e-4 * ref.abs().max().item()


@pytest.mark.parametrize("size", [(64, 64), (80, 112), (70, 95)])
def test_test_model_outputs_and_pyramid_sizes(size):
    torch.manual_seed(0)
    model = zoo.create_model("test_vitdet")
    x = torch.randn(2, 3, *size)
    y = model(x)
    assert y.shape == (2, 32, -(-size[0] // 16), -(-size[1] // 16))
    y.sum().backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    features = zoo.create_model("test_vitdet", features_only=True)
    feats = features(x)
    assert len(feats) == len(features.feature_info) == 5
    for f, c, r in zip(feats, features.feature_info.channels(), features.feature_info.reduction()):
        assert f.shape[1] == c
        assert abs(f.shape[2] - size[0] / r) <= 1 and abs(f.shape[3] - size[1] / r) <= 1
    sum(f.sum() for f in feats).backward()
    assert all(p.grad is not None for n, p in features.named_parameters() if "pyramid" in n)


def test_per_block_intermediates_without_pyramid():
    model = zoo.create_model("test_vitdet", pyramid=False)
    x = torch.randn(1, 3, 80, 112)
    final, inter = model.forward_intermediates(x)
    assert len(inter) == 4 and all(t.shape == (1, 32, 5, 7) for t in inter)
    assert torch.allclose(final, model.forward_features(x)) and torch.equal(final, inter[-1])
    feats = zoo.create_model("test_vitdet", pyramid=False, features_only=True, out_indices=(1, 3))(x)
    assert [tuple(f.shape) for f in feats] == [(1, 32, 5, 7)] * 2


@pytest.mark.parametrize("feature_cls", ["fx", "hook"])
def test_features_only_refuses_feature_classes_that_read_forward(feature_cls):
    with pytest.raises(ValueError, match="test_vitdet.*feature_cls='getter'"):
        timm.create_model("test_vitdet", features_only=True, feature_cls=feature_cls)


def test_bad_inputs_name_the_model():
    model = zoo.create_model("test_vitdet", pyramid=True)
    with pytest.raises(ValueError, match="test_vitdet"):
        model(torch.randn(3, 64, 64))
    with pytest.raises(ValueError, match="test_vitdet"):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(TypeError, match="test_vitdet"):
        model(torch.zeros(1, 3, 64, 64, dtype=torch.long))
    # the pyramid's stride-2 max-pool needs 2 x 2 tokens; the bare trunk takes any size
    with pytest.raises(ValueError, match="test_vitdet.*at least 17"):
        model(torch.randn(1, 3, 16, 40))
    assert zoo.create_model("test_vitdet", pyramid=False)(torch.randn(1, 3, 5, 16)).shape == (1, 32, 1, 1)
    assert len(model.forward_intermediates(torch.randn(1, 3, 17, 17))[1]) == 5
