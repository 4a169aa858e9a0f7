"""pytest plugin: run timm's own ``tests/test_models.py`` against zoo's models only.

Not part of zoo's suite (CONTRIBUTING.md, "timm's own model tests", gives the steps: take the file from the
installed timm release's sdist)::

    PYTHONPATH=$PWD:$PWD/tests python -m pytest -p _timm_suite /tmp/timm_tests/test_models.py \
        -k 'not load_pretrained and not features_pretrained'

What it changes, and nothing else:

* ``timm.list_models`` (which timm's test file imports to parametrize every test) lists zoo's models
  only: its ``module=`` filter is narrowed to zoo's family files, whatever module list the test gives
  (every zoo model has ``forward_intermediates`` and the features-getter, the property timm's
  ``FEAT_INTER_FILTERS`` selects on). ``ZOO_TIMM_PUBLIC=1`` leaves the test models out,
  ``ZOO_TIMM_TEST_ONLY=1`` keeps only them (the default is both).
* Tests that do not apply to a model's task are skipped with the reason of :data:`NOT_APPLICABLE`
  (the per-task table of CONTRIBUTING.md); TorchScript tests are skipped for every model
  (:data:`UNSUPPORTED`): zoo models export with ``torch.export`` and trace with fx instead.
"""
from __future__ import annotations

import fnmatch
import os

import pytest
import timm
import timm.models

import zoo
from zoo.registry import model_entry

# timm test (function name, fnmatch) -> why it does not apply to a task
NOT_APPLICABLE = {
    "segmentation": {
        "test_model_backward*": "asserts logits (B, num_classes) on the last axis; a segmentation model "
                                "returns (B, num_classes, H, W) (zoo's test_forward_backward covers it)",
        "test_model_default_cfgs*": "checks a pooled classifier head (reset_classifier(0) -> (B, C)); a "
                                    "segmentation head is per pixel",
    },
    "restoration": {
        "test_model_backward*": "builds the model with num_classes=42; a restoration model has no classifier",
        "test_model_default_cfgs*": "checks a pooled classifier head; a restoration model has none",
    },
    "video": {
        "test_model_default_cfgs*": "checks 2-D spatial outputs (len(spatial_axis) == 2); video maps are "
                                    "(B, C, T, H, W)",
        "test_model_forward_features": "reads a map's height and width at axes 2, 3 (get_spatial_dim('NCHW')) and "
                                       "bounds them by the input's H, W / reduction; a video map is "
                                       "(B, C, T, H, W), axis 2 is time (zoo's "
                                       "test_features_only_gives_nchw_maps_at_declared_strides checks NCTHW maps)",
    },
}
UNSUPPORTED = {
    "*torchscript*": "TorchScript is not supported by zoo (deprecated in PyTorch): every zoo model exports "
                     "with torch.export and traces with fx (tests/test_models.py checks both)",
}


def _zoo_modules():
    return sorted({zoo.registry.family_info(f).module.rsplit(".", 1)[-1] for f in zoo.registry.list_families()
                   if zoo.registry.family_info(f).module})


def _zoo_names():
    names = set(zoo.list_models(include_test=True))
    if os.environ.get("ZOO_TIMM_PUBLIC"):
        names -= set(zoo.registry.test_models())
    if os.environ.get("ZOO_TIMM_TEST_ONLY"):
        names &= set(zoo.registry.test_models())
    return names


_timm_list_models = timm.list_models


def list_models(filter="", module="", pretrained=False, exclude_filters="", name_matches_cfg=False,
                include_tags=None):
    names = _zoo_names()
    out = _timm_list_models(filter, module=_zoo_modules(), pretrained=pretrained, exclude_filters=exclude_filters,
                            name_matches_cfg=name_matches_cfg, include_tags=include_tags)
    return [n for n in out if n.partition(".")[0] in names]


timm.list_models = list_models
timm.models.list_models = list_models


def _reason(test: str, model: str):
    for pattern, why in UNSUPPORTED.items():
        if fnmatch.fnmatchcase(test, pattern):
            return why
    try:
        task = model_entry(model).task
    except ValueError:
        return None
    for pattern, why in NOT_APPLICABLE.get(task, {}).items():
        if why and fnmatch.fnmatchcase(test, pattern):
            return f"{task}: {why}"
    return None


def pytest_configure(config):
    # timm's markers (its pyproject.toml), of every 1.0.x test file: unknown to zoo's pytest config
    for mark in ("base", "forward", "backward", "cfg", "cfg_nonstd", "features", "fxforward", "fxbackward",
                 "torchscript", "timeout"):
        config.addinivalue_line("markers", f"{mark}: timm's marker")


def pytest_collection_modifyitems(config, items):
    """Deselect timm's tests of its own models (naflexvit, gemma4, pretrained inference); skip what
    does not apply to a zoo model's task."""
    names = _zoo_names()
    keep, drop = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        model = params.params.get("model_name") if params else None
        if not isinstance(model, str) or model.partition(".")[0] not in names:
            drop.append(item)
            continue
        keep.append(item)
        why = _reason(item.originalname, model.partition(".")[0])
        if why:
            item.add_marker(pytest.mark.skip(reason=f"not applicable: {why}"))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
