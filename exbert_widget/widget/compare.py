"""The view's second panel: differences (Δ) against a reference, or a second model beside it.

A reference is another analysis of the same tokens: the sentence without its mask
(``view.compare = "unmasked"``) or the compare model's analysis of the view's sentence and mask
(``"model"`` for Δ, ``"side"`` to draw that model's own lines). Both sides go through the same
steps as the attention panel's lines: the measure of the layer (:mod:`.measures`, rows
normalised), the selected heads combined, hidden tokens removed and rows renormalised. Then

- Δ = shown − reference, row by row; per row the largest |Δ| are kept until they reach
  ``threshold`` of the row's Σ|Δ| (the attention panel's cut, on |Δ|), signs kept;
- side by side: the compare model's combined matrix cut as the attention panel cuts its own.

At most :data:`MAX_LINES` lines are sent (the strongest), whatever the input's length: the
panel is an SVG. Probabilities: per position the shown analysis' top k, each with the
reference's probability of the same token (one more forward pass of the reference's model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from ..models import Analysis, LanguageModel
from . import lines as drawing
from .measures import measure_tensor

#: The most lines the second panel draws (the strongest |value| first).
MAX_LINES = 3000
# Positions whose logits are turned into probabilities at a time.
_ROWS = 256


@dataclass(frozen=True)
class Side:
    """One side of a comparison: an analysis and the model that made it."""

    analysis: Analysis
    lm: LanguageModel


def check_same_tokenizer(lm: LanguageModel, other: LanguageModel) -> None:
    """Two models can share a view only when they read the same tokens.

    Raises:
        InputError: their vocabularies or special tokens differ (naming both models).
    """
    a, b = lm.tokenizer, other.tokenizer
    differ = []
    if a.get_vocab() != b.get_vocab():
        differ.append("vocabularies")
    if sorted(map(str, a.all_special_tokens)) != sorted(map(str, b.all_special_tokens)):
        differ.append("special tokens")
    if differ:
        raise InputError(
            f"compare_model {other.name!r} reads other tokens than {lm.name!r} (their "
            f"{' and '.join(differ)} differ): the view compares models with the same tokenizer."
        )
    if other.kind != lm.kind:
        raise InputError(
            f"compare_model {other.name!r} is {other.kind}, {lm.name!r} is {lm.kind}: the view "
            "compares models that read the same way."
        )


def combined(
    side: Side,
    layer: int,
    measure: str,
    heads: Sequence[int],
    weights: Sequence[float] | None,
    hide_special: bool,
) -> torch.Tensor:
    """float32 ``[n, n]``: what the attention panel draws before its threshold cut."""
    matrix = measure_tensor(side.analysis, layer, measure)
    visible = drawing.visible_mask(side.analysis.special, hide_special, matrix.device)
    return drawing.remove_hidden(drawing.combine_heads(matrix, heads, weights), visible)


def signed_lines(delta: torch.Tensor, threshold: float) -> np.ndarray:
    """float32 ``[count, 3]`` rows ``[from, to, value]``: per row the largest |Δ| until they
    reach ``threshold`` of the row's Σ|Δ|, signs kept; the :data:`MAX_LINES` strongest, row by
    row, strongest first within a row."""
    size = delta.abs()
    values, columns = torch.sort(size, dim=1, descending=True, stable=True)
    positive = values > 0
    wide = values.to(torch.float64)
    running = wide.cumsum(1)
    keep = positive & (running - wide < threshold * running[:, -1:] * (1 - drawing.SLACK))
    if threshold >= 1.0:
        keep = positive
    rows = torch.arange(delta.shape[0], device=delta.device)[:, None].expand_as(columns)
    frm, to = rows[keep], columns[keep]
    strength = values[keep]
    if strength.numel() > MAX_LINES:
        chosen = torch.topk(strength, MAX_LINES).indices.sort().values
        frm, to = frm[chosen], to[chosen]
    value = delta[frm, to]
    return torch.stack([frm.float(), to.float(), value.float()], dim=1).cpu().numpy()


def shown_lines(matrix: torch.Tensor, threshold: float) -> np.ndarray:
    """The cut of a non-negative combined matrix as ``[from, to, weight]`` rows (side by side)."""
    return signed_lines(matrix, threshold)


def token_probabilities(side: Side, wanted: Sequence[Sequence[str]]) -> list[list[float]]:
    """Per position, the probability ``side``'s model gives each token of ``wanted[position]``
    there (what ``top_k`` reports: at the position for masked LMs, next for decoders).

    Raises:
        InputError: the model has no language-model head.
    """
    lm = side.lm
    if not lm.has_lm_head:
        raise InputError(f"{lm.name} has no language-model head: no probabilities to compare.")
    logits = lm.logits(side.analysis)
    convert = lm.tokenizer.convert_tokens_to_ids
    out: list[list[float]] = []
    for start in range(0, len(wanted), _ROWS):
        block = logits[start : start + _ROWS]
        logprobs = block - torch.logsumexp(block, dim=-1, keepdim=True)
        for row, tokens in enumerate(wanted[start : start + _ROWS]):
            token_ids = torch.tensor(convert(list(tokens)), dtype=torch.long, device=lm.device)
            out.append(logprobs[row, token_ids].exp().tolist() if len(tokens) else [])
    return out


def top_k_pairs(shown: Side, reference: Side) -> list[list[tuple[str, float, float]]]:
    """Per position, ``(token, probability, reference probability)`` for the shown analysis'
    top k; empty when either model has no language-model head, and for encoder–decoder models
    (their predictions are per target token, and the two targets need not agree)."""
    if not (shown.lm.has_lm_head and reference.lm.has_lm_head):
        return []
    if shown.lm.kind == "seq2seq" or reference.lm.kind == "seq2seq":
        return []
    top = shown.analysis.top_k
    ref = token_probabilities(reference, [[tok for tok, _ in row] for row in top])
    return [
        [(tok, round(p, 6), round(q, 6)) for (tok, p), q in zip(row, probs, strict=True)]
        for row, probs in zip(top, ref, strict=True)
    ]
