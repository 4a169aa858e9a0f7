"""What a bad checkpoint costs: time of a wrong-variant error, peak memory of small hostile files.

    python benchmarks/bench_loading.py [--wrong nat_mini:nat_tiny] [--repeats 3]

1. **Wrong variant.** A ``nat_mini`` state dict (random weights) is loaded into ``nat_tiny`` with
   ``zoo.create_model(checkpoint_path=...)``; the time until the ``CheckpointError`` (which names
   the likely variant) is measured in fresh processes: with no table cache (``ZOO_NO_DISK_CACHE``,
   the first explanation ever), with the on-disk key/shape tables, and again in the same process
   (everything warm). Issue 22 targets < 1 s.
2. **Hostile files.** Each small file of issue 22's attacks (0-stride views, views beyond their
   buffer, object and oversized ``_reconstruct`` calls, object arrays, self-referencing and 5000-deep
   dicts, expanded torch tensors, ``os.system`` pickles) is loaded in a fresh process; the peak RSS
   above the process's baseline after imports is reported (target < 50 MB).

Numbers depend on machine load: say how busy the machine was when quoting them.
"""
from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class _Call:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def write_hostile_files(folder: Path) -> list:
    import numpy as np
    import torch

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import _reconstruct

    def dump(name, obj):
        path = folder / name
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=2)
        return path

    view = _Call(np.ndarray, (500_000_000,), np.dtype("f4"), b"\0" * 4, 0, (0,))
    cyclic = {}
    cyclic["a"] = cyclic
    deep = cur = {}
    for _ in range(5000):
        cur["a"] = {}
        cur = cur["a"]
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(30_000)
    try:
        files = [
            dump("zero_stride_view.pdparams", {"w": view}),
            dump("three_zero_stride_views.pdparams", {"a": view, "b": view, "c": view}),
            dump("object_reconstruct.pdparams", {"w": _Call(_reconstruct, np.ndarray, (300_000_000,), "O")}),
            dump("huge_reconstruct.pdparams", {"w": _Call(_reconstruct, np.ndarray, (300_000_000,), "f8")}),
            dump("object_array.pdparams", {"w": np.array([1, "x"], dtype=object)}),
            dump("cyclic.pdparams", cyclic),
            dump("deep.pdparams", deep),
            dump("os_system.pdparams", {"w": _Call(os.system, "true")}),
        ]
        torch.save(deep, folder / "deep.pth")
        torch.save(cyclic, folder / "cyclic.pth")
        torch.save({"w": torch.zeros(1).expand(500_000_000)}, folder / "expanded.pth")
        torch.save({"w": torch.zeros(2), "x": _Call(os.system, "true")}, folder / "os_system.pth")
    finally:
        sys.setrecursionlimit(limit)
    return files + [folder / n for n in ("deep.pth", "cyclic.pth", "expanded.pth", "os_system.pth")]


_PEAK = textwrap.dedent("""
    import json, resource, sys
    import zoo
    from zoo.checkpoint import CheckpointError, load_checkpoint
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        load_checkpoint(sys.argv[1]); outcome = "LOADED"
    except CheckpointError as e:
        outcome = type(e).__name__
    except Exception as e:
        outcome = "RAW " + type(e).__name__
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(dict(outcome=outcome, extra_mb=(peak - base) / 1024)))
""")

_WRONG = textwrap.dedent("""
    import json, sys, time
    import zoo
    from zoo.checkpoint import CheckpointError
    path, target, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
    times, msg = [], ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        try:
            zoo.create_model(target, checkpoint_path=path)
        except CheckpointError as e:
            msg = str(e)
        times.append(time.perf_counter() - t0)
    print(json.dumps(dict(times=times, message=msg)))
""")


def _run(code: str, *args: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--wrong", default="nat_mini:nat_tiny", help="SOURCE:TARGET variants of the wrong-variant error")
    p.add_argument("--repeats", type=int, default=3, help="errors per process (the first is the cold one)")
    args = p.parse_args(argv)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print("## hostile files (peak RSS above the post-import baseline, one fresh process each)")
        worst = 0.0
        for path in write_hostile_files(tmp):
            r = _run(_PEAK, str(path), env=env)
            worst = max(worst, r["extra_mb"])
            print(f"{path.name:36s} {path.stat().st_size:7d} B  -> {r['outcome']:22s} +{r['extra_mb']:.1f} MB")
        print(f"worst: +{worst:.1f} MB (target < 50 MB)\n")

        import torch

        import zoo

        source, target = args.wrong.split(":")
        ckpt = tmp / f"{source}.pth"
        torch.save(zoo.create_model(source).state_dict(), ckpt)
        print(f"## wrong variant: a {source} file into {target} (seconds to the CheckpointError)")
        cache = tmp / "zoo-cache"
        runs = [("no table cache (first explanation ever)", dict(env, ZOO_NO_DISK_CACHE="1")),
                ("disk tables, cold cache filling run", dict(env, ZOO_CACHE_DIR=str(cache))),
                ("disk tables present, new process", dict(env, ZOO_CACHE_DIR=str(cache)))]
        for label, e in runs:
            r = _run(_WRONG, str(ckpt), target, str(args.repeats), env=e)
            times = ", ".join(f"{t:.2f}" for t in r["times"])
            print(f"{label:42s} first {r['times'][0]:.2f} s; then {times}")
        print(f"message: {r['message'][:300]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
