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
from .layers import layer_attention_tensor
from .lines import remove_hidden, visible_mask

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
    attention: torch.Tensor, visible: torch.Tensor, layers: int = 1
) -> torch.Tensor:
    """uint8 ``[heads, s, s]`` thumbnails of one layer's ``[heads, n, n]`` attention (one of
    ``layers``), on its device: hidden tokens dropped, rows renormalised, block-averaged,
    quantised."""
    keep = torch.nonzero(visible).flatten()
    shown = remove_hidden(attention, visible)[:, keep][:, :, keep]
    size = thumbnail_size(int(keep.numel()), layers * attention.shape[0])
    return quantise(F.adaptive_avg_pool2d(shown, size))


def model_thumbnails(
    analysis: Analysis, special: list[bool], hide_special: bool, progress: bool = True
) -> np.ndarray:
    """uint8 ``[layers, heads, s, s]``: every layer's thumbnails, one layer's attention
    recomputed at a time (the engine's per-layer cache), never every layer held at once."""
    layers = analysis.num_layers
    out: list[np.ndarray] = []
    for layer in tqdm(range(layers), desc="model view", disable=not progress, leave=False):
        attention = layer_attention_tensor(analysis, layer)
        visible = visible_mask(special, hide_special, attention.device)
        if not bool(visible.any()):  # every token hidden: nothing to draw
            visible = torch.ones_like(visible)
        out.append(layer_thumbnails(attention, visible, layers).cpu().numpy())
    return np.stack(out)
