"""Dense clients: which models ``list_models(features_only=True)`` offers (from registered facts, no model
built), and what segmentation_models_pytorch's ``tu-`` encoders get from them."""
import pytest
import segmentation_models_pytorch as smp
import timm
import torch

import zoo
import zoo.flops
import zoo.registry
from zoo.registry import model_entry, test_models

ENCODERS = [n for n in test_models() if model_entry(n).is_encoder]


def test_listing_feature_models_builds_and_counts_nothing(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("list_models(features_only=True) built or counted a model")

    for target, attr in [(timm, "create_model"), (zoo.registry, "_measure"), (zoo.flops, "count_macs")]:
        monkeypatch.setattr(target, attr, refuse)
    listed = zoo.list_models(features_only=True)
    assert "nat_tiny" in listed and "mtunet" in listed
    assert not any(model_entry(n).task in ("restoration", "video") for n in listed)
    assert not [n for n in listed if set(model_entry(n).feature_reductions) == {16}]  # isotropic NAT


@pytest.mark.parametrize("name", test_models())
def test_registered_feature_reductions_are_the_models(name):
    if model_entry(name).task == "dense":  # ViTDet: the registered model is the trunk, features_only adds the pyramid
        with torch.device("meta"):
            reductions = tuple(zoo.create_model(name, features_only=True).feature_info.reduction())
    else:
        reductions = tuple(f["reduction"] for f in zoo.registry.measure(name)["feature_info"])
    assert reductions == model_entry(name).feature_reductions


def test_every_family_has_an_encoder_test_model():
    families = {model_entry(n).family for n in zoo.list_models(features_only=True)}
    assert families <= {model_entry(n).family for n in ENCODERS}


@pytest.mark.parametrize("name", ENCODERS)
def test_smp_fpn_runs_on_every_listed_kind_of_encoder(name):
    model = smp.FPN(encoder_name=f"tu-{name}", encoder_weights=None, classes=2).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 96)).shape == (1, 2, 96, 96)


def test_smp_unet_runs():
    model = smp.Unet(encoder_name=f"tu-{ENCODERS[0]}", encoder_weights=None, classes=2).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 96)).shape == (1, 2, 96, 96)


def test_output_stride_native_is_a_noop_and_others_are_refused_by_name():
    name = next(n for n in ENCODERS if model_entry(n).family == "nat")
    feats = zoo.create_model(name, features_only=True, output_stride=32)
    assert feats.feature_info.reduction() == [4, 8, 16, 32]
    with pytest.raises(ValueError, match=f"{name}: output_stride=16 is not supported.*must be 32"):
        zoo.create_model(name, features_only=True, output_stride=16)
    with pytest.raises(ValueError, match=f"{name}: output_stride=16"):
        smp.DeepLabV3Plus(encoder_name=f"tu-{name}", encoder_weights=None)
