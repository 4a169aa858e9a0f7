"""zoo's view of timm's model registry.

Every zoo model is a timm model: family files register their entrypoints with
:func:`register_model`, which hands them to ``timm.models.register_model`` and also records what
timm has no place for: the family, the task, and the official facts of each variant (parameter
count of the official implementation, reported metrics, and where both come from).

The registry is data: names, families, facts, and each family's ``checkpoint_filter_fn`` (declared with
:func:`register_checkpoint_filter`). Building models and loading checkpoints into them is
:mod:`zoo.factory` (``create_model``), on top of this module and of :mod:`zoo.checkpoint`.

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

import contextlib
import difflib
import functools
import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import timm
import torch
from timm.models import register_model as _timm_register_model
from timm.models._registry import get_deprecated_models, split_model_name_tag

from .downloads import pretrained_download_guard

__all__ = [
    "TASKS", "FamilyInfo", "ModelEntry", "register_family", "register_model", "register_checkpoint_filter",
    "family_filter",
    "list_models", "list_pretrained", "list_families", "family_info", "model_entry", "model_info", "measure",
    "test_models", "deprecated_names",
]

TASKS = ("classification", "video", "dense", "segmentation", "restoration")

# the reductions of ``feature_info`` that a model of each task declares unless it registers its own
# (``register_model(..., feature_reductions=...)``, e.g. isotropic NAT: stride 16 per block)
TASK_FEATURE_REDUCTIONS: Dict[str, Tuple[int, ...]] = {
    "classification": (4, 8, 16, 32),
    "video": (4, 8, 16, 32),  # NCTHW maps
    "dense": (4, 8, 16, 32, 64),  # ViTDet's simple feature pyramid
    "segmentation": (1, 2, 4, 8, 16, 32),  # MT-UNet's encoder levels
    "restoration": (1, 2, 4, 8),  # Restormer's encoder levels
}

_FAMILIES: Dict[str, "FamilyInfo"] = {}
_ENTRIES: Dict[str, "ModelEntry"] = {}
_FILTERS: Dict[str, Callable] = {}  # family -> checkpoint_filter_fn(state_dict, model)


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
    ``dropped_params`` names the official parameters the registered model does not hold (UniFormer
    light's class-token head and MT-UNet's Linear that the official forward never calls, dropped on
    load; ViTDet's simple feature pyramid, built by ``features_only=True``): the model matches when its
    count is ``official_params`` less their sum (``expected_params``).
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
    # official parameters the registered model does not hold (official key or group -> element count):
    # those the official forward never uses, and parts built only on request (ViTDet's pyramid, which
    # features_only=True builds); the family's checkpoint_filter_fn drops them, so the zoo model has
    # official_params - their sum
    dropped_params: Dict[str, int] = field(default_factory=dict)
    feature_reductions: Tuple[int, ...] = ()  # reductions of feature_info, as registered (a test measures them)

    @property
    def expected_params(self) -> Optional[int]:
        """The parameter count the zoo model has: ``official_params`` less the dropped official parameters."""
        if self.official_params is None:
            return None
        return self.official_params - sum(self.dropped_params.values())

    @property
    def supports_features(self) -> bool:
        """Whether ``create_model(name, features_only=True)`` gives feature maps (the model has feature_info)."""
        return bool(self.feature_reductions)

    @property
    def is_encoder(self) -> bool:
        """Whether a standard 2-D encoder client can use ``features_only=True``: NCHW maps whose strides
        double up to 32 (4/8/16/32 or 1..32, + 64 for ViTDet), as smp's ``tu-`` encoders, torchvision's
        FPN and Mask2Former expect. Video (NCTHW), isotropic (stride 16 only) and restoration (1..8)
        models give features too, but no such client can use them."""
        r = self.feature_reductions
        doubling = all(b == 2 * a for a, b in zip(r, r[1:]))
        return self.task != "video" and doubling and {4, 8, 16, 32} <= set(r)


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
        filter_fn: Optional[Callable] = None,
) -> FamilyInfo:
    """Record a family's paper and official code (called once at the top of each family file).

    ``filter_fn`` is the family's ``checkpoint_filter_fn``; as it is usually defined further down the
    family file, it can also be declared there with ``@register_checkpoint_filter(family)``.
    """
    info = FamilyInfo(
        name=name, title=title, paper_ids=tuple(paper_ids), official_repo=official_repo,
        code_license=code_license, description=description, citation=citation, module=module)
    _FAMILIES[name] = info
    if filter_fn is not None:
        _FILTERS[name] = filter_fn
    return info


def register_checkpoint_filter(family: str) -> Callable[[Callable], Callable]:
    """Decorator declaring ``family``'s ``checkpoint_filter_fn`` (official keys -> zoo keys).

    ``create_model(checkpoint_path=...)``, ``zoo convert`` and the mismatch explanation use the filter
    declared here; nothing is looked up by module name.
    """
    def _register(fn: Callable) -> Callable:
        _FILTERS[family] = fn
        return fn
    return _register


def family_filter(name: str) -> Optional[Callable]:
    """The ``checkpoint_filter_fn`` declared for the family of model ``name`` (None if it has none)."""
    return _FILTERS.get(model_entry(name).family)


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
        dropped_params: Optional[Dict[str, int]] = None,
        feature_reductions: Optional[Sequence[int]] = None,
):
    """Register a model entrypoint with timm and record its zoo facts.

    Used as ``@register_model(family="nat", task="classification", official_params=..., manifest=...)``.
    ``feature_reductions`` (the reductions of the model's ``feature_info``) defaults to the task's
    (:data:`TASK_FEATURE_REDUCTIONS`), so listing feature-capable models builds none of them.
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
            test_model=test_model, test_sizes=tuple(tuple(s) for s in test_sizes), num_frames=num_frames,
            dropped_params=dict(dropped_params or {}),
            feature_reductions=tuple(TASK_FEATURE_REDUCTIONS[task] if feature_reductions is None
                                     else feature_reductions))

        @functools.wraps(f)
        def entrypoint(*args: Any, **kwargs: Any):
            _check_output_stride(name, kwargs.pop("output_stride", None))
            device, dtype = _factory_kwargs(name, kwargs.pop("device", None), kwargs.pop("dtype", None))
            clip = None
            if task == "video":
                clip, kwargs = _frame_cfg(name, kwargs)
            entry = _ENTRIES[name]
            pretrained = bool(args[0] if args else kwargs.get("pretrained"))
            with pretrained_download_guard(name, pretrained, kwargs, test_model=entry.test_model,
                                           reported_tags=tuple(entry.reported)):
                with torch.device(device) if device is not None else contextlib.nullcontext():
                    model = f(*args, **kwargs)
            if dtype is not None:
                model.to(dtype=dtype)
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


def _factory_kwargs(name: str, device: Any, dtype: Any) -> Tuple[Optional[torch.device], Optional[torch.dtype]]:
    """timm's factory arguments ``create_model(..., device=, dtype=)`` (timm models take them in ``__init__``).

    A zoo model is built under ``torch.device(device)`` (every parameter and buffer, persistent or not, is
    created there: ``device="meta"`` allocates nothing) and cast to the floating ``dtype`` afterwards
    (integer index buffers keep their dtype, as in timm).
    """
    if device is not None:
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as e:
            raise ValueError(f"{name}: device={device!r} is not a torch device ({e})") from None
    if dtype is not None and (not isinstance(dtype, torch.dtype) or not dtype.is_floating_point):
        raise TypeError(f"{name}: dtype must be a floating torch.dtype (e.g. torch.float32), got {dtype!r}")
    return device, dtype


def _check_output_stride(name: str, output_stride: Optional[int]) -> None:
    """timm's ``output_stride`` (asked for by dense clients, e.g. smp's DeepLabV3/DeepLabV3Plus encoders):
    zoo models have no dilated variant, so only their native final stride is accepted (a no-op)."""
    if output_stride is None:
        return
    allowed = sorted({32, max(_ENTRIES[name].feature_reductions or (32,))})
    if output_stride not in allowed:
        raise ValueError(
            f"{name}: output_stride={output_stride} is not supported; zoo models keep their native strides "
            f"(feature reductions {list(_ENTRIES[name].feature_reductions)}), so output_stride must be "
            f"{' or '.join(map(str, allowed))} (a no-op) or left out. Decoders that need a dilated encoder (smp DeepLabV3 / DeepLabV3Plus with "
            f"encoder_output_stride 8 or 16) cannot use {name}; FPN, Unet, UPerNet, Mask2Former can.")


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


def __getattr__(attr: str) -> Any:
    # ``zoo.registry.create_model`` moved to zoo.factory (which builds on this module); kept importable
    if attr == "create_model":
        from .factory import create_model
        return create_model
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


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
    filter on the zoo facts; ``features_only=True`` keeps the models a standard 2-D encoder client
    (smp ``tu-`` encoders, FPN, Mask2Former) can use through ``create_model(name, features_only=True)``:
    NCHW maps at strides doubling up to 32 (:attr:`ModelEntry.is_encoder`; answered from registered
    facts, no model is built); test configurations are left out unless ``include_test=True``.
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
        if features_only and not entry.is_encoder:
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


# In-place tensor methods that only write values: on the meta device there are no values, but
# PyTorch still runs their Python shape checks (weight initialisation is ~40% of the CPU time of
# building a model on meta), so counting models skips them. None of them can change a shape.
_VALUE_ONLY_INPLACE = frozenset({
    "uniform_", "normal_", "trunc_normal_", "bernoulli_", "random_", "exponential_", "erfinv_", "clamp_",
    "clamp_min_", "clamp_max_", "mul_", "div_", "add_", "sub_", "addcmul_", "addcdiv_", "exp_", "log_",
    "sqrt_", "abs_", "neg_", "fmod_", "fill_", "zero_", "copy_", "masked_fill_",
})


class _SkipValuesOnMeta(torch.overrides.TorchFunctionMode):
    """Within ``torch.device("meta")``: value-only in-place ops on meta tensors return at once."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if (getattr(func, "__name__", None) in _VALUE_ONLY_INPLACE and args
                and isinstance(args[0], torch.Tensor) and args[0].is_meta):
            return args[0]
        return func(*args, **(kwargs or {}))


def _build_on_meta(name: str) -> "torch.nn.Module":
    with torch.device("meta"), _SkipValuesOnMeta():
        return timm.create_model(name)


@functools.lru_cache(maxsize=None)
def _count(name: str) -> Dict[str, Any]:
    """Parameters, input size, classes and feature_info of ``name`` built on ``meta`` (no MAC count)."""
    model = _build_on_meta(name)
    return dict(params=sum(p.numel() for p in model.parameters()), input_size=input_shape(name),
                num_classes=getattr(model, "num_classes", None),
                feature_info=tuple(dict(f) for f in getattr(model, "feature_info", None) or ()))


@functools.lru_cache(maxsize=None)
def _measure(name: str) -> Dict[str, Any]:
    """:func:`_count` plus the MACs of one forward on ``meta`` (most of the cost)."""
    from .flops import count_macs_detail

    out: Dict[str, Any] = dict(_count(name), gmacs=None, gmacs_architectural=None, gmacs_error=None)
    try:
        # gmacs: what the implementation executes; gmacs_architectural: what the architecture defines
        macs = count_macs_detail(_build_on_meta(name), input_size=out["input_size"], device="meta")
        out["gmacs"], out["gmacs_architectural"] = macs["executed"] / 1e9, macs["architectural"] / 1e9
    except Exception as e:  # a model that cannot run on meta (data-dependent ops) has no count here
        out["gmacs_error"] = f"{type(e).__name__}: {e}"
    return out


def measure(name: str, gmacs: bool = True) -> Dict[str, Any]:
    """Parameters, GMACs at the default input, input size and feature_info of ``name``, built on ``meta``.

    The one place the registry, the cards, the table and ``model_info`` count a model (cached per name).
    ``gmacs=False`` skips the MAC count (a forward on ``meta``, most of the cost): ``gmacs`` is then None.
    """
    name = model_entry(name).name
    m = _measure(name) if gmacs else dict(_count(name), gmacs=None, gmacs_architectural=None, gmacs_error=None)
    return dict(m, feature_info=[dict(f) for f in m["feature_info"]])


def params_match(entry: ModelEntry, params: int) -> Optional[bool]:
    """Whether ``params`` (the registered model's count) is the official count, less what it does not build."""
    if entry.official_params is None:
        return None
    return params == entry.expected_params


def model_info(name: str, *, measure: bool = False) -> Dict[str, Any]:
    """Family, task, paper, params, input size, classes, pretrained tags and feature strides of ``name``.

    Answered from registered facts (the entry, the family, the pretrained cfgs): no model is built, so a
    call takes milliseconds for any variant. ``params`` is the registered count of the zoo model
    (``official_params`` less ``dropped_params``, which the test suite checks against a build; None for a
    variant without an official count) and ``feature_reductions`` the strides of the maps
    ``create_model(name, features_only=True)`` returns.

    ``measure=True`` also builds the model on the ``meta`` device and counts it (:func:`measure`, cached
    per name; seconds for the largest variants, most of it the MAC count): ``params`` is then the counted
    number, ``params_match`` whether it is the official count less the dropped parameters, ``gmacs`` the
    MACs of one forward at ``input_size``, and ``feature_info`` the built model's entries (``num_chs``,
    ``reduction``, ``module``). Without it those three are None.
    """
    entry = model_entry(name)
    fam = _FAMILIES[entry.family]
    tags = {}
    for tag, tcfg in pretrained_tags(entry.name).items():
        location = tcfg.get("hf_hub_id") or tcfg.get("url") or tcfg.get("origin_url")
        tags[tag] = {
            "location": location[0] if isinstance(location, (tuple, list)) else location,  # url=(url, file name)
            "license": tcfg.get("license"),
            "reported": entry.reported.get(tag),
        }
    info = {
        "name": entry.name,
        "family": entry.family,
        "task": entry.task,
        "paper": fam.title,
        "paper_ids": list(fam.paper_ids),
        "official_repo": fam.official_repo,
        "code_license": fam.code_license,
        "params": entry.expected_params,
        "measured": False,
        "official_params": entry.official_params,
        "official_source": entry.official_source,
        "params_match": None,
        "dropped_params": dict(entry.dropped_params),
        "gmacs": None,
        "input_size": input_shape(entry.name),
        "num_classes": timm.models.get_pretrained_cfg(entry.name).num_classes,
        "pretrained_tags": tags,
        "feature_reductions": list(entry.feature_reductions),
        "feature_info": None,
        "test_model": entry.test_model,
    }
    if measure:
        m = _measure(entry.name)
        info.update(params=m["params"], measured=True, params_match=params_match(entry, m["params"]),
                    gmacs=m["gmacs"], num_classes=m["num_classes"],
                    feature_info=[dict(f) for f in m["feature_info"]])
    return info
