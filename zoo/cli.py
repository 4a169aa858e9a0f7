"""``python -m zoo`` / ``zoo``: list, inspect and check the registered models.

    zoo list [PATTERN] [--family F] [--task T] [--pretrained]
    zoo info NAME
    zoo table [PATTERN] [--family F] [--quick | --full] [--markdown] [--plot FILE.png [--bench-json FILE]]
    zoo cards [--check] [--dir DIR]
    zoo convert NAME --checkpoint FILE --out DIR [--overwrite] [--push REPO]
    zoo bench [NAMES] [--batch 1 8] [--compile] [--default-only] [--json FILE]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ["main", "table_rows", "forward_choices"]


def _fmt_int(n: Optional[int]) -> str:
    return "-" if n is None else f"{n:,}"


def _fmt_float(x: Optional[float], digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def cmd_list(args: argparse.Namespace) -> int:
    import zoo

    names = zoo.list_models(args.pattern, pretrained=args.pretrained, family=args.family, task=args.task)
    for name in names:
        print(name)
    if not names:
        print(f"no zoo model matches {args.pattern!r}", file=sys.stderr)
        return 1
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import zoo

    try:
        info = zoo.model_info(args.name, measure=args.measure)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    lines = [
        f"{info['name']}  ({info['family']}, {info['task']})",
        f"  paper:        {info['paper']} ({', '.join(info['paper_ids'])})",
        f"  official code: {info['official_repo']} (licence: {info['code_license']})",
    ]
    if info["measured"]:
        match = {None: "no official count recorded", True: "exact", False: "DIFFERS"}[info["params_match"]]
        lines += [
            f"  params:       {_fmt_int(info['params'])} (official {_fmt_int(info['official_params'])}: {match})",
            f"  GMACs:        {_fmt_float(info['gmacs'])} at input {tuple(info['input_size'])}",
        ]
    else:
        dropped = sum(info["dropped_params"].values())
        if info["params"] is None:
            params = "no official count registered (--measure counts the model)"
        else:
            params = f"{_fmt_int(info['params'])} (registered: official {_fmt_int(info['official_params'])}" + \
                (f" less {_fmt_int(dropped)} not built" if dropped else "") + "; --measure counts the model)"
        lines += [f"  params:       {params}", f"  input:        {tuple(info['input_size'])}"]
    if info["feature_info"]:
        feats = ", ".join(f"{f.get('module')}: {f.get('num_chs')}ch /{f.get('reduction')}" for f in info["feature_info"])
        lines.append(f"  features:     {feats}")
    elif info["feature_reductions"]:
        feats = ", ".join(f"/{r}" for r in info["feature_reductions"])
        lines.append(f"  features:     strides {feats} (features_only=True)")
    if info["pretrained_tags"]:
        lines.append("  pretrained:")
        for tag, t in info["pretrained_tags"].items():
            rep = t.get("reported") or {}
            metric = f"  {rep.get('metric')} {rep.get('value')}" if rep else ""
            lines.append(f"    .{tag}: {t.get('location')} (licence: {t.get('license')}){metric}")
    else:
        lines.append("  pretrained:   none released")
    print("\n".join(lines))
    return 0


TABLE_MODES = ("default", "quick", "full")
# The default table's forwards: at the model's default input when its longer side is at most
# FORWARD_MAX_SIDE px; larger defaults (ViTDet 1024, Restormer 256, both of which take any size) are
# scaled to FORWARD_LARGE_SIDE px: Restormer at 224 px would cost as much as the other eight forwards.
FORWARD_MAX_SIDE = 224
FORWARD_LARGE_SIDE = 128


def _forward_input(input_size: Sequence[int]) -> Tuple[int, ...]:
    """``input_size`` (C, H, W) or (C, T, H, W), with H, W scaled as the default table runs it."""
    *lead, h, w = input_size
    if max(h, w) <= FORWARD_MAX_SIDE:
        return tuple(input_size)
    scale = FORWARD_LARGE_SIDE / max(h, w)
    return (*lead, max(1, round(h * scale)), max(1, round(w * scale)))


def forward_choices(rows: Sequence[Dict[str, Any]]) -> Dict[str, Tuple[int, ...]]:
    """{name: input size} of what the default table runs on the CPU: for each family and task, the
    public variant with the fewest parameters, at its default input (see :func:`_forward_input`)."""
    best: Dict[Tuple[str, str], Dict[str, Any]] = {}
    for r in rows:
        if r.get("params") is None:
            continue
        key = (r["family"], r["task"])
        if key not in best or (r["params"], r["name"]) < (best[key]["params"], best[key]["name"]):
            best[key] = r
    return {r["name"]: _forward_input(r["input_size"]) for r in sorted(best.values(), key=lambda r: r["name"])}


def _run_forward(name: str, input_size: Sequence[int], row: Dict[str, Any]) -> None:
    """Build ``name`` on the CPU (random weights) and run one forward at ``input_size``, batch 1."""
    import timm
    import torch

    model = timm.create_model(name).eval()
    torch.manual_seed(0)
    x = torch.randn(1, *input_size)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model(x)
    row["forward_s"] = time.perf_counter() - t0
    row["forward_input"] = tuple(input_size)
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    finite = bool(torch.isfinite(out).all()) if isinstance(out, torch.Tensor) else True
    row["forward"] = f"ok {shape}" if finite else f"NON-FINITE {shape}"
    if not finite:
        row["error"] = "non-finite output"


def table_rows(names: Sequence[str], mode: str = "default", progress: bool = True) -> List[Dict[str, Any]]:
    """One row per model: parameters counted on ``meta`` and checked against the official count.

    ``mode="default"`` (the README's main job, about a minute): counts every model, then builds on the
    CPU and runs one forward for each family and task (:func:`forward_choices`). ``"quick"`` adds
    GMACs (a forward on ``meta`` per model) and runs nothing on the CPU. ``"full"`` adds GMACs and builds
    and runs every model at its default input size (tens of minutes on 2 cores; see BENCHMARKS.md).
    """
    from tqdm import tqdm

    from .registry import measure, model_entry, params_match

    if mode not in TABLE_MODES:
        raise ValueError(f"table mode must be one of {TABLE_MODES}, got {mode!r}")
    bar = tqdm(total=len(names), desc="zoo table: count", unit="model", disable=not progress, file=sys.stderr)
    rows = []
    for name in names:
        bar.set_postfix_str(name)
        entry = model_entry(name)
        row: Dict[str, Any] = dict(name=name, family=entry.family, task=entry.task,
                                   official_params=entry.official_params, error=None, gmacs=None, forward="-")
        try:
            counted = measure(name, gmacs=mode != "default")
            row.update(params=counted["params"], input_size=counted["input_size"], gmacs=counted["gmacs"])
            if counted["gmacs_error"]:
                raise RuntimeError(f"counting MACs on meta: {counted['gmacs_error']}")
        except Exception as e:  # report and go on: one broken model must not hide the others
            row["error"] = f"{type(e).__name__}: {e}"
        if row.get("params") is not None and entry.official_params is not None:
            row["match"] = params_match(entry, row["params"])
        else:
            row["match"] = None
        rows.append(row)
        bar.update()

    if mode == "quick":
        runs = {}
        for r in rows:
            r["forward"] = "skipped (--quick)"
    elif mode == "full":
        runs = {r["name"]: tuple(r["input_size"]) for r in rows if r.get("input_size")}
    else:
        runs = forward_choices([r for r in rows if not r["error"]])
    if runs:
        bar.reset(total=len(runs))
        bar.set_description("zoo table: forward on CPU")
    by_name = {r["name"]: r for r in rows}
    for name, input_size in runs.items():
        bar.set_postfix_str(name)
        row = by_name[name]
        try:
            _run_forward(name, input_size, row)
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}"
        bar.update()
    bar.close()
    return rows


def _render(rows: List[Dict[str, Any]]) -> str:
    with_gmacs = any(r.get("gmacs") is not None for r in rows)
    header = ["model", "family", "task", "params", "official", "match"] + (["GMACs"] if with_gmacs else [])
    header += ["input", "forward"]
    body = []
    for r in rows:
        match = {None: "-", True: "exact", False: "DIFFERS"}[r.get("match")]
        fwd = r.get("forward", "")
        if r.get("forward_s") is not None:
            at = "x".join(map(str, r["forward_input"][1:]))
            fwd = f"{fwd} at {at} in {r['forward_s']:.2f}s"
        if r.get("error"):
            fwd = f"ERROR {r['error'][:80]}"
        cells = [r["name"], r["family"], r["task"], _fmt_int(r.get("params")), _fmt_int(r["official_params"]), match]
        cells += [_fmt_float(r.get("gmacs"))] if with_gmacs else []
        body.append(cells + ["x".join(map(str, r.get("input_size", ())[1:])) or "-", fwd])
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)] if body else [len(h) for h in header]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in body]
    return "\n".join(lines)


def cmd_table(args: argparse.Namespace) -> int:
    import zoo

    names = zoo.list_models(args.pattern, family=args.family)
    if not names:
        everything = args.pattern == "*" and args.family is None
        print("no zoo model is registered" if everything else "no registered zoo model matches", file=sys.stderr)
        return 0 if everything else 1
    if args.markdown:
        from .cards import render_markdown_table, variant_rows

        if not args.quick:
            print("--markdown reports counts only; add --quick (forwards are not part of it)", file=sys.stderr)
            return 2
        table = render_markdown_table(variant_rows(names=names))
        if args.write_readme:
            from .cards import embed_in_readme

            changed = embed_in_readme(args.write_readme, table)
            print(f"{args.write_readme}: {'updated' if changed else 'already in sync'}")
        else:
            print(table)
        return 0
    mode = "quick" if args.quick else "full" if args.full else "default"
    if args.plot and mode == "default":
        print("--plot draws GMACs: add --quick (or --full)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rows = table_rows(names, mode=mode, progress=not args.no_progress)
    if args.plot:
        _plot(rows, args.plot, args.bench_json, args.bench_batch)
    print(_render(rows))
    bad = [r for r in rows if r.get("error") or r.get("match") is False]
    n_official = sum(r["match"] is not None for r in rows)
    n_exact = sum(r["match"] is True for r in rows)
    n_runs = sum(r.get("forward_s") is not None for r in rows)
    print(f"\n{len(rows)} models counted on meta; {n_exact}/{n_official} with an official count match it exactly; "
          f"{n_runs} run on the CPU{' (one per family and task)' if mode == 'default' else ''}; "
          f"{sum(bool(r.get('error')) for r in rows)} errors; {time.perf_counter() - t0:.0f} s")
    if mode == "default":
        print("GMACs of every model: --quick; every full-size model built and run at its default input: --full")
    return 1 if bad else 0


PLOT_METRIC = ("top1", "imagenet-1k")  # the one metric the zoo's models share


def plot_points(rows: List[Dict[str, Any]], bench: Optional[Dict[str, Any]] = None,
                batch: int = 8) -> List[Dict[str, Any]]:
    """One point per model with a reported ImageNet-1k top-1: family, name, top-1 (the best of its
    tags), measured GMACs, and images/s from a ``zoo bench --json`` result at ``batch`` (else None)."""
    from .registry import model_entry

    speed = {r["name"]: r["images_per_s"] for r in (bench or {}).get("rows", [])
             if r.get("batch") == batch and "error" not in r and not r.get("optimized")}
    points = []
    for r in rows:
        top1 = [v["value"] for v in model_entry(r["name"]).reported.values()
                if (v.get("metric"), v.get("dataset")) == PLOT_METRIC and isinstance(v.get("value"), (int, float))]
        if top1 and r.get("gmacs"):
            points.append(dict(family=r["family"], name=r["name"], top1=max(top1), gmacs=r["gmacs"],
                               images_per_s=speed.get(r["name"])))
    return points


def _plot(rows: List[Dict[str, Any]], path: str, bench_json: Optional[str] = None, batch: int = 8) -> None:
    """Reported ImageNet-1k top-1 against measured GMACs and, given a ``zoo bench --json`` file,
    against measured images/s; one colour per family, every variant labelled."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise SystemExit("--plot needs matplotlib: pip install 'zoo[plot]'") from e

    bench = None
    if bench_json:
        with open(bench_json) as f:
            bench = json.load(f)
    points = plot_points(rows, bench, batch)
    if not points:
        raise SystemExit("--plot: none of these models reports an ImageNet-1k top-1")
    axes_spec = [("gmacs", "GMACs (measured by zoo.flops, 224x224)")]
    if any(p["images_per_s"] for p in points):
        m = bench["machine"]
        axes_spec.append(("images_per_s", f"images/s (zoo bench, batch {batch}, fp32, {m['cpus']}-core "
                                          f"{m['processor']}, torch {m['torch']})"))
    fig, axes = plt.subplots(1, len(axes_spec), figsize=(7.5 * len(axes_spec), 5.5), squeeze=False)
    families = sorted({p["family"] for p in points})
    colours = {f: plt.cm.tab10(i % 10) for i, f in enumerate(families)}
    for ax, (key, label) in zip(axes[0], axes_spec):
        for fam in families:
            mine = sorted((p for p in points if p["family"] == fam and p[key]), key=lambda p: p[key])
            ax.plot([p[key] for p in mine], [p["top1"] for p in mine], "o", color=colours[fam], label=fam)
            for p in mine:
                ax.annotate(p["name"], (p[key], p["top1"]), fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("ImageNet-1k top-1 % (reported by the paper)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("zoo: reported accuracy against measured cost (other tasks' metrics: model_cards/)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def cmd_cards(args: argparse.Namespace) -> int:
    from .cards import check_cards, write_cards

    if args.check:
        problems = check_cards(args.dir)
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            print("run `python -m zoo cards` to regenerate", file=sys.stderr)
        return 1 if problems else 0
    for path in write_cards(args.dir):
        print(path)
    return 0


def _model_args(text: Optional[str]) -> Dict[str, Any]:
    """``--model-args '{"depths": [1, 1, 2, 1]}'`` -> constructor overrides (a JSON object)."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"--model-args is not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"--model-args must be a JSON object of constructor arguments, got {text!r}")
    return value


def cmd_convert(args: argparse.Namespace) -> int:
    """Official checkpoint -> Hub-ready folder: config.json, model.safetensors and the model card."""
    from pathlib import Path

    import timm

    import zoo
    from .cards import render_hub_card
    from .hub import push_to_hub

    model_args = _model_args(args.model_args)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.overwrite:
        raise FileExistsError(f"--out {out} is not empty; pass --overwrite to replace its files")
    try:
        model = zoo.create_model(args.name, checkpoint_path=args.checkpoint, **model_args)
    except TypeError as e:
        if not model_args:
            raise
        raise ValueError(f"--model-args {args.model_args!r} does not fit {args.name}: {e}") from None
    timm.models.save_for_hf(model, str(out), safe_serialization=True)
    # the card describes these weights: the tag's licence, metric, origin and how they were converted
    with open(args.checkpoint, "rb") as f:
        sha256 = hashlib.file_digest(f, "sha256").hexdigest() if hasattr(hashlib, "file_digest") else \
            hashlib.sha256(f.read()).hexdigest()
    (out / "README.md").write_text(render_hub_card(
        args.name, dict(model.pretrained_cfg), checkpoint=args.checkpoint, checkpoint_sha256=sha256,
        model_args=model_args, repo_id=args.push))
    print(f"wrote {out / 'config.json'}, {out / 'model.safetensors'}, {out / 'README.md'}")
    if args.push:
        # the folder just written goes up as it is (timm's push_to_hf_hub would write its own README)
        push_to_hub(out, args.push)
        print(f"pushed {out} to https://huggingface.co/{args.push}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import timm

    import zoo
    from .bench import main as bench_main

    names: List[str] = []
    for pattern in args.names or ["*"]:
        # a wildcard means the public zoo variants; a test model is benchmarked only when named, and
        # a timm model (e.g. vit_base_patch16_224, a second reference) when named exactly
        if any(c in pattern for c in "*?["):
            found = zoo.list_models(pattern)
        elif pattern not in zoo.list_models(include_test=True) and timm.is_model(pattern):
            found = [pattern]
        else:
            found = [zoo.registry.model_entry(pattern).name]
        names += [n for n in found if n not in names]
    return bench_main(names, args.batch, args.compile, args.json, progress=not args.no_progress,
                      channels_last=args.channels_last, optimized=not args.default_only)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zoo", description="zoo: vision transformers from recent papers on timm.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="list registered models")
    s.add_argument("pattern", nargs="?", default="*")
    s.add_argument("--family")
    s.add_argument("--task")
    s.add_argument("--pretrained", action="store_true", help="only models with released weights")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("info", help="params, features, pretrained tags, paper and licence of a model (registered "
                                    "facts; --measure builds it on meta and counts params and GMACs)")
    s.add_argument("name")
    s.add_argument("--json", action="store_true")
    s.add_argument("--measure", action="store_true", help="build the model on the meta device: counted params, "
                                                          "GMACs, full feature_info")
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("table", help="count every model's parameters against the official count, run one "
                                     "forward per family on the CPU")
    s.add_argument("pattern", nargs="?", default="*")
    s.add_argument("--family")
    how = s.add_mutually_exclusive_group()
    how.add_argument("--quick", action="store_true",
                     help="count params and GMACs on the meta device only, no forward on the CPU")
    how.add_argument("--full", action="store_true",
                     help="also GMACs, and build and run every full-size model at its default input "
                          "(tens of minutes on 2 cores)")
    s.add_argument("--no-progress", action="store_true")
    s.add_argument("--markdown", action="store_true", help="print the README's markdown table (with --quick)")
    s.add_argument("--write-readme", metavar="README.md", help="with --markdown: embed the table between its markers")
    s.add_argument("--plot", metavar="FILE.png",
                   help="reported ImageNet-1k top-1 vs GMACs (and images/s with --bench-json); needs matplotlib")
    s.add_argument("--bench-json", metavar="FILE", help="a `zoo bench --json` result: the images/s of the plot")
    s.add_argument("--bench-batch", type=int, default=8, help="which batch size of --bench-json to plot (8)")
    s.set_defaults(func=cmd_table)

    s = sub.add_parser("cards", help="write model_cards/<family>.md from the registry")
    s.add_argument("--check", action="store_true", help="exit 1 if the committed cards are stale")
    s.add_argument("--dir", default="model_cards")
    s.set_defaults(func=cmd_cards)

    s = sub.add_parser("convert", help="official checkpoint -> Hugging Face Hub-ready folder")
    s.add_argument("name")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--model-args", metavar="JSON",
                   help="constructor overrides for a non-standard configuration, as a JSON object; "
                        "recorded in config.json so local-dir:/hf-hub: rebuild the same model")
    s.add_argument("--push", metavar="REPO", help="also upload the folder (weights, config, zoo card) to this Hub repo")
    s.add_argument("--overwrite", action="store_true", help="replace the files of a non-empty --out folder")
    s.set_defaults(func=cmd_convert)

    s = sub.add_parser("bench", help="images/s, GFLOP/s and peak memory against swin_tiny in the same run")
    s.add_argument("names", nargs="*", help="zoo model names or patterns (default: every registered model); "
                                            "exact timm names are benchmarked too, as extra references")
    s.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    s.add_argument("--compile", action="store_true", help="benchmark torch.compile'd models")
    s.add_argument("--channels-last", action="store_true", help="models and inputs in channels_last memory format")
    s.add_argument("--default-only", action="store_true",
                   help="skip the second measurement of every model after zoo.optimize_for_cpu")
    s.add_argument("--json", metavar="FILE")
    s.add_argument("--no-progress", action="store_true")
    s.set_defaults(func=cmd_bench)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, PermissionError) as e:
        # expected failures (bad names, files or arguments; CheckpointError is a ValueError): one line
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
