"""Window attention and MDTA: the zoo layers against the naive exact references of the tests.

    python benchmarks/bench_layers.py [--threads 2] [--repeats 7]

* ``window``: ``zoo.layers.window_attention.WindowAttention`` (batched windows, relative-position
  bias gathered once per window size, ``F.scaled_dot_product_attention``) against
  ``naive_window_attention`` of ``tests/test_layers_window_attention.py`` (a loop over windows and
  heads with the softmax written out), at the shapes of Swin-T / Swin-VSA-T stage 1 and stage 3
  (56x56 with 96 channels and 3 heads, 14x14 with 384 channels and 12 heads; window 7).
* ``mdta``: Restormer's ``MultiDconvHeadTransposedAttention`` (temperature folded into the
  normalised queries, SDPA over channels) against ``naive_mdta`` of ``tests/test_restormer.py``
  (the paper's explicit ``softmax(Q K^T * t) V``), at the four levels of a 256x256 Restormer.

Float32, ``torch.inference_mode``, same module and input for both; the outputs are checked to agree
first. The contenders alternate in every repeat; rows print median milliseconds and the median of
the per-repeat ratios (reference / zoo: > 1 means zoo is faster).
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the tests' naive references
from test_layers_window_attention import naive_window_attention  # noqa: E402
from test_restormer import naive_mdta  # noqa: E402

from zoo.layers.window_attention import WindowAttention  # noqa: E402
from zoo.models.restormer import MultiDconvHeadTransposedAttention  # noqa: E402


def interleaved(fns, repeats):
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - t0)
    return times


def row(label, zoo_fn, ref_fn, repeats, atol):
    with torch.inference_mode():
        diff = (zoo_fn() - ref_fn()).abs().max().item()
        assert diff <= atol, f"{label}: outputs differ by {diff}"
        t_zoo, t_ref = interleaved([zoo_fn, ref_fn], repeats)
    ratio = statistics.median(r / z for r, z in zip(t_ref, t_zoo))
    print(f"| {label} | {1e3 * statistics.median(t_zoo):.2f} | {1e3 * statistics.median(t_ref):.2f} | "
          f"{ratio:.1f}x | {diff:.1e} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--sections", default="window,mdta")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    sections = args.sections.split(",")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, inference_mode; "
          f"median of {args.repeats} interleaved repeats; ratio = reference time / zoo time")
    print("| layer, shape | zoo ms | naive reference ms | ratio | max abs diff |")
    print("|---|---|---|---|---|")
    torch.manual_seed(0)
    if "window" in sections:
        for batch, size, dim, heads in [(1, 56, 96, 3), (8, 56, 96, 3), (1, 14, 384, 12), (8, 14, 384, 12)]:
            m = WindowAttention(dim, heads, 7).eval()
            torch.nn.init.normal_(m.rel_pos.relative_position_bias_table, std=0.5)
            x = torch.randn(batch, size, size, dim)
            row(f"window attention {batch}x{size}x{size}x{dim}, {heads} heads, window 7",
                lambda: m(x), lambda: naive_window_attention(m, x), args.repeats, 1e-4)
    if "mdta" in sections:
        for batch, size, dim, heads in [(1, 256, 48, 1), (1, 128, 96, 2), (1, 64, 192, 4), (1, 32, 384, 8)]:
            m = MultiDconvHeadTransposedAttention(dim, heads).eval()
            x = torch.randn(batch, dim, size, size)
            row(f"MDTA {batch}x{dim}x{size}x{size}, {heads} heads",
                lambda: m(x), lambda: naive_mdta(m, x), args.repeats, 1e-4)


if __name__ == "__main__":
    main()
