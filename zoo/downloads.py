"""Pretrained downloads: weights zoo cannot download, and downloads that are not weights.

Called by the registry around every model entrypoint, so ``timm.create_model(..., pretrained=True)`` gets
the same answers as ``zoo.create_model``. Imports nothing from zoo but :mod:`zoo.checkpoint`.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Mapping, Optional, Sequence, Union

import torch

from .checkpoint import HTML_MESSAGE, CheckpointError, looks_like_html

__all__ = ["cache_filename", "pretrained_download_guard"]

PathLike = Union[str, "os.PathLike[str]"]

# --- weights that cannot be downloaded, and downloads that are not weights ---------------------------------
# One rule for every family: a cfg's ``url`` is a file a plain HTTP GET returns. Share pages (Google Drive,
# OneDrive, Baidu Pan) are not: Drive answers a large ``uc?export=download`` request with an HTML confirmation
# page, and timm caches every such URL under the same name (``checkpoints/uc``), so one tag's file would be
# loaded for another. Those weights are recorded as ``origin_url`` only and load with ``checkpoint_path=``.

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
def pretrained_download_guard(name: str, pretrained: bool, kwargs: Mapping[str, Any], *,
                              test_model: bool = False, reported_tags: Sequence[str] = ()):
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
        if not test_model:
            if not cfg.tag or cfg.tag not in reported_tags:
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
                raise CheckpointError(HTML_MESSAGE.format(what=f"{full}: the download from {where}") +
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
