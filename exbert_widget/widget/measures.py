"""What the view draws for each measure (``view.measure``), one layer at a time.

The view's drawing rules (heads combined by their mean, hidden tokens removed, the threshold
cut) act on ``[heads, n, n]`` matrices whose rows sum to 1. Each measure is brought to that form
here, where the values live (the model's device), so every tool of the attention panel works
unchanged, with all heads sent or (long inputs) kernel-combined lines:

- ``"attention"``: the weights, as they are.
- ``"norm"``: ‖α_ij · f_h(x_j)‖ (Kobayashi et al. 2020) per head, each row divided by its sum.
  Heads then combine as the mean of their normalised rows. The raw norms stay in Python:
  ``view.analysis.attention(layer, measure="norm")``.
- ``"rollout"``: per head h, ``(0.5 · A_h + 0.5 · I) · rollout_{layer−1}`` (rows of the step
  renormalised as in the engine). The step is linear in the head mean, so the mean over the
  selected heads is exactly ``a.rollout(layer, heads=view.heads)``: one matrix, drawn as one
  combined "head", and hovering head h shows the rollout with that head alone at ``layer``.
"""

from __future__ import annotations

from typing import get_args

import numpy as np
import torch

from ..errors import InputError
from ..models import Analysis
from . import parts
from .state import Measure

MEASURES: tuple[str, ...] = get_args(Measure)


def check_measure(measure: object) -> str:
    """``measure`` if it is one the view draws.

    Raises:
        InputError: any other value.
    """
    if measure not in MEASURES:
        raise InputError(
            f"measure must be one of {', '.join(map(repr, MEASURES))}, not {measure!r}."
        )
    return str(measure)


def normalise_rows(matrix: torch.Tensor) -> torch.Tensor:
    """float32 copy of ``[..., n, m]`` with every row divided by its sum (zero rows stay 0)."""
    out = matrix.to(torch.float32)
    sums = out.sum(-1, keepdim=True)
    return torch.where(sums > 0, out / torch.where(sums > 0, sums, 1.0), 0.0)


def head_rollouts(analysis: Analysis, layer: int, part: str | None = None) -> torch.Tensor:
    """float32 ``[heads, n, n]``: rollout up to ``layer`` with only head h at ``layer`` itself
    (all heads below it), per head h. Their mean over a head set is the rollout with that set.

    Raises:
        InputError: ``part="cross"`` (cross-attention chains no layers).
    """
    if part == "cross":
        raise InputError(
            "Rollout chains a stack's self-attention layers; the cross part has none: choose "
            "the encoder or decoder part, or another measure."
        )
    weights = analysis.attention_tensor(layer, part=part).to(torch.float32)
    n = weights.shape[-1]
    eye = torch.eye(n, dtype=torch.float32, device=weights.device)
    steps = normalise_rows(0.5 * weights + 0.5 * eye)
    if layer == 0:
        return steps
    below = torch.from_numpy(analysis.rollout(layer - 1, part=part).copy()).to(weights.device)
    return steps @ below


def _block(analysis: Analysis, layer: int, measure: str, part: str | None) -> torch.Tensor:
    """The measure over one stack's (or part's) own tokens, rows summing to 1 (or 0)."""
    if measure == "attention":
        return analysis.attention_tensor(layer, part=part)
    if measure == "rollout":
        return head_rollouts(analysis, layer, part)
    raw = analysis.attention(layer, measure="norm", part=part)
    device = analysis.attention_tensor(layer, part=part).device
    return normalise_rows(torch.from_numpy(raw.copy()).to(device))


def measure_tensor(
    analysis: Analysis, layer: int, measure: str, part: str = "encoder"
) -> torch.Tensor:
    """``[heads, n, n]`` of ``measure`` at ``layer`` with rows summing to 1 (or 0), on the
    model's device: what the view draws. Encoder–decoder models: over the view's whole token
    list (source then target), ``part``'s block in place and zeros elsewhere, as
    :func:`.parts.attention_tensor`. Do not modify it (the attention is the engine's cache).

    Raises:
        InputError: an unknown measure, a bad layer, norms the model gives no values for, or
            rollout of the cross part.
    """
    check_measure(measure)
    if analysis.target is None:
        return _block(analysis, layer, measure, None)
    if measure == "attention":
        return parts.attention_tensor(analysis, layer, part)
    block = _block(analysis, layer, measure, part)
    rows, cols = parts.spans(analysis, part)
    n = len(analysis.tokens) + len(analysis.target.tokens)
    out = torch.zeros((block.shape[0], n, n), dtype=block.dtype, device=block.device)
    out[:, rows[0] : rows[1], cols[0] : cols[1]] = block
    return out


def measure_for_wire(
    analysis: Analysis, layer: int, measure: str, part: str = "encoder"
) -> np.ndarray:
    """float16 numpy ``[heads, n, n]`` of :func:`measure_tensor` for the ``attention`` trait.

    Raises:
        InputError: as :func:`measure_tensor`.
    """
    return measure_tensor(analysis, layer, measure, part).to(torch.float16).cpu().numpy()
