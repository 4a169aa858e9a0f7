"""MT-UNet speed on CPU, 224x224, batch 1, ratios measured in one run (interleaved rounds).

(a) Gaussian-weighted axial attention: zoo's ``GaussianAxialAttention`` (two SDPA calls) against the
    official formulation, re-implemented faithfully below (``Attention(axial=True)`` scores, then
    ``GaussianTrans``'s Python double loop over rows and columns, distance tensors built per position),
    at every grid the official model runs it on (7x7 @ 256 and 512, 4x4 @ 512, 2x2 @ 1024), with the
    official model's layer counts.
(b) the whole zoo MT-UNet (mtunet_synapse) against timm's swin_tiny_patch4_window7_224.

usage: python benchmarks/bench_mtunet.py [--rounds N] [--threads T]
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn

import timm
import zoo
from zoo.models.mtunet import GaussianAxialAttention


class OfficialAxialGaussian(nn.Module):
    """The official axial ``Attention`` + ``GaussianTrans`` (Dootmaan/MT-UNet, model/MTUNet.py),
    with ``.cuda()`` removed: separate q/k/v Linears, row and column score matmuls, then one Python
    iteration per grid position."""

    def __init__(self, dim: int):
        super().__init__()
        self.query_layer = nn.Linear(dim, dim)
        self.key_layer = nn.Linear(dim, dim)
        self.value_layer = nn.Linear(dim, dim)
        self.bias = nn.Parameter(-torch.abs(torch.randn(1)))
        self.shift = nn.Parameter(torch.abs(torch.randn(1)))
        self.softmax = nn.Softmax(dim=-1)

    @classmethod
    def from_zoo(cls, m: GaussianAxialAttention) -> "OfficialAxialGaussian":
        dim = m.qkv.in_features
        ref = cls(dim)
        with torch.no_grad():
            for i, lin in enumerate((ref.query_layer, ref.key_layer, ref.value_layer)):
                lin.weight.copy_(m.qkv.weight[i * dim:(i + 1) * dim])
                lin.bias.copy_(m.qkv.bias[i * dim:(i + 1) * dim])
            ref.bias.copy_(m.bias)
            ref.shift.copy_(m.shift)
        return ref

    def forward(self, x):
        b, h, w, c = x.shape
        mixed_q, mixed_k, mixed_v = self.query_layer(x), self.key_layer(x), self.value_layer(x)
        atten_x_full = torch.matmul(mixed_q.view(b * h, w, -1), mixed_k.view(b * h, w, -1).transpose(-1, -2))
        atten_x_full = atten_x_full.view(b, -1, w, w)
        q_y = mixed_q.permute(0, 2, 1, 3).contiguous().view(b * w, h, -1)
        k_y = mixed_k.permute(0, 2, 1, 3).contiguous().view(b * w, h, -1).transpose(-1, -2)
        atten_y_full = torch.matmul(q_y, k_y).view(b, -1, h, h)
        value_full = mixed_v
        new_value_full = torch.zeros_like(value_full)
        for r in range(h):
            for col in range(w):
                atten_x = atten_x_full[:, r, col, :]
                atten_y = atten_y_full[:, col, r, :]
                dis_x = torch.tensor([(j - col) ** 2 for j in range(w)])
                dis_y = torch.tensor([(i - r) ** 2 for i in range(h)])
                dis_x = -(self.shift * dis_x + self.bias)
                dis_y = -(self.shift * dis_y + self.bias)
                atten_x = self.softmax(dis_x + atten_x)
                atten_y = self.softmax(dis_y + atten_y)
                new_value_full[:, r, col, :] = torch.sum(
                    atten_x.unsqueeze(dim=-1) * value_full[:, r, :, :]
                    + atten_y.unsqueeze(dim=-1) * value_full[:, :, col, :], dim=-2)
        return new_value_full


# (grid, dim, number of such layers in the official model at 224x224)
# encoder 28x28 (pad-free), encoder 14x14 + decoder 14x14 (padded to 16), bottleneck 7x7 (padded to 8),
# decoder 28x28 at width 512
AXIAL_CASES = [(7, 256, 2), (4, 512, 4), (2, 1024, 2), (7, 512, 2)]


def _time(fn, reps: int) -> float:
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t0) / reps


def bench_axial(rounds: int) -> None:
    print("(a) Gaussian-weighted axial attention, official loop vs zoo (same weights, batch 1)")
    tot_ref, tot_zoo = 0.0, 0.0
    for grid, dim, n in AXIAL_CASES:
        torch.manual_seed(0)
        ours = GaussianAxialAttention(dim).eval()
        ref = OfficialAxialGaussian.from_zoo(ours).eval()
        x = torch.randn(1, grid, grid, dim)
        with torch.inference_mode():
            err = (ours(x) - ref(x)).abs().max().item()
            t_ref, t_zoo = [], []
            for _ in range(rounds):  # interleaved
                t_ref.append(_time(lambda: ref(x), 3))
                t_zoo.append(_time(lambda: ours(x), 3))
        r, z = statistics.median(t_ref), statistics.median(t_zoo)
        tot_ref += n * r
        tot_zoo += n * z
        print(f"  grid {grid}x{grid} dim {dim:4d}: official {r * 1e3:7.2f} ms  zoo {z * 1e3:6.3f} ms  "
              f"speed-up {r / z:6.1f}x  (max|diff| {err:.1e}, {n} such layers)")
    print(f"  all 10 layers of one 224x224 forward: official {tot_ref * 1e3:.1f} ms, zoo {tot_zoo * 1e3:.2f} ms, "
          f"speed-up {tot_ref / tot_zoo:.1f}x")


def bench_model(rounds: int) -> None:
    print("(b) whole model, 224x224 batch 1: zoo mtunet_synapse vs timm swin_tiny_patch4_window7_224")
    torch.manual_seed(0)
    mt = zoo.create_model("mtunet_synapse").eval()
    sw = timm.create_model("swin_tiny_patch4_window7_224").eval()
    x = torch.randn(1, 3, 224, 224)
    ratios, t_mt, t_sw = [], [], []
    with torch.inference_mode():
        mt(x), sw(x)  # warm-up
        for _ in range(rounds):
            a = _time(lambda: sw(x), 2)
            b = _time(lambda: mt(x), 1)
            c = _time(lambda: sw(x), 2)
            t_mt.append(b)
            t_sw.append((a + c) / 2)
            ratios.append(t_sw[-1] / b)
    print(f"  mtunet {statistics.median(t_mt) * 1e3:.0f} ms, swin_tiny {statistics.median(t_sw) * 1e3:.0f} ms per image; "
          f"speed relative to swin_tiny (t_swin / t_mtunet): median {statistics.median(ratios):.3f} "
          f"(min {min(ratios):.3f}, max {max(ratios):.3f}, {rounds} rounds)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    bench_axial(args.rounds)
    bench_model(args.rounds)


if __name__ == "__main__":
    main()
