"""The MAC counter against a hand count, SDPA included (the CPU fused kernel counts as zero in torch)."""
import torch
import torch.nn.functional as F
from torch import nn

from zoo.flops import count_flops, count_macs


class SmallAttention(nn.Module):
    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


def _hand_count(B, N, C, heads):
    hd = C // heads
    qkv = B * N * C * 3 * C
    attn = B * heads * (N * N * hd + N * N * hd)  # q @ k^T and attn @ v
    proj = B * N * C * C
    return qkv + attn + proj


def test_attention_block_macs_match_hand_count():
    m = SmallAttention()
    x = torch.randn(2, 10, 16)
    assert count_macs(m, x) == _hand_count(2, 10, 16, 2)
    assert count_flops(m, x) == 2 * _hand_count(2, 10, 16, 2)


def test_sdpa_with_mask_and_on_meta_is_counted_the_same():
    class Masked(SmallAttention):
        def forward(self, x):
            B, N, C = x.shape
            q, k, v = self.qkv(x).view(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
            mask = torch.zeros(N, N, device=x.device, dtype=x.dtype)
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            return self.proj(x.transpose(1, 2).reshape(B, N, C))

    expected = _hand_count(1, 12, 16, 2)
    with torch.device("meta"):
        meta_model = SmallAttention()
    assert count_macs(meta_model, input_size=(12, 16), device="meta") == expected
    assert count_macs(Masked(), torch.randn(1, 12, 16)) == expected


def test_conv_macs():
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
    assert count_macs(conv, input_size=(3, 10, 12)) == 8 * 3 * 9 * 10 * 12
