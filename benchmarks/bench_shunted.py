"""CPU inference speed of zoo's Shunted Transformer: its attention layer against a naive reference, and
shunted_tiny against timm's swin_tiny_patch4_window7_224.

1. ``ShuntedAttention`` (channels-last, SDPA, two head groups) against a naive reference that shares
   its weights and computes what the official ``SSA.py`` computes, the way it computes it: tokens
   ``(B, N, C)``, NCHW convs on contiguous copies, an explicit ``softmax(q k^T * scale)`` matrix.
   One row per stage of shunted_tiny at 224 (rates 8, 4, 2, 1); the outputs are checked to agree first.
2. ``shunted_tiny`` against ``swin_tiny_patch4_window7_224`` at 224x224, batch 1 and 8.
3. With ``--official PATH`` (a checkout of OliverRensu/Shunted-Transformer, or its ``SSA.py``): the
   official ``shunted_t`` (its ``@register_model`` lines dropped at load time, nothing else changed),
   zoo's ``shunted_tiny`` with the same weights (through ``checkpoint_filter_fn``; the outputs are
   compared first), the same model after ``zoo.optimize_for_cpu`` and swin_tiny, interleaved.

Every pair is timed in the same process, interleaved (one run of each, repeated); the script prints
median times and the ratios of the medians and of the minimums (the minimum is the run least disturbed
by other jobs), so the ratios hold on a busy machine where absolute times do not.

    python benchmarks/bench_shunted.py [--repeats 15] [--threads N] [--batches 1 8] [--skip-model]
    python benchmarks/bench_shunted.py --official PATH --skip-attention --skip-model --threads 2
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import timm
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmark this checkout's zoo
sys.path.insert(0, str(Path(__file__).resolve().parent))
import zoo  # noqa: E402
from _compare import compare, load_source, randomise, swin_tiny, zoo_pair  # noqa: E402
from zoo.models import shunted as S  # noqa: E402
from zoo.flops import count_macs
from zoo.models.shunted import ShuntedAttention


def naive_shunted_attention(attn: ShuntedAttention, tokens: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """The official formulation on (B, N, C) tokens with an explicit attention matrix (no padding)."""
    B, N, C = tokens.shape
    h, hd = attn.num_heads, C // attn.num_heads
    scale = hd ** -0.5
    q = attn.q(tokens).reshape(B, N, h, hd).permute(0, 2, 1, 3)
    if attn.sr_ratio > 1:
        x_map = tokens.permute(0, 2, 1).reshape(B, C, H, W)
        outs = []
        groups = ((attn.sr1, attn.norm1, attn.kv1, attn.local_conv1.proj, slice(0, h // 2)),
                  (attn.sr2, attn.norm2, attn.kv2, attn.local_conv2.proj, slice(h // 2, h)))
        for sr, norm, kv, local, heads in groups:
            red = sr(x_map)
            hr, wr = red.shape[-2:]
            xr = F.gelu(norm(red.reshape(B, C, -1).permute(0, 2, 1)))
            kvr = kv(xr).reshape(B, -1, 2, h // 2, hd).permute(2, 0, 3, 1, 4)
            k, v = kvr[0], kvr[1]
            a = ((q[:, heads] @ k.transpose(-2, -1)) * scale).softmax(dim=-1)
            v_map = v.transpose(1, 2).reshape(B, -1, C // 2).transpose(1, 2).reshape(B, C // 2, hr, wr)
            v = v + local(v_map).reshape(B, h // 2, hd, -1).transpose(-1, -2)
            outs.append((a @ v).transpose(1, 2).reshape(B, N, C // 2))
        out = torch.cat(outs, dim=-1)
    else:
        kv = attn.kv(tokens).reshape(B, N, 2, h, hd).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        a = ((q @ k.transpose(-2, -1)) * scale).softmax(dim=-1)
        v_map = v.transpose(1, 2).reshape(B, N, C).transpose(1, 2).reshape(B, C, H, W)
        out = (a @ v).transpose(1, 2).reshape(B, N, C) + attn.local_conv.proj(v_map).reshape(B, C, N).transpose(1, 2)
    return attn.proj(out)


def _timed_pair(fa, fb, repeats: int, warmup: int):
    """(median a, median b, min a, min b) over interleaved runs."""
    for _ in range(warmup):
        fa()
        fb()
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fa()
        ta.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fb()
        tb.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb), min(ta), min(tb)


def bench_attention(batch: int, repeats: int, warmup: int) -> None:
    print(f"\nShuntedAttention (zoo) vs naive official-style reference, shunted_tiny stages at 224, batch {batch}")
    print(f"{'stage':>5} {'dim':>4} {'heads':>5} {'r':>2} {'map':>6} {'zoo ms':>8} {'naive ms':>9} "
          f"{'ratio (median)':>15} {'ratio (min)':>12}")
    for i, (dim, heads, r, side) in enumerate(((64, 2, 8, 56), (128, 4, 4, 28), (256, 8, 2, 14), (512, 16, 1, 7))):
        torch.manual_seed(i)
        attn = ShuntedAttention(dim, heads, sr_ratio=r).eval()
        x = torch.randn(batch, side, side, dim)
        tokens = x.reshape(batch, side * side, dim)
        ours = lambda: attn(x)  # noqa: E731
        ref = lambda: naive_shunted_attention(attn, tokens, side, side)  # noqa: E731
        diff = (ours().reshape(batch, -1, dim) - ref()).abs().max().item()
        assert diff < 1e-4, f"stage {i + 1}: zoo and naive attention disagree by {diff}"
        a, b, a_min, b_min = _timed_pair(ours, ref, repeats, warmup)
        print(f"{i + 1:>5} {dim:>4} {heads:>5} {r:>2} {side:>3}x{side:<2} {a * 1e3:>8.2f} {b * 1e3:>9.2f} "
              f"{a / b:>15.2f} {a_min / b_min:>12.2f}")


def bench_model(batches, repeats: int, warmup: int) -> None:
    ours = zoo.create_model("shunted_tiny").eval()
    ref = timm.create_model("swin_tiny_patch4_window7_224").eval()
    macs = {n: count_macs(m, input_size=(3, 224, 224)) / 1e9 for n, m in (("zoo", ours), ("timm", ref))}
    params = {n: sum(p.numel() for p in m.parameters()) / 1e6 for n, m in (("zoo", ours), ("timm", ref))}
    print(f"\nshunted_t {macs['zoo']:.2f} GMACs, {params['zoo']:.2f} M params; "
          f"swin_tiny {macs['timm']:.2f} GMACs, {params['timm']:.2f} M params (224x224)")
    print(f"{'batch':>5} {'shunted_tiny ms':>13} {'swin_tiny ms':>13} {'ratio (median)':>15} {'ratio (min)':>12} "
          f"{'per GMAC (min)':>15}")
    for batch in batches:
        x = torch.randn(batch, 3, 224, 224)
        a, b, a_min, b_min = _timed_pair(lambda: ours(x), lambda: ref(x), repeats, warmup)
        per_mac = (a_min / macs["zoo"]) / (b_min / macs["timm"])
        print(f"{batch:>5} {a * 1e3:>13.1f} {b * 1e3:>13.1f} {a / b:>15.2f} {a_min / b_min:>12.2f} {per_mac:>15.2f}")


def bench_official(path: str, batches, repeats: int, warmup: int) -> None:
    ssa = Path(path)
    ssa = ssa if ssa.suffix == ".py" else ssa / "SSA.py"
    mod = load_source(ssa, "official_shunted_ssa", [("@register_model\n", "\n")])
    torch.manual_seed(0)
    official = mod.shunted_t().eval()
    randomise(official)
    ours = zoo.create_model("shunted_tiny").eval()
    ours.load_state_dict(S.checkpoint_filter_fn(official.state_dict(), ours))
    x = torch.randn(2, 3, 224, 224)
    diff = (official(x) - ours(x)).abs().max().item()
    print(f"\nofficial shunted_t ({ssa}) vs zoo shunted_tiny, same weights: max|diff| {diff:.1e}; "
          f"{repeats} interleaved rounds, median")
    compare({"official": official, **zoo_pair(ours), "swin_tiny": swin_tiny()},
            lambda b: torch.randn(b, 3, 224, 224), batches, repeats, warmup)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--skip-model", action="store_true", help="only the attention-layer comparison")
    parser.add_argument("--skip-attention", action="store_true", help="only the model comparison")
    parser.add_argument("--official", default=os.environ.get("SHUNTED_OFFICIAL"),
                        help="checkout of OliverRensu/Shunted-Transformer (or its SSA.py) to time beside zoo")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, timm {timm.__version__}, threads {torch.get_num_threads()}")
    with torch.inference_mode():
        if not args.skip_attention:
            bench_attention(max(args.batches), args.repeats, args.warmup)
        if not args.skip_model:
            bench_model(args.batches, args.repeats, args.warmup)
        if args.official:
            bench_official(args.official, args.batches, args.repeats, args.warmup)


if __name__ == "__main__":
    main()
