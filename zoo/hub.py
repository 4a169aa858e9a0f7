"""Licences and publishing to the Hub; checkpoint loading kept under its historical name.

Loading lives in :mod:`zoo.checkpoint` (reading, unwrapping, safe unpickling; it imports nothing from
zoo) and :mod:`zoo.downloads` (pretrained downloads that cannot work), re-exported here.
``guess_variant`` / ``explain_mismatch`` moved to :mod:`zoo.factory` and are forwarded lazily, so this
module does not import the registry.
"""
from __future__ import annotations

import os
import re
from typing import Any, Dict, Mapping, Optional, Union

from .checkpoint import (  # noqa: F401
    NUMPY_PICKLE_SUFFIXES, STRIP_PREFIXES, WRAPPER_KEYS, CheckpointError, NumpyOnlyUnpickler,
    UnsafeCheckpointError, load_checkpoint, load_into, load_numpy_pickle, looks_like_html, strip_prefix,
    unwrap_state_dict,
)
from .downloads import cache_filename, pretrained_download_guard  # noqa: F401

__all__ = [
    "CheckpointError", "UnsafeCheckpointError", "NumpyOnlyUnpickler", "load_checkpoint",
    "load_numpy_pickle", "unwrap_state_dict", "strip_prefix", "load_into", "guess_variant", "explain_mismatch",
    "looks_like_html", "pretrained_download_guard", "cache_filename", "licence_note", "licence_of", "push_to_hub",
]

PathLike = Union[str, "os.PathLike[str]"]

_MOVED = {"guess_variant": ("factory", "guess_variant"), "explain_mismatch": ("factory", "explain_mismatch"),
          "_family_filter": ("registry", "family_filter")}


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        import importlib

        mod, attr = _MOVED[name]
        return getattr(importlib.import_module(f"zoo.{mod}"), attr)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
