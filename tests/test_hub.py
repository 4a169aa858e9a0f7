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


# -- hostile and broken files: every failure is one CheckpointError naming the file (issue 22) --------------

class _Reduce:
    """Pickles as ``fn(*args)``: the way a hostile file calls an allowed numpy constructor."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


def _dump(path: Path, obj, protocol: int = 2) -> Path:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)
    return path


HOSTILE_NUMPY = {
    # a 0-stride view of 5e8 float32 over 4 bytes: 2 GB once made contiguous
    "zero_stride_view": lambda: {"w": _Reduce(np.ndarray, (500_000_000,), np.dtype("f4"), b"\0" * 4, 0, (0,))},
    "view_beyond_buffer": lambda: {"w": _Reduce(np.ndarray, (1000,), np.dtype("f8"), b"\0" * 16, 0, (8,))},
    "three_big_views": lambda: {k: _Reduce(np.ndarray, (500_000_000,), np.dtype("f4"), b"\0" * 4, 0, (0,))
                                for k in "abc"},
    "object_reconstruct": lambda: {"w": _Reduce(_reconstruct(), np.ndarray, (300_000_000,), "O")},
    "huge_reconstruct": lambda: {"w": _Reduce(_reconstruct(), np.ndarray, (300_000_000,), "f8")},
    "object_array": lambda: {"w": np.array([1, "x", None], dtype=object)},
}


@pytest.mark.parametrize("attack", sorted(HOSTILE_NUMPY))
@pytest.mark.parametrize("protocol", [2, 5])
def test_numpy_pickle_cannot_allocate_beyond_the_file(tmp_path, attack, protocol):
    path = _dump(tmp_path / f"{attack}.pdparams", HOSTILE_NUMPY[attack](), protocol)
    assert path.stat().st_size < 400  # tiny files, which used to allocate gigabytes
    with pytest.raises(CheckpointError, match=f"{attack}.pdparams") as e:
        load_checkpoint(path)
    assert "object" in str(e.value) or "bytes" in str(e.value)


def _deep(depth: int) -> dict:
    root = cur = {}
    for _ in range(depth):
        cur["a"] = {}
        cur = cur["a"]
    return root


@pytest.mark.parametrize("suffix", [".pth", ".pdparams"])
def test_recursive_and_deeply_nested_files_are_one_checkpoint_error(tmp_path, suffix):
    import sys

    cyclic = {}
    cyclic["a"] = cyclic
    looped = {"model": None}
    looped["model"] = looped
    files = {"cyclic": cyclic, "looped": looped, "deep": _deep(5000)}
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(30_000)  # only to *write* the 5000-deep dict
    try:
        for name, obj in files.items():
            path = tmp_path / f"{name}{suffix}"
            torch.save(obj, path) if suffix == ".pth" else _dump(path, obj)
    finally:
        sys.setrecursionlimit(limit)
    for name in files:
        with pytest.raises(CheckpointError, match=f"{name}{suffix}.*not a tensor"):
            load_checkpoint(tmp_path / f"{name}{suffix}")


@pytest.mark.parametrize("value", ["text", None, 3, [1, 2], {"x": 1}])
def test_non_tensor_values_are_named(tmp_path, value):
    path = tmp_path / "odd.pth"
    torch.save({"w": torch.zeros(2), "odd": value}, path)
    with pytest.raises(CheckpointError, match=r"odd.pth: 'odd' holds a \w+, not a tensor"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="odd.pth"):
        zoo.create_model("zoo_toy_net_test", checkpoint_path=path)


def test_paddle_name_map_is_not_a_weight(tmp_path):
    path = _dump(tmp_path / "m.pdparams", {"w": np.ones(2, "f4"), "StructuredToParameterName@@": {"w": "linear_0.w_0"}})
    assert set(load_checkpoint(path)) == {"w"}


def test_torch_view_claiming_more_than_its_storage_is_refused(tmp_path):
    path = tmp_path / "expand.pth"
    torch.save({"w": torch.zeros(1).expand(10_000_000)}, path)
    with pytest.raises(CheckpointError, match="expand.pth: 'w' is a view"):
        load_checkpoint(path)
    ok = tmp_path / "views.pth"
    base = torch.arange(12.0).view(3, 4)
    torch.save({"t": base.t(), "row": base[1], "base": base}, ok)  # ordinary views stay loadable
    out = load_checkpoint(ok)
    assert torch.equal(out["t"], base.t()) and torch.equal(out["row"], base[1])


def test_unsafe_pickle_message_names_the_global_and_never_advises_weights_only_false(tmp_path):
    import os as _os

    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(2), "x": _Reduce(_os.system, "true")}, path)
    with pytest.raises(UnsafeCheckpointError) as e:
        load_checkpoint(path)
    msg = str(e.value)
    assert "evil.pth" in msg and f"{_os.system.__module__}.system" in msg
    assert "weights_only" not in msg and "\x1b" not in msg and "\n" not in msg


def test_truncated_pickle_is_corrupt_not_hostile(tmp_path):
    import zipfile

    good = tmp_path / "good.pth"
    torch.save({"w": torch.zeros(100)}, good)
    bad = tmp_path / "cut.pth"
    with zipfile.ZipFile(good) as zin, zipfile.ZipFile(bad, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            zout.writestr(info, data[: len(data) // 2] if info.filename.endswith("data.pkl") else data)
    with pytest.raises(CheckpointError, match="cut.pth: corrupt or truncated") as e:
        load_checkpoint(bad)
    assert not isinstance(e.value, UnsafeCheckpointError)


def test_directory_or_fifo_is_not_called_missing(tmp_path):
    import os as _os

    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="is a directory"):
        zoo.create_model("zoo_toy_net_test", checkpoint_path=tmp_path)
    if hasattr(_os, "mkfifo"):
        fifo = tmp_path / "pipe.pth"
        _os.mkfifo(fifo)
        with pytest.raises(CheckpointError, match="not a regular file"):
            load_checkpoint(fifo)


def test_loader_module_imports_nothing_from_zoo_and_hub_registry_are_independent():
    import ast

    root = Path(zoo.__file__).parent

    def zoo_imports(mod):
        tree = ast.parse((root / f"{mod}.py").read_text())
        out = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    out.add(node.module or "")
                elif (node.module or "").startswith("zoo"):
                    out.add(node.module)
            elif isinstance(node, ast.Import):
                out |= {a.name for a in node.names if a.name.startswith("zoo")}
        return out

    assert zoo_imports("checkpoint") == set()
    assert not {m for m in zoo_imports("hub") if "registry" in m or "factory" in m}
    assert not {m for m in zoo_imports("registry") if "hub" in m or "checkpoint" in m}
    # the old names stay importable
    from zoo.hub import explain_mismatch, guess_variant  # noqa: F401
    from zoo.registry import create_model  # noqa: F401


# -- zoo convert: refuses to overwrite, one-line errors with exit code 2 --------------------------------------

def _toy_official_file(tmp_path) -> Path:
    src = zoo.create_model("zoo_toy_net_test")
    path = tmp_path / "toy.pth"
    torch.save(src.state_dict(), path)
    return path


def test_convert_refuses_a_non_empty_out_unless_overwrite(tmp_path, capsys):
    from zoo.cli import main

    ckpt = _toy_official_file(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text("mine")
    assert main(["convert", "zoo_toy_net_test", "--checkpoint", str(ckpt), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty" in err and "--overwrite" in err
    assert (out / "README.md").read_text() == "mine" and not (out / "config.json").exists()
    assert main(["convert", "zoo_toy_net_test", "--checkpoint", str(ckpt), "--out", str(out), "--overwrite"]) == 0
    assert (out / "config.json").exists()


@pytest.mark.parametrize("case", ["missing_checkpoint", "bad_json", "not_an_object", "unknown_arg", "out_is_file",
                                  "unknown_model", "hostile"])
def test_convert_expected_failures_are_one_line_and_exit_2(tmp_path, capsys, case):
    from zoo.cli import main

    ckpt = _toy_official_file(tmp_path)
    args = ["convert", "zoo_toy_net_test", "--checkpoint", str(ckpt), "--out", str(tmp_path / "out")]
    if case == "missing_checkpoint":
        args[3] = str(tmp_path / "nope.pth")
    elif case == "bad_json":
        args += ["--model-args", "{widths: 1"]
    elif case == "not_an_object":
        args += ["--model-args", "[1, 2]"]
    elif case == "unknown_arg":
        args += ["--model-args", '{"no_such_arg": 1}']
    elif case == "out_is_file":
        (tmp_path / "out").write_text("x")
    elif case == "unknown_model":
        args[1] = "zoo_toy_nett"
    elif case == "hostile":
        _dump(tmp_path / "evil.pdparams", {"x": _WritesMarker(tmp_path / "pwned")})
        args[3] = str(tmp_path / "evil.pdparams")
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
