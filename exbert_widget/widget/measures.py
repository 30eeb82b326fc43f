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


def head_rollouts(analysis: Analysis, layer: int) -> torch.Tensor:
    """float32 ``[heads, n, n]``: rollout up to ``layer`` with only head h at ``layer`` itself
    (all heads below it), per head h. Their mean over a head set is the rollout with that set."""
    weights = analysis.attention_tensor(layer).to(torch.float32)
    n = weights.shape[-1]
    eye = torch.eye(n, dtype=torch.float32, device=weights.device)
    steps = normalise_rows(0.5 * weights + 0.5 * eye)
    if layer == 0:
        return steps
    below = torch.from_numpy(analysis.rollout(layer - 1).copy()).to(weights.device)
    return steps @ below


def measure_tensor(analysis: Analysis, layer: int, measure: str) -> torch.Tensor:
    """``[heads, n, n]`` of ``measure`` at ``layer`` with rows summing to 1 (or 0), on the
    model's device: what the view draws. Do not modify it (the attention is the engine's cache).

    Raises:
        InputError: an unknown measure, a bad layer, or norms the model gives no values for.
    """
    check_measure(measure)
    if measure == "attention":
        return analysis.attention_tensor(layer)
    if measure == "rollout":
        return head_rollouts(analysis, layer)
    raw = analysis.attention(layer, measure="norm")
    device = analysis.attention_tensor(layer).device
    return normalise_rows(torch.from_numpy(raw.copy()).to(device))


def measure_for_wire(analysis: Analysis, layer: int, measure: str) -> np.ndarray:
    """float16 numpy ``[heads, n, n]`` of :func:`measure_tensor` for the ``attention`` trait.

    Raises:
        InputError: as :func:`measure_tensor`.
    """
    return measure_tensor(analysis, layer, measure).to(torch.float16).cpu().numpy()
