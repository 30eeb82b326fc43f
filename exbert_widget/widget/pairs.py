"""Sentence pairs in the view: the pair filter on the lines drawn.

A pair's tokens carry a segment each (``a.segments``: 0 for sentence A, 1 for sentence B; a
special token takes the segment of the text before it). The filter keeps the lines whose row
(attending-from token) and column (attended-to token) lie in the chosen segments. It applies to
the lines after the heads are combined, hidden tokens removed and the threshold cut, so a line
kept under a filter is drawn exactly as under ``"all"``. The view applies the same filter to
whatever it draws (``js/src/panels/pairs/filter.ts``); this module is the kernel's statement of
it, for ``view.drawn_lines()``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import StateError
from .lines import Lines
from .state import PAIR_FILTERS

# filter name -> (row segment, column segment); None: every segment
_SEGMENTS: dict[str, tuple[int | None, int | None]] = {
    "all": (None, None),
    "A->A": (0, 0),
    "A->B": (0, 1),
    "B->A": (1, 0),
    "B->B": (1, 1),
}


def check_pair_filter(value: object) -> str:
    """``value`` if it names a pair filter.

    Raises:
        StateError: any other value.
    """
    if value not in PAIR_FILTERS:
        names = ", ".join(repr(f) for f in PAIR_FILTERS)
        raise StateError(f"pair_filter must be one of {names}, got {value!r}.")
    return str(value)


def filter_lines(lines: Lines, segments: Sequence[int], pair_filter: str) -> Lines:
    """``lines`` with only those whose row and column segments match ``pair_filter``.

    The scale stays that of the unfiltered lines, so a kept line has the same weight (and the
    same opacity) under every filter.
    """
    rows_seg, cols_seg = _SEGMENTS[check_pair_filter(pair_filter)]
    if rows_seg is None:
        return lines
    seg = np.asarray(segments, dtype=np.int64)
    n = len(lines.rows) - 1
    counts = np.diff(lines.rows)
    row_of = np.repeat(np.arange(n), counts)
    keep = (seg[row_of] == rows_seg) & (seg[lines.lines[:, 0].astype(np.int64)] == cols_seg)
    kept_counts = np.bincount(row_of[keep], minlength=n)
    rows = np.zeros(n + 1, dtype=np.int32)
    rows[1:] = np.cumsum(kept_counts)
    return Lines(rows=rows, lines=lines.lines[keep], scale=lines.scale)
