"""What the view draws of long inputs, computed where the attention lives (the model's device).

Up to :data:`ALL_HEADS_MAX_TOKENS` tokens the view receives every head of the layer and does
this work itself (``js/src/panels/attention/attention.ts``). Above it, ``[heads, n, n]`` is too
much to ship on every layer change (268 MB of float16 at 32 heads and 2,048 tokens), so the
kernel sends only what the view draws: the lines left after the heads are combined, hidden
tokens removed and the threshold cut, and per-head summaries for the heads grids. The rules are
the view's, restated here in torch: heads combine as the mean of the selected heads or as
``head_weights`` (negative results clamped to 0); hidden tokens' rows and columns are dropped and
every remaining row renormalised; per row, lines are kept strongest first (ties: lower column)
until their sum reaches ``threshold`` of the row (the line that reaches it is kept; a threshold
of 1 keeps every positive line).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import StateError

# Below or at this many tokens the view gets every head and combines them itself; above it, the
# kernel combines (bench/bench_widget.py measures both sides of the switch).
ALL_HEADS_MAX_TOKENS = 512
# A line's weight travels as a 16-bit fraction of the strongest line's.
WEIGHT_LEVELS = 65535
# Columns travel as uint16.
MAX_TOKENS = 65536
# The threshold cut counts "reached" a hair early, as the view does, so float rounding of a sum
# that lands exactly on the target cannot pull in one more line.
SLACK = 1e-6


@dataclass(frozen=True)
class Lines:
    """The lines of one drawing, row by row: row ``i``'s lines are ``lines[rows[i]:rows[i+1]]``,
    each ``[column, weight]`` with ``weight = round(w / scale * 65535)`` (at least 1), strongest
    first within a row."""

    rows: np.ndarray  # int32 [n + 1]
    lines: np.ndarray  # uint16 [count, 2]
    scale: float

    def dense(self, n: int) -> np.ndarray:
        """The kept weights as a float32 ``[n, n]`` matrix (0 where no line): for tests."""
        out = np.zeros((n, n), dtype=np.float32)
        counts = np.diff(self.rows)
        rows = np.repeat(np.arange(n), counts)
        out[rows, self.lines[:, 0]] = self.lines[:, 1].astype(np.float32) / WEIGHT_LEVELS
        return out * self.scale


def visible_mask(special: Sequence[bool], hide_special: bool, device: torch.device) -> torch.Tensor:
    """``True`` for the tokens the view draws."""
    special_t = torch.tensor(list(special), dtype=torch.bool, device=device)
    return ~special_t if hide_special else torch.ones_like(special_t)


def remove_hidden(matrix: torch.Tensor, visible: torch.Tensor) -> torch.Tensor:
    """float32 ``[..., n, n]`` with hidden rows and columns zeroed and every remaining row
    renormalised to sum 1 (a row with nothing left stays 0)."""
    keep = visible.to(torch.float32)
    out = matrix.to(torch.float32) * keep * keep[:, None]
    sums = out.sum(-1, keepdim=True)
    return torch.where(sums > 0, out / torch.where(sums > 0, sums, 1.0), 0.0)


def _float_heads(attention: torch.Tensor, chunk: int = 8):
    """``(first head, float32 [heads, n, n] block)``: a float32 attention as it is (no copy),
    half precision a few heads at a time."""
    if attention.dtype == torch.float32:
        yield 0, attention
        return
    for start in range(0, attention.shape[0], chunk):
        yield start, attention[start : start + chunk].to(torch.float32)


def combine_heads(
    attention: torch.Tensor, heads: Sequence[int], weights: Sequence[float] | None
) -> torch.Tensor:
    """float32 ``[n, n]``: ``sum_h weights[h] * A_h`` when weights are given (non-empty), else the
    mean of ``heads``; negative results clamped to 0."""
    count, n = attention.shape[0], attention.shape[-1]
    coefficients = torch.zeros(count, dtype=torch.float32, device=attention.device)
    if weights:
        for h, w in enumerate(weights[:count]):
            if w != 0 and np.isfinite(w):
                coefficients[h] = float(w)
    else:
        unique = sorted({h for h in heads if 0 <= h < count})
        if unique:
            coefficients[unique] = 1.0 / len(unique)
    out = torch.zeros(n * n, dtype=torch.float32, device=attention.device)
    for start, block in _float_heads(attention):
        part = coefficients[start : start + block.shape[0]]
        if bool(part.any()):
            out += part @ block.reshape(block.shape[0], -1)
    return out.reshape(n, n).clamp_(min=0.0)


def _runs(visible: torch.Tensor) -> list[tuple[int, int]]:
    """The visible columns as ``[start, stop)`` runs (special tokens sit at the ends: one run)."""
    flags = visible.tolist()
    runs, start = [], None
    for j, shown in enumerate([*flags, False]):
        if shown and start is None:
            start = j
        elif not shown and start is not None:
            runs.append((start, j))
            start = None
    return runs


def head_summary(attention: torch.Tensor, visible: torch.Tensor) -> np.ndarray:
    """float16 ``[2, n, heads]`` for the heads grids, per head after hidden tokens are removed:
    ``[0, i, h]`` the strongest attention from token ``i``, ``[1, j, h]`` the mean attention to
    token ``j`` over the visible tokens (0 for hidden tokens).

    Row sums, row maxima and column means are taken on the raw ``[heads, n, n]`` (one pass each,
    no copy of it): renormalising a row divides its maximum and its share of every column by the
    same sum."""
    heads, n = attention.shape[0], attention.shape[-1]
    out = torch.zeros((2, n, heads), dtype=torch.float32, device=attention.device)
    keep = visible.to(torch.float32)
    runs = _runs(visible)
    shown = int(visible.sum())
    if not runs:
        return out.to(torch.float16).cpu().numpy()
    for start, block in _float_heads(attention):
        stop = start + block.shape[0]
        sums = sum(block[..., a:b].sum(-1) for a, b in runs)
        peak = torch.stack([block[..., a:b].amax(-1) for a, b in runs]).amax(0)
        scale = torch.where(sums > 0, 1.0 / torch.where(sums > 0, sums, 1.0), 0.0) * keep
        out[0, :, start:stop] = (peak * scale).T
        column = torch.bmm(scale[:, None, :], block)[:, 0] * keep / shown
        out[1, :, start:stop] = column.T
    return out.to(torch.float16).cpu().numpy()


def threshold_lines(matrix: torch.Tensor, threshold: float) -> Lines:
    """Per row of a non-negative ``[n, n]`` matrix, its strongest entries until their sum reaches
    ``threshold`` of the row's (see the module docstring), as :class:`Lines`.

    Raises:
        StateError: more tokens than a uint16 column can name.
    """
    n = matrix.shape[-1]
    if n > MAX_TOKENS:
        raise StateError(f"The view draws at most {MAX_TOKENS:,} tokens, not {n:,}.")
    values, columns = torch.sort(matrix, dim=1, descending=True, stable=True)
    positive = values > 0
    if threshold >= 1.0:
        keep = positive
    else:
        # float64 sums where the device has them (the view sums in float64 too)
        wide = values.to(torch.float32 if values.device.type == "mps" else torch.float64)
        running = wide.cumsum(1)
        before = running - wide
        target = threshold * running[:, -1:] * (1 - SLACK)
        keep = positive & (before < target)
    counts = keep.sum(1)
    rows = torch.zeros(n + 1, dtype=torch.int64, device=matrix.device)
    rows[1:] = counts.cumsum(0)
    kept = values[keep]
    scale = float(kept.max()) if kept.numel() else 0.0
    levels = torch.round(kept / scale * WEIGHT_LEVELS) if scale > 0 else kept
    levels = levels.clamp(1, WEIGHT_LEVELS).to(torch.int32)
    pairs = torch.stack([columns[keep].to(torch.int32), levels], dim=1)
    return Lines(
        rows=rows.to(torch.int32).cpu().numpy(),
        lines=pairs.cpu().numpy().astype(np.uint16),
        scale=scale,
    )


def drawn_lines(
    attention: torch.Tensor,
    visible: torch.Tensor,
    heads: Sequence[int],
    weights: Sequence[float] | None,
    threshold: float,
) -> Lines:
    """The lines the view draws for a layer's ``[heads, n, n]`` attention: heads combined, hidden
    tokens removed, the threshold cut."""
    combined = remove_hidden(combine_heads(attention, heads, weights), visible)
    return threshold_lines(combined, threshold)


def head_lines(
    attention: torch.Tensor, visible: torch.Tensor, head: int, threshold: float
) -> Lines:
    """The lines of one head alone (what the view draws while a head is hovered)."""
    return threshold_lines(remove_hidden(attention[head], visible), threshold)
