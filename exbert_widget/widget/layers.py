"""What the widget reads from an Analysis, one layer at a time.

The one place the widget touches ``Analysis.attentions`` / ``hidden_states`` / ``contexts``:
when the engine computes layers on demand (``a.attention(layer)``), only these change.
"""

from __future__ import annotations

import numpy as np

from ..models import Analysis


def _missing(what: str) -> RuntimeError:
    return RuntimeError(f"This analysis was run without {what}; the view needs them.")


def layer_attention(analysis: Analysis, layer: int) -> np.ndarray:
    """float32 ``[num_heads, n, n]`` attention of ``layer``."""
    if analysis.attentions is None:
        raise _missing("attentions")
    return analysis.attentions[layer]


def layer_output(analysis: Analysis, layer: int) -> np.ndarray:
    """float32 ``[n, hidden]``: the output of ``layer`` (``hidden_states[layer + 1]``)."""
    if analysis.hidden_states is None:
        raise _missing("hidden states")
    return analysis.hidden_states[layer + 1]


def layer_context(analysis: Analysis, layer: int) -> np.ndarray:
    """float32 ``[n, num_heads * head_dim]``: the per-head contexts of ``layer``."""
    if analysis.contexts is None:
        raise _missing("contexts")
    return analysis.contexts[layer]
