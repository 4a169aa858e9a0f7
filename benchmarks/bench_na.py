"""Neighborhood attention speed, measured in one process with interleaved repeats.

    python benchmarks/bench_na.py                   # all sections
    python benchmarks/bench_na.py --threads 1 --clock process
    python benchmarks/bench_na.py --sections na,model

Sections:
  na     zoo na2d vs exact masked dense attention (SDPA over all H*W keys with a mask that carries the
         bias and -inf outside each clamped window) at NAT-Tiny stage-1 shapes: 56x56, 64 channels,
         2 heads, k=7, rpb; batch 1 and 8; forward (inference) and forward+backward.
  dilated the same comparison for dilated NA at DiNAT-Tiny's dilated blocks: stage 1 (56x56, d=8,
         2 heads), stage 2 (28x28, d=4, 4 heads) and stage 3 (14x14, d=2, 8 heads), hd 32, k=7, rpb;
         and stage 1 at 240 px (60x60, d=8: a side that is not a multiple of d).
  natten zoo na2d vs NATTEN's na2d on the same op without bias, if ``natten`` imports (0.21.x; on CPU
         only its flex backend runs, eagerly). Not a zoo dependency: install it separately.
  model  zoo nat_tiny vs timm swin_tiny_patch4_window7_224, batch 8, 224x224, float32, forward; and
         zoo dinat_tiny vs nat_tiny, per image and per GMAC (zoo.flops counts), interleaved in one process.

Every row prints the median time of each contender and the median over repeats of the per-repeat
ratio (reference time / zoo time: > 1 means zoo is faster). Timings on a shared machine are noisy;
the ratio of interleaved runs is the number to read.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def dense_masked_reference(q, k, v, kernel_size, dilation=1, rpb=None):
    """Exact (dilated) NA as dense attention: every key, with a (heads, N, N) mask holding the bias inside
    each query's clamped window and -inf outside. Inputs (B, H, W, heads, hd)."""
    B, H, W, nh, hd = q.shape
    kk, d = kernel_size, dilation

    def axis(length):
        i = torch.arange(length)
        n_g = (length - 1 - i % d) // d + 1  # length of query i's sub-grid
        start = (i // d - kk // 2).clamp(min=0)
        start = torch.minimum(start, n_g - kk)
        j = torch.arange(length)
        same = (j[None] % d) == (i[:, None] % d)
        inside = same & (j[None] // d >= start[:, None]) & (j[None] // d < start[:, None] + kk)
        return inside, torch.div(j[None] - i[:, None], d, rounding_mode="floor") + kk - 1

    in_y, rel_y = axis(H)
    in_x, rel_x = axis(W)
    inside = (in_y[:, None, :, None] & in_x[None, :, None, :]).reshape(H * W, H * W)
    ry = rel_y[:, None, :, None].expand(H, W, H, W).clamp(0, 2 * kk - 2).reshape(H * W, H * W)
    rx = rel_x[None, :, None, :].expand(H, W, H, W).clamp(0, 2 * kk - 2).reshape(H * W, H * W)
    neg_inf = torch.tensor(float("-inf"), dtype=q.dtype)
    if rpb is None:
        mask = torch.where(inside, torch.zeros((), dtype=q.dtype), neg_inf)[None]
    else:
        mask = torch.where(inside[None], rpb[:, ry, rx], neg_inf)
    t = lambda x: x.reshape(B, H * W, nh, hd).transpose(1, 2)
    out = F.scaled_dot_product_attention(t(q), t(k), t(v), attn_mask=mask[None])
    return out.transpose(1, 2).reshape(B, H, W, nh, hd)


def interleaved(fns, repeats, clock):
    """Run each fn once to warm up, then ``repeats`` rounds of all fns in turn; returns per-fn times."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = clock()
            fn()
            times[i].append(clock() - t)
    return times


def report(label, names, times):
    zoo_t = times[0]
    cols = "  ".join(f"{n} {statistics.median(t) * 1e3:9.2f} ms" for n, t in zip(names, times))
    ratios = "  ".join(
        f"{n}/{names[0]} {statistics.median([r / z for r, z in zip(t, zoo_t)]):6.2f}x" for n, t in zip(names[1:], times[1:]))
    print(f"{label:<34} {cols}  | {ratios}", flush=True)


def bench_na(args, clock):
    for B in (1, 8):
        _bench_case(args, clock, f"NA stage-1 B={B}", B, 56, 2, 1, args.repeats if B == 1 else max(3, args.repeats // 2))


def bench_dilated(args, clock):
    # the last case's side is not a multiple of d (DiNAT-Tiny stage 1 at 240 px): sub-grids of two lengths
    for H, nh, d in ((56, 2, 8), (28, 4, 4), (14, 8, 2), (60, 2, 8)):
        for B in (1, 8):
            reps = args.repeats if B == 1 else max(3, args.repeats // 2)
            _bench_case(args, clock, f"DiNA {H}x{H} d={d} B={B}", B, H, nh, d, reps)


def _bench_case(args, clock, label, B, H, nh, d, reps):
    """zoo na2d vs dense masked attention on one (B, H, H, nh, 32) case with kernel 7 and dilation d."""
    from zoo.layers.neighborhood_attention import na2d

    W = H
    hd, kk = 32, 7
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(B, H, W, nh, hd, generator=g) for _ in range(3))
    rpb = torch.randn(nh, 2 * kk - 1, 2 * kk - 1, generator=g)
    with torch.no_grad():
        diff = (na2d(q, k, v, kk, d, rpb=rpb) - dense_masked_reference(q, k, v, kk, d, rpb)).abs().max().item()

    def fwd(fn):
        def run():
            with torch.inference_mode():
                fn(q, k, v, kk, d, rpb=rpb)
        return run

    qg, kg, vg, rg = (t.clone().requires_grad_() for t in (q, k, v, rpb))

    def fwd_bwd(fn):
        def run():
            fn(qg, kg, vg, kk, d, rpb=rg).sum().backward()
        return run

    times = interleaved([fwd(na2d), fwd(dense_masked_reference)], reps, clock)
    report(f"{label} forward", ["zoo", "dense"], times)
    times = interleaved([fwd_bwd(na2d), fwd_bwd(dense_masked_reference)], reps, clock)
    report(f"{label} forward+backward", ["zoo", "dense"], times)
    print(f"  (max |zoo - dense| = {diff:.2e})")


def bench_natten(args, clock):
    import warnings

    warnings.filterwarnings("ignore", module="torch.nn.attention.flex_attention")
    warnings.filterwarnings("ignore", message=".*flex_attention.*")
    try:
        import natten
    except ImportError:
        print("natten is not importable: section skipped (install natten 0.21.7 from its sdist, see BENCHMARKS.md)")
        return
    from zoo.layers.neighborhood_attention import na2d

    H = W = 56
    nh, hd, kk = 2, 32, 7
    for B in (1, 8):
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(B, H, W, nh, hd, generator=g) for _ in range(3))
        with torch.inference_mode():
            ref = natten.na2d(q, k, v, kernel_size=kk)
            diff = (na2d(q, k, v, kk) - ref).abs().max().item()

        def fwd(fn):
            def run():
                with torch.inference_mode():
                    fn()
            return run

        qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
        times = interleaved([fwd(lambda: na2d(q, k, v, kk)), fwd(lambda: natten.na2d(q, k, v, kernel_size=kk))],
                            args.repeats, clock)
        report(f"NA no-bias B={B} forward", ["zoo", f"natten{natten.__version__}"], times)
        try:
            natten.na2d(qg, kg, vg, kernel_size=kk).sum().backward()
        except Exception as e:  # natten 0.21's CPU (flex) path has no backward
            print(f"NA no-bias B={B} forward+backward: natten cannot run it ({type(e).__name__}: {e})")
        else:
            times = interleaved([lambda: na2d(qg, kg, vg, kk).sum().backward(),
                                 lambda: natten.na2d(qg, kg, vg, kernel_size=kk).sum().backward()], args.repeats, clock)
            report(f"NA no-bias B={B} forward+backward", ["zoo", f"natten{natten.__version__}"], times)
        print(f"  (max |zoo - natten| = {diff:.2e})")


def bench_model(args, clock):
    import timm

    import zoo

    nat = zoo.create_model("nat_tiny").eval()
    swin = timm.create_model("swin_tiny_patch4_window7_224").eval()
    x = torch.randn(8, 3, 224, 224)

    def fwd(m):
        def run():
            with torch.inference_mode():
                m(x)
        return run

    times = interleaved([fwd(nat), fwd(swin)], args.repeats, clock)
    report("nat_tiny vs swin_tiny B=8 forward", ["zoo", "swin"], times)

    from zoo.flops import count_macs

    dinat = zoo.create_model("dinat_tiny").eval()
    macs = {n: count_macs(m, x[:1]) / 1e9 for n, m in (("dinat", dinat), ("nat", nat))}
    times = interleaved([fwd(dinat), fwd(nat)], args.repeats, clock)
    report("dinat_tiny vs nat_tiny B=8 forward", ["dinat", "nat"], times)
    per_gmac = statistics.median([(n / macs["nat"]) / (d / macs["dinat"]) for d, n in zip(*times)])
    print(f"  GMACs dinat_tiny {macs['dinat']:.2f}, nat_tiny {macs['nat']:.2f}; "
          f"time per GMAC nat / dinat = {per_gmac:.2f}x (> 1: dinat faster per GMAC)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="na,dilated,natten,model")
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave the default)")
    ap.add_argument("--clock", choices=("wall", "process"), default="wall",
                    help="wall time, or process CPU time (steadier on a busy machine with --threads 1)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.clock == "wall" else time.process_time
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, clock={args.clock}, repeats={args.repeats}")
    sections = args.sections.split(",")
    if "na" in sections:
        bench_na(args, clock)
    if "dilated" in sections:
        bench_dilated(args, clock)
    if "natten" in sections:
        bench_natten(args, clock)
    if "model" in sections:
        bench_model(args, clock)


if __name__ == "__main__":
    main()
