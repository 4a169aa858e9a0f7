"""Reading checkpoint files safely: the bottom layer of zoo's loading (it imports nothing from zoo).

* :func:`load_checkpoint` reads a file without ever executing pickled code: safetensors;
  ``.pth``/``.bin``/``.pt`` through ``torch.load(weights_only=True)`` (with ``argparse.Namespace``
  allowed, for DeiT-style training files); the numpy-pickle formats of PaddlePaddle
  (``.pdparams``) and detectron2 (``.pkl``) through :class:`NumpyOnlyUnpickler`, which
  reconstructs numpy arrays and nothing else.
* What a file can make the loader allocate is bounded by what the file holds: an array or tensor
  view may not claim more elements than its buffer, numpy object arrays are refused, and the numpy
  unpickler charges every array it builds against a budget proportional to the file's size.
* :func:`unwrap_state_dict` removes the training wrappers official checkpoints come in
  (``state_dict_ema``, ``model``, ``state_dict``, ``params``, ``model_state``, ...) and the
  ``module.`` / ``_orig_mod.`` prefixes of DDP and ``torch.compile``. Every family's
  ``checkpoint_filter_fn`` starts with it, so each layout is handled in one place.

Every failure while reading a file is one :class:`CheckpointError` naming the file and what is wrong
(:class:`UnsafeCheckpointError` when the file asks for code to run, naming what it asks for).
"""
from __future__ import annotations

import argparse
import importlib
import io
import logging
import math
import os
import pickle
import pickletools
import re
import stat
import zipfile
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Union

import torch

__all__ = [
    "CheckpointError", "UnsafeCheckpointError", "NumpyOnlyUnpickler", "load_checkpoint",
    "load_numpy_pickle", "unwrap_state_dict", "strip_prefix", "load_into",
]

_logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

# wrapper keys in order of preference (EMA weights first, as timm's CheckpointSaver files want)
WRAPPER_KEYS = ("state_dict_ema", "model_ema", "model", "state_dict", "params_ema", "params", "model_state",
                "module")
STRIP_PREFIXES = ("module.", "_orig_mod.")
NUMPY_PICKLE_SUFFIXES = (".pdparams", ".pdopt", ".pkl", ".pickle")
# what the numpy unpickler may allocate for arrays: twice the file (protocol 2 carries array bytes as
# text that is re-encoded, then copied into the array) plus a small allowance for tiny files
_BUDGET_FACTOR, _BUDGET_SLACK = 2, 1 << 16


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not fit the model."""


class UnsafeCheckpointError(CheckpointError):
    """A pickle that asks to import or call something other than array reconstruction."""


def _numel(shape: Any, what: str) -> int:
    if isinstance(shape, int):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise CheckpointError(f"{what}: invalid array shape {shape!r}")
    return math.prod(shape)


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler for numpy-pickle checkpoints that refuses every global but numpy's own.

    Paddle's ``paddle.save`` and detectron2's model zoo write dicts of numpy arrays; rebuilding
    those needs ``numpy.core.multiarray._reconstruct`` (``numpy._core`` on numpy 2), ``ndarray``,
    ``dtype``, ``scalar``, ``_frombuffer`` (protocol 5) and ``_codecs.encode`` (protocol 2).
    A ``__reduce__`` that names anything else (``os.system``, ``builtins.eval``, ...) is refused
    before it can run. The array constructors handed to the pickle are wrapped: object dtypes are
    refused, a view (``ndarray(shape, dtype, buffer, offset, strides)``) may not claim more bytes than
    its buffer, and every array built is charged against ``budget`` bytes.
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

    def __init__(self, file, *, source: str = "<stream>", budget: Optional[int] = None):
        super().__init__(file, encoding="latin1")
        self.source = source
        self.budget = budget if budget is not None else 1 << 62
        self._array_cls = self._make_array_class()

    # -- allocation accounting -------------------------------------------------------------------
    def _charge(self, nbytes: int, what: str) -> None:
        self.budget -= nbytes
        if self.budget < 0:
            raise CheckpointError(
                f"{self.source}: {what} would allocate {nbytes:,} bytes, more than the file can hold; "
                "a numpy-pickle checkpoint may only build arrays from the bytes it contains")

    def _dtype(self, dtype: Any):
        import numpy as np

        try:
            dt = np.dtype(dtype)
        except Exception as e:
            raise CheckpointError(f"{self.source}: invalid numpy dtype {dtype!r} ({e})") from e
        if dt.hasobject:
            raise CheckpointError(f"{self.source}: object arrays (dtype {dt}) are not weights; refusing to load")
        return dt

    def _make_array_class(self):
        import numpy as np

        unpickler = self

        class _CheckedArray(np.ndarray):
            """``numpy.ndarray`` as the pickle sees it: bounded construction and ``__setstate__``."""

            def __new__(cls, shape, dtype=float, buffer=None, offset=0, strides=None, order=None):
                dt = unpickler._dtype(dtype)
                nbytes = _numel(shape, unpickler.source) * dt.itemsize
                if buffer is not None:
                    try:
                        available = memoryview(buffer).nbytes - int(offset)
                    except TypeError as e:
                        raise CheckpointError(f"{unpickler.source}: an array view over a "
                                              f"{type(buffer).__name__}, not a buffer") from e
                    if nbytes > available:
                        raise CheckpointError(
                            f"{unpickler.source}: an array view claims {nbytes:,} bytes over a buffer of "
                            f"{max(available, 0):,}")
                    if strides is not None and any(not isinstance(s, int) or s <= 0 for s in strides):
                        raise CheckpointError(f"{unpickler.source}: an array view with strides {strides!r} "
                                              "(zero or negative strides are not weights)")
                unpickler._charge(nbytes, f"an array of shape {tuple(shape) if not isinstance(shape, int) else (shape,)}")
                return np.ndarray.__new__(cls, shape, dt, buffer, offset, strides, order)

            def __setstate__(self, state):
                if not isinstance(state, tuple) or len(state) not in (4, 5):
                    raise CheckpointError(f"{unpickler.source}: invalid numpy array state")
                shape, dtype = state[-4], state[-3]
                dt = unpickler._dtype(dtype)
                unpickler._charge(_numel(shape, unpickler.source) * dt.itemsize,
                                  f"an array of shape {tuple(shape) if not isinstance(shape, int) else (shape,)}")
                return np.ndarray.__setstate__(self, state)

        return _CheckedArray

    def _reconstruct(self, subtype, shape, dtype):
        if subtype is not self._array_cls:
            raise UnsafeCheckpointError(f"{self.source}: refusing to load, _reconstruct asks for {subtype!r}")
        return self._array_cls(shape, dtype)

    def _frombuffer(self, buf, dtype, shape, order):
        import numpy as np

        dt = self._dtype(dtype)
        nbytes = _numel(shape, self.source) * dt.itemsize
        try:
            available = memoryview(buf).nbytes
        except TypeError as e:
            raise CheckpointError(f"{self.source}: an array over a {type(buf).__name__}, not a buffer") from e
        if nbytes != available:
            raise CheckpointError(f"{self.source}: an array of {nbytes:,} bytes over a buffer of {available:,}")
        self._charge(nbytes, f"an array of shape {tuple(shape)}")
        return np.frombuffer(buf, dtype=dt).reshape(shape, order=order)

    def _scalar(self, real: Callable) -> Callable:
        def scalar(dtype, *args):
            return real(self._dtype(dtype), *args)
        return scalar

    def _encode(self, text, encoding="utf-8", errors="strict"):
        if not isinstance(text, str) or encoding != "latin1":
            raise UnsafeCheckpointError(f"{self.source}: refusing to load, _codecs.encode called with "
                                        f"{type(text).__name__}, {encoding!r}")
        self._charge(len(text), "re-encoded array bytes")
        return text.encode("latin1", errors)

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            if name == "ndarray":
                return self._array_cls
            if name == "dtype":
                return self._dtype_factory
            real = getattr(importlib.import_module(module), name)
            special: Dict[str, Callable] = {"_reconstruct": self._reconstruct, "_frombuffer": self._frombuffer,
                                            "scalar": self._scalar(real), "encode": self._encode}
            return special.get(name, real)
        # numpy dtype classes such as numpy.dtypes.Float32DType (numpy >= 1.25 pickles)
        if module == "numpy.dtypes" and name.endswith("DType") and name not in ("ObjectDType", "VoidDType"):
            return getattr(importlib.import_module(module), name)
        raise UnsafeCheckpointError(
            f"{self.source}: refusing to load, the pickle asks for {module}.{name}; only numpy arrays "
            "may be reconstructed from a numpy-pickle checkpoint")

    def _dtype_factory(self, obj, align=False, copy=False):
        import numpy as np

        dt = np.dtype(obj, align, copy) if isinstance(obj, str) else self._dtype(obj)
        if dt.hasobject:
            raise CheckpointError(f"{self.source}: object arrays (dtype {dt}) are not weights; refusing to load")
        return dt


def load_numpy_pickle(path: PathLike) -> Any:
    """Read a pickled container of numpy arrays (Paddle ``.pdparams``, detectron2 ``.pkl``) safely."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    budget = _BUDGET_FACTOR * len(data) + _BUDGET_SLACK
    try:
        return NumpyOnlyUnpickler(io.BytesIO(data), source=path, budget=budget).load()
    except CheckpointError:
        raise
    except RecursionError as e:
        raise CheckpointError(f"{path}: nested too deeply to be a checkpoint") from e
    except MemoryError as e:
        raise CheckpointError(f"{path}: asks for more memory than is available") from e
    except Exception as e:  # truncated or corrupt files
        raise CheckpointError(f"{path}: not a readable numpy-pickle checkpoint (corrupt or truncated: "
                              f"{type(e).__name__}: {e})") from e


def _as_tensor(value: Any, key: str) -> Any:
    """A numpy array or scalar as a tensor; a tensor checked to claim no more than its storage."""
    import numpy as np

    if isinstance(value, torch.Tensor):
        if value.layout == torch.strided and value.numel():
            storage = value.untyped_storage().nbytes()
            reach = value.element_size() * (1 + sum((n - 1) * abs(s) for n, s in zip(value.shape, value.stride())))
            if (value.numel() * value.element_size() > storage or reach + value.storage_offset() * value.element_size()
                    > storage or any(s <= 0 for n, s in zip(value.shape, value.stride()) if n > 1)):
                raise CheckpointError(f"{key!r} is a view of {tuple(value.shape)} claiming more elements than "
                                      f"its {storage:,}-byte storage holds")
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise CheckpointError(f"{key!r} is an object array, not weights")
        value = np.asarray(value)
        if not (value.flags.c_contiguous and value.flags.writeable):
            value = np.array(value, order="C")
        return torch.from_numpy(value)
    if isinstance(value, np.generic) and not isinstance(value, (np.object_, np.void)):
        return torch.from_numpy(np.array(value))
    raise CheckpointError(f"{key!r} holds a {type(value).__name__}, not a tensor")


def strip_prefix(state_dict: Mapping[str, Any], prefix: str) -> Dict[str, Any]:
    """Drop ``prefix`` from every key that has it (others unchanged)."""
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def unwrap_state_dict(checkpoint: Any, wrapper_keys: Sequence[str] = WRAPPER_KEYS) -> Dict[str, Any]:
    """The flat ``{key: tensor}`` state dict inside any of the usual checkpoint wrappers.

    Wrappers are peeled repeatedly (``{'model': {'state_dict': ...}}``), preferring EMA weights;
    ``module.`` and ``_orig_mod.`` prefixes are stripped; numpy arrays become tensors; non-tensor
    entries of a wrapper (``args``, ``epoch``, ``optimizer``) are dropped with it, and so is
    Paddle's ``StructuredToParameterName@@`` name map. Any other value that is not a tensor
    (a string, None, a list, a nested dict) raises :class:`CheckpointError` naming the key.
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
    out = {}
    for k, v in sd.items():
        if not isinstance(k, str):
            continue
        if k.endswith("@@"):  # Paddle's metadata (StructuredToParameterName@@), not a weight
            continue
        v = _as_tensor(v, k)
        stripped = True
        while stripped:  # wrapped in either order: module._orig_mod. / _orig_mod.module.
            stripped = False
            for p in STRIP_PREFIXES:
                if k.startswith(p):
                    k, stripped = k[len(p):], True
        out[k] = v
    return out


def _check_file(path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint not found: {path}") from None
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({e.strerror or e})") from e
    if stat.S_ISDIR(st.st_mode):
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file (for a folder written by "
                              "`zoo convert` use create_model('local-dir:...'))")
    if not stat.S_ISREG(st.st_mode):
        raise CheckpointError(f"{path}: is not a regular file (a FIFO, socket or device), not a checkpoint")


_GLOBAL_RE = re.compile(r"GLOBAL ([\w.]+)")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


def _pickle_is_intact(path: str) -> Optional[bool]:
    """Whether the ``data.pkl`` of a torch zip checkpoint is a complete pickle stream (None: cannot tell)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist() if n.endswith("data.pkl")]
            if not names:
                return None
            data = z.read(names[0])
    except Exception:
        return None
    try:
        for op, _, _ in pickletools.genops(data):
            if op.name == "STOP":
                return True
    except Exception:
        return False
    return False


def _importable(dotted: str) -> bool:
    mod, _, name = dotted.rpartition(".")
    try:
        return hasattr(importlib.import_module(mod), name)
    except Exception:
        return False


def _torch_load(path: str) -> Any:
    try:
        # DeiT-style training files carry their argparse.Namespace under 'args': plain attribute
        # storage, no code, so it joins torch's weights-only allow-list and nothing else does
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's message advises weights_only=False, the opposite of what to do with such a file:
        # keep only the global it names, and tell a damaged file from one that asks for code
        text = _ANSI_RE.sub("", str(e))
        found = _GLOBAL_RE.findall(text)
        intact = _pickle_is_intact(path)
        if intact is False or (found and not _importable(found[-1])):
            raise CheckpointError(f"{path}: corrupt or truncated PyTorch checkpoint (its pickle stream is "
                                  "damaged); download or copy it again") from None
        what = f"the global {found[-1]}" if found else "an object that is not a tensor or plain container"
        raise UnsafeCheckpointError(
            f"{path}: refusing to load, the pickle asks for {what}, which a weights file never needs. "
            "If this is a training checkpoint you trust, re-save its state_dict with torch.save "
            "and load that file") from None
    except RecursionError:
        raise CheckpointError(f"{path}: nested too deeply to be a checkpoint") from None
    except MemoryError:
        raise CheckpointError(f"{path}: asks for more memory than is available") from None
    except Exception as e:
        msg = _ANSI_RE.sub("", str(e)).split("\n")[0][:300]
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (corrupt or truncated: "
                              f"{type(e).__name__}: {msg})") from None


def load_checkpoint(path: PathLike, *, unwrap: bool = True) -> Dict[str, Any]:
    """Load a checkpoint file as a flat state dict without executing any pickled code.

    safetensors by content; numpy pickles by suffix (``.pdparams``, ``.pkl``); anything else with
    ``torch.load(weights_only=True)``. A missing file raises ``FileNotFoundError``; every other
    failure is a :class:`CheckpointError` naming the file.
    """
    path = os.fspath(path)
    _check_file(path)
    with open(path, "rb") as f:
        head = f.read(64)
    if looks_like_html(head):
        raise CheckpointError(HTML_MESSAGE.format(what=path))
    lower = path.lower()
    if lower.endswith(".safetensors") or _looks_like_safetensors(head):
        from safetensors.torch import load_file
        try:
            ckpt: Any = load_file(path)
        except Exception as e:
            raise CheckpointError(f"{path}: not a readable safetensors file ({e})") from None
    elif lower.endswith(NUMPY_PICKLE_SUFFIXES):
        ckpt = load_numpy_pickle(path)
    else:
        ckpt = _torch_load(path)
    if not unwrap:
        return ckpt
    try:
        return unwrap_state_dict(ckpt)
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {e}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: nested too deeply to be a checkpoint") from None


# A share page (Google Drive, OneDrive) saved in place of the weights: Drive answers a large download with an
# HTML confirmation page, which torch would report as "invalid load key".
_HTML_PREFIXES = (b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"<meta", b"<!--")
HTML_MESSAGE = ("{what} is an HTML page, not a checkpoint (a share link's confirmation, sign-in or quota page "
                "saved as the file?); download the weights by hand from the page that lists them and pass the "
                "file with checkpoint_path=")


def looks_like_html(head: bytes) -> bool:
    """True when the first bytes of a file are a web page rather than a checkpoint."""
    return head.lstrip().lower().startswith(_HTML_PREFIXES)


def _looks_like_safetensors(head: bytes) -> bool:
    # 8-byte little-endian header length, then a JSON object
    return len(head) >= 9 and head[8:9] == b"{"


def load_into(model: torch.nn.Module, path: PathLike, filter_fn=None, strict: bool = True):
    """Load ``path`` into ``model`` through a family's ``checkpoint_filter_fn``.

    For models whose pretrained cfg sets ``custom_load=True`` (numpy-pickle releases that timm's
    own loader cannot read safely), ``model.load_pretrained(path)`` delegates here.
    """
    state_dict = load_checkpoint(path)
    if filter_fn is not None:
        state_dict = filter_fn(state_dict, model)
    return model.load_state_dict(state_dict, strict=strict)
