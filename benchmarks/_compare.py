"""Shared by the family benchmarks (``bench_uniformer.py``, ``bench_shunted.py``, ``bench_vsa.py``,
``bench_mtunet.py``): load an official implementation from a checkout the user passes, and time it
against zoo's default model, zoo's model after ``zoo.optimize_for_cpu`` and timm's swin_tiny, all
interleaved in one process (one forward of each in turn, repeated), so that the ratios hold on a loaded
machine where the absolute times do not. Nothing official is stored in this repository.
"""
from __future__ import annotations

import contextlib
import copy
import importlib
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Callable, Dict, Iterable, Mapping, Optional, Sequence, Tuple

import torch
from torch import nn

REFERENCE = "swin_tiny_patch4_window7_224"


def load_source(path: Path, name: str, replace: Iterable[Tuple[str, str]] = ()) -> types.ModuleType:
    """Execute an official source file as module ``name``, after textual replacements (e.g. dropping
    ``@register_model`` so that nothing is added to timm's registry)."""
    src = Path(path).read_text()
    for a, b in replace:
        src = src.replace(a, b)
    mod = types.ModuleType(name)
    mod.__file__ = str(path)
    sys.modules[name] = mod
    exec(compile(src, str(path), "exec"), mod.__dict__)
    return mod


def load_package_module(folder: Path, package: str, module: str) -> types.ModuleType:
    """Import ``folder/module.py`` as ``package.module`` without running the folder's ``__init__.py``
    (which, in the official repos, registers models in timm); relative imports inside work."""
    if package not in sys.modules:
        pkg = types.ModuleType(package)
        pkg.__path__ = [str(folder)]
        sys.modules[package] = pkg
    return importlib.import_module(f"{package}.{module}")


@contextlib.contextmanager
def cuda_is_identity():
    """Runtime shim for official code that calls ``tensor.cuda()`` unconditionally: a no-op on CPU."""
    saved = torch.Tensor.cuda
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    try:
        yield
    finally:
        torch.Tensor.cuda = saved


def randomise(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial random weights (running variances positive, norm gains near 1), in place."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if not v.is_floating_point():
                continue
            if k.endswith("running_var"):
                v.copy_(torch.rand(v.shape, generator=g) + 0.5)
            elif v.ndim >= 2:
                v.copy_(torch.randn(v.shape, generator=g) * min(0.1, v[0].numel() ** -0.5))
            else:
                v.copy_(0.02 * torch.randn(v.shape, generator=g))


def zoo_pair(model: nn.Module) -> Dict[str, nn.Module]:
    """``{"zoo": model, "zoo optimized": a copy after zoo.optimize_for_cpu}`` (same weights)."""
    import zoo

    return {"zoo": model, "zoo optimized": zoo.optimize_for_cpu(copy.deepcopy(model))}


def compare(models: Mapping[str, Callable[[torch.Tensor], object]], make_input: Callable[[int], torch.Tensor],
            batches: Sequence[int], repeats: int, warmup: int = 1, official: Optional[str] = "official",
            reference: str = "swin_tiny") -> Dict[Tuple[str, int], float]:
    """Time every model once per round, in turn, for each batch; print the median and minimum ms per
    batch, and the speed relative to ``reference`` (t_reference / t) and to ``official`` (t_official / t),
    from the medians and from the minimums (the least disturbed runs) of the same run (a column is left
    out when that model is not timed). Returns {(name, batch): median seconds}."""
    times: Dict[Tuple[str, int], list] = {(n, b): [] for n in models for b in batches}
    with torch.inference_mode():
        for b in batches:
            x = make_input(b)
            for _ in range(warmup):
                for m in models.values():
                    m(x)
            for _ in range(repeats):
                for n, m in models.items():
                    t0 = time.perf_counter()
                    m(x)
                    times[(n, b)].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    cols = [c for c in (reference, official) if c in models]
    print(f"{'model':<18} {'batch':>5} {'ms median':>10} {'ms min':>9}"
          + "".join(f" {'vs ' + c + ' (med/min)':>26}" for c in cols))
    for b in batches:
        for n in models:
            t, t_min = med[(n, b)], best[(n, b)]
            print(f"{n:<18} {b:>5} {t * 1e3:>10.1f} {t_min * 1e3:>9.1f}"
                  + "".join(f" {med[(c, b)] / t:>19.2f}x/{best[(c, b)] / t_min:.2f}x" for c in cols), flush=True)
    return med


def swin_tiny() -> nn.Module:
    import timm

    return timm.create_model(REFERENCE).eval()
