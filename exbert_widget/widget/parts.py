"""Encoder–decoder models in the view: the three parts as the two token columns.

The view numbers the tokens of an encoder–decoder analysis as one list, the source's tokens
(``a.tokens``, indices ``0 .. n_source - 1``, the same as the engine's, so ``masked`` and
``selected`` mean the same source token in every part) followed by the target's
(``a.target_tokens``). Each part draws one block of that numbering: its rows (the left column)
and its columns (the right column) are spans of it,

- ``encoder``: source rows → source columns,
- ``decoder``: target rows → target columns (causal),
- ``cross``: target rows (left) → source columns (right),

and the attention sent is ``[heads, n, n]`` over the whole list, zero outside the part's block,
whose block is exactly ``a.attention(layer, part=part)``. The view shows in each column only the
tokens of its span. Zeros outside the block leave the drawing unchanged: a row's lines, its
renormalisation and its threshold cut see only the block's columns. The price is bytes: the
payload is ``(n_source + n_target)²`` per head instead of the block's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

import numpy as np
import torch

from ..errors import StateError
from ..models import Analysis
from .layers import layer_attention_tensor
from .state import PARTS, TopK

if TYPE_CHECKING:
    from ..models import LanguageModel


def check_part(lm: LanguageModel, value: object) -> str:
    """``value`` if the model has that part.

    Raises:
        StateError: not a part name, or a part other than ``"encoder"`` for a model that is
            not encoder–decoder.
    """
    if value not in PARTS:
        names = ", ".join(repr(p) for p in PARTS)
        raise StateError(f"part must be one of {names}, got {value!r}.")
    if lm.kind != "seq2seq" and value != "encoder":
        raise StateError(
            f"part={value!r} is for encoder–decoder models (T5, BART, Marian); {lm.name} is "
            f"{lm.kind} and has one stack of attention."
        )
    return str(value)


def layer_count(lm: LanguageModel, part: str) -> int:
    """Layers of ``part`` (the decoder's for the decoder and cross parts)."""
    return lm.num_decoder_layers if lm.kind == "seq2seq" and part != "encoder" else lm.num_layers


def head_count(lm: LanguageModel, part: str) -> int:
    """Heads per layer of ``part``."""
    return lm.num_decoder_heads if lm.kind == "seq2seq" and part != "encoder" else lm.num_heads


def is_seq2seq(analysis: Analysis) -> bool:
    return analysis.target is not None


def tokens(analysis: Analysis) -> tuple[list[str], list[bool]]:
    """The view's token list and special flags: source then target (see the module)."""
    target = analysis.target
    if target is None:
        return list(analysis.tokens), list(analysis.special)
    return [*analysis.tokens, *target.tokens], [*analysis.special, *target.special]


def spans(analysis: Analysis, part: str) -> tuple[list[int], list[int]]:
    """``([start, stop], [start, stop])``: the rows' (left column's) and the columns' (right
    column's) tokens of ``part``; ``([], [])`` for models with one stack (every token)."""
    if analysis.target is None:
        return [], []
    ns, n = len(analysis.tokens), len(analysis.tokens) + len(analysis.target.tokens)
    source, target = [0, ns], [ns, n]
    return {"encoder": (source, source), "decoder": (target, target), "cross": (target, source)}[
        part
    ]


def top_k(analysis: Analysis) -> TopK:
    """Per token of the view's list, [token, probability] pairs: the decoder's next-token
    predictions at target tokens, none at source tokens."""
    # lists, not tuples: the trait holds what the wire carries (JSON arrays)
    rows = cast(TopK, [[[tok, round(p, 6)] for tok, p in row] for row in analysis.top_k])
    if analysis.target is None:
        return rows
    empty: TopK = [[] for _ in analysis.tokens]
    return empty + rows


def generated(analysis: Analysis) -> list[bool]:
    """Encoder–decoder: the target's tokens the model wrote (a generated target)."""
    target = analysis.target
    assert target is not None
    flags = [target.generated and not s for s in target.special]
    return [False] * len(analysis.tokens) + flags


def attention_tensor(analysis: Analysis, layer: int, part: str) -> torch.Tensor:
    """``[heads, n, n]`` over the view's list: ``a.attention_tensor(layer)`` for one stack, else
    the part's block in place and zeros elsewhere (a new tensor: safe to modify)."""
    if analysis.target is None:
        return layer_attention_tensor(analysis, layer)
    block = layer_attention_tensor(analysis, layer, part)
    rows, cols = spans(analysis, part)
    n = len(analysis.tokens) + len(analysis.target.tokens)
    out = torch.zeros((block.shape[0], n, n), dtype=block.dtype, device=block.device)
    out[:, rows[0] : rows[1], cols[0] : cols[1]] = block
    return out


def attention(analysis: Analysis, layer: int, part: str) -> np.ndarray:
    """float16 :func:`attention_tensor` for the wire, cast where it lives."""
    return attention_tensor(analysis, layer, part).to(torch.float16).cpu().numpy()


def rescale_summary(
    summary: np.ndarray, analysis: Analysis, part: str, special: Sequence[bool], hide: bool
) -> np.ndarray:
    """The heads grids' column means (``summary[1]``) over the part's visible rows, not over
    every visible token of the list (the rows outside the block are zeros)."""
    if analysis.target is None:
        return summary
    rows, _ = spans(analysis, part)
    visible = np.array([not (hide and s) for s in special])
    shown, in_rows = int(visible.sum()), int(visible[rows[0] : rows[1]].sum())
    if in_rows == 0:
        return summary
    out = summary.astype(np.float32)
    out[1] *= shown / in_rows
    return out.astype(np.float16)


def check_mask(masked: Sequence[int], n_source: int) -> None:
    """Encoder–decoder: only source tokens can be masked.

    Raises:
        StateError: an index past the source's tokens.
    """
    beyond = [i for i in masked if i >= n_source]
    if beyond:
        raise StateError(
            f"token(s) {beyond} are not source tokens: only source tokens (0..{n_source - 1}) "
            "can be masked; the target tokens after them are read by the decoder as given."
        )
