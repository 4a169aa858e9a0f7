"""Model cards, the README table, and converting checkpoints into Hub-ready folders."""
from pathlib import Path

import pytest
import timm
import torch

import zoo
from zoo.cards import (README_TABLE_END, README_TABLE_START, check_cards, render_card, render_markdown_table,
                       shipped_families, variant_rows)
from zoo.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_committed_cards_are_in_sync_with_the_registry():
    assert check_cards(ROOT / "model_cards") == []


def test_cards_show_measured_equal_official_counts():
    for family in shipped_families():
        for row in variant_rows(family):
            if row["official_params"] is not None:
                assert row["match"], f"{row['name']}: {row['params']:,} vs official {row['official_params']:,}"


def test_readme_embeds_the_generated_table():
    text = (ROOT / "README.md").read_text()
    assert README_TABLE_START in text and README_TABLE_END in text
    embedded = text.split(README_TABLE_START, 1)[1].split(README_TABLE_END, 1)[0].strip()
    names = [n for n in zoo.list_models() if zoo.registry.model_entry(n).family in shipped_families()]
    assert embedded == render_markdown_table(variant_rows(names=names)).strip(), \
        "README table is stale: python -m zoo table --markdown --quick --write-readme README.md"


def test_card_has_hf_front_matter_and_sections():
    import yaml

    card = render_card("zoo_toy")
    front = yaml.safe_load(card.split("---")[1])
    assert front["library_name"] == "timm" and front["pipeline_tag"] == "image-classification"
    assert {"license", "tags"} <= set(front)
    for section in ("## Variants", "## Pretrained weights", "## Usage", "## Loading official checkpoints"):
        assert section in card
    assert "| `zoo_toy_net` | 25,418 | 25,418 | exact |" in card


def test_cards_check_flags_stale_cards(tmp_path):
    (tmp_path / "nonexistent_family.md").write_text("old")
    assert any("no such family" in p for p in check_cards(tmp_path))


def test_list_models_features_only():
    names = zoo.list_models(features_only=True, include_test=True)
    assert "zoo_toy_net_test" in names
    for n in zoo.list_models(include_test=True):
        entry = zoo.registry.model_entry(n)
        with torch.device("meta"):
            if entry.task == "dense":  # ViTDet: the registered model is the trunk, features_only adds the pyramid
                info = [dict(reduction=r) for r in timm.create_model(n, features_only=True).feature_info.reduction()]
            else:
                info = getattr(timm.create_model(n), "feature_info", None) or []
        # listing reads the registered reductions: they must be what features_only=True gives
        assert tuple(f["reduction"] for f in info) == entry.feature_reductions, n
        assert (n in names) == entry.is_encoder, n


def _official_checkpoint(tmp_path):
    src = zoo.create_model("zoo_toy_net").eval()
    official = {(k.replace("stages.", "backbone.layer", 1) if k.startswith("stages.") else k.replace("head.fc.", "fc.")): v
                for k, v in src.state_dict().items()}
    path = tmp_path / "official.pth"
    torch.save({"state_dict": official}, path)
    return src, path


def test_convert_round_trip_is_bit_identical(tmp_path, capsys):
    src, ckpt = _official_checkpoint(tmp_path)
    out = tmp_path / "hub_folder"
    assert main(["convert", "zoo_toy_net", "--checkpoint", str(ckpt), "--out", str(out)]) == 0
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in out.iterdir()}
    x = torch.randn(2, 3, 32, 32)
    a = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    b = zoo.create_model("zoo_toy_net", pretrained=True,
                         pretrained_cfg_overlay=dict(file=str(out / "model.safetensors"))).eval()
    with torch.no_grad():
        ref = src(x)
        torch.testing.assert_close(a(x), ref, atol=0, rtol=0)
        torch.testing.assert_close(b(x), ref, atol=0, rtol=0)


def test_convert_push_uploads_the_zoo_card_with_the_weights_licence(tmp_path, monkeypatch):
    # everything up to the network: the repo is "created" and the folder "uploaded" by stand-ins that record them
    import huggingface_hub
    import yaml

    calls = {}

    class _Repo:
        repo_id = "zoo-test/restormer"

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = (repo_id, kwargs)
        return _Repo()

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        calls["upload"] = {p.name: p.read_bytes() for p in Path(folder_path).iterdir()}
        calls["repo_id"] = repo_id

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    src = zoo.create_model("test_restormer").eval()
    ckpt = tmp_path / "official.pth"
    torch.save({"params": src.state_dict()}, ckpt)
    assert main(["convert", "test_restormer", "--checkpoint", str(ckpt), "--out", str(tmp_path / "out"),
                 "--push", "zoo-test/restormer"]) == 0
    assert calls["repo_id"] == "zoo-test/restormer"
    assert {"config.json", "model.safetensors", "README.md"} <= set(calls["upload"])
    readme = calls["upload"]["README.md"].decode()
    assert readme == (tmp_path / "out" / "README.md").read_text()  # the folder written is what goes up
    front = yaml.safe_load(readme.split("---")[1])
    # the Restormer weights are non-commercial: never apache-2.0, whatever timm's own card would say
    assert front["license"] == "other" and front["license_name"] == "academic-public-license"
    assert front["license_link"] == "https://github.com/swz30/Restormer/blob/main/LICENSE.md"
    assert front["pipeline_tag"] == "image-to-image" and front["library_name"] == "timm"
    assert "arxiv.org/abs/2111.09881" in readme and "official.pth" in readme and "sha256" in readme
    assert 'timm.create_model("hf-hub:zoo-test/restormer"' in readme


def test_convert_push_stops_at_the_network(tmp_path):
    _, ckpt = _official_checkpoint(tmp_path)
    out = tmp_path / "hub_folder"
    with pytest.raises(Exception) as e:  # HF_HUB_OFFLINE=1 in the test session: the push cannot go out
        main(["convert", "zoo_toy_net", "--checkpoint", str(ckpt), "--out", str(out), "--push", "zoo-test/pushed"])
    assert "offline" in f"{type(e.value).__name__} {e.value}".lower()
    assert (out / "model.safetensors").is_file()  # the folder was written before the push


def test_convert_model_args_must_be_a_json_object(tmp_path, capsys):
    _, ckpt = _official_checkpoint(tmp_path)
    for bad in ("{depths: 1}", "[1, 2]"):
        # an expected CLI failure: one line naming the option, exit status 2, no traceback
        assert main(["convert", "zoo_toy_net", "--checkpoint", str(ckpt), "--out", str(tmp_path / "x"),
                     "--model-args", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --model-args") and len(err.strip().splitlines()) == 1
