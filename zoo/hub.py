"""Checkpoint loading glue shared by every family.

* :func:`load_checkpoint` reads a file without ever executing pickled code: safetensors;
  ``.pth``/``.bin``/``.pt`` through ``torch.load(weights_only=True)`` (with ``argparse.Namespace``
  allowed, for DeiT-style training files); the numpy-pickle formats of
  PaddlePaddle (``.pdparams``) and detectron2 (``.pkl``) through :class:`NumpyOnlyUnpickler`, which
  reconstructs numpy arrays and nothing else.
* :func:`unwrap_state_dict` removes the training wrappers official checkpoints come in
  (``state_dict_ema``, ``model``, ``state_dict``, ``params``, ``model_state``, ...) and the
  ``module.`` / ``_orig_mod.`` prefixes of DDP and ``torch.compile``. Every family's
  ``checkpoint_filter_fn`` starts with it, so each layout is handled in one place.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import pickle
import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

import torch

__all__ = [
    "CheckpointError", "UnsafeCheckpointError", "NumpyOnlyUnpickler", "load_checkpoint",
    "load_numpy_pickle", "unwrap_state_dict", "strip_prefix", "load_into", "guess_variant", "explain_mismatch",
    "looks_like_html", "pretrained_download_guard", "cache_filename", "licence_note", "licence_of", "push_to_hub",
]

_logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

# wrapper keys in order of preference (EMA weights first, as timm's CheckpointSaver files want)
WRAPPER_KEYS = ("state_dict_ema", "model_ema", "model", "state_dict", "params_ema", "params", "model_state",
                "module")
STRIP_PREFIXES = ("module.", "_orig_mod.")
NUMPY_PICKLE_SUFFIXES = (".pdparams", ".pdopt", ".pkl", ".pickle")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not fit the model."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that asks to import or call something other than numpy array reconstruction."""


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler for numpy-pickle checkpoints that refuses every global but numpy's own.

    Paddle's ``paddle.save`` and detectron2's model zoo write dicts of numpy arrays; rebuilding
    those needs ``numpy.core.multiarray._reconstruct`` (``numpy._core`` on numpy 2), ``ndarray``,
    ``dtype``, ``scalar``, ``_frombuffer`` (protocol 5) and ``_codecs.encode`` (protocol 2).
    A ``__reduce__`` that names anything
    else (``os.system``, ``builtins.eval``, ...) is refused before it can run.
    """

    _ALLOWED = {
        (mod, name)
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    } | {
        (mod, "_frombuffer") for mod in ("numpy.core.numeric", "numpy._core.numeric")
    } | {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict"),
        # protocol-2 pickles carry array bytes as latin-1 text re-encoded by _codecs.encode: a pure
        # str -> bytes conversion, nothing else
        ("_codecs", "encode"),
    }

    def __init__(self, file, *, source: str = "<stream>"):
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            import importlib
            return getattr(importlib.import_module(module), name)
        # numpy dtype classes such as numpy.dtypes.Float32DType (numpy >= 1.25 pickles)
        if module == "numpy.dtypes" and name.endswith("DType"):
            import importlib
            return getattr(importlib.import_module(module), name)
        raise UnsafeCheckpointError(
            f"{self.source}: refusing to load, the pickle asks for {module}.{name}; only numpy arrays "
            "may be reconstructed from a numpy-pickle checkpoint")


def load_numpy_pickle(path: PathLike) -> Any:
    """Read a pickled container of numpy arrays (Paddle ``.pdparams``, detectron2 ``.pkl``) safely."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        return NumpyOnlyUnpickler(io.BytesIO(data), source=path).load()
    except UnsafeCheckpointError:
        raise
    except Exception as e:  # truncated or corrupt files
        raise CheckpointError(f"{path}: not a readable numpy-pickle checkpoint ({type(e).__name__}: {e})") from e


def _to_tensors(obj: Any) -> Any:
    """numpy arrays (and nested containers of them) to torch tensors; other leaves unchanged."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a dependency
        np = None
    if np is not None and isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, Mapping):
        return {k: _to_tensors(v) for k, v in obj.items()}
    return obj


def strip_prefix(state_dict: Mapping[str, Any], prefix: str) -> Dict[str, Any]:
    """Drop ``prefix`` from every key that has it (others unchanged)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def unwrap_state_dict(checkpoint: Any, wrapper_keys: Sequence[str] = WRAPPER_KEYS) -> Dict[str, Any]:
    """The flat ``{key: tensor}`` state dict inside any of the usual checkpoint wrappers.

    Wrappers are peeled repeatedly (``{'model': {'state_dict': ...}}``), preferring EMA weights;
    ``module.`` and ``_orig_mod.`` prefixes are stripped; numpy arrays become tensors; non-tensor
    entries of a wrapper (``args``, ``epoch``, ``optimizer``) are dropped with it.
    """
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"expected a state dict (a mapping), got {type(checkpoint).__name__}")
    sd: Mapping[str, Any] = checkpoint
    for _ in range(4):
        for key in wrapper_keys:
            inner = sd.get(key) if isinstance(sd, Mapping) else None
            if isinstance(inner, Mapping) and inner:
                sd = inner
                break
        else:
            break
    sd = _to_tensors(sd)
    out = {}
    for k, v in sd.items():
        if not isinstance(k, str):
            continue
        stripped = True
        while stripped:  # wrapped in either order: module._orig_mod. / _orig_mod.module.
            stripped = False
            for p in STRIP_PREFIXES:
                if k.startswith(p):
                    k, stripped = k[len(p):], True
        out[k] = v
    return out


def load_checkpoint(path: PathLike, *, unwrap: bool = True) -> Dict[str, Any]:
    """Load a checkpoint file as a flat state dict without executing any pickled code.

    safetensors by content; numpy pickles by suffix (``.pdparams``, ``.pkl``); anything else with
    ``torch.load(weights_only=True)``. Errors name the file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with open(path, "rb") as f:
        head = f.read(16)
    if looks_like_html(head):
        raise CheckpointError(_HTML_MESSAGE.format(what=path))
    lower = path.lower()
    if lower.endswith(".safetensors") or _looks_like_safetensors(head):
        from safetensors.torch import load_file
        try:
            ckpt: Any = load_file(path)
        except Exception as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from e
    elif lower.endswith(NUMPY_PICKLE_SUFFIXES):
        ckpt = load_numpy_pickle(path)
    else:
        try:
            # DeiT-style training files carry their argparse.Namespace under 'args': plain attribute
            # storage, no code, so it joins torch's weights-only allow-list and nothing else does
            with torch.serialization.safe_globals([argparse.Namespace]):
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            raise UnsafeCheckpointError(
                f"{path}: refused by torch.load(weights_only=True), the pickle needs objects beyond "
                f"tensors and plain containers ({e})".split("\n")[0]) from e
        except Exception as e:
            raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from e
    if not unwrap:
        return ckpt
    try:
        return unwrap_state_dict(ckpt)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from e


def _looks_like_safetensors(head: bytes) -> bool:
    # 8-byte little-endian header length, then a JSON object
    return len(head) >= 9 and head[8:9] == b"{"


def load_into(model: torch.nn.Module, path: PathLike, filter_fn=None, strict: bool = True):
    """Load ``path`` into ``model`` through the family's ``checkpoint_filter_fn``.

    For models whose pretrained cfg sets ``custom_load=True`` (numpy-pickle releases that timm's
    own loader cannot read safely), ``model.load_pretrained(path)`` delegates here.
    """
    state_dict = load_checkpoint(path)
    if filter_fn is not None:
        state_dict = filter_fn(state_dict, model)
    return model.load_state_dict(state_dict, strict=strict)


def _family_filter(name: str):
    import sys

    from .registry import family_info, model_entry

    mod = sys.modules.get(family_info(model_entry(name).family).module)
    return getattr(mod, "checkpoint_filter_fn", None)


def _expected_shapes(name: str, model_kwargs: Optional[Mapping[str, Any]] = None,
                     ) -> Tuple[torch.nn.Module, Dict[str, Tuple[int, ...]]]:
    import timm

    with torch.device("meta"):
        model = timm.create_model(name, **dict(model_kwargs or {}))
    return model, {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _convert_for(name: str, state_dict: Mapping[str, Any], model_kwargs: Optional[Mapping[str, Any]] = None):
    model, expected = _expected_shapes(name, model_kwargs)
    converted = dict(state_dict)
    fn = _family_filter(name)
    if fn is not None:
        try:
            converted = fn(dict(state_dict), model)
        except Exception:  # a foreign layout may not even get through another family's filter
            converted = dict(state_dict)
    return converted, expected


def guess_variant(state_dict: Mapping[str, Any], candidates: Optional[Sequence[str]] = None):
    """The registered variant whose (key, shape) pairs best match ``state_dict`` after its family's filter.

    Returns ``(name, fraction of keys matching)`` or ``(None, 0.0)``.
    """
    from .registry import list_models

    best, best_score = None, 0.0
    for name in candidates if candidates is not None else list_models():
        converted, expected = _convert_for(name, state_dict)
        shapes = {k: tuple(getattr(v, "shape", ())) for k, v in converted.items()}
        hits = sum(1 for k, s in expected.items() if shapes.get(k) == s)
        score = hits / max(len(expected), len(shapes), 1)
        if score > best_score:
            best, best_score = name, score
    return best, best_score


def explain_mismatch(path: PathLike, name: str, state_dict: Mapping[str, Any],
                     candidates: Optional[Sequence[str]] = None,
                     model_kwargs: Optional[Mapping[str, Any]] = None) -> CheckpointError:
    """One error saying why ``path`` does not load into ``name`` (built with ``model_kwargs``, the
    caller's architecture overrides), and which registered variant it likely is."""
    model_kwargs = dict(model_kwargs or {})
    converted, expected = _convert_for(name, state_dict, model_kwargs)
    missing = [k for k in expected if k not in converted]
    unexpected = [k for k in converted if k not in expected]
    mismatched = [f"{k}: checkpoint {tuple(converted[k].shape)} vs model {expected[k]}"
                  for k in expected if k in converted and tuple(getattr(converted[k], "shape", ())) != expected[k]]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:3])})")
    if mismatched:
        parts.append(f"{len(mismatched)} shape mismatches (first: {'; '.join(mismatched[:2])})")
    guess, score = guess_variant(state_dict, candidates)
    if guess is None or score < 0.5:
        parts.append("no registered zoo variant matches it")
    elif guess != name:
        parts.append(f"it most likely belongs to {guess} ({score:.0%} of keys and shapes match)")
    built = name + (f" (with {', '.join(f'{k}={v!r}' for k, v in model_kwargs.items())})" if model_kwargs else "")
    return CheckpointError(f"{os.fspath(path)} does not fit {built}: " + "; ".join(parts))


# --- weights that cannot be downloaded, and downloads that are not weights ---------------------------------
# One rule for every family: a cfg's ``url`` is a file a plain HTTP GET returns. Share pages (Google Drive,
# OneDrive, Baidu Pan) are not: Drive answers a large ``uc?export=download`` request with an HTML confirmation
# page, and timm caches every such URL under the same name (``checkpoints/uc``), so one tag's file would be
# loaded for another. Those weights are recorded as ``origin_url`` only and load with ``checkpoint_path=``.

_HTML_PREFIXES = (b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"<meta", b"<!--")
_HTML_MESSAGE = ("{what} is an HTML page, not a checkpoint (a share link's confirmation, sign-in or quota page "
                 "saved as the file?); download the weights by hand from the page that lists them and pass the "
                 "file with checkpoint_path=")


def looks_like_html(head: bytes) -> bool:
    """True when the first bytes of a file are a web page rather than a checkpoint."""
    return head.lstrip().lower().startswith(_HTML_PREFIXES)


def cache_filename(cfg: Mapping[str, Any]) -> Optional[str]:
    """The file name timm caches a cfg's ``url`` under (``url`` or ``(url, filename)``), None without one."""
    from urllib.parse import urlparse

    url = cfg.get("url")
    if not url:
        return None
    if isinstance(url, (tuple, list)):
        return url[1]
    return os.path.basename(urlparse(url).path)


@contextlib.contextmanager
def pretrained_download_guard(name: str, pretrained: bool, kwargs: Mapping[str, Any]):
    """Around a model entrypoint: ``pretrained=True`` on a tag whose weights zoo cannot download raises a
    ValueError naming where they are (timm would warn and return random weights), and a download that turns
    out to be an HTML page raises a :class:`CheckpointError` saying so (torch reports "invalid load key")."""
    if not pretrained:
        yield
        return
    from timm.models._builder import resolve_pretrained_cfg

    cfg = resolve_pretrained_cfg(name, pretrained_cfg=kwargs.get("pretrained_cfg"),
                                 pretrained_cfg_overlay=kwargs.get("pretrained_cfg_overlay"))
    full = f"{name}.{cfg.tag}" if cfg.tag else name
    if not (cfg.has_weights or cfg.state_dict is not None) and cfg.origin_url:
        from .registry import model_entry

        entry = model_entry(name)
        if not entry.test_model:
            if not cfg.tag or cfg.tag not in entry.reported:
                raise ValueError(f"{full}: no released weights are recorded for it (see {cfg.origin_url}); "
                                 f"pass checkpoint_path=FILE to load your own")
            raise ValueError(
                f"{full}: zoo cannot download these weights (no direct file URL): get them from "
                f"{cfg.origin_url} and load them with zoo.create_model({full!r}, checkpoint_path=FILE)")
    try:
        yield
    except Exception as e:
        cached = _cached_download(cfg.to_dict(), kwargs.get("cache_dir")) if cfg.url else None
        if cached is not None:
            with open(cached, "rb") as f:
                html = looks_like_html(f.read(64))
            if html:
                where = cfg.url[0] if isinstance(cfg.url, (tuple, list)) else cfg.url
                raise CheckpointError(_HTML_MESSAGE.format(what=f"{full}: the download from {where}") +
                                      f" (and delete {cached})") from e
        raise


def _cached_download(cfg: Mapping[str, Any], cache_dir: Optional[PathLike] = None) -> Optional[str]:
    """Where timm / torch.hub saved a cfg's ``url`` (``<cache_dir or hub dir>/checkpoints/<name>``), if there."""
    name = cache_filename(cfg)
    if not name:
        return None
    for d in (cache_dir, os.path.join(torch.hub.get_dir(), "checkpoints")):
        if d and os.path.isfile(os.path.join(os.fspath(d), name)):
            return os.path.join(os.fspath(d), name)
    return None


# --- licences and publishing --------------------------------------------------------------------------------
# A cfg's ``license`` is a Hugging Face Hub licence identifier. Where none fits it is ``other`` and one of the
# cfg's notes, written by :func:`licence_note`, names the licence and links its text; the Hub card carries
# them as ``license_name`` / ``license_link``.

_LICENCE_NOTE = re.compile(r"^licence: (?P<name>[^<]+?) <(?P<link>[^>]+)>(?:; (?P<text>.*))?$")


def licence_note(name: str, link: str, text: str = "") -> str:
    """The cfg note that describes an ``other`` licence: its name, a link to its text, what it says."""
    return f"licence: {name} <{link}>" + (f"; {text}" if text else "")


def licence_of(cfg: Mapping[str, Any]) -> Dict[str, str]:
    """``{"license": id}`` plus ``license_name`` / ``license_link`` (and ``license_text``) for ``other``."""
    out = {"license": cfg.get("license") or "other"}
    notes = cfg.get("notes") or ()
    for note in ((notes,) if isinstance(notes, str) else notes):
        m = _LICENCE_NOTE.match(note)
        if m:
            name = m.group("name").strip()
            out.update(license_name=re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-"),
                       license_link=m.group("link"), license_text=f"{name}" + (
                           f": {m.group('text')}" if m.group("text") else ""))
            break
    return out


def push_to_hub(folder: PathLike, repo_id: str, *, token: Optional[str] = None, private: bool = False,
                revision: Optional[str] = None, commit_message: str = "Add zoo model") -> Any:
    """Upload a folder written by ``zoo convert`` (config.json, model.safetensors, the zoo model card as
    README.md) to ``repo_id`` as it is.

    timm's ``push_to_hf_hub`` serialises the model again and writes its own README (``license: apache-2.0``,
    image-classification) when the repo has none; the folder that was written and checked is what goes up
    here, its README included (an existing README in the repo is replaced by the zoo card).
    """
    from huggingface_hub import HfApi

    from timm import __version__ as timm_version

    api = HfApi(token=token, library_name="timm", library_version=timm_version)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    return api.upload_folder(repo_id=repo_id, folder_path=os.fspath(folder), revision=revision,
                             commit_message=commit_message)
