"""zoo's view of timm's model registry.

Every zoo model is a timm model: family files register their entrypoints with
:func:`register_model`, which hands them to ``timm.models.register_model`` and also records what
timm has no place for: the family, the task, and the official facts of each variant (parameter
count of the official implementation, reported metrics, and where both come from).

``create_model`` adds to ``timm.create_model`` only what timm lacks: close-match suggestions for
unknown names, and ``checkpoint_path=`` routed through the family's ``checkpoint_filter_fn``.

Renamed models keep their old names through timm's own mechanism: a family file calls
``timm.models.register_model_deprecations(__name__, {old: "new" or "new.tag"})``; timm then builds
the new model under the old name with a deprecation warning, and :func:`model_entry` (hence
``create_model``, ``model_info``) resolves the old name to the new entry. Listings show new names only.

A video model's pretrained cfg gives its clip as ``input_size=(C, T, H, W)`` (``min_input_size`` and
``pool_size`` likewise carry the time axis): ``timm.data.resolve_data_config`` passes it on,
``create_transform`` transforms each ``H x W`` frame, and timm's tests build ``(B, C, T, H, W)``
inputs from it. timm's builder only knows ``(C, H, W)``, so the registry builds a video model
with the frame size and puts the clip size back into the model's ``pretrained_cfg``.
"""
from __future__ import annotations

import difflib
import functools
import os
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import timm
from timm.models import register_model as _timm_register_model
from timm.models._registry import get_deprecated_models, split_model_name_tag
from .layers.linear import use_onednn_linears

__all__ = [
    "TASKS", "FamilyInfo", "ModelEntry", "register_family", "register_model", "create_model",
    "list_models", "list_pretrained", "list_families", "family_info", "model_entry", "model_info", "measure",
    "test_models", "deprecated_names",
]

TASKS = ("classification", "video", "dense", "segmentation", "restoration")

_FAMILIES: Dict[str, "FamilyInfo"] = {}
_ENTRIES: Dict[str, "ModelEntry"] = {}


@dataclass(frozen=True)
class FamilyInfo:
    """What a family's card and ``model_info`` say about the paper and the official code."""
    name: str
    title: str  # paper title
    paper_ids: Tuple[str, ...]  # e.g. ("arXiv:2204.07143",)
    official_repo: str  # e.g. "https://github.com/SHI-Labs/Neighborhood-Attention-Transformer"
    code_license: str  # licence of the official code, as its repo states it
    description: str = ""
    citation: str = ""
    module: str = ""


@dataclass(frozen=True)
class ModelEntry:
    """The zoo's record of one registered entrypoint.

    ``official_params`` is the learnable-parameter count of the official implementation of this
    variant, ``official_source`` says where it was measured (a manifest in
    ``shared/reference/manifests``); ``reported`` maps a pretrained tag to the metric the authors
    report for those weights (``{"metric": "top1", "value": 81.8, "dataset": ..., "source": ...}``).
    Test models are small configurations of a family's architecture, registered so the general
    tests run fast; they are not public variants and ``list_models`` leaves them out by default.
    """
    name: str
    family: str
    task: str
    official_params: Optional[int] = None
    official_source: Optional[str] = None
    manifest: Optional[str] = None  # "<family>/<variant>" under shared/reference/manifests
    reported: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    test_model: bool = False
    test_sizes: Tuple[Tuple[int, ...], ...] = ()  # input sizes (H, W) or (T, H, W) for test models
    num_frames: Optional[int] = None  # video models: default clip length (timm's input_size has no T)

    @property
    def supports_features(self) -> bool:
        """Whether ``create_model(name, features_only=True)`` gives feature maps (the model has feature_info)."""
        return _has_feature_info(self.name)


def _has_feature_info(name: str) -> bool:
    return bool(measure(name)["feature_info"])


def register_family(
        name: str,
        *,
        title: str,
        paper_ids: Sequence[str],
        official_repo: str,
        code_license: str,
        description: str = "",
        citation: str = "",
        module: str = "",
) -> FamilyInfo:
    """Record a family's paper and official code (called once at the top of each family file)."""
    info = FamilyInfo(
        name=name, title=title, paper_ids=tuple(paper_ids), official_repo=official_repo,
        code_license=code_license, description=description, citation=citation, module=module)
    _FAMILIES[name] = info
    return info


def register_model(
        fn: Optional[Callable] = None,
        *,
        family: str,
        task: str = "classification",
        official_params: Optional[int] = None,
        manifest: Optional[str] = None,
        official_source: Optional[str] = None,
        reported: Optional[Dict[str, Dict[str, Any]]] = None,
        test_model: bool = False,
        test_sizes: Sequence[Sequence[int]] = (),
        num_frames: Optional[int] = None,
):
    """Register a model entrypoint with timm and record its zoo facts.

    Used as ``@register_model(family="nat", task="classification", official_params=..., manifest=...)``.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    if test_model and official_params is not None:
        raise ValueError("a test model is not an official variant and has no official parameter count")

    def _register(f: Callable) -> Callable:
        name = f.__name__
        if family not in _FAMILIES:
            raise ValueError(f"register_family({family!r}, ...) must come before its models ({name})")
        source = official_source
        if source is None and manifest is not None:
            source = f"shared/reference/manifests/{manifest}.json"
        _ENTRIES[name] = ModelEntry(
            name=name, family=family, task=task, official_params=official_params,
            official_source=source, manifest=manifest, reported=dict(reported or {}),
            test_model=test_model, test_sizes=tuple(tuple(s) for s in test_sizes), num_frames=num_frames)

        @functools.wraps(f)
        def entrypoint(*args: Any, **kwargs: Any):
            clip = None
            if task == "video":
                clip, kwargs = _frame_cfg(name, kwargs)
            # every nn.Linear runs float32 CPU inference on oneDNN's GEMM (zoo.layers.linear)
            model = use_onednn_linears(f(*args, **kwargs))
            if clip is not None:
                for m in (model, getattr(model, "model", None)):
                    cfg = getattr(m, "pretrained_cfg", None)
                    if isinstance(cfg, dict):
                        cfg["input_size"] = clip
            return model

        return _timm_register_model(entrypoint)

    if fn is not None:
        return _register(fn)
    return _register


def _frame_cfg(name: str, kwargs: Dict[str, Any]) -> Tuple[Optional[Tuple[int, ...]], Dict[str, Any]]:
    """For a video cfg with ``input_size=(C, T, H, W)``: that size, and ``kwargs`` with a cfg overlay
    giving timm's builder the ``(C, H, W)`` frame size it requires."""
    from timm.models._builder import resolve_pretrained_cfg

    cfg = resolve_pretrained_cfg(name, pretrained_cfg=kwargs.get("pretrained_cfg"),
                                 pretrained_cfg_overlay=kwargs.get("pretrained_cfg_overlay"))
    size = tuple(cfg.input_size or ())
    if len(size) != 4:
        return None, kwargs
    overlay = dict(kwargs.get("pretrained_cfg_overlay") or {}, input_size=(size[0],) + size[2:])
    return size, dict(kwargs, pretrained_cfg_overlay=overlay)


def _split_tag(name: str) -> Tuple[str, str]:
    base, _, tag = name.partition(".")
    return base, tag


def _unknown(name: str) -> ValueError:
    base, _ = _split_tag(name)
    close = difflib.get_close_matches(base, list(_ENTRIES), n=5, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    if base in timm.list_models():
        hint = " It is a timm model, not a zoo one: use timm.create_model for it."
    return ValueError(f"Unknown zoo model {name!r}.{hint} See zoo.list_models() for all names.")


def input_shape(name: str) -> Tuple[int, ...]:
    """The default input of ``name`` without the batch axis: ``(C, H, W)``, or ``(C, T, H, W)`` for video.

    timm's ``input_size`` is always ``(C, H, W)``; a video model's clip length is a zoo fact.
    """
    import timm.models

    entry = model_entry(name)
    size = tuple(timm.models.get_pretrained_cfg(entry.name).input_size)
    if entry.task == "video" and len(size) == 3:  # a cfg without the clip length
        return (size[0], entry.num_frames or 8) + size[1:]
    return size


def deprecated_names() -> Dict[str, str]:
    """``{old name: "new" or "new.tag"}`` for every renamed zoo model (timm's deprecation registry)."""
    return {old: new for old, new in get_deprecated_models().items()
            if new and split_model_name_tag(new)[0] in _ENTRIES}


def model_entry(name: str) -> ModelEntry:
    """The zoo record of ``name`` (a tag after a dot is ignored; an old name resolves to its new
    entry); ValueError with close matches."""
    base, _ = _split_tag(name)
    if base not in _ENTRIES:
        new = deprecated_names().get(base)
        if new is None:
            raise _unknown(name)
        base = split_model_name_tag(new)[0]
    return _ENTRIES[base]


def create_model(
        model_name: str,
        pretrained: bool = False,
        *,
        checkpoint_path: Optional[Union[str, os.PathLike]] = None,
        **kwargs: Any,
):
    """Create a zoo model; the same as ``timm.create_model`` after ``import zoo``, plus:

    * an unknown name raises ``ValueError`` listing the closest zoo names;
    * ``checkpoint_path=FILE`` loads an official or zoo checkpoint (any layout the family's
      ``checkpoint_filter_fn`` accepts: official keys, Paddle ``.pdparams``, detectron2 ``.pkl``,
      wrapped or prefixed state dicts) with the safe loader of :mod:`zoo.hub`, converts it with the
      filter and loads it strictly, also into ``features_only`` models. A ``file`` given in
      ``pretrained_cfg_overlay`` is loaded the same way.
    """
    from . import hub

    if model_name.startswith(("hf-hub:", "hf_hub:", "local-dir:")):
        return timm.create_model(model_name, pretrained=pretrained, **kwargs)
    model_entry(model_name)  # raises with suggestions

    overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
    if checkpoint_path is not None:
        overlay["file"] = checkpoint_path
        pretrained = True
        if kwargs.get("num_classes") is not None:
            # the user's num_classes describes this checkpoint: keep its classifier (timm drops a
            # classifier whose size differs from the pretrained cfg's)
            overlay.setdefault("num_classes", kwargs["num_classes"])
    if pretrained and overlay.get("file") is not None and overlay.get("state_dict") is None:
        # timm would torch.load the file itself; zoo's loader also reads safetensors and numpy
        # pickles (Paddle, detectron2) without ever executing pickled code.
        overlay["state_dict"] = hub.load_checkpoint(overlay["file"])
    if overlay:
        kwargs["pretrained_cfg_overlay"] = overlay
    try:
        model = timm.create_model(model_name, pretrained=pretrained, **kwargs)
    except (RuntimeError, KeyError) as e:
        if overlay.get("state_dict") is None or not overlay.get("file"):
            raise
        # a wrong family or variant: say which keys and shapes differ and what the file probably is
        arch = {k: v for k, v in kwargs.items() if v is not None and k != "pretrained_cfg_overlay"
                and not k.startswith("feature") and k not in ("out_indices", "output_stride")}
        raise hub.explain_mismatch(overlay["file"], model_name, overlay["state_dict"], model_kwargs=arch) from e
    if "state_dict" in overlay:
        # the weights are loaded: keep the cfg (with its file name), not a second copy of them
        for m in (model, getattr(model, "model", None)):
            cfg = getattr(m, "pretrained_cfg", None)
            if isinstance(cfg, dict):
                cfg.pop("state_dict", None)
    return model


def _as_patterns(pattern: Union[str, Iterable[str]]) -> List[str]:
    return [pattern] if isinstance(pattern, str) else list(pattern)


def list_models(
        pattern: Union[str, Iterable[str]] = "*",
        *,
        pretrained: bool = False,
        family: Optional[str] = None,
        task: Optional[str] = None,
        include_test: bool = False,
        features_only: bool = False,
) -> List[str]:
    """Sorted names of the registered zoo models matching a wildcard pattern (or list of patterns).

    ``pretrained=True`` keeps only models with at least one pretrained tag; ``family`` / ``task``
    filter on the zoo facts; ``features_only=True`` keeps the models that support
    ``create_model(name, features_only=True)`` (those with ``feature_info``); test configurations
    are left out unless ``include_test=True``.
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
    if family is not None and family not in _FAMILIES:
        raise ValueError(f"unknown family {family!r}; registered families: {sorted(_FAMILIES)}")
    patterns = _as_patterns(pattern)
    with_weights = {_split_tag(n)[0] for n in timm.list_pretrained()} if pretrained else None
    names = []
    for name, entry in _ENTRIES.items():
        if entry.test_model and not include_test:
            continue
        if family is not None and entry.family != family:
            continue
        if task is not None and entry.task != task:
            continue
        if features_only and not entry.supports_features:
            continue
        if not any(fnmatch.fnmatchcase(name, p) for p in patterns):
            continue
        if with_weights is not None and name not in with_weights:
            continue
        names.append(name)
    return sorted(names)


def list_pretrained(pattern: Union[str, Iterable[str]] = "*") -> List[str]:
    """``name.tag`` for every pretrained tag of the zoo's public models, e.g. ``nat_tiny.in1k``."""
    patterns = _as_patterns(pattern)
    out = []
    for name_tag in timm.list_pretrained():
        base, _ = _split_tag(name_tag)
        entry = _ENTRIES.get(base)
        if entry is None or entry.test_model:
            continue
        if any(fnmatch.fnmatchcase(name_tag, p) or fnmatch.fnmatchcase(base, p) for p in patterns):
            out.append(name_tag)
    return sorted(out)


def list_families() -> List[str]:
    return sorted(_FAMILIES)


def family_info(family: str) -> FamilyInfo:
    if family not in _FAMILIES:
        raise ValueError(f"unknown family {family!r}; registered families: {sorted(_FAMILIES)}")
    return _FAMILIES[family]


def test_models(family: Optional[str] = None) -> List[str]:
    """Names of the small test configurations (one or more per family)."""
    return sorted(n for n, e in _ENTRIES.items() if e.test_model and (family is None or e.family == family))


test_models.__test__ = False  # not a pytest test, whatever imports it


def pretrained_tags(name: str, include_unlinked: bool = False) -> Dict[str, Dict[str, Any]]:
    """{tag: pretrained cfg as a dict} for every tag of ``name`` that has downloadable weights.

    ``include_unlinked=True`` adds tags of official weights that exist but have no direct download
    (e.g. share links recorded as ``origin_url``): they load with ``checkpoint_path=``.
    """
    from timm.models import get_pretrained_cfg
    from timm.models._registry import _model_default_cfgs

    base, _ = _split_tag(name)
    out = {}
    for name_tag in timm.list_pretrained(f"{base}.*"):
        if _split_tag(name_tag)[0] != base:
            continue
        cfg = get_pretrained_cfg(name_tag)
        out[_split_tag(name_tag)[1]] = cfg.to_dict() if cfg is not None else {}
    if include_unlinked and base in _model_default_cfgs:
        for tag, cfg in _model_default_cfgs[base].cfgs.items():
            if tag and tag not in out and cfg.origin_url:
                out[tag] = dict(cfg.to_dict(), unlinked=True)
    return out


@functools.lru_cache(maxsize=None)
def _measure(name: str) -> Dict[str, Any]:
    import torch

    from .flops import count_macs

    with torch.device("meta"):
        model = timm.create_model(name)
    out: Dict[str, Any] = dict(
        params=sum(p.numel() for p in model.parameters()),
        input_size=input_shape(name),
        num_classes=getattr(model, "num_classes", None),
        feature_info=tuple(dict(f) for f in getattr(model, "feature_info", None) or ()),
        gmacs=None, gmacs_error=None)
    try:
        out["gmacs"] = count_macs(model, input_size=out["input_size"], device="meta") / 1e9
    except Exception as e:  # a model that cannot run on meta (data-dependent ops) has no count here
        out["gmacs_error"] = f"{type(e).__name__}: {e}"
    return out


def measure(name: str) -> Dict[str, Any]:
    """Parameters, GMACs at the default input, input size and feature_info of ``name``, built on ``meta``.

    The one place the registry, the cards, the table and ``model_info`` count a model (cached per name).
    """
    m = _measure(model_entry(name).name)
    return dict(m, feature_info=[dict(f) for f in m["feature_info"]])


def model_info(name: str) -> Dict[str, Any]:
    """Family, task, paper, measured and official params, GMACs, input size, tags, feature_info.

    The model is built on the ``meta`` device, so this is cheap even for the largest variants.
    """
    entry = model_entry(name)
    fam = _FAMILIES[entry.family]
    m = measure(entry.name)
    tags = {}
    for tag, tcfg in pretrained_tags(entry.name).items():
        tags[tag] = {
            "location": tcfg.get("hf_hub_id") or tcfg.get("url") or tcfg.get("origin_url"),
            "license": tcfg.get("license"),
            "reported": entry.reported.get(tag),
        }
    return {
        "name": entry.name,
        "family": entry.family,
        "task": entry.task,
        "paper": fam.title,
        "paper_ids": list(fam.paper_ids),
        "official_repo": fam.official_repo,
        "code_license": fam.code_license,
        "params": m["params"],
        "official_params": entry.official_params,
        "official_source": entry.official_source,
        "params_match": None if entry.official_params is None else m["params"] == entry.official_params,
        "gmacs": m["gmacs"],
        "input_size": m["input_size"],
        "num_classes": m["num_classes"],
        "pretrained_tags": tags,
        "feature_info": m["feature_info"],
        "test_model": entry.test_model,
    }
