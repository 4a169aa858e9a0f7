"""Relative position biases, all from timm and re-exported here as the zoo's one place for them.

* Swin-style bias tables (``[(2wh-1)(2ww-1), heads]`` indexed by ``relative_position_index``):
  :class:`RelPosBias`, :func:`gen_relative_position_index`, and :func:`resize_rel_pos_bias_table`
  for loading a table trained at another window size. MixFormer and VSA use these; their official
  checkpoints carry ``relative_position_index`` buffers, which zoo recomputes instead of loading.
* Decomposed relative position (MViTv2 / ViTDet): :func:`get_rel_pos` linearly resizes an axial
  table to ``2 * max(q, k) - 1`` entries and gathers it at (query - key) offsets;
  :func:`get_decomposed_rel_pos_bias` turns it into the ``q . R_h + q . R_w`` attention bias,
  computed from the unscaled queries, ready to pass as ``attn_mask``;
  :func:`resize_decomposed_rel_pos` stores that same resize in a table (checkpoint loading).
"""
from typing import Optional

import torch
from timm.layers import RelPosBias as _TimmRelPosBias
from timm.layers import resize_rel_pos_bias_table
from timm.layers.pos_embed_rel import gen_relative_position_index
from timm.models.vision_transformer_sam import get_decomposed_rel_pos_bias, get_rel_pos

__all__ = [
    "RelPosBias", "gen_relative_position_index", "resize_rel_pos_bias_table", "get_rel_pos",
    "get_decomposed_rel_pos_bias", "resize_decomposed_rel_pos",
]


class RelPosBias(_TimmRelPosBias):
    """timm's ``RelPosBias`` (same table, index and state-dict keys) that, called without attention
    scores, returns the bias ``(1, heads, N, N)``: attention on ``F.scaled_dot_product_attention`` then
    calls the module (``attn_mask=self.rel_pos()``), so hooks and pruning see it."""

    def forward(self, attn: Optional[torch.Tensor] = None,
                shared_rel_pos: Optional[torch.Tensor] = None) -> torch.Tensor:
        if attn is None:
            return self.get_bias()
        return super().forward(attn, shared_rel_pos)


def resize_decomposed_rel_pos(table: torch.Tensor, length: int) -> torch.Tensor:
    """An axial ``(L, C)`` decomposed rel-pos table resized to ``length = 2 n - 1`` entries.

    Exactly the table :func:`get_rel_pos` interpolates on the fly for ``n x n`` query/key maps (read
    back from its ``(n, n)`` offset grid, whose entry ``[i, j]`` is row ``i - j + n - 1``), so a
    checkpoint table resized on load gives the attention the official model computes.
    """
    if table.shape[0] == length:
        return table
    if length % 2 == 0:
        raise ValueError(f"a decomposed rel-pos table has 2 n - 1 entries, got length {length}")
    n = (length + 1) // 2
    grid = get_rel_pos(n, n, table.float())
    return torch.cat([grid[0, 1:].flip(0), grid[:, 0]]).to(table.dtype)
