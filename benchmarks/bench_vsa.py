"""CPU inference speed of the VSA family against timm's Swin-T, measured in one process, interleaved.

    python benchmarks/bench_vsa.py [--batches 1 8] [--size 224] [--repeats 7] [--threads N] [--swin-vsa]
    python benchmarks/bench_vsa.py --official PATH [--batches 1 8] [--repeats 7] [--threads 2]

Each round runs every model once per batch size, in turn, so that machine load hits all of them
alike; the table gives the median time per batch and the ratio zoo / reference of those medians.
``--swin-vsa`` adds ``swin_vsa_tiny`` (Swin-T with VSA + CPE), which isolates what VSA itself costs
over plain window attention on the same host. GMACs are counted with ``zoo.flops.count_macs``.

``--official PATH`` (a checkout of ViTAE-Transformer/ViTAE-VSA) times the official ``ViTAEv2_VSA_S``
instead (at 224x224, the size it is built for), beside zoo's ``vitaev2_vsa_small`` with the same weights
(through ``checkpoint_filter_fn``; the outputs are compared first), the same model after
``zoo.optimize_for_cpu`` and swin_tiny, interleaved. Runtime shims, nothing else changed: the package's
``__init__`` (timm registration) is skipped and ``models.py`` is loaded without its ``@register_model``
lines; ``Tensor.cuda`` is a no-op while the official model is built (its window grids call ``.cuda()``).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmark this checkout's zoo
sys.path.insert(0, str(Path(__file__).resolve().parent))
import zoo  # noqa: E402
from _compare import (compare, cuda_is_identity, load_package_module, load_source, randomise,  # noqa: E402
                      swin_tiny, zoo_pair)
from zoo.models import vsa as V  # noqa: E402

REFERENCE = "swin_tiny_patch4_window7_224"


def _macs(model: torch.nn.Module, size: int) -> float:
    try:
        from zoo.flops import count_macs
        return count_macs(model, input_size=(3, size, size)) / 1e9
    except Exception:  # counting is informative only
        return float("nan")


def bench_official(path: str, batches, repeats: int, warmup: int) -> None:
    folder = Path(path) / "Image-Classification" / "vitaev2_vsa"
    load_package_module(folder, "official_vitaev2_vsa", "base_model")
    mod = load_source(folder / "models.py", "official_vitaev2_vsa.models",
                      [("@register_model\n", "\n"), ("from .base_model", "from official_vitaev2_vsa.base_model")])
    torch.manual_seed(0)
    with cuda_is_identity(), contextlib.redirect_stdout(io.StringIO()):  # it prints a line per block
        official = mod.ViTAEv2_VSA_S().eval()
    randomise(official)
    ours = zoo.create_model("vitaev2_vsa_small").eval()
    ours.load_state_dict(V.checkpoint_filter_fn(official.state_dict(), ours))
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        diff = (official(x) - ours(x)).abs().max().item()
    print(f"\nofficial ViTAEv2_VSA_S ({folder}) vs zoo vitaev2_vsa_small, same weights: max|diff| {diff:.1e}; "
          f"{repeats} interleaved rounds, median")
    compare({"official": official, **zoo_pair(ours), "swin_tiny": swin_tiny()},
            lambda b: torch.randn(b, 3, 224, 224), batches, repeats, warmup)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    p.add_argument("--swin-vsa", action="store_true", help="also time swin_vsa_tiny")
    p.add_argument("--official", default=os.environ.get("VSA_OFFICIAL"),
                   help="checkout of ViTAE-Transformer/ViTAE-VSA: time the official ViTAEv2_VSA_S instead")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.official:
        print(f"torch {torch.__version__}, timm {timm.__version__}, threads {torch.get_num_threads()}")
        bench_official(args.official, args.batches, args.repeats, args.warmup)
        return

    names = ["vitaev2_vsa_small"] + (["swin_vsa_tiny"] if args.swin_vsa else [])
    models = {n: zoo.create_model(n).eval() for n in names}
    models[REFERENCE] = timm.create_model(REFERENCE).eval()
    gmacs = {n: _macs(m, args.size) for n, m in models.items()}
    inputs = {b: torch.randn(b, 3, args.size, args.size) for b in args.batches}

    times = {(n, b): [] for n in models for b in args.batches}
    with torch.inference_mode():
        for _ in range(args.warmup):
            for b, x in inputs.items():
                for m in models.values():
                    m(x)
        for _ in range(args.repeats):
            for b, x in inputs.items():
                for n, m in models.items():
                    t0 = time.perf_counter()
                    m(x)
                    times[(n, b)].append(time.perf_counter() - t0)

    print(f"torch {torch.__version__}, timm {timm.__version__}, threads {torch.get_num_threads()}, "
          f"input {args.size}x{args.size}, median of {args.repeats} interleaved rounds")
    print(f"{'model':<32} {'GMACs':>6} {'batch':>5} {'ms/batch':>9} {'img/s':>7} {'vs ' + 'swin_tiny':>13}")
    for b in args.batches:
        ref = statistics.median(times[(REFERENCE, b)])
        for n in models:
            med = statistics.median(times[(n, b)])
            print(f"{n:<32} {gmacs[n]:>6.2f} {b:>5d} {med * 1e3:>9.1f} {b / med:>7.1f} {med / ref:>12.2f}x")


if __name__ == "__main__":
    main()
