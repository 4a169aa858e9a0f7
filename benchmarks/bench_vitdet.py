"""ViTDet-B trunk + simple feature pyramid on CPU: zoo against an exact reference, in one process.

    python benchmarks/bench_vitdet.py             # 512 x 512, batch 1 (trunk + pyramid: features_only)
    python benchmarks/bench_vitdet.py --full      # also 1024 x 1024 (the detectron2 input size)

Implementations, same weights, run interleaved (one forward of each per round, so machine noise
hits all alike); the printed ratios are median times over the rounds, relative to the reference:

* ``reference``: detectron2's attention written out as the official code does it
  (``attn = (q * scale) @ k^T``; ``+ rel_h + rel_w`` through an ``(N, N)`` bias; softmax; ``@ v``);
  every other layer as in zoo. Its output is checked against zoo's before timing.
* ``zoo``: the zoo model as shipped (its blocks are timm's ``vision_transformer_sam.Block``:
  ``F.scaled_dot_product_attention`` with the decomposed relative position as ``attn_mask``).
* ``timm_samvit``: timm's ``samvit_base_patch16`` trunk at the same size, for context only (the
  same ViT-B windowed trunk with decomposed rel-pos, but SAM's neck instead of the pyramid).

GFLOP/s use one FLOP count for every implementation: 2 x the MACs of the reference formula.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
import types
from pathlib import Path

import torch
from timm.models.vision_transformer_sam import Attention

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmark this checkout's zoo
import zoo  # noqa: E402
from zoo.flops import count_macs  # noqa: E402
from zoo.layers.rel_pos import get_rel_pos  # noqa: E402


def _detectron2_attention(self: Attention, x: torch.Tensor):
    """detectron2 ``Attention.forward`` on a ``(B, H, W, C)`` map, spelled out."""
    B, H, W, C = x.shape
    N = H * W
    x = x.reshape(B, N, C)
    qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.reshape(3, B * self.num_heads, N, -1).unbind(0)
    attn = (q * self.scale) @ k.transpose(-2, -1)
    Rh = get_rel_pos(H, H, self.rel_pos_h)
    Rw = get_rel_pos(W, W, self.rel_pos_w)
    r_q = q.reshape(B * self.num_heads, H, W, -1)
    rel_h = torch.einsum("bhwc,hkc->bhwk", r_q, Rh)
    rel_w = torch.einsum("bhwc,wkc->bhwk", r_q, Rw)
    attn = (attn.view(-1, H, W, H, W) + rel_h[:, :, :, :, None] + rel_w[:, :, :, None, :]).view(-1, N, N)
    attn = attn.softmax(dim=-1)
    x = (attn @ v).view(B, self.num_heads, N, -1).transpose(1, 2).reshape(B, N, C)
    return self.proj(x).view(B, H, W, C)


def _reference_of(model: torch.nn.Module) -> torch.nn.Module:
    ref = copy.deepcopy(model)
    for m in ref.modules():
        if isinstance(m, Attention):
            m.forward = types.MethodType(_detectron2_attention, m)
    return ref


def _time(fn, x) -> float:
    t0 = time.perf_counter()
    fn(x)
    return time.perf_counter() - t0


def run(size: int, rounds: int, with_timm: bool) -> None:
    torch.manual_seed(0)
    model = zoo.create_model("vitdet_base_patch16", pyramid=True).eval()
    with torch.no_grad():  # non-zero tables so the relative terms are really computed
        for n, p in model.named_parameters():
            if "rel_pos" in n:
                p.normal_(std=0.02)
    ref = _reference_of(model)
    x = torch.randn(1, 3, size, size)

    impls = {
        "reference": lambda t: ref.forward_pyramid(t),
        "zoo": lambda t: model.forward_pyramid(t),
    }
    if with_timm:
        import timm

        samvit = timm.create_model("samvit_base_patch16", img_size=size, num_classes=0).eval()
        impls["timm_samvit"] = lambda t: samvit.forward_features(t)

    with torch.no_grad():
        want = ref.forward_pyramid(x)
        for name in [n for n in impls if n.startswith("zoo")]:
            got = impls[name](x)
            diff = max((a - b).abs().max().item() for a, b in zip(got, want))
            print(f"{name:12s} max |diff| vs reference over p2..p6: {diff:.2e}")
        macs = count_macs(_reference_of(model), x)
        gflop = 2 * macs / 1e9
        for fn in impls.values():  # warm-up
            fn(x)
        times = {name: [] for name in impls}
        for _ in range(rounds):
            for name, fn in impls.items():
                times[name].append(_time(fn, x))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    print(f"\nViTDet-B trunk + SFP, input 1x3x{size}x{size}, {rounds} interleaved rounds, "
          f"{torch.get_num_threads()} threads, {gflop:.1f} GFLOP (reference formula)")
    print(f"{'impl':12s} {'median s':>9s} {'min s':>8s} {'GFLOP/s':>8s} {'ref/impl':>9s}")
    for name in impls:
        print(f"{name:12s} {med[name]:9.3f} {min(times[name]):8.3f} {gflop / med[name]:8.1f} "
              f"{med['reference'] / med[name]:9.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="also run at 1024 x 1024")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-timm", action="store_true", help="skip timm's samvit_base_patch16")
    args = parser.parse_args()
    run(512, args.rounds, not args.no_timm)
    if args.full:
        run(1024, max(2, args.rounds // 2), not args.no_timm)


if __name__ == "__main__":
    main()
