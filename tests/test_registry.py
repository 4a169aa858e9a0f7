"""zoo's registry on top of timm's: names, filters, facts, checkpoint routing, no collisions."""
import os
import re
from pathlib import Path

import pytest
import timm
import torch

import zoo
import zoo.flops
from zoo.registry import model_entry, register_model

from toy_models import TOY_FAMILY, TOY_OFFICIAL_PARAMS, checkpoint_filter_fn


def _timm_native_names_and_modules():
    root = Path(timm.__file__).parent / "models"
    names, modules = set(), set()
    for path in root.glob("*.py"):
        modules.add(path.stem)
        names.update(re.findall(r"@register_model\s*\ndef\s+(\w+)\s*\(", path.read_text()))
    return names, modules


def test_no_zoo_name_or_family_file_collides_with_timm():
    native_names, native_modules = _timm_native_names_and_modules()
    assert len(native_names) > 500  # the scan found timm's registry
    zoo_names = set(zoo.list_models(include_test=True))
    assert not zoo_names & native_names, sorted(zoo_names & native_names)
    family_files = {p.stem for p in (Path(zoo.__file__).parent / "models").glob("*.py")} - {"__init__"}
    assert not family_files & native_modules, sorted(family_files & native_modules)


def test_timm_create_model_knows_zoo_models_after_import():
    for name in zoo.list_models(include_test=True):
        assert timm.is_model(name), name


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match="zoo_toy_net"):
        zoo.create_model("zoo_toy_nett")
    with pytest.raises(ValueError, match="Unknown zoo model"):
        zoo.model_info("definitely_not_a_model")


def test_timm_only_name_is_pointed_to_timm():
    with pytest.raises(ValueError, match="timm.create_model"):
        zoo.create_model("resnet18")


def test_keyword_typo_is_an_error():
    with pytest.raises(TypeError):
        zoo.create_model("zoo_toy_net_test", num_clases=3)


def test_list_models_filters():
    assert "zoo_toy_net" in zoo.list_models("zoo_toy*")
    assert "zoo_toy_net_test" not in zoo.list_models("zoo_toy*")
    assert "zoo_toy_net_test" in zoo.list_models("zoo_toy*", include_test=True)
    assert zoo.list_models(family=TOY_FAMILY) == ["zoo_toy_net"]
    assert zoo.list_models("zoo_toy*", task="video") == []
    assert zoo.list_models("zoo_toy*", pretrained=True) == ["zoo_toy_net"]
    assert zoo.list_models(["nothing*", "zoo_toy_net"]) == ["zoo_toy_net"]
    with pytest.raises(ValueError):
        zoo.list_models(task="detection")
    with pytest.raises(ValueError):
        zoo.list_models(family="no_such_family")


def test_list_pretrained_gives_name_and_tag():
    assert zoo.list_pretrained("zoo_toy*") == ["zoo_toy_net.hub"]


def test_model_info_reports_facts_and_measurements():
    info = zoo.model_info("zoo_toy_net")
    assert info["family"] == TOY_FAMILY and info["task"] == "classification"
    assert info["params"] == info["official_params"] == TOY_OFFICIAL_PARAMS and not info["measured"]
    assert info["params_match"] is info["gmacs"] is info["feature_info"] is None  # need a build: measure=True
    assert info["feature_reductions"] == [4, 8, 16, 32]
    assert info["pretrained_tags"]["hub"]["reported"]["value"] == 12.5
    assert info["pretrained_tags"]["hub"]["location"] == "zoo-test/toy-net"
    counted = zoo.model_info("zoo_toy_net", measure=True)
    assert counted["measured"] and counted["params"] == TOY_OFFICIAL_PARAMS and counted["params_match"]
    assert counted["gmacs"] > 0
    assert [f["reduction"] for f in counted["feature_info"]] == [4, 8, 16, 32]
    assert all(f["num_chs"] > 0 and f["module"] for f in counted["feature_info"])
    assert {k: v for k, v in counted.items() if k not in ("measured", "params_match", "gmacs", "feature_info")} \
        == {k: v for k, v in info.items() if k not in ("measured", "params_match", "gmacs", "feature_info")}


def test_model_info_builds_nothing(monkeypatch):
    """model_info answers from registered facts: with every way to build or count a model refused, it
    still answers for every public model (the speed follows: no model is constructed)."""
    def refuse(*args, **kwargs):
        raise AssertionError("model_info built or counted a model")

    for target, attr in [(timm, "create_model"), (timm.models, "create_model"), (zoo.registry, "_build_on_meta"),
                         (zoo.registry, "_count"), (zoo.registry, "_measure"), (zoo.flops, "count_macs")]:
        monkeypatch.setattr(target, attr, refuse)
    for name in zoo.list_models():
        info = zoo.model_info(name)
        assert info["name"] == name and info["input_size"] and info["feature_reductions"], name


@pytest.mark.parametrize("name", zoo.list_models())
def test_model_info_facts_are_what_building_gives(name):
    """Every public model's registered answer is what the model built on ``meta`` has: its parameter
    count, default classes and input size, and the strides of what features_only=True returns."""
    info = zoo.model_info(name)
    counted = zoo.registry.measure(name, gmacs=False)  # built on meta (cached per name)
    if info["params"] is not None:
        assert info["params"] == counted["params"], name
    assert info["num_classes"] == counted["num_classes"], name
    assert tuple(info["input_size"]) == tuple(counted["input_size"]), name
    if info["task"] == "dense":  # ViTDet: the registered model is the trunk, features_only adds the pyramid
        with torch.device("meta"):
            reductions = zoo.create_model(name, features_only=True).feature_info.reduction()
    else:
        reductions = [f["reduction"] for f in counted["feature_info"]]
    assert info["feature_reductions"] == list(reductions), name


def test_register_model_rejects_unknown_task_and_family():
    with pytest.raises(ValueError, match="task"):
        register_model(family=TOY_FAMILY, task="detection")
    with pytest.raises(ValueError, match="register_family"):
        register_model(family="unregistered_family")(lambda pretrained=False: None)


def _official_layout(model):
    sd = model.state_dict()
    out = {}
    for k, v in sd.items():
        k = k.replace("stages.", "backbone.layer", 1) if k.startswith("stages.") else k.replace("head.fc.", "fc.")
        out[k] = v.clone()
    return out


def test_checkpoint_path_routes_official_layout_through_the_filter(tmp_path):
    src = zoo.create_model("zoo_toy_net_test").eval()
    official = _official_layout(src)
    assert set(checkpoint_filter_fn(official, src)) == set(src.state_dict())
    path = tmp_path / "official.pth"
    torch.save({"model": {"module." + k: v for k, v in official.items()}, "epoch": 3}, path)

    model = zoo.create_model("zoo_toy_net_test", checkpoint_path=path).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(x), atol=0, rtol=0)
    assert "state_dict" not in model.pretrained_cfg  # no second copy of the weights kept around

    feats = zoo.create_model("zoo_toy_net_test", checkpoint_path=path, features_only=True).eval()
    with torch.no_grad():
        for a, b in zip(feats(x), src.forward_intermediates(x, intermediates_only=True)):
            torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_pretrained_cfg_overlay_file_uses_the_safe_loader(tmp_path):
    src = zoo.create_model("zoo_toy_net_test").eval()
    from safetensors.torch import save_file
    path = tmp_path / "weights.safetensors"
    save_file(_official_layout(src), str(path))
    model = zoo.create_model("zoo_toy_net_test", pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    for k, v in src.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_checkpoint_of_another_variant_is_explained(tmp_path):
    other = zoo.create_model("zoo_toy_net")  # wider variant
    path = tmp_path / "other.pth"
    torch.save(other.state_dict(), path)
    with pytest.raises(zoo.hub.CheckpointError) as e:
        zoo.create_model("zoo_toy_net_test", checkpoint_path=path)
    msg = str(e.value)
    assert "other.pth" in msg and "shape mismatches (first: stages.2.conv.weight" in msg
    assert "most likely belongs to zoo_toy_net " in msg


def test_mismatch_is_explained_against_the_requested_configuration(tmp_path):
    # the comparison uses the caller's overrides, not the variant's defaults: only the real difference shows
    src = zoo.create_model("zoo_toy_net", widths=(8, 16, 32, 48))
    path = tmp_path / "custom.pth"
    torch.save(src.state_dict(), path)
    assert zoo.create_model("zoo_toy_net_test", checkpoint_path=path, widths=(8, 16, 32, 48)) is not None
    with pytest.raises(zoo.hub.CheckpointError) as e:
        zoo.create_model("zoo_toy_net_test", checkpoint_path=path, widths=(8, 16, 32, 40))
    msg = str(e.value)
    assert "does not fit zoo_toy_net_test (with widths=(8, 16, 32, 40))" in msg
    assert "stages.3.conv.weight" in msg and "stages.2.conv.weight" not in msg


def test_checkpoint_of_another_family_is_explained(tmp_path):
    path = tmp_path / "foreign.pth"
    torch.save({"encoder.block.weight": torch.zeros(3, 3), "decoder.bias": torch.zeros(2)}, path)
    with pytest.raises(zoo.hub.CheckpointError) as e:
        zoo.create_model("zoo_toy_net_test", checkpoint_path=path)
    msg = str(e.value)
    assert "foreign.pth" in msg and "missing keys" in msg and "unexpected keys (first: encoder.block.weight" in msg
    assert "no registered zoo variant matches it" in msg


def test_model_entry_ignores_tag():
    assert model_entry("zoo_toy_net.hub").name == "zoo_toy_net"


def test_checkpoint_path_with_its_own_num_classes_keeps_the_classifier(tmp_path):
    src = zoo.create_model("zoo_toy_net_test", num_classes=4).eval()
    path = tmp_path / "four_classes.pth"
    torch.save(src.state_dict(), path)
    model = zoo.create_model("zoo_toy_net_test", num_classes=4, checkpoint_path=path)
    assert torch.equal(model.head.fc.weight, src.head.fc.weight)


# -- issue 22: explanations from cached tables, fine-tuning from a file, API edges, local-dir:, offline ------

def test_second_explanation_builds_no_model(tmp_path, monkeypatch):
    import zoo.factory as factory

    other = zoo.create_model("zoo_toy_net")
    path = tmp_path / "other.pth"
    torch.save(other.state_dict(), path)
    with pytest.raises(zoo.hub.CheckpointError):
        zoo.create_model("zoo_toy_net_test", checkpoint_path=path)
    builds = []
    real = factory.timm.create_model
    monkeypatch.setattr(factory.timm, "create_model", lambda *a, **k: builds.append(a[0]) or real(*a, **k))
    with pytest.raises(zoo.hub.CheckpointError, match="most likely belongs to zoo_toy_net "):
        zoo.create_model("zoo_toy_net_test", checkpoint_path=path)
    assert builds == []  # the key/shape tables of every candidate are cached, the real model is never built


def test_test_models_are_candidates_and_explanations_name_them(tmp_path):
    src = zoo.create_model("zoo_toy_net_test")
    path = tmp_path / "small.pth"
    torch.save(src.state_dict(), path)
    with pytest.raises(zoo.hub.CheckpointError, match="most likely belongs to zoo_toy_net_test "):
        zoo.create_model("zoo_toy_net", checkpoint_path=path)


def test_guess_names_every_tied_variant():
    from zoo.factory import _table, explain_mismatch, guess_variants

    names = zoo.list_models("uniformer_small_plus*")
    groups = {}
    for n in names:
        groups.setdefault(tuple(sorted(_table(n).items())), []).append(n)
    tied = next((g for g in groups.values() if len(g) > 1), None)
    if tied is None:
        pytest.skip("no two registered variants share a key/shape table any more")
    sd = {k: torch.empty(s) for k, s in _table(tied[0]).items()}
    guesses, score = guess_variants(sd)
    assert sorted(guesses) == sorted(tied) and score == 1.0
    msg = str(explain_mismatch("f.pth", "uniformer_small", sd))
    assert "most likely belongs to one of" in msg and all(n in msg for n in tied)


def test_num_batches_tracked_saved_as_1d_is_not_a_mismatch(tmp_path):
    src = zoo.create_model("zoo_toy_net_test").eval()
    old = {k: (v.reshape(1) if k.endswith("num_batches_tracked") else v) for k, v in src.state_dict().items()}
    path = tmp_path / "old_bn.pth"
    torch.save(old, path)
    model = zoo.create_model("zoo_toy_net_test", checkpoint_path=path)  # torch loads (1,) into () itself
    assert torch.equal(model.stages[0].conv.weight, src.stages[0].conv.weight)
    wide = zoo.create_model("zoo_toy_net", widths=(8, 16, 24, 40))
    path = tmp_path / "wide_old_bn.pth"
    torch.save({k: (v.reshape(1) if k.endswith("num_batches_tracked") else v) for k, v in wide.state_dict().items()},
               path)
    with pytest.raises(zoo.hub.CheckpointError) as e:
        zoo.create_model("zoo_toy_net_test", checkpoint_path=path)
    msg = str(e.value).split(" does not fit ", 1)[1]
    # stage 3's conv and norm (6 tensors) and the classifier weight; no num_batches_tracked among them
    assert msg.startswith("zoo_toy_net_test: 7 shape mismatches (first: stages.3.conv.weight")


_CLASSIFIERS = [n for n in zoo.registry.test_models() if model_entry(n).task in ("classification", "video")]


@pytest.mark.parametrize("name", ["zoo_toy_net_test"] + _CLASSIFIERS)
def test_fine_tuning_from_a_file_loads_the_backbone_and_a_new_head(name, tmp_path, caplog):
    src = zoo.create_model(name)
    if hasattr(src, "head_cls"):
        pytest.xfail("UniFormer's auxiliary head_cls is not in its cfg's classifier field (removed by issue 19)")
    path = tmp_path / "pretrained.pth"
    torch.save(src.state_dict(), path)
    with caplog.at_level("INFO", logger="zoo"):
        model = zoo.create_model(name, checkpoint_path=path, num_classes=7)
    assert model.num_classes == 7 and "classifier newly initialised" in caplog.text
    classifier = timm.models.get_pretrained_cfg(name).classifier
    heads = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    ref = src.state_dict()
    for k, v in model.state_dict().items():
        if not any(k.startswith(h + ".") for h in heads):
            assert torch.equal(v, ref[k]), f"{name}: {k} not loaded"
    assert model.get_classifier().weight.shape[0] == 7


@pytest.mark.parametrize("bad", [None, 3, b"nat_test", ["nat_test"]])
def test_create_model_needs_a_string_name(bad):
    with pytest.raises(TypeError, match="model name"):
        zoo.create_model(bad)


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_classes=-1), "num_classes"), (dict(num_classes=2.5), "num_classes"), (dict(in_chans=0), "in_chans"),
    (dict(drop_path_rate=2), "drop_path_rate"), (dict(drop_rate=-0.1), "drop_rate"), (dict(img_size=0), "img_size"),
    (dict(img_size=(64, -1)), "img_size"),
])
def test_impossible_arguments_fail_at_creation_naming_the_model(kwargs, match):
    name = "test_vitdet" if "img_size" in kwargs else "zoo_toy_net_test"
    with pytest.raises(ValueError, match=f"{name}: {match}"):
        zoo.create_model(name, **kwargs)


def _write_folder(tmp_path):
    from timm.models import save_for_hf

    folder = tmp_path / "folder"
    save_for_hf(zoo.create_model("zoo_toy_net_test"), str(folder), safe_serialization=True)
    return folder


@pytest.mark.parametrize("damage", ["no_folder", "no_config", "bad_json", "no_architecture", "no_weights",
                                    "corrupt_weights"])
def test_broken_local_dir_names_the_file(tmp_path, damage):
    folder = _write_folder(tmp_path)
    assert zoo.create_model(f"local-dir:{folder}", pretrained=True) is not None
    target = folder
    if damage == "no_folder":
        target = tmp_path / "nowhere"
    elif damage == "no_config":
        (folder / "config.json").unlink()
    elif damage == "bad_json":
        (folder / "config.json").write_text("{not json")
    elif damage == "no_architecture":
        (folder / "config.json").write_text("{}")
    elif damage == "no_weights":
        (folder / "model.safetensors").unlink()
    elif damage == "corrupt_weights":
        (folder / "model.safetensors").write_bytes((folder / "model.safetensors").read_bytes()[:100])
    expected = {"no_folder": "nowhere", "no_weights": "no weights file", "corrupt_weights": "model.safetensors"}
    with pytest.raises(zoo.hub.CheckpointError, match=expected.get(damage, "config.json")):
        zoo.create_model(f"local-dir:{target}", pretrained=True)


def test_offline_url_weights_fail_without_network_naming_file_and_source(tmp_path, monkeypatch):
    import timm.models._hub as timm_hub
    import torch.hub

    from zoo.factory import OfflineError

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    tag = next((t for t in zoo.list_pretrained() if timm.models.get_pretrained_cfg(t).url
                and not timm.models.get_pretrained_cfg(t).hf_hub_id), None)
    if tag is None:
        pytest.skip("no URL-hosted pretrained tag registered")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))

    def no_network(*args, **kwargs):
        raise AssertionError("tried the network in offline mode")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(timm_hub, "download_url_to_file", no_network, raising=False)
    url = timm.models.get_pretrained_cfg(tag).url
    with pytest.raises(OfflineError) as e:
        zoo.create_model(tag, pretrained=True)
    msg = str(e.value)
    assert url in msg and os.path.basename(url) in msg and "HF_HUB_OFFLINE" in msg and str(tmp_path) in msg


def test_offline_hub_weights_say_which_repo_and_file():
    with pytest.raises(FileNotFoundError, match=r"zoo-test/not-in-cache.*offline|offline.*zoo-test/not-in-cache"):
        zoo.create_model("zoo_toy_net", pretrained=True, pretrained_cfg_overlay=dict(hf_hub_id="zoo-test/not-in-cache"))


# every renamed model: old name -> (new "name.tag", parameter count the old name built)
RENAMED = {
    "restormer_deraining": ("restormer.rain13k", 26_126_644),
    "restormer_motion_deblurring": ("restormer.gopro", 26_126_644),
    "restormer_defocus_deblurring": ("restormer.dpdd", 26_126_644),
    "restormer_defocus_deblurring_dual_pixel": ("restormer_dual_pixel.dpdd", 26_132_548),
    "restormer_real_denoising": ("restormer_bias_free.sidd", 26_111_668),
    "restormer_denoising_color": ("restormer_bias_free.blind", 26_111_668),
    "restormer_denoising_gray": ("restormer_bias_free_gray.blind", 26_109_076),
    # MT-UNet: the official count less the unused global_atten.out Linears it does not build (issue 19)
    "mtunet_synapse": ("mtunet.synapse", 79_075_389 - 3_806_720),
    "mtunet_acdc": ("mtunet.acdc", 79_075_064 - 3_806_720),
    "shunted_t": ("shunted_tiny", 11_553_576),
    "shunted_s": ("shunted_small", 22_401_256),
    "shunted_b": ("shunted_base", 39_614_376),
    "vitaev2_vsa_s": ("vitaev2_vsa_small", 19_773_300),
    "vitaev2_vsa_widepcm_s": ("vitaev2_vsa_widepcm_small", 20_342_442),
    "vitaev2_vsa_widepcm_b": ("vitaev2_vsa_widepcm_base", 93_711_532),
    "vitaev2_vsa_widepcm_b_ws12": ("vitaev2_vsa_widepcm_base_ws12", 93_833_932),
}
RENAMED_TEST_MODELS = {
    "nat_test": "test_nat", "nat_isotropic_test": "test_nat_isotropic", "shunted_test": "test_shunted",
    "uniformer_test": "test_uniformer", "uniformer_light_test": "test_uniformer_light",
    "uniformer_video_test": "test_uniformer_video", "vitaev2_vsa_test": "test_vsa",
    "swin_vsa_test": "test_vsa_swin", "mixformer_test": "test_mixformer", "mtunet_test": "test_mtunet",
    "restormer_test": "test_restormer", "vitdet_test": "test_vitdet",
}


def _params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_old_name_builds_the_same_model_with_a_deprecation_warning(old):
    new, count = RENAMED[old]
    assert zoo.registry.deprecated_names()[old] == new
    assert model_entry(old) is model_entry(new)
    assert old not in zoo.list_models() and new.partition(".")[0] in zoo.list_models()
    with torch.device("meta"), pytest.warns(UserWarning, match=f"deprecated model name {old}"):
        model = zoo.create_model(old)
    with torch.device("meta"):
        ref = zoo.create_model(new)
    assert _params(model) == _params(ref) == count
    assert model.pretrained_cfg["architecture"] == new.partition(".")[0]
    assert model.pretrained_cfg.get("tag") == ref.pretrained_cfg.get("tag")
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in ref.state_dict().items()}


@pytest.mark.parametrize("old", sorted(RENAMED_TEST_MODELS))
def test_old_test_model_name_gives_the_same_outputs(old):
    from _contract import make_input

    new = RENAMED_TEST_MODELS[old]
    assert zoo.model_info(old)["name"] == new
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match=f"deprecated model name {old}"):
        a = timm.create_model(old).eval()
    torch.manual_seed(0)
    b = zoo.create_model(new).eval()
    assert _params(a) == _params(b)
    x = make_input(new, model_entry(new).test_sizes[0])
    with torch.no_grad():
        torch.testing.assert_close(a(x), b(x), atol=0, rtol=0)


def test_test_models_are_named_as_timm_names_its_own():
    for name in zoo.registry.test_models():
        if model_entry(name).family == TOY_FAMILY:
            continue  # the registry tests' own toy family
        assert name.startswith("test_"), name
        assert name not in zoo.list_models() and name in zoo.list_models(include_test=True)
    assert not [n for n in timm.list_pretrained() if n.endswith(".untrained")]


def test_deprecated_names_are_only_zoo_renames():
    for old, new in zoo.registry.deprecated_names().items():
        assert new.partition(".")[0] in zoo.list_models(include_test=True), (old, new)
