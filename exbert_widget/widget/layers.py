"""What the widget reads from an Analysis, one layer at a time.

The one place the widget touches an analysis's arrays: attention and contexts are asked for one
layer at a time (the engine computes a layer's attention on demand), never all layers at once.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models import Analysis


def layer_attention(analysis: Analysis, layer: int, part: str | None = None) -> np.ndarray:
    """float16 ``[num_heads, n, n]`` attention of ``layer`` for the wire, computed on demand and
    cast where it lives (on the model's device), so only half the bytes reach the host."""
    return layer_attention_tensor(analysis, layer, part).to(torch.float16).cpu().numpy()


def layer_attention_tensor(analysis: Analysis, layer: int, part: str | None = None) -> torch.Tensor:
    """``[num_heads, n, n]`` attention of ``layer`` where it lives (the model's device and dtype),
    for work done there before anything is sent (:mod:`.lines`); encoder–decoder models:
    ``part``'s (``[heads, rows, columns]``, see :mod:`.parts`). Shared with the engine's cache:
    do not modify it."""
    return analysis.attention_tensor(layer, part=part)


def layer_output(analysis: Analysis, layer: int) -> np.ndarray:
    """float32 ``[n, hidden]``: the output of ``layer`` (``hidden_states[layer + 1]``)."""
    if analysis.hidden_states is None:
        raise RuntimeError("This analysis was run without hidden states; the view needs them.")
    return analysis.hidden_states[layer + 1]


def layer_context(analysis: Analysis, layer: int) -> np.ndarray:
    """float32 ``[n, num_heads * head_dim]``: the per-head contexts of ``layer``."""
    return analysis.context(layer)
