"""Whole-image and tiled inference for restoration models (``task="restoration"``).

:func:`restore` reproduces the official Restormer test pipeline (``demo.py`` of swz30/Restormer):
reflect-pad the image right/bottom to a multiple of 8, run the model on the whole image or tile by
tile, clamp to ``[0, 1]`` and crop back. With tiles, square tiles of side ``tile`` are taken with
stride ``tile - tile_overlap`` (the last row and column of tiles are aligned with the bottom and
right borders), and every output pixel is the sum of the outputs of the tiles that cover it
divided by how many tiles cover it. Memory is then bounded by one tile's forward plus two
full-size accumulators, so a 4K image restores on a small machine.
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from zoo.layers.padding import pad_to_multiple

__all__ = ["restore", "tile_starts"]


def tile_starts(size: int, tile: int, stride: int) -> List[int]:
    """Start offsets of the tiles along one side, as the official script computes them:
    ``range(0, size - tile, stride)`` and then ``size - tile``, so the last tile ends at the border."""
    return list(range(0, size - tile, stride)) + [size - tile]


@torch.no_grad()
def restore(
        model: nn.Module,
        image: torch.Tensor,
        tile: Optional[int] = None,
        tile_overlap: int = 32,
        clamp: bool = True,
        pad_multiple: int = 8,
) -> torch.Tensor:
    """Restore ``image`` with ``model``, whole or tile by tile, as the official test script does.

    Args:
        model: a restoration model (image in, image out); put it in ``eval()`` mode yourself.
        image: ``(B, C, H, W)`` or ``(C, H, W)`` floating tensor, values in ``[0, 1]``.
        tile: side of the square tiles, a multiple of ``pad_multiple``; ``None`` runs the whole
            image at once. A tile larger than the (padded) image is reduced to its shorter side.
        tile_overlap: pixels shared by neighbouring tiles (``0 <= tile_overlap < tile``).
        clamp: clamp the result to ``[0, 1]`` as the official scripts do (the models' own
            ``forward`` never clamps).
        pad_multiple: the image is reflect-padded right/bottom to a multiple of this before
            tiling (8 for Restormer) and cropped back afterwards.

    Returns:
        The restored image, same batch/spatial shape as ``image`` (channels: the model's output
        channels), on the image's device and in its dtype. Gradients are not tracked.
    """
    if not isinstance(image, torch.Tensor) or not image.is_floating_point():
        raise TypeError(f"restore expects a floating-point torch.Tensor image, got "
                        f"{type(image).__name__ if not isinstance(image, torch.Tensor) else image.dtype}")
    squeeze = image.ndim == 3
    if squeeze:
        image = image[None]
    if image.ndim != 4:
        raise ValueError(f"restore expects an image of shape (B, C, H, W) or (C, H, W), got {tuple(image.shape)}")
    H, W = image.shape[-2:]
    # the model runs in its own dtype and on its own device (a float64 image through a float32 model, a
    # CPU image through a GPU model); the result comes back in the image's
    weight = next((p for p in model.parameters() if p.is_floating_point()), None)
    x = image if weight is None else image.to(device=weight.device, dtype=weight.dtype)
    x = pad_to_multiple(x, pad_multiple, mode="reflect")
    Hp, Wp = x.shape[-2:]

    if tile is None:
        out = model(x)
    else:
        if tile <= 0 or tile % pad_multiple:
            raise ValueError(f"tile must be a positive multiple of {pad_multiple}, got {tile}")
        tile = min(tile, Hp, Wp)
        if not 0 <= tile_overlap < tile:
            raise ValueError(f"tile_overlap must be in [0, tile) = [0, {tile}), got {tile_overlap}")
        stride = tile - tile_overlap
        out = None
        # the coverage count is the same for every batch item and channel: one plane suffices
        count = x.new_zeros(1, 1, Hp, Wp)
        for top in tile_starts(Hp, tile, stride):
            for left in tile_starts(Wp, tile, stride):
                patch = model(x[..., top:top + tile, left:left + tile])
                if out is None:
                    out = x.new_zeros(x.shape[0], patch.shape[1], Hp, Wp)
                out[..., top:top + tile, left:left + tile] += patch
                count[..., top:top + tile, left:left + tile] += 1
        out = out.div_(count)

    if clamp:
        out = out.clamp(0, 1)
    out = out[..., :H, :W].to(device=image.device, dtype=image.dtype)
    return out[0] if squeeze else out
