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
    """Time every model once per round, in turn, for each batch; print the median wall and CPU ms per
    batch, and the speed relative to ``reference`` (t_reference / t) and to ``official`` (t_official / t)
    from the wall and from the CPU medians of the same run (a column is left out when that model is not
    timed). With one thread, CPU time does not count the time the process waits for a core, so on a
    shared machine its ratios are the steadier ones. Returns {(name, batch): median wall seconds}."""
    wall: Dict[Tuple[str, int], list] = {(n, b): [] for n in models for b in batches}
    cpu: Dict[Tuple[str, int], list] = {(n, b): [] for n in models for b in batches}
    with torch.inference_mode():
        for b in batches:
            x = make_input(b)
            for _ in range(warmup):
                for m in models.values():
                    m(x)
            for _ in range(repeats):
                for n, m in models.items():
                    c0, t0 = time.process_time(), time.perf_counter()
                    m(x)
                    wall[(n, b)].append(time.perf_counter() - t0)
                    cpu[(n, b)].append(time.process_time() - c0)
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    cols = [c for c in (reference, official) if c in models]
    print(f"{'model':<18} {'batch':>5} {'wall ms':>9} {'CPU ms':>9}"
          + "".join(f" {'vs ' + c + ' (wall/CPU)':>27}" for c in cols))
    for b in batches:
        for n in models:
            t, c = med[(n, b)], med_cpu[(n, b)]
            print(f"{n:<18} {b:>5} {t * 1e3:>9.1f} {c * 1e3:>9.1f}"
                  + "".join(f" {med[(r, b)] / t:>20.2f}x/{med_cpu[(r, b)] / c:.2f}x" for r in cols), flush=True)
    return med


def swin_tiny() -> nn.Module:
    import timm

    return timm.create_model(REFERENCE).eval()
