"""``view.save("x.svg")``: the head view as one SVG, drawn from a :class:`.Snapshot`.

The geometry and colours are the view's (``js/src/panels/attention/``: ``layout.ts``,
``curves.ts``, ``headsGrid.ts``, ``widget.css``, light theme): tokens in rows of 18 px, each its
own ``<text>``; every line a cubic ``<path>`` across the 220 px middle column, its opacity and
width by its weight in 16 steps; past 6,000 lines the faintest steps are left out, as the view
does. The heads grids are one ``<rect>`` per shaded cell. All text is XML-escaped.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from .lines import WEIGHT_LEVELS
from .snapshot import Snapshot

ROW_H = 18
TOKEN_W = 112
LINES_W = 220
HEADER_H = 44  # the settings line and the head numbers above the columns
PAD = 8
BUCKETS = 16
MAX_DRAWN = 6000
DENSE = 2000
WIDE_CELLS_MAX_HEADS = 16

LINE_COLOUR = "#2f6fbf"
HEAD_RGB = "47, 111, 191"
FG, MUTED, BG = "#1f2328", "#6e7781", "#ffffff"
SELECTED_BG, MASKED_BG, GENERATED = "#ffd54f", "#444444", "#009e73"

# Characters XML 1.0 cannot hold at all, even escaped.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


def xml_text(text: str) -> str:
    """``text`` escaped for an element's content (characters XML cannot hold become U+FFFD)."""
    return escape(_NOT_XML.sub("\ufffd", text))


def xml_attr(text: str) -> str:
    """``text`` as a quoted, escaped attribute value."""
    return quoteattr(_NOT_XML.sub("\ufffd", text), {"\n": "&#10;", "\t": "&#9;"})


def cell_width(num_heads: int) -> int:
    return 16 if num_heads <= WIDE_CELLS_MAX_HEADS else 12


def picked_lines(shot: Snapshot) -> list[tuple[int, int, int]]:
    """``(from, to, bucket)`` of the lines drawn, strongest buckets first kept up to
    :data:`MAX_DRAWN` (the view's rule, with every row in view)."""
    counts = np.diff(shot.lines.rows)
    sources = np.repeat(np.arange(len(counts)), counts)
    columns = shot.lines.lines[:, 0].astype(np.int64)
    # weight / strongest weight = level / WEIGHT_LEVELS; 16 opacity steps, as curves.ts
    levels = shot.lines.lines[:, 1].astype(np.int64)
    buckets = np.minimum(BUCKETS - 1, levels * BUCKETS // WEIGHT_LEVELS)
    kept: list[tuple[int, int, int]] = []
    for b in range(BUCKETS - 1, -1, -1):
        ids = np.flatnonzero(buckets == b)
        room = MAX_DRAWN - len(kept)
        kept.extend((int(sources[k]), int(columns[k]), b) for k in ids[: max(0, room)])
    return kept


class _Layout:
    """x positions of the five columns and the rows of the visible tokens."""

    def __init__(self, shot: Snapshot) -> None:
        self.cell = cell_width(shot.num_heads)
        grid_w = shot.num_heads * self.cell
        # Each column's visible tokens: every token, or for an encoder–decoder model the part's
        # rows (left) and columns (right).
        self.orders = {
            side: [i for i, v in enumerate(shot.visible) if v and _within(i, span)]
            for side, span in (("left", shot.row_span), ("right", shot.column_span))
        }
        self.row_of = {
            side: {token: row for row, token in enumerate(order)}
            for side, order in self.orders.items()
        }
        self.left_grid = PAD
        self.left_tokens = self.left_grid + grid_w + 4
        self.lines = self.left_tokens + TOKEN_W
        self.right_tokens = self.lines + LINES_W
        self.right_grid = self.right_tokens + TOKEN_W + 4
        self.width = self.right_grid + grid_w + PAD
        self.top = PAD + HEADER_H
        rows = max(len(order) for order in self.orders.values())
        self.height = self.top + rows * ROW_H + PAD

    def y(self, token: int, side: str) -> float:
        return (self.row_of[side][token] + 0.5) * ROW_H


def _within(token: int, span: list[int]) -> bool:
    return not span or span[0] <= token < span[1]


def _settings_line(shot: Snapshot) -> str:
    if shot.head_weights:
        heads = "weighted heads"
    elif len(shot.heads) == shot.num_heads:
        heads = "all heads"
    else:
        heads = "heads " + ", ".join(map(str, shot.heads)) if shot.heads else "no heads"
    hidden = "special tokens hidden" if shot.hide_special else "special tokens shown"
    return (
        f"{shot.model_name} · layer {shot.layer} · {heads} · threshold {shot.threshold:.2f} · "
        f"{hidden}"
    )


def _tokens(shot: Snapshot, lay: _Layout, side: str) -> list[str]:
    x0 = lay.left_tokens if side == "left" else lay.right_tokens
    anchor, tx = ("end", x0 + TOKEN_W - 4) if side == "left" else ("start", x0 + 4)
    out = [f'<g class="tokens tokens-{side}" transform="translate(0,{lay.top})">']
    masked = set(shot.masked)
    for token in lay.orders[side]:
        y = lay.row_of[side][token] * ROW_H
        fill = FG
        if token == shot.selected:
            out.append(
                f'<rect x="{x0}" y="{y}" width="{TOKEN_W}" height="{ROW_H}" '
                f'fill="{SELECTED_BG}" class="selected"/>'
            )
        elif token in masked:
            out.append(
                f'<rect x="{x0}" y="{y}" width="{TOKEN_W}" height="{ROW_H}" '
                f'fill="{MASKED_BG}" class="masked"/>'
            )
            fill = BG
        if shot.generated and shot.generated[token]:
            fill = GENERATED
        colour = MUTED if shot.special[token] else fill
        out.append(
            f'<text class="token" data-index="{token}" data-side="{side}" x="{tx}" '
            f'y="{y + ROW_H - 5}" text-anchor="{anchor}" fill="{colour}">'
            f"{xml_text(shot.tokens[token])}</text>"
        )
    out.append("</g>")
    return out


def _lines(shot: Snapshot, lay: _Layout) -> list[str]:
    picked = picked_lines(shot)
    x0, x1 = 1.0, LINES_W - 1.0
    xm = (x0 + x1) / 2
    dense = len(picked) > DENSE
    out = [
        f'<g class="attention-lines" data-drawn-count="{len(picked)}" fill="none" '
        f'stroke="{LINE_COLOUR}" stroke-linecap="round" '
        f'transform="translate({lay.lines},{lay.top})">'
    ]
    for source, target, bucket in picked:
        level = (bucket + 1) / BUCKETS
        width = 0.5 + level if dense else 0.75 + 2.25 * level
        ya, yb = lay.y(source, "left"), lay.y(target, "right")
        out.append(
            f'<path d="M{x0:g} {ya:g}C{xm:g} {ya:g} {xm:g} {yb:g} {x1:g} {yb:g}" '
            f'stroke-opacity="{max(0.06, level):.4g}" stroke-width="{width:.4g}" '
            f'data-from="{source}" data-to="{target}"/>'
        )
    out.append("</g>")
    return out


def _grid(shot: Snapshot, lay: _Layout, side: str) -> list[str]:
    values = shot.grids[0 if side == "left" else 1]
    x0 = lay.left_grid if side == "left" else lay.right_grid
    active = _active_heads(shot)
    out = [f'<g class="heads heads-{side}">']
    for h in range(shot.num_heads):  # head numbers, as the view's toggles
        colour = LINE_COLOUR if active[h] else MUTED
        out.append(
            f'<text class="head-number" x="{x0 + (h + 0.5) * lay.cell:g}" '
            f'y="{lay.top - 6}" text-anchor="middle" font-size="10" fill="{colour}">{h}</text>'
        )
    order = lay.orders[side]
    peak = float(values[order].max()) if order else 0.0
    for token in order:
        y = lay.top + lay.row_of[side][token] * ROW_H
        for h in range(shot.num_heads):
            a = float(values[token, h]) / peak if peak > 0 else 0.0
            if a <= 0:
                continue
            fill = (
                f"rgba({HEAD_RGB}, {a:.3f})"
                if active[h]
                else f"rgba(128, 128, 128, {a * 0.35:.3f})"
            )
            out.append(
                f'<rect x="{x0 + h * lay.cell}" y="{y}" width="{lay.cell - 1}" '
                f'height="{ROW_H - 1}" fill="{fill}"/>'
            )
    out.append("</g>")
    return out


def _active_heads(shot: Snapshot) -> list[bool]:
    if shot.head_weights:
        return [w != 0 for w in shot.head_weights]
    chosen = set(shot.heads)
    return [h in chosen for h in range(shot.num_heads)]


def render_svg(shot: Snapshot) -> str:
    """The head view of ``shot`` as an SVG document."""
    lay = _Layout(shot)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{lay.width}" height="{lay.height}" '
        f'viewBox="0 0 {lay.width} {lay.height}" font-family="ui-monospace, Menlo, Consolas, '
        f'monospace" font-size="12">',
        f"<title>{xml_text('exBERT view: ' + shot.sentence)}</title>",
        f'<rect width="{lay.width}" height="{lay.height}" fill="{BG}"/>',
        f'<text class="settings" x="{PAD}" y="{PAD + 12}" fill="{FG}">'
        f"{xml_text(_settings_line(shot))}</text>",
        f'<text class="column-label" x="{lay.left_tokens + TOKEN_W - 4}" y="{lay.top - 6}" '
        f'text-anchor="end" font-size="10" fill="{MUTED}">attending from</text>',
        f'<text class="column-label" x="{lay.right_tokens + 4}" y="{lay.top - 6}" '
        f'font-size="10" fill="{MUTED}">attended to</text>',
        *_grid(shot, lay, "left"),
        *_tokens(shot, lay, "left"),
        *_lines(shot, lay),
        *_tokens(shot, lay, "right"),
        *_grid(shot, lay, "right"),
        "</svg>",
    ]
    return "\n".join(parts) + "\n"
