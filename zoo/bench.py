"""Inference benchmark: ``python -m zoo bench [NAMES] [--batch 1 8] [--compile] [--channels-last] [--default-only] [--json FILE]``.

For each model at its default input, fp32, under ``torch.inference_mode``: warm-up, then the median
over timed repeats. Printed per model and batch size: images/s, achieved GFLOP/s (GFLOP/s =
2 x GMACs x images/s, GMACs counted by :mod:`zoo.flops`, SDPA included), peak memory, and the
**efficiency ratio** = model GFLOP/s / swin_tiny GFLOP/s, with timm's
``swin_tiny_patch4_window7_224`` measured in the same run; plus the machine's measured fp32 GEMM
ceiling (a 2048^3 product, through ``torch.mm``'s BLAS and through oneDNN, whichever is faster), so
every figure reads as a fraction of the limit.

Every model, the reference too, is measured twice: as built (``default``: standard modules, public
ops, what ``create_model`` returns) and after ``zoo.optimize_for_cpu`` (``optimized``: its Linears on
oneDNN's GEMM). Each row's ratios are against the reference *in the same mode*, so a ratio compares
two models, never two GEMM backends.

Each (model, batch, mode) runs in a fresh process so that its peak resident memory is its own.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import resource
import statistics
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import torch

__all__ = ["REFERENCE", "sgemm_gflops", "bench_one", "run", "apply_reference", "render"]

REFERENCE = "swin_tiny_patch4_window7_224"


def sgemm_gflops(n: int = 2048, repeats: int = 5, backend: str = "blas") -> float:
    """Measured fp32 matmul throughput of this machine (GFLOP/s) for an ``n``-cubed GEMM.

    ``backend="blas"``: ``torch.mm``, the BLAS of the torch build (MKL in the x86 wheels), which
    every default model uses; ``"onednn"``: a Linear after ``zoo.optimize_for_cpu`` (oneDNN's GEMM,
    see :mod:`zoo.accel`). The larger is the machine's ceiling.
    """
    from .accel import optimize_for_cpu

    a, b = torch.randn(n, n), torch.randn(n, n)
    if backend == "blas":
        fn = lambda: torch.mm(a, b)  # noqa: E731
    else:
        lin = torch.nn.Linear(n, n, bias=False)
        with torch.no_grad():
            lin.weight.copy_(b.t())
        lin = optimize_for_cpu(lin)
        fn = lambda: lin(a)  # noqa: E731
    with torch.inference_mode():
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def bench_one(name: str, batch: int, compile: bool = False, min_time: float = 2.0, min_repeats: int = 3,
              max_repeats: int = 50, channels_last: bool = False, optimized: bool = False) -> Dict[str, Any]:
    """Benchmark one model in this process (``run`` calls it in a child process per model);
    ``optimized``: after ``zoo.optimize_for_cpu``."""
    import timm

    import zoo  # noqa: F401  (registers the zoo models with timm)
    from .flops import count_macs
    from .registry import input_shape

    with torch.device("meta"):
        meta = timm.create_model(name)
    input_size = input_shape(name) if name in zoo.list_models(include_test=True) else \
        tuple(meta.pretrained_cfg["input_size"])
    gmacs = count_macs(meta, input_size=input_size, device="meta") / 1e9
    del meta
    model = timm.create_model(name).eval()
    if optimized:
        model = zoo.optimize_for_cpu(model)
    x = torch.randn(batch, *input_size)
    if channels_last:
        fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
        model, x = model.to(memory_format=fmt), x.contiguous(memory_format=fmt)
    fn = torch.compile(model) if compile else model
    rss_before = _rss_mb()
    with torch.inference_mode():
        for _ in range(2 if not compile else 3):
            fn(x)
        times: List[float] = []
        start = time.perf_counter()
        while len(times) < max_repeats and (len(times) < min_repeats or time.perf_counter() - start < min_time):
            t0 = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t0)
    sec = statistics.median(times)
    ips = batch / sec
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return dict(name=name, batch=batch, compile=compile, channels_last=channels_last, optimized=optimized,
                input_size=input_size,
                gmacs=gmacs,
                seconds_per_batch=sec, images_per_s=ips, gflops_per_s=2 * gmacs * ips,
                peak_rss_mb=peak_mb, rss_before_mb=rss_before, repeats=len(times))


def _child(queue, name, batch, compile, channels_last, optimized):
    try:
        queue.put(bench_one(name, batch, compile, channels_last=channels_last, optimized=optimized))
    except Exception as e:  # reported as a row, never hides the other models
        queue.put(dict(name=name, batch=batch, compile=compile, optimized=optimized, error=f"{type(e).__name__}: {e}"))


def _in_child(name: str, batch: int, compile: bool, channels_last: bool = False,
              optimized: bool = False) -> Dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, name, batch, compile, channels_last, optimized))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def run(names: Sequence[str], batches: Sequence[int] = (1, 8), compile: bool = False,
        progress: bool = True, channels_last: bool = False, optimized: bool = True) -> Dict[str, Any]:
    """``optimized``: also measure every model (the reference too) after ``zoo.optimize_for_cpu``."""
    from tqdm import tqdm

    machine = dict(platform=platform.platform(), processor=platform.processor() or platform.machine(),
                   cpus=os.cpu_count(), torch=torch.__version__, threads=torch.get_num_threads(),
                   sgemm_gflops=sgemm_gflops(), onednn_gflops=sgemm_gflops(backend="onednn"))
    machine["ceiling_gflops"] = max(machine["sgemm_gflops"], machine["onednn_gflops"])
    # the reference runs first and last: the machine's drift over the run shows in the two, and the
    # ratios use the faster of them (the first job of a run has measured up to 40% slow)
    modes = (False, True) if optimized else (False,)
    first = [(REFERENCE, b, o) for b in batches for o in modes]
    jobs = first + [(n, b, o) for n in names for b in batches for o in modes] + \
        [(REFERENCE, b, o) for b in batches for o in modes]
    rows = []
    for i, (name, batch, opt) in enumerate(tqdm(jobs, desc="zoo bench", disable=not progress, file=sys.stderr)):
        rows.append(_in_child(name, batch, compile, channels_last, opt))
        rows[-1].setdefault("optimized", opt)
        if name == REFERENCE:
            rows[-1]["reference_run"] = "first" if i < len(first) else "last"
    result = dict(machine=machine, reference=REFERENCE, rows=rows, compile=compile, channels_last=channels_last)
    return apply_reference(result)


def apply_reference(result: Dict[str, Any]) -> Dict[str, Any]:
    """Ratios of every row against the faster reference run of its batch size *and mode* (default or
    optimized), in place; ``speedup_optimized`` is a row's optimized images/s over its default's."""
    rows, machine = result["rows"], result["machine"]
    ref: Dict[Any, Dict[str, float]] = {}
    for key in sorted({(r["batch"], bool(r.get("optimized"))) for r in rows}):
        runs = [r for r in rows if r["name"] == REFERENCE and (r["batch"], bool(r.get("optimized"))) == key
                and "error" not in r]
        if runs:
            ips = max(r["images_per_s"] for r in runs)
            ref[key] = dict(images_per_s=ips, gflops_per_s=2 * runs[0]["gmacs"] * ips,
                            spread=ips / min(r["images_per_s"] for r in runs))
    best: Dict[Any, float] = {}
    for r in rows:
        if "error" not in r:
            k = (r["name"], r["batch"], bool(r.get("optimized")))
            best[k] = max(best.get(k, 0.0), r["images_per_s"])
    for r in rows:
        if "error" in r:
            continue
        r["fraction_of_ceiling"] = r["gflops_per_s"] / machine["ceiling_gflops"]
        base = ref.get((r["batch"], bool(r.get("optimized"))))
        if base:
            r["efficiency_vs_swin_tiny"] = r["gflops_per_s"] / base["gflops_per_s"]
            r["speed_vs_swin_tiny"] = r["images_per_s"] / base["images_per_s"]
        if r.get("optimized") and best.get((r["name"], r["batch"], False)):
            r["speedup_optimized"] = r["images_per_s"] / best[(r["name"], r["batch"], False)]
    # the reference's spread (first vs last run) per batch size, in the default mode
    result["reference_spread"] = {b: v["spread"] for (b, o), v in ref.items() if not o}
    return result


def render(result: Dict[str, Any]) -> str:
    m = result["machine"]
    lines = [
        f"machine: {m['processor']}, {m['cpus']} cores ({m['threads']} torch threads), torch {m['torch']}; "
        f"measured fp32 GEMM ceiling (2048^3): {m['sgemm_gflops']:.0f} GFLOP/s torch.mm (BLAS), "
        f"{m['onednn_gflops']:.0f} GFLOP/s oneDNN",
        "fp32, torch.inference_mode, default input, median over repeats; GFLOP/s = 2 x GMACs x images/s; "
        f"efficiency = model GFLOP/s / {result['reference']} GFLOP/s in the same mode (default: as built, "
        "public ops; optimized: after zoo.optimize_for_cpu, the reference too) and the same run (the faster "
        f"of its first and last job; they differ by "
        + ", ".join(f"{100 * (s - 1):.0f}% at batch {b}" for b, s in result.get("reference_spread", {}).items())
        + f"); of ceiling = GFLOP/s / {m['ceiling_gflops']:.0f}"
        + ("; every model torch.compile'd (inductor), the reference too" if result.get("compile") else "")
        + ("; models and inputs channels_last" if result.get("channels_last") else ""),
        "",
        "| model | mode | batch | input | GMACs | images/s | speed vs swin_tiny | GFLOP/s | "
        "efficiency vs swin_tiny | of ceiling | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        mode = "optimized" if r.get("optimized") else "default"
        if "error" in r:
            lines.append(f"| `{r['name']}` | {mode} | {r['batch']} | ERROR: {r['error'][:100]} | | | | | | | |")
            continue
        size = "x".join(str(s) for s in r["input_size"][1:])
        label = f"`{r['name']}`" + (f" ({r['reference_run']} run)" if r.get("reference_run") else "")
        if r.get("speedup_optimized"):
            mode += f" ({r['speedup_optimized']:.2f}x)"
        lines.append(
            f"| {label} | {mode} | {r['batch']} | {size} | {r['gmacs']:.2f} | {r['images_per_s']:.2f} | "
            f"{r.get('speed_vs_swin_tiny', float('nan')):.2f}x | {r['gflops_per_s']:.1f} | "
            f"{r.get('efficiency_vs_swin_tiny', float('nan')):.2f} | {100 * r.get('fraction_of_ceiling', 0):.0f}% | "
            f"{r['peak_rss_mb']:.0f} |")
    return "\n".join(lines)


def main(names: Sequence[str], batches: Sequence[int], compile: bool, json_path: Optional[str],
         progress: bool = True, channels_last: bool = False, optimized: bool = True) -> int:
    result = run(names, batches, compile, progress, channels_last, optimized)
    print(render(result))
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2, default=str)
    return 1 if any("error" in r for r in result["rows"]) else 0
