"""Restormer restoration on CPU: time and peak memory, zoo vs the official implementation.

Each measurement runs in a fresh child process (peak RSS is a per-process high-water mark), and the
children alternate zoo / official so that both see the same machine load; ratios are what to read.

    python benchmarks/bench_restormer.py --official path/to/restormer_arch.py            # 512x512
    python benchmarks/bench_restormer.py --official ... --sizes 512 1024 --repeats 2    # + 1024 (slow)

``--official`` is ``basicsr/models/archs/restormer_arch.py`` of swz30/Restormer (needs einops);
without it only the zoo model is measured. The model is ``restormer.gopro`` at full
size with random weights, float32, batch 1, ``torch.no_grad``; "tiled" is ``zoo.restore(model, x,
tile=256, tile_overlap=32)`` (the official demo's blending) around either model.
Use ``--threads 2`` for multi-threaded numbers; CPU seconds are then inflated by OpenMP spinning.
"""
import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def _child(impl: str, size: int, tile: int, overlap: int, official: str, repeats: int, threads: int) -> dict:
    sys.path.insert(0, ROOT)
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    if impl == "zoo":
        import zoo

        model = zoo.create_model("restormer.gopro")
    else:
        spec = importlib.util.spec_from_file_location("restormer_arch_official", official)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        model = mod.Restormer(inp_channels=3, out_channels=3, dim=48, num_blocks=[4, 6, 6, 8],
                              num_refinement_blocks=4, heads=[1, 2, 4, 8], ffn_expansion_factor=2.66,
                              bias=False, LayerNorm_type="WithBias", dual_pixel_task=False)
    model.eval()
    from zoo.restore import restore

    x = torch.rand(1, 3, size, size)
    base = _rss_mb()
    times, cpu = [], []
    with torch.no_grad():
        for _ in range(repeats):
            c0 = time.process_time()
            t0 = time.perf_counter()
            if tile:
                y = restore(model, x, tile=tile, tile_overlap=overlap, clamp=False)
            else:
                y = model(x)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            del y
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return dict(impl=impl, size=size, tile=tile, seconds=min(times), cpu_seconds=min(cpu), peak_mb=peak - base)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", default=os.environ.get("RESTORMER_OFFICIAL_ARCH"),
                    help="path to the official restormer_arch.py (optional)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[512], help="square image sides (1024 is slow)")
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--overlap", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved zoo/official child pairs per case")
    ap.add_argument("--repeats", type=int, default=1, help="forwards per child (min is kept)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 keeps CPU time meaningful on a shared machine")
    ap.add_argument("--no-untiled", action="store_true", help="skip whole-image runs (memory-hungry at 1024)")
    ap.add_argument("--no-tiled", action="store_true", help="skip tiled runs")
    ap.add_argument("--child", nargs=3, metavar=("IMPL", "SIZE", "TILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        impl, size, tile = args.child[0], int(args.child[1]), int(args.child[2])
        print(json.dumps(_child(impl, size, tile, args.overlap, args.official, args.repeats, args.threads)))
        return

    impls = ["zoo"] + (["official"] if args.official else [])
    modes = ([] if args.no_untiled else [0]) + ([] if args.no_tiled else [args.tile])
    cases = [(s, t) for s in args.sizes for t in modes]
    print(f"restormer.gopro, float32, batch 1, {args.threads} threads, "
          f"{args.rounds} rounds x {args.repeats} repeats; best wall and CPU seconds, "
          f"peak MB = max RSS - RSS before the forward (median)")
    print(f"{'size':>6} {'mode':>12} | " + " | ".join(f"{i + ' wall':>14} {'cpu':>8} {'MB':>7}" for i in impls)
          + (" | zoo/official: wall, cpu, memory" if len(impls) == 2 else ""))
    for size, tile in cases:
        res = {i: [] for i in impls}
        for _ in range(args.rounds):
            for impl in impls:
                cmd = [sys.executable, __file__, "--child", impl, str(size), str(tile),
                       "--repeats", str(args.repeats), "--threads", str(args.threads), "--overlap", str(args.overlap)]
                if args.official:
                    cmd += ["--official", args.official]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode:
                    raise RuntimeError(f"child {impl} {size} {tile} failed:\n{proc.stderr}")
                out = proc.stdout
                res[impl].append(json.loads(out.strip().splitlines()[-1]))
        mode = f"tile {tile}/{args.overlap}" if tile else "whole"
        cols = []
        summary = {}
        for impl in impls:
            t = min(r["seconds"] for r in res[impl])
            c = min(r["cpu_seconds"] for r in res[impl])
            m = statistics.median(r["peak_mb"] for r in res[impl])
            summary[impl] = (t, c, m)
            cols.append(f"{t:14.2f} {c:8.2f} {m:7.0f}")
        line = f"{size:>6} {mode:>12} | " + " | ".join(cols)
        if len(impls) == 2:
            (tz, cz, mz), (to, co, mo) = summary["zoo"], summary["official"]
            line += f" | {tz / to:5.2f}x, {cz / co:5.2f}x, {mz / mo:5.2f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()
