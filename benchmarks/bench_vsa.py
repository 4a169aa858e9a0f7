"""CPU inference speed of the VSA family against timm's Swin-T, measured in one process, interleaved.

    python benchmarks/bench_vsa.py [--batches 1 8] [--size 224] [--repeats 7] [--threads N] [--swin-vsa]

Each round runs every model once per batch size, in turn, so that machine load hits all of them
alike; the table gives the median time per batch and the ratio zoo / reference of those medians.
``--swin-vsa`` adds ``swin_vsa_tiny`` (Swin-T with VSA + CPE), which isolates what VSA itself costs
over plain window attention on the same host. GMACs are counted with ``zoo.flops.count_macs``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import timm
import torch

import zoo

REFERENCE = "swin_tiny_patch4_window7_224"


def _macs(model: torch.nn.Module, size: int) -> float:
    try:
        from zoo.flops import count_macs
        return count_macs(model, input_size=(3, size, size)) / 1e9
    except Exception:  # counting is informative only
        return float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    p.add_argument("--swin-vsa", action="store_true", help="also time swin_vsa_tiny")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

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
