"""Building zoo models: ``create_model`` and the explanation of a checkpoint that does not fit.

The top layer of loading: :mod:`zoo.checkpoint` reads files (and imports nothing from zoo),
:mod:`zoo.registry` holds the names, facts and each family's declared ``checkpoint_filter_fn``,
and this module puts the two together on top of ``timm.create_model``.
"""
from __future__ import annotations

import functools
import json
import logging
import math
import numbers
import os
import re
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import timm
import torch
from torch.overrides import TorchFunctionMode

from .checkpoint import CheckpointError, load_checkpoint
from .registry import family_filter, list_families, list_models, model_entry, test_models

__all__ = ["create_model", "guess_variant", "explain_mismatch", "OfflineError"]

_logger = logging.getLogger(__name__)


class OfflineError(FileNotFoundError):
    """Offline mode (``HF_HUB_OFFLINE=1``) and the weights are not in the local cache."""


# -- argument checks at creation ---------------------------------------------------------------------

_RATES = ("drop_rate", "drop_path_rate", "attn_drop_rate", "proj_drop_rate", "pos_drop_rate")


def _check_kwargs(name: str, kwargs: Mapping[str, Any]) -> None:
    """Values timm would accept and fail on later (or never): refused here, naming the model."""
    for key in ("num_classes",):
        v = kwargs.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0):
            raise ValueError(f"{name}: {key} must be an integer >= 0 (0 removes the classifier), got {v!r}")
    v = kwargs.get("in_chans")
    if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1):
        raise ValueError(f"{name}: in_chans must be an integer >= 1, got {v!r}")
    for key in _RATES:
        v = kwargs.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, numbers.Real) or not 0 <= v < 1):
            raise ValueError(f"{name}: {key} must be a probability in [0, 1), got {v!r}")
    v = kwargs.get("img_size")
    if v is not None:
        sizes = (v,) if isinstance(v, numbers.Number) else tuple(v) if isinstance(v, (tuple, list)) else None
        if not sizes or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1 for s in sizes):
            raise ValueError(f"{name}: img_size must be a positive integer or (H, W) of positive integers, got {v!r}")


# -- where pretrained weights come from, and offline mode -----------------------------------------------

def _offline() -> bool:
    try:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            return True
    except ImportError:  # pragma: no cover - timm depends on huggingface_hub
        pass
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _check_offline_source(model_name: str, overlay: Mapping[str, Any], cache_dir: Optional[str] = None,
                          hub: bool = False) -> None:
    """In offline mode, name the missing file and its origin.

    The source is resolved as timm resolves it (``file`` > Hub id > ``url``). A URL (``hub=False``) is
    checked in timm's torch-hub cache (``<TORCH_HOME>/hub/checkpoints``) before timm runs, since torch's
    downloader ignores offline mode; the Hub (``hub=True``) is checked in huggingface_hub's cache after
    timm failed (huggingface_hub itself never goes online then, and the model's own argument checks
    come first).
    """
    if not _offline():
        return
    import dataclasses
    from urllib.parse import urlparse

    from timm.models import get_pretrained_cfg
    from timm.models._builder import _resolve_pretrained_source

    cfg = get_pretrained_cfg(model_name)
    if cfg is None:
        return
    cfg = dataclasses.replace(cfg, **{k: v for k, v in overlay.items() if hasattr(cfg, k)}).to_dict()
    load_from, loc = _resolve_pretrained_source(cfg)
    if load_from == "hf-hub" and hub:
        from huggingface_hub import try_to_load_from_cache

        repo, files = (loc[0], [loc[1]]) if isinstance(loc, (tuple, list)) else \
            (loc, ["model.safetensors", "open_clip_pytorch_model.bin", "pytorch_model.bin"])
        if any(isinstance(try_to_load_from_cache(repo, f, cache_dir=cache_dir), str) for f in files):
            return
        raise OfflineError(
            f"{model_name}: offline (HF_HUB_OFFLINE=1) and the weights are not in the Hugging Face cache: "
            f"{' or '.join(files)} of https://huggingface.co/{repo} is missing; download it once online, "
            "or pass checkpoint_path=")
    if load_from == "url" and not hub:
        from timm.models._hub import get_cache_dir

        url, fname = loc if isinstance(loc, (tuple, list)) else (loc, os.path.basename(urlparse(loc).path))
        cached = os.path.join(cache_dir or get_cache_dir(), fname)
        if os.path.isfile(cached):
            return
        raise OfflineError(
            f"{model_name}: offline (HF_HUB_OFFLINE=1) and the weights are not cached: {cached} is missing; "
            f"it would be downloaded from {url}. Download it there once online, or pass checkpoint_path=")


# -- local-dir: folders ---------------------------------------------------------------------------------

_LOCAL_WEIGHTS = ("model.safetensors", "open_clip_model.safetensors", "pytorch_model.bin",
                  "open_clip_pytorch_model.bin")


def _check_local_dir(model_name: str, pretrained: bool) -> None:
    """A ``local-dir:`` folder that cannot work fails here with a CheckpointError naming the file."""
    folder = model_name.split(":", 1)[1]
    if not os.path.isdir(folder):
        raise CheckpointError(f"{model_name}: {folder} is not a folder (expected one written by `zoo convert` "
                              "or timm's save_for_hf)")
    config = os.path.join(folder, "config.json")
    try:
        with open(config) as f:
            cfg = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{config}: missing; a local-dir: folder needs the config.json that "
                              "`zoo convert` writes") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{config}: not a readable JSON config ({e})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("architecture"), str):
        raise CheckpointError(f"{config}: has no \"architecture\" naming the model")
    model_entry(cfg["architecture"])  # unknown architecture: the usual ValueError with close matches
    if pretrained:
        weights = [os.path.join(folder, f) for f in _LOCAL_WEIGHTS if os.path.exists(os.path.join(folder, f))]
        if not weights:
            raise CheckpointError(f"{folder}: no weights file ({', '.join(_LOCAL_WEIGHTS[::2])})")
        load_checkpoint(weights[0], unwrap=False)  # read with the safe loader first: errors name the file


# -- mismatch explanation -----------------------------------------------------------------------------

_TABLE_LOCK = threading.RLock()


class _NoInitOnMeta(TorchFunctionMode):
    """In-place ops on ``meta`` tensors (weight init: ``uniform_``, ``trunc_normal_``'s ``clamp_``...)
    return their input: they cannot change a shape, and skipping them makes a meta build several times
    faster (torch runs them through its Python reference decompositions)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if (name.endswith("_") and not name.endswith("__") and args and isinstance(args[0], torch.Tensor)
                and args[0].is_meta):
            return args[0]
        return func(*args, **(kwargs or {}))


@functools.lru_cache(maxsize=None)
def _meta_model(name: str, kwargs_key: Tuple[Tuple[str, Any], ...] = ()) -> Tuple[torch.nn.Module, Dict[str, Tuple[int, ...]]]:
    """``name`` built once on ``meta`` (no storage, no init) with its key -> shape table; cached per variant."""
    with torch.device("meta"), _NoInitOnMeta():
        model = timm.create_model(name, **dict(kwargs_key))
    return model, {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _expected(name: str, model_kwargs: Optional[Mapping[str, Any]] = None):
    kwargs = dict(model_kwargs or {})
    try:
        key = tuple(sorted((k, _freeze(v)) for k, v in kwargs.items()))
        hash(key)
    except TypeError:
        key = None
    if key is None:
        with torch.device("meta"), _NoInitOnMeta():
            model = timm.create_model(name, **kwargs)
        return model, {k: tuple(v.shape) for k, v in model.state_dict().items()}
    with _TABLE_LOCK:
        return _meta_model(name, key)


def _freeze(v: Any) -> Any:
    if isinstance(v, list):
        return tuple(_freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _freeze(x)) for k, x in v.items()))
    return v


def _shape(v: Any) -> Optional[Tuple[int, ...]]:
    shape = getattr(v, "shape", None)
    return None if shape is None else tuple(shape)


def _same_shape(a: Optional[Tuple[int, ...]], b: Tuple[int, ...]) -> bool:
    # a 0-dim buffer saved as (1,) by older code (BatchNorm's num_batches_tracked) loads fine in torch
    return a == b or (a is not None and len(a) <= 1 and len(b) <= 1 and math.prod(a) == math.prod(b) == 1)


def _convert_with(model: torch.nn.Module, name: str, state_dict: Mapping[str, Any]) -> Dict[str, Any]:
    fn = family_filter(name)
    if fn is None:
        return dict(state_dict)
    try:
        return fn(dict(state_dict), model)
    except Exception:  # a foreign layout may not even get through another family's filter
        return dict(state_dict)


def _convert_for(name: str, state_dict: Mapping[str, Any], model_kwargs: Optional[Mapping[str, Any]] = None):
    model, expected = _expected(name, model_kwargs)
    return _convert_with(model, name, state_dict), expected


# key/shape tables of every variant: in memory, and on disk (keyed by the family file's content and the
# library versions) so that the first explanation in a new process does not build every variant again
_TABLES: Dict[str, Dict[str, Tuple[int, ...]]] = {}


def _table_cache_path(name: str) -> Optional[str]:
    import hashlib
    import sys

    if os.environ.get("ZOO_NO_DISK_CACHE"):
        return None
    try:
        fn = timm.models._registry._model_entrypoints[name]
        src = getattr(sys.modules.get(fn.__module__), "__file__", None)
        with open(src, "rb") as f:
            digest = hashlib.sha1(f.read())
    except Exception:
        return None
    digest.update(f"{name}|{timm.__version__}|{torch.__version__}".encode())
    root = os.environ.get("ZOO_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "zoo")
    return os.path.join(root, "shapes", f"{name}-{digest.hexdigest()[:16]}.json")


def _table(name: str) -> Dict[str, Tuple[int, ...]]:
    """``{key: shape}`` of variant ``name`` with default arguments (cached in memory and on disk)."""
    with _TABLE_LOCK:
        if name in _TABLES:
            return _TABLES[name]
    path = _table_cache_path(name)
    table = None
    if path is not None and os.path.isfile(path):
        try:
            with open(path) as f:
                table = {k: tuple(v) for k, v in json.load(f).items()}
        except (OSError, ValueError, AttributeError, TypeError):
            table = None
    if table is None:
        table = _expected(name)[1]
        if path is not None:
            try:
                os.makedirs(os.path.dirname(path), exist_ok=True)
                tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
                with open(tmp, "w") as f:
                    json.dump(table, f)
                os.replace(tmp, path)
            except OSError:
                pass
    with _TABLE_LOCK:
        _TABLES[name] = table
    return table


def _score_table(converted: Mapping[str, Any], expected: Mapping[str, Tuple[int, ...]]) -> float:
    hits = sum(1 for k, s in expected.items() if _same_shape(_shape(converted.get(k)), s))
    return hits / max(len(expected), len(converted), 1)


_DIGITS = re.compile(r"\d+")


def _pattern(keys) -> set:
    return {_DIGITS.sub("#", k) for k in keys}


def _pattern_score(converted: Mapping[str, Any], expected: Mapping[str, Any]) -> float:
    a, b = _pattern(converted), _pattern(expected)
    return len(a & b) / max(len(a | b), 1)


def _family_conversions(state_dict: Mapping[str, Any], hint: Optional[Tuple[str, torch.nn.Module]] = None,
                        ) -> Dict[str, Dict[str, Any]]:
    """``{family: the file converted by that family's filter}`` for the families whose key patterns
    (digits folded, so depth does not count) cover most of the file's: the families worth comparing.

    ``hint`` (a model name and its built model) is tried first: a checkpoint of another variant of the
    requested model's family is recognised without building anything else.
    """
    scores: Dict[str, Tuple[float, Dict[str, Any]]] = {}
    if hint is not None:
        name, model = hint
        converted = _convert_with(model, name, state_dict)
        family = model_entry(name).family
        scores[family] = (_pattern_score(converted, model.state_dict()), converted)
        if scores[family][0] >= 0.8:
            return {family: converted}
    for family in list_families():
        for name in test_models(family):
            try:
                model, expected = _expected(name)
            except Exception:
                continue
            converted = _convert_with(model, name, state_dict)
            score = _pattern_score(converted, expected)
            if score > scores.get(family, (-1.0, None))[0]:
                scores[family] = (score, converted)
    if not scores:
        return {}
    top = max(v for v, _ in scores.values())
    return {f: c for f, (v, c) in scores.items() if v >= 0.5 and v >= top - 0.2}


def guess_variants(state_dict: Mapping[str, Any], candidates: Optional[Sequence[str]] = None,
                   hint: Optional[Tuple[str, torch.nn.Module]] = None) -> Tuple[List[str], float]:
    """Every registered variant (test models included) whose (key, shape) pairs best match ``state_dict``
    after its family's filter: ``([names tied for best], fraction of keys matching)`` or ``([], 0.0)``.

    Families are first narrowed by key names; the file is converted once per family and compared with
    each variant's cached key/shape table, so an explanation costs well under a second once the tables
    exist (they are kept on disk, see ``ZOO_CACHE_DIR``; ``ZOO_NO_DISK_CACHE=1`` keeps them in memory only).
    """
    scored: List[Tuple[str, float]] = []
    if candidates is not None:
        for name in candidates:
            try:
                converted, expected = _convert_for(name, state_dict)
            except Exception:  # a variant that cannot even be built on meta is no candidate
                continue
            scored.append((name, _score_table(converted, expected)))
    else:
        for family, converted in _family_conversions(state_dict, hint).items():
            for name in list_models(family=family, include_test=True):
                try:
                    scored.append((name, _score_table(converted, _table(name))))
                except Exception:
                    continue
    best: List[str] = []
    best_score = 0.0
    for name, score in scored:
        if score > best_score + 1e-12:
            best, best_score = [name], score
        elif best and abs(score - best_score) <= 1e-12:
            best.append(name)
    return best, best_score


def guess_variant(state_dict: Mapping[str, Any], candidates: Optional[Sequence[str]] = None):
    """The best-matching registered variant: ``(name, fraction of keys matching)`` or ``(None, 0.0)``.

    With a tie, the first in name order; :func:`guess_variants` lists them all.
    """
    best, score = guess_variants(state_dict, candidates)
    return (best[0] if best else None), score


def _differences(converted: Mapping[str, Any], expected: Mapping[str, Tuple[int, ...]],
                 ignore: Sequence[str] = ()) -> Tuple[List[str], List[str], List[str]]:
    def skip(k: str) -> bool:
        return any(k == p or k.startswith(p + ".") for p in ignore)

    missing = [k for k in expected if k not in converted and not skip(k)]
    unexpected = [k for k in converted if k not in expected and not skip(k)]
    mismatched = [f"{k}: checkpoint {_shape(converted[k])} vs model {expected[k]}"
                  for k in expected if k in converted and not skip(k)
                  and not _same_shape(_shape(converted[k]), expected[k])]
    return missing, unexpected, mismatched


def explain_mismatch(path: Union[str, "os.PathLike[str]"], name: str, state_dict: Mapping[str, Any],
                     candidates: Optional[Sequence[str]] = None,
                     model_kwargs: Optional[Mapping[str, Any]] = None) -> CheckpointError:
    """One error saying why ``path`` does not load into ``name`` (built with ``model_kwargs``, the
    caller's architecture overrides), and which registered variant(s) it likely is."""
    model_kwargs = dict(model_kwargs or {})
    model, expected = _expected(name, model_kwargs)
    converted = _convert_with(model, name, state_dict)
    missing, unexpected, mismatched = _differences(converted, expected)
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys (first: {', '.join(missing[:3])})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys (first: {', '.join(unexpected[:3])})")
    if mismatched:
        parts.append(f"{len(mismatched)} shape mismatches (first: {'; '.join(mismatched[:2])})")
    guesses, score = guess_variants(state_dict, candidates, hint=(name, model))
    if not guesses or score < 0.5:
        parts.append("no registered zoo variant matches it")
    else:
        others = guesses if model_kwargs else [g for g in guesses if g != model_entry(name).name]
        if len(others) == 1:
            parts.append(f"it most likely belongs to {others[0]} ({score:.0%} of keys and shapes match)")
        elif others:
            parts.append(f"it most likely belongs to one of {', '.join(others)} (tied: {score:.0%} of keys "
                         "and shapes match each)")
    built = name + (f" (with {', '.join(f'{k}={v!r}' for k, v in model_kwargs.items())})" if model_kwargs else "")
    return CheckpointError(f"{os.fspath(path)} does not fit {built}: " + ("; ".join(parts) or "load failed"))


# -- the checkpoint's own classifier --------------------------------------------------------------------

def _file_num_classes(name: str, state_dict: Mapping[str, Any]) -> Optional[int]:
    """The class count of the classifier in ``state_dict`` (after the family filter), if the cfg names one."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    classifiers = getattr(cfg, "classifier", None) if cfg is not None else None
    if not classifiers:
        return None
    classifiers = (classifiers,) if isinstance(classifiers, str) else tuple(classifiers)
    try:
        converted, _ = _convert_for(model_entry(name).name, state_dict)
    except Exception:
        return None
    for c in classifiers:
        shape = _shape(converted.get(f"{c}.weight"))
        if shape:
            return int(shape[0])
    return None


_NOT_ARCH = ("pretrained_cfg_overlay", "pretrained_cfg", "out_indices", "output_stride", "cache_dir",
             "pretrained_strict", "scriptable", "exportable", "no_jit")


def _precheck(model_name: str, overlay: Mapping[str, Any], arch: Mapping[str, Any]) -> None:
    """Compare the converted file with the requested model's key/shape table (built on ``meta``) before
    timm builds the real model: a file that cannot load fails in well under a second, explained."""
    from timm.models import get_pretrained_cfg

    try:
        model, expected = _expected(model_name, arch)
        converted = _convert_with(model, model_name, overlay["state_dict"])
        cfg = get_pretrained_cfg(model_name)
        ignore: List[str] = []
        if cfg is not None:
            # what timm's load_pretrained itself adapts: a classifier of another class count is dropped,
            # the first conv is adapted to another in_chans
            if arch.get("num_classes", cfg.num_classes) != overlay.get("num_classes", cfg.num_classes) and cfg.classifier:
                ignore += [cfg.classifier] if isinstance(cfg.classifier, str) else list(cfg.classifier)
            if arch.get("in_chans") not in (None, 3) and cfg.first_conv:
                ignore += [cfg.first_conv] if isinstance(cfg.first_conv, str) else list(cfg.first_conv)
        differs = any(_differences(converted, expected, ignore))
    except Exception:  # cannot judge on meta: let timm's load decide
        return
    if differs:
        raise explain_mismatch(overlay["file"], model_name, overlay["state_dict"], model_kwargs=arch)


# -- create_model -------------------------------------------------------------------------------------------

def create_model(
        model_name: str,
        pretrained: bool = False,
        *,
        checkpoint_path: Optional[Union[str, os.PathLike]] = None,
        **kwargs: Any,
):
    """Create a zoo model; the same as ``timm.create_model`` after ``import zoo``, plus:

    * an unknown name raises ``ValueError`` listing the closest zoo names; a name that is not a string,
      a negative ``num_classes``, ``in_chans=0``, a rate outside ``[0, 1)`` or a non-positive ``img_size``
      raise at creation, naming the model;
    * ``checkpoint_path=FILE`` loads an official or zoo checkpoint (any layout the family's
      ``checkpoint_filter_fn`` accepts: official keys, Paddle ``.pdparams``, detectron2 ``.pkl``,
      wrapped or prefixed state dicts) with the safe loader of :mod:`zoo.checkpoint`, converts it with
      the filter and loads it strictly, also into ``features_only`` models. A ``file`` given in
      ``pretrained_cfg_overlay`` is loaded the same way. With a ``num_classes`` different from the
      file's classifier, the backbone is loaded and the classifier newly initialised (logged), as
      timm does for its own pretrained weights;
    * in offline mode (``HF_HUB_OFFLINE=1``) a pretrained tag whose weights are not cached fails with
      :class:`OfflineError` naming the missing file and where it would come from, without network access.
    """
    if not isinstance(model_name, str):
        raise TypeError(f"create_model expects a model name (str), got {type(model_name).__name__}: "
                        f"{model_name!r}; see zoo.list_models()")
    if model_name.startswith("local-dir:"):
        _check_kwargs(model_name, kwargs)
        if checkpoint_path is not None:
            raise TypeError(f"{model_name}: a local-dir: folder brings its own weights; checkpoint_path= "
                            "does not apply")
        _check_local_dir(model_name, pretrained)
        try:
            return timm.create_model(model_name, pretrained=pretrained, **kwargs)
        except (RuntimeError, KeyError, OSError) as e:
            raise CheckpointError(f"{model_name.split(':', 1)[1]}: could not be loaded "
                                  f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
    if model_name.startswith(("hf-hub:", "hf_hub:")):
        return timm.create_model(model_name, pretrained=pretrained, **kwargs)
    entry = model_entry(model_name)  # raises with suggestions
    _check_kwargs(entry.name, kwargs)

    overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
    if checkpoint_path is not None:
        overlay["file"] = checkpoint_path
        pretrained = True
    if pretrained and overlay.get("file") is not None and overlay.get("state_dict") is None:
        # timm would torch.load the file itself; zoo's loader also reads safetensors and numpy
        # pickles (Paddle, detectron2) without ever executing pickled code.
        overlay["state_dict"] = load_checkpoint(overlay["file"])
        num_classes = kwargs.get("num_classes")
        if num_classes is not None and "num_classes" not in overlay:
            file_classes = _file_num_classes(model_name, overlay["state_dict"])
            # timm keeps the file's classifier when the counts agree and drops it (new head) when they
            # differ: tell it how many classes the file really has
            overlay["num_classes"] = file_classes if file_classes is not None else num_classes
            if file_classes is not None and file_classes != num_classes:
                _logger.info("%s: the checkpoint's classifier has %d classes, the model %d: backbone loaded, "
                             "classifier newly initialised", os.fspath(overlay["file"]), file_classes, num_classes)
    elif pretrained:
        _check_offline_source(model_name, overlay, kwargs.get("cache_dir"))
    arch = {k: v for k, v in kwargs.items() if v is not None and k not in _NOT_ARCH
            and not k.startswith("feature")}
    if overlay.get("state_dict") is not None and overlay.get("file") and "pretrained_strict" not in kwargs:
        _precheck(model_name, overlay, arch)
    if overlay:
        kwargs["pretrained_cfg_overlay"] = overlay
    try:
        model = timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except (RuntimeError, KeyError, OSError, ValueError) as e:
        # a Hub file missing offline (huggingface_hub's errors are OSErrors); the model's own ValueErrors pass
        if pretrained and overlay.get("state_dict") is None and (isinstance(e, OSError) or not isinstance(e, ValueError)):
            _check_offline_source(model_name, overlay, kwargs.get("cache_dir"), hub=True)
        if overlay.get("state_dict") is None or not overlay.get("file") or not isinstance(e, (RuntimeError, KeyError)):
            raise
        # a wrong family or variant: say which keys and shapes differ and what the file probably is
        raise explain_mismatch(overlay["file"], model_name, overlay["state_dict"], model_kwargs=arch) from e
    if "state_dict" in overlay:
        # the weights are loaded: keep the cfg (with its file name), not a second copy of them
        for m in (model, getattr(model, "model", None)):
            cfg = getattr(m, "pretrained_cfg", None)
            if isinstance(cfg, dict):
                cfg.pop("state_dict", None)
    return model
