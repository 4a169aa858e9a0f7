"""Relative position biases, all from timm and re-exported here as the zoo's one place for them.

* Swin-style bias tables (``[(2wh-1)(2ww-1), heads]`` indexed by ``relative_position_index``):
  :class:`RelPosBias`, :func:`gen_relative_position_index`, and :func:`resize_rel_pos_bias_table`
  for loading a table trained at another window size. MixFormer and VSA use these; their official
  checkpoints carry ``relative_position_index`` buffers, which zoo recomputes instead of loading.
* Decomposed relative position (MViTv2 / ViTDet): :func:`get_rel_pos` linearly resizes an axial
  table to ``2 * max(q, k) - 1`` entries and gathers it at (query - key) offsets;
  :func:`get_decomposed_rel_pos_bias` turns it into the ``q . R_h + q . R_w`` attention bias,
  computed from the unscaled queries, ready to pass as ``attn_mask``.
"""
from timm.layers import RelPosBias, resize_rel_pos_bias_table
from timm.layers.pos_embed_rel import gen_relative_position_index
from timm.models.vision_transformer_sam import get_decomposed_rel_pos_bias, get_rel_pos

__all__ = [
    "RelPosBias", "gen_relative_position_index", "resize_rel_pos_bias_table", "get_rel_pos",
    "get_decomposed_rel_pos_bias",
]
