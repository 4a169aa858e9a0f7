"""Weight loading: safe readers, wrapper unwrapping, and the real Hub path, offline."""
import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import zoo
from zoo.hub import (CheckpointError, UnsafeCheckpointError, load_checkpoint, load_numpy_pickle,
                     unwrap_state_dict)

from toy_models import TOY_HUB_ID


class _WritesMarker:
    """A pickle payload that would create a file if it were ever executed."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_unwrap_peels_wrappers_prefixes_and_numpy():
    w = torch.ones(2)
    assert unwrap_state_dict({"model": {"module.a": w}, "epoch": 1, "args": "x"}) == {"a": w}
    assert unwrap_state_dict({"state_dict": {"_orig_mod.module.a": w}})["a"] is w
    assert set(unwrap_state_dict({"params": {"a": w}})) == {"a"}
    assert set(unwrap_state_dict({"model_state": {"a": w}})) == {"a"}
    ema = unwrap_state_dict({"state_dict": {"a": w}, "state_dict_ema": {"a": w * 2}})
    assert torch.equal(ema["a"], w * 2)  # EMA weights preferred
    nested = unwrap_state_dict({"model": {"state_dict": {"a": np.arange(3.0)}}})
    assert isinstance(nested["a"], torch.Tensor) and nested["a"].tolist() == [0.0, 1.0, 2.0]
    with pytest.raises(CheckpointError):
        unwrap_state_dict([1, 2])


@pytest.mark.parametrize("suffix", [".pth", ".bin", ".safetensors"])
def test_load_checkpoint_formats(tmp_path, suffix):
    sd = {"a.weight": torch.randn(3, 2), "b": torch.arange(4)}
    path = tmp_path / f"w{suffix}"
    if suffix == ".safetensors":
        save_file(sd, str(path))
    else:
        torch.save({"model": {"module." + k: v for k, v in sd.items()}, "epoch": 7}, path)
    out = load_checkpoint(path)
    assert set(out) == set(sd) and all(torch.equal(out[k], sd[k]) for k in sd)


def test_numpy_pickle_loads_arrays(tmp_path):
    path = tmp_path / "model.pdparams"
    arrays = {"linear.w_0": np.random.rand(3, 4).astype("float32"), "bn._mean": np.zeros(4)}
    with open(path, "wb") as f:
        pickle.dump(arrays, f, protocol=2)
    out = load_checkpoint(path)
    assert torch.equal(out["linear.w_0"], torch.from_numpy(arrays["linear.w_0"]))
    path5 = tmp_path / "model_final.pkl"
    with open(path5, "wb") as f:
        pickle.dump({"model": arrays, "__author__": "d2"}, f, protocol=5)
    assert set(load_checkpoint(path5)) == set(arrays)


@pytest.mark.parametrize("suffix", [".pdparams", ".pkl"])
def test_hostile_numpy_pickle_is_refused_and_never_runs(tmp_path, suffix):
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    with open(path, "wb") as f:
        pickle.dump({"w": np.zeros(2), "x": _WritesMarker(marker)}, f)
    with pytest.raises(UnsafeCheckpointError, match=f"evil{suffix}"):
        load_checkpoint(path)
    assert not marker.exists()


def test_hostile_torch_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(2), "x": _WritesMarker(marker)}, path)
    with pytest.raises(UnsafeCheckpointError, match="evil.pth"):
        load_checkpoint(path)
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError):
        zoo.create_model("zoo_toy_net_test", checkpoint_path=path)
    assert not marker.exists()


def test_truncated_file_is_explained(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"w": torch.zeros(100)}, good)
    bad = tmp_path / "truncated.pth"
    bad.write_bytes(good.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="truncated.pth"):
        load_checkpoint(bad)
    badpkl = tmp_path / "truncated.pkl"
    badpkl.write_bytes(pickle.dumps({"w": np.zeros(3)})[:20])
    with pytest.raises(CheckpointError, match="truncated.pkl"):
        load_numpy_pickle(badpkl)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pth")


def _add_to_local_hub(cache_dir: str, repo_id: str, files: dict) -> None:
    """Lay files out exactly as huggingface_hub's cache does: refs/main -> snapshots/<commit>/<file>."""
    org, name = repo_id.split("/")
    repo = Path(cache_dir) / f"models--{org}--{name}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    for fname, writer in files.items():
        writer(snap / fname)


def test_pretrained_loads_from_local_hub_cache_offline(hf_cache_dir):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    src = zoo.create_model("zoo_toy_net").eval()
    sd = {k: v.contiguous() for k, v in src.state_dict().items()}
    _add_to_local_hub(hf_cache_dir, TOY_HUB_ID, {"model.safetensors": lambda p: save_file(sd, str(p))})

    model = zoo.create_model("zoo_toy_net", pretrained=True,
                             pretrained_cfg_overlay=dict(hf_hub_id=TOY_HUB_ID)).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x), src(x), atol=0, rtol=0)
    feats = zoo.create_model("zoo_toy_net", pretrained=True, features_only=True)
    assert torch.equal(feats.model.stages[0].conv.weight if hasattr(feats, "model") else
                       dict(feats.named_parameters())["stages_0.conv.weight"], src.stages[0].conv.weight)


def test_missing_hub_repo_offline_fails_without_network():
    with pytest.raises(Exception) as e:
        zoo.create_model("zoo_toy_net", pretrained=True,
                         pretrained_cfg_overlay=dict(hf_hub_id="zoo-test/not-in-cache"))
    assert "offline" in str(e.value).lower() or "cache" in str(e.value).lower() or "not found" in str(e.value).lower()
