"""Linear layers: ``nn.Linear`` (``F.linear``, the BLAS of the torch build) vs the same layer after
``zoo.optimize_for_cpu`` (oneDNN GEMM, :mod:`zoo.accel`).

    python benchmarks/bench_linear.py [--threads 2] [--repeats 15]

Float32, CPU, ``torch.inference_mode``, at the GEMM shapes the zoo's models run at 224x224 (rows =
batch x tokens): a square 2048^3 GEMM (the ``zoo bench`` sgemm ceiling), the MLP and qkv projections
of the four stages of a Swin/UniFormer-like hierarchy at batch 1 and 8, and a classifier head. The
two contenders alternate in every repeat; each row prints their GFLOP/s (2 x M x K x N / median time)
and the median per-repeat speedup, F.linear time / zoo time (> 1: zoo faster). The largest absolute
difference to a float64 product is printed for each, to show that both are float32-exact GEMMs.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from zoo import optimize_for_cpu

SHAPES = [
    ("sgemm 2048^3", 2048, 2048, 2048),
    ("stage 1 mlp fc1, batch 1", 3136, 64, 256),
    ("stage 1 mlp fc1, batch 8", 8 * 3136, 64, 256),
    ("stage 2 qkv, batch 8", 8 * 784, 128, 384),
    ("stage 3 mlp fc1, batch 1", 196, 320, 1280),
    ("stage 3 mlp fc2, batch 8", 8 * 196, 1280, 320),
    ("stage 4 qkv, batch 1", 49, 512, 1536),
    ("stage 4 mlp fc2, batch 8", 8 * 49, 2048, 512),
    ("head, batch 8", 8, 768, 1000),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, inference_mode; "
          f"speedup = nn.Linear time / optimize_for_cpu'd time (median of {args.repeats} interleaved repeats)")
    print(f"| GEMM | M x K x N | F.linear GFLOP/s | zoo GFLOP/s | speedup | max err F.linear | max err zoo |")
    print("|---|---|---|---|---|---|---|")
    for label, m, k, n in SHAPES:
        torch.manual_seed(0)
        x, w, b = torch.randn(m, k), torch.randn(n, k) / k ** 0.5, torch.randn(n)
        ref = F.linear(x.double(), w.double(), b.double())
        layer = torch.nn.Linear(k, n)
        with torch.no_grad():
            layer.weight.copy_(w)
            layer.bias.copy_(b)
        fast = optimize_for_cpu(torch.nn.Linear(k, n))
        fast.weight, fast.bias = layer.weight, layer.bias
        fns = [lambda: layer(x), lambda: fast(x)]
        with torch.inference_mode():
            errs = [(fn().double() - ref).abs().max().item() for fn in fns]
            times = [[], []]
            for _ in range(args.repeats):
                for i, fn in enumerate(fns):
                    t0 = time.perf_counter()
                    fn()
                    times[i].append(time.perf_counter() - t0)
        gflop = 2 * m * k * n / 1e9
        speed = statistics.median(a / z for a, z in zip(*times))
        print(f"| {label} | {m} x {k} x {n} | {gflop / statistics.median(times[0]):.0f} | "
              f"{gflop / statistics.median(times[1]):.0f} | {speed:.2f}x | {errs[0]:.1e} | {errs[1]:.1e} |")


if __name__ == "__main__":
    main()
