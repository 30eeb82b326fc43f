"""The model view's thumbnails: every layer × head's attention, downsampled where it lives.

Each head's ``[n, n]`` attention (hidden tokens removed and rows renormalised, as the head view
draws it) is block-averaged to at most :data:`THUMB_MAX` × :data:`THUMB_MAX` on the model's
device (``adaptive_avg_pool2d``: bin ``i`` covers rows ``floor(i * n / s)`` to
``ceil((i + 1) * n / s)``), scaled so the thumbnail's strongest cell is 255, and cast to uint8
before anything is copied to the host. A whole model's thumbnails are then one small buffer:
``[layers, heads, s, s]`` uint8, 590 kB at 12 × 12 heads. Models with many more heads get
smaller thumbnails, so the buffer stays at most that size (24 × 24 cells at 32 × 32 heads, where
the view draws each thumbnail about 26 px wide anyway).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..models import Analysis
from . import parts
from .layers import layer_attention_tensor
from .lines import visible_mask

#: Thumbnails are at most this many cells a side.
THUMB_MAX = 64
#: ... and all of a model's together at most this many cells (12 × 12 heads at 64 × 64).
MAX_CELLS = 12 * 12 * 64 * 64
THUMB_MIN = 8
LEVELS = 255


def thumbnail_size(visible_tokens: int, thumbnails: int = 1) -> int:
    """Cells a side of each of ``thumbnails`` thumbnails of ``visible_tokens`` tokens: at most
    :data:`THUMB_MAX`, at most :data:`MAX_CELLS` in all (but no fewer than :data:`THUMB_MIN`
    a side), and no upsampling."""
    budget = max(THUMB_MIN, math.isqrt(MAX_CELLS // max(1, thumbnails)))
    return max(1, min(THUMB_MAX, budget, visible_tokens))


def quantise(pooled: torch.Tensor) -> torch.Tensor:
    """uint8 ``[..., s, s]``: each thumbnail scaled so its largest cell is 255 (an all-zero
    thumbnail stays 0)."""
    peak = pooled.amax(dim=(-2, -1), keepdim=True)
    scaled = torch.where(peak > 0, pooled / torch.where(peak > 0, peak, 1.0), 0.0)
    return torch.round(scaled * LEVELS).to(torch.uint8)


def layer_thumbnails(
    attention: torch.Tensor,
    visible: torch.Tensor,
    layers: int = 1,
    columns_visible: torch.Tensor | None = None,
) -> torch.Tensor:
    """uint8 ``[heads, s, s]`` thumbnails of one layer's ``[heads, rows, columns]`` attention
    (one of ``layers``), on its device: hidden rows (``visible``) and columns
    (``columns_visible``, the same as ``visible`` by default) dropped, rows renormalised,
    block-averaged (the shorter side stretched to ``s``), quantised."""
    columns = visible if columns_visible is None else columns_visible
    keep_rows = torch.nonzero(visible).flatten()
    keep_columns = torch.nonzero(columns).flatten()
    shown = attention.to(torch.float32)[:, keep_rows][:, :, keep_columns]
    sums = shown.sum(-1, keepdim=True)
    shown = torch.where(sums > 0, shown / torch.where(sums > 0, sums, 1.0), 0.0)
    longest = max(int(keep_rows.numel()), int(keep_columns.numel()))
    size = thumbnail_size(longest, layers * attention.shape[0])
    return quantise(F.adaptive_avg_pool2d(shown, size))


def _shown(special: list[bool], hide_special: bool, device: torch.device) -> torch.Tensor:
    visible = visible_mask(special, hide_special, device)
    return visible if bool(visible.any()) else torch.ones_like(visible)  # all hidden: show all


def model_thumbnails(
    analysis: Analysis,
    special: list[bool],
    hide_special: bool,
    progress: bool = True,
    part: str = "encoder",
) -> np.ndarray:
    """uint8 ``[layers, heads, s, s]``: every layer's thumbnails, one layer's attention
    recomputed at a time (the engine's per-layer cache), never every layer held at once.

    ``special`` is per token of the view's list; for encoder–decoder models (source tokens,
    then target tokens) ``part`` picks the stack and its rows' and columns' tokens."""
    seq2seq = analysis.target is not None
    layers = analysis.layer_count(part) if seq2seq else analysis.num_layers
    rows, columns = parts.spans(analysis, part) if seq2seq else ([0, len(special)],) * 2
    out: list[np.ndarray] = []
    for layer in tqdm(range(layers), desc="model view", disable=not progress, leave=False):
        attention = layer_attention_tensor(analysis, layer, part if seq2seq else None)
        visible = _shown(special[rows[0] : rows[1]], hide_special, attention.device)
        if rows == columns:
            thumbs = layer_thumbnails(attention, visible, layers)
        else:
            shown = _shown(special[columns[0] : columns[1]], hide_special, attention.device)
            thumbs = layer_thumbnails(attention, visible, layers, shown)
        out.append(thumbs.cpu().numpy())
    return np.stack(out)
