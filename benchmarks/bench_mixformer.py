"""CPU inference speed of zoo's mixformer_b1 against timm's swin_tiny_patch4_window7_224.

Both models are timed in the same process, interleaved (one zoo run, one timm run, repeated), at
224x224 and batch 1 and 8; the script prints the median times and their ratio, plus GMACs so the
ratio can be read against the work each model does (MixFormer-B1 is a far smaller model).

    python benchmarks/bench_mixformer.py [--repeats 15] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmark this checkout's zoo
import zoo  # noqa: E402
from zoo.flops import count_macs  # noqa: E402


def _time(model: torch.nn.Module, x: torch.Tensor) -> float:
    t0 = time.perf_counter()
    model(x)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    ours = zoo.create_model("mixformer_b1").eval()
    ref = timm.create_model("swin_tiny_patch4_window7_224").eval()
    macs = {n: count_macs(m, input_size=(3, 224, 224)) / 1e9 for n, m in (("zoo", ours), ("timm", ref))}
    print(f"torch {torch.__version__}, timm {timm.__version__}, threads {torch.get_num_threads()}")
    print(f"mixformer_b1 {macs['zoo']:.2f} GMACs, {sum(p.numel() for p in ours.parameters()) / 1e6:.2f} M params; "
          f"swin_tiny {macs['timm']:.2f} GMACs, {sum(p.numel() for p in ref.parameters()) / 1e6:.2f} M params")
    print(f"{'batch':>5} {'mixformer_b1 ms':>16} {'swin_tiny ms':>13} {'time ratio':>11} {'ratio per GMAC':>15}")
    with torch.inference_mode():
        for batch in args.batches:
            x = torch.randn(batch, 3, 224, 224)
            for _ in range(args.warmup):
                ours(x)
                ref(x)
            t_ours, t_ref = [], []
            for _ in range(args.repeats):
                t_ours.append(_time(ours, x))
                t_ref.append(_time(ref, x))
            a, b = statistics.median(t_ours), statistics.median(t_ref)
            per_mac = (a / macs["zoo"]) / (b / macs["timm"])
            print(f"{batch:>5} {a * 1e3:>16.1f} {b * 1e3:>13.1f} {a / b:>11.2f} {per_mac:>15.2f}")


if __name__ == "__main__":
    main()
