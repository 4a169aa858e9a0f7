"""``zoo convert`` on every official parity bundle: official-format file -> Hub folder -> reload.

Each bundle's state dict (official keys) is written the way the family's releases are stored (a
``.pth`` wrapper, a DeiT-style file with ``argparse.Namespace`` args, a Paddle ``.pdparams``, a
detectron2 ``.pkl``), converted by the CLI into a Hub-ready folder, and reloaded both through timm's
``local-dir:`` and through zoo's ``pretrained_cfg_overlay=dict(file=...)``. The folder's weights must be
the family converter's output exactly, both reloads must give bit-identical outputs, and the reloaded
model, run in float64, must reproduce the official output up to the float32 rounding of the weights
(the exact float64 agreement of the converter is the family's own parity test).
"""
from __future__ import annotations

import argparse
import importlib
import json
import pickle

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import load_file

import zoo
from zoo.cli import main
from zoo.hub import _family_filter

from _shared import bundle_state_dict, load_bundle
from test_mixformer import _write_pdparams

CASES = [
    ("nat", "nat_micro"), ("nat", "nat_micro_ls"),
    ("uniformer", "uniformer_micro_patch"), ("uniformer", "uniformer_micro_convstem_ls"),
    ("uniformer", "uniformer_micro_video"),
    ("shunted", "shunted_micro_t"), ("shunted", "shunted_micro_b"),
    ("vsa", "vsa_micro"), ("vsa", "vsa_micro_widepcm"),
    ("mixformer", "mixformer_micro"),
    ("mtunet", "mtunet_full_synapse"),
    ("restormer", "restormer_micro_withbias"), ("restormer", "restormer_micro_biasfree"),
    ("restormer", "restormer_micro_dualpixel"),
    ("vitdet", "vitdet_micro"), ("vitdet", "vitdet_micro_pad"),
]


def _torch_file(wrap):
    def write(sd, path):
        path = path.with_suffix(".pth")
        torch.save(wrap(sd), path)
        return path
    return write


def _pickle_file(suffix, wrap):
    def write(sd, path):
        path = path.with_suffix(suffix)
        with open(path, "wb") as f:
            pickle.dump(wrap({k: v.numpy() for k, v in sd.items()}), f, protocol=4)
        return path
    return write


def _pdparams_file(sd, path):
    path = path.with_suffix(".pdparams")
    _write_pdparams(path, sd)  # as paddle.save writes it
    return path


# how each family's official weights are released (the layouts the converters are written for)
WRITERS = {
    "nat": _torch_file(lambda sd: {"model": sd}),
    "uniformer": _torch_file(lambda sd: {"model": sd}),
    "shunted": _torch_file(lambda sd: {"model": sd, "epoch": 300, "args": argparse.Namespace(model="shunted")}),
    "vsa": _torch_file(lambda sd: {"state_dict_ema": {f"module.{k}": v for k, v in sd.items()}}),
    "mixformer": _pdparams_file,
    "mtunet": _torch_file(lambda sd: sd),
    "restormer": _torch_file(lambda sd: {"params": sd}),
    "vitdet": _pickle_file(".pkl", lambda sd: {"model": {f"backbone.{k}": v for k, v in sd.items()},
                                               "__author__": "Detectron2 Model Zoo"}),
}


def _out(y):
    return y[0] if isinstance(y, (list, tuple)) else y


@pytest.mark.parametrize("family,case", CASES, ids=[c for _, c in CASES])
def test_official_checkpoint_converts_to_hub_folder_and_reloads_identically(family, case, tmp_path):
    b = load_bundle(family, case)
    name, kwargs = importlib.import_module(f"test_{family}").bundle_model_args(b["meta"])
    official = bundle_state_dict(b)
    ckpt = WRITERS[family](official, tmp_path / "official")
    out = tmp_path / "hub"
    assert main(["convert", name, "--checkpoint", str(ckpt), "--out", str(out), "--model-args", json.dumps(kwargs)]) == 0
    assert {"config.json", "model.safetensors", "README.md"} <= {p.name for p in out.iterdir()}

    # the folder holds exactly the family converter's output, cast to the model's float32
    fresh = zoo.create_model(name, **kwargs)
    expected = _family_filter(name)(official, fresh)
    saved = load_file(out / "model.safetensors")
    assert set(saved) == set(fresh.state_dict())
    for k, v in saved.items():
        want = expected[k] if k in expected else fresh.state_dict()[k]  # non-persistent tables rebuilt by the model
        assert torch.equal(v, want.to(v.dtype).reshape(v.shape)), k  # (the bundles store BN counters as 1-d)

    # both reloads rebuild the same configuration (timm records --model-args in config.json) and agree bit for bit
    x = torch.from_numpy(b["input"])
    direct = zoo.create_model(name, checkpoint_path=str(ckpt), **kwargs).eval()
    hub = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    # (the file's head has the bundle's class count: say so, or timm would start a fresh classifier)
    head = {"num_classes": kwargs["num_classes"]} if "num_classes" in kwargs else {}
    overlay = zoo.create_model(name, pretrained=True, **kwargs,
                               pretrained_cfg_overlay=dict(file=str(out / "model.safetensors"), **head)).eval()
    with torch.no_grad():
        ref = _out(direct(x.float()))
        torch.testing.assert_close(_out(hub(x.float())), ref, atol=0, rtol=0)
        torch.testing.assert_close(_out(overlay(x.float())), ref, atol=0, rtol=0)
        # and the Hub copy is the official model: float64 compute on float32-rounded weights
        pairs = _against_official(hub.double(), x, b)
    for got, want in pairs:
        assert got.shape == want.shape
        scale = max(1.0, float(np.abs(want).max()))
        assert np.abs(got - want).max() <= 1e-5 * scale


def _against_official(model, x, b):
    """(ours, official) output pairs: the model output, or, for a backbone bundle without one (the
    detectron2 ViTDet backbone returns its feature maps), the trunk map and the pyramid levels."""
    if b["output"] is not None:
        return [(_out(model(x)).numpy(), b["output"])]
    final, levels = model.forward_intermediates(x)
    official = b["features"]
    pyramid = sorted(k for k in official if k.startswith("p"))
    assert len(pyramid) == len(levels)
    return [(final.numpy(), official["net.last_feat"])] + [(f.numpy(), official[k]) for f, k in zip(levels, pyramid)]
