"""The view's state as drawn, taken from the kernel alone: what the exports render.

A :class:`Snapshot` holds what the head view shows for the current settings (tokens, the
selection and mask, the lines after the heads are combined, hidden tokens removed and the
threshold cut, the heads grids' values) and the synced state itself, so an export needs no
view on screen. The lines and grids come from :mod:`.lines`, the same rules the view applies.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import lines as drawing
from .measures import measure_for_wire, measure_tensor
from .pairs import filter_lines
from .state import synced_traits

if TYPE_CHECKING:
    from .view import ExBertView

#: Every layer's attention is embedded in an HTML export (so its layer menu works offline)
#: while it stays under this many bytes; else only the layer shown.
EMBED_ALL_LAYERS_MAX_BYTES = 8 * 2**20


@dataclass(frozen=True)
class Snapshot:
    """What the view draws now; see the module docstring."""

    model_name: str
    sentence: str
    layer: int
    num_layers: int
    num_heads: int
    heads: list[int]
    head_weights: list[float] | None
    threshold: float
    hide_special: bool
    selected: int | None
    masked: list[int]
    tokens: list[str]
    special: list[bool]
    generated: list[bool]
    kind: str
    lines: drawing.Lines
    grids: np.ndarray  # float32 [2, n, heads]: strongest attention from, mean attention to
    row_span: list[int]  # encoder–decoder models: the part's rows ([start, stop]); [] = all
    column_span: list[int]  # ... and its columns
    state: dict[str, Any] = field(repr=False)  # synced traits, arrays as base64 payloads
    layers: dict[int, dict[str, Any]] = field(repr=False)  # embedded attention per layer

    @property
    def visible(self) -> list[bool]:
        return [not (self.hide_special and s) for s in self.special]


def encode_array(value: np.ndarray) -> dict[str, Any]:
    """``{b64, dtype, shape}``: an array for a page that has no kernel to send its bytes."""
    arr = np.ascontiguousarray(value)
    return {
        "b64": base64.b64encode(arr.tobytes()).decode("ascii"),
        "dtype": arr.dtype.name,
        "shape": list(arr.shape),
    }


def _state(view: ExBertView) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in synced_traits():
        value = getattr(view, name)
        if isinstance(value, np.ndarray):
            out[name] = encode_array(value)
        elif isinstance(value, tuple):
            out[name] = list(value)
        else:
            out[name] = value
    return out


def _embedded_layers(view: ExBertView) -> dict[int, dict[str, Any]]:
    """Every layer's attention when the view gets every head and it is small enough."""
    a = view.analysis
    assert a is not None
    if view.attention is None:  # long input: the kernel combines, nothing to re-slice offline
        return {}
    per_layer = view.attention.nbytes
    if per_layer * view.num_layers > EMBED_ALL_LAYERS_MAX_BYTES:
        return {view.layer: encode_array(view.attention)}
    return {
        layer: encode_array(measure_for_wire(a, layer, view.measure, view.part))
        for layer in range(view.num_layers)
    }


def snapshot(view: ExBertView) -> Snapshot:
    """The view's current state as drawn (called under the view's lock)."""
    a = view.analysis
    assert a is not None
    weights = list(view.head_weights) if view.head_weights else None
    # The view's own lists (a pair's segments, an encoder–decoder model's source then target
    # tokens with the part's block in place), and the float16 weights the view itself received
    # where it gets every head, so that near-ties are cut as the view cuts them.
    if view.attention is not None:
        attention = torch.from_numpy(view.attention.astype(np.float32))
    else:
        attention = measure_tensor(a, view.layer, view.measure, view.part)
    visible = drawing.visible_mask(view.special, view.hide_special, attention.device)
    lines = drawing.drawn_lines(attention, visible, view.heads, weights, view.threshold)
    return Snapshot(
        model_name=view.model_name,
        sentence=view.sentence,
        layer=view.layer,
        num_layers=view.num_layers,
        num_heads=view.num_heads,
        heads=list(view.heads),
        head_weights=weights,
        threshold=view.threshold,
        hide_special=view.hide_special,
        selected=view.selected,
        masked=list(view.masked),
        tokens=list(view.tokens),
        special=list(view.special),
        generated=list(view.generated),
        kind=view.kind,
        lines=filter_lines(lines, view.segments, view.pair_filter),
        grids=drawing.head_summary(attention, visible).astype(np.float32),
        row_span=list(view.row_span),
        column_span=list(view.column_span),
        state=_state(view),
        layers=_embedded_layers(view),
    )
