"""MT-UNet speed on CPU, 224x224, batch 1, ratios measured in one run (interleaved rounds).

(a) Gaussian-weighted axial attention: zoo's ``GaussianAxialAttention`` (two SDPA calls) against the
    official formulation, re-implemented faithfully below (``Attention(axial=True)`` scores, then
    ``GaussianTrans``'s Python double loop over rows and columns, distance tensors built per position),
    at every grid the official model runs it on (7x7 @ 256 and 512, 4x4 @ 512, 2x2 @ 1024), with the
    official model's layer counts; the attention alone and the whole layer (with q/k/v projections).
(b) the whole zoo MT-UNet (mtunet.synapse) against timm's swin_tiny_patch4_window7_224, both as plain
    PyTorch modules (public ops only), and MT-UNet again after its explicit ``fuse()`` (BatchNorm
    folded into the convs), and an "official-like" MT-UNet: the zoo model with every axial attention
    replaced by the official loop formulation of (a) (the official model is slower still: NCHW convs);
    all four interleaved in one run.

(c) with ``--official PATH`` (a checkout of Dootmaan/MT-UNet, or its ``model/MTUNet.py``): the official
    ``MTUNet(out_ch=9)`` itself, zoo's ``mtunet.synapse`` with the same weights (through
    ``checkpoint_filter_fn``; outputs compared first), the same model after ``zoo.optimize_for_cpu``, and
    swin_tiny, interleaved, at ``--batches``. Runtime shim, nothing else changed: the official forward
    calls ``.cuda()`` unconditionally, so ``Tensor.cuda`` is a no-op while it runs.

usage: python benchmarks/bench_mtunet.py [--rounds N] [--threads T] [--skip-axial]
       python benchmarks/bench_mtunet.py --official PATH --skip-axial --skip-model --threads 2 [--batches 1 8]
"""
import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

import timm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmark this checkout's zoo
sys.path.insert(0, str(Path(__file__).resolve().parent))
import zoo  # noqa: E402
from _compare import compare, cuda_is_identity, load_source, randomise, swin_tiny, zoo_pair  # noqa: E402
from zoo.models import mtunet as M  # noqa: E402
from zoo.models.mtunet import GaussianAxialAttention  # noqa: E402


def official_gaussian_trans(q, k, v, shift, bias):
    """The official axial scores (``Attention(axial=True)``) and ``GaussianTrans`` (Dootmaan/MT-UNet,
    model/MTUNet.py) on projected (b, h, w, c) q, k, v, with ``.cuda()`` removed: row and column score
    matmuls, then one Python iteration per grid position, distance tensors built per position."""
    b, h, w, c = q.shape
    atten_x_full = torch.matmul(q.reshape(b * h, w, -1), k.reshape(b * h, w, -1).transpose(-1, -2))
    atten_x_full = atten_x_full.view(b, -1, w, w)
    q_y = q.permute(0, 2, 1, 3).contiguous().view(b * w, h, -1)
    k_y = k.permute(0, 2, 1, 3).contiguous().view(b * w, h, -1).transpose(-1, -2)
    atten_y_full = torch.matmul(q_y, k_y).view(b, -1, h, h)
    value_full = v
    new_value_full = torch.zeros_like(value_full)
    for r in range(h):
        for col in range(w):
            atten_x = atten_x_full[:, r, col, :]
            atten_y = atten_y_full[:, col, r, :]
            dis_x = torch.tensor([(j - col) ** 2 for j in range(w)])
            dis_y = torch.tensor([(i - r) ** 2 for i in range(h)])
            dis_x = -(shift * dis_x + bias)
            dis_y = -(shift * dis_y + bias)
            atten_x = torch.softmax(dis_x + atten_x, dim=-1)
            atten_y = torch.softmax(dis_y + atten_y, dim=-1)
            new_value_full[:, r, col, :] = torch.sum(
                atten_x.unsqueeze(dim=-1) * value_full[:, r, :, :]
                + atten_y.unsqueeze(dim=-1) * value_full[:, :, col, :], dim=-2)
    return new_value_full


class OfficialAxialGaussian(nn.Module):
    """The whole official layer: separate q/k/v ``nn.Linear`` projections + ``official_gaussian_trans``."""

    def __init__(self, m: GaussianAxialAttention):
        super().__init__()
        dim = m.qkv.in_features
        self.query_layer, self.key_layer, self.value_layer = (nn.Linear(dim, dim) for _ in range(3))
        with torch.no_grad():
            for i, lin in enumerate((self.query_layer, self.key_layer, self.value_layer)):
                lin.weight.copy_(m.qkv.weight[i * dim:(i + 1) * dim])
                lin.bias.copy_(m.qkv.bias[i * dim:(i + 1) * dim])
        self.shift, self.bias = m.shift, m.bias

    def forward(self, x):
        return official_gaussian_trans(self.query_layer(x), self.key_layer(x), self.value_layer(x),
                                       self.shift, self.bias)


# (grid, dim, layers of the official model at 224x224): encoder at 28x28 (grid 7), encoder and
# decoder at 14x14 (padded to 16: grid 4), bottleneck at 7x7 (padded to 8: grid 2), decoder at 28x28
AXIAL_CASES = [(7, 256, 2), (4, 512, 4), (2, 1024, 2), (7, 512, 2)]


def _time(fn, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def _interleaved(ref, ours, rounds, reps=5):
    t_ref, t_zoo = [], []
    for _ in range(rounds):
        t_ref.append(_time(ref, reps))
        t_zoo.append(_time(ours, reps))
    return statistics.median(t_ref), statistics.median(t_zoo)


def bench_axial(rounds: int) -> None:
    print("(a) Gaussian-weighted axial attention, official loop formulation vs zoo (same weights, batch 1)")
    print("    'attention' = scores + Gaussian prior + softmax + weighted sums (what the official loop computes);")
    print("    'layer' = the same plus the q/k/v projections")
    tot = [0.0, 0.0, 0.0, 0.0]
    for grid, dim, n in AXIAL_CASES:
        torch.manual_seed(0)
        ours = GaussianAxialAttention(dim).eval()
        ref = OfficialAxialGaussian(ours).eval()
        x = torch.randn(1, grid, grid, dim)
        with torch.inference_mode():
            q, k, v = ours.qkv(x).chunk(3, dim=-1)
            err = (ours(x) - ref(x)).abs().max().item()
            a_ref, a_zoo = _interleaved(lambda: official_gaussian_trans(q, k, v, ours.shift, ours.bias),
                                        lambda: ours.attend(q, k, v), rounds)
            l_ref, l_zoo = _interleaved(lambda: ref(x), lambda: ours(x), rounds)
        for i, t in enumerate((a_ref, a_zoo, l_ref, l_zoo)):
            tot[i] += n * t
        print(f"  grid {grid}x{grid} dim {dim:4d} (x{n}): attention official {a_ref * 1e3:6.2f} ms, zoo "
              f"{a_zoo * 1e3:6.3f} ms, speed-up {a_ref / a_zoo:5.1f}x | layer official {l_ref * 1e3:6.2f} ms, "
              f"zoo {l_zoo * 1e3:6.3f} ms, speed-up {l_ref / l_zoo:4.1f}x | max|diff| {err:.1e}")
    print(f"  all 10 layers of one 224x224 forward: attention {tot[0] * 1e3:.1f} -> {tot[1] * 1e3:.2f} ms, "
          f"speed-up {tot[0] / tot[1]:.1f}x; layer {tot[2] * 1e3:.1f} -> {tot[3] * 1e3:.2f} ms, "
          f"speed-up {tot[2] / tot[3]:.1f}x")


def bench_model(rounds: int) -> None:
    print("(b) whole model, 224x224 batch 1: zoo mtunet.synapse (plain, and after fuse()) vs timm "
          "swin_tiny_patch4_window7_224 (plain), public PyTorch ops only")
    torch.manual_seed(0)
    mt = zoo.create_model("mtunet.synapse").eval()
    fused = zoo.create_model("mtunet.synapse").eval()
    fused.load_state_dict(mt.state_dict())
    fused.fuse()
    sw = timm.create_model("swin_tiny_patch4_window7_224").eval()
    official = zoo.create_model("mtunet.synapse").eval()
    official.load_state_dict(mt.state_dict())
    for name, m in list(official.named_modules()):
        if isinstance(m, GaussianAxialAttention):
            parent, child = official.get_submodule(name.rsplit(".", 1)[0]), name.rsplit(".", 1)[1]
            setattr(parent, child, OfficialAxialGaussian(m))
    x = torch.randn(1, 3, 224, 224)
    rows = {"mtunet": (mt, [], []), "mtunet fuse()": (fused, [], []), "official-like": (official, [], [])}
    t_sw = []
    with torch.inference_mode():
        err = (mt(x) - fused(x)).abs().max().item()
        err_official = (mt(x) - official(x)).abs().max().item()
        sw(x)  # warm-up
        for _ in range(rounds):
            a = _time(lambda: sw(x), 2)
            ts = {name: _time(lambda: m(x), 1) for name, (m, _, _) in rows.items()}
            c = _time(lambda: sw(x), 2)
            t_sw.append((a + c) / 2)
            for name, t in ts.items():
                rows[name][1].append(t)
                rows[name][2].append(t_sw[-1] / t)
    print(f"  swin_tiny {statistics.median(t_sw) * 1e3:.0f} ms per image (median); fuse() changes the output by "
          f"max |diff| {err:.1e}; official-like vs zoo max |diff| {err_official:.1e}")
    for name, (_, t_mt, ratios) in rows.items():
        print(f"  {name:14s} {statistics.median(t_mt) * 1e3:.0f} ms per image (median); speed relative to swin_tiny "
              f"(t_swin / t_mtunet): median of the rounds' ratios {statistics.median(ratios):.3f} "
              f"(min {min(ratios):.3f}, max {max(ratios):.3f}, {rounds} rounds); ratio of the best times "
              f"{min(t_sw) / min(t_mt):.3f}")
    t_off = rows["official-like"][1]
    speedups = [o / z for o, z in zip(t_off, rows["mtunet"][1])]
    print(f"  zoo default vs official-like, same run: {statistics.median(speedups):.2f}x faster (median of rounds, "
          f"min {min(speedups):.2f}, max {max(speedups):.2f})")


def bench_official(path: str, batches, rounds: int) -> None:
    src = Path(path)
    src = src if src.suffix == ".py" else src / "model" / "MTUNet.py"
    mod = load_source(src, "official_mtunet")
    torch.manual_seed(0)
    official = mod.MTUNet(out_ch=9).eval()
    randomise(official)
    ours = zoo.create_model("mtunet.synapse").eval()
    ours.load_state_dict(M.checkpoint_filter_fn(official.state_dict(), ours))

    def run_official(x):
        with cuda_is_identity():
            return official(x)

    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        diff = (run_official(x) - ours(x)).abs().max().item()
    print(f"(c) official MTUNet ({src}) vs zoo mtunet.synapse, same weights: max|diff| {diff:.1e}; "
          f"{rounds} interleaved rounds, median")
    compare({"official": run_official, **zoo_pair(ours), "swin_tiny": swin_tiny()},
            lambda b: torch.randn(b, 3, 224, 224), batches, rounds, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch default)")
    ap.add_argument("--skip-axial", action="store_true", help="skip the attention comparison (a)")
    ap.add_argument("--skip-model", action="store_true", help="skip the whole-model comparison (b)")
    ap.add_argument("--official", default=os.environ.get("MTUNET_OFFICIAL"),
                    help="checkout of Dootmaan/MT-UNet (or its model/MTUNet.py): comparison (c)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1], help="batch sizes of (c)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    if not args.skip_axial:
        bench_axial(args.rounds)
    if not args.skip_model:
        bench_model(args.rounds)
    if args.official:
        bench_official(args.official, args.batches, args.rounds)


if __name__ == "__main__":
    main()
