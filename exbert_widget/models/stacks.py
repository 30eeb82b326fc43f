"""One stack of attention layers as an analysis reads it: weights, value states, projections.

An encoder or decoder has one stack; an encoder–decoder model has three parts (the encoder's
self-attention, the decoder's self-attention and its cross-attention over the source). Weights
come either on demand (:class:`OnDemandStack`, recomputed one layer at a time from the pass's
recorded calls) or from a pass that computed them all (:class:`StoredStack`). Either way a stack
also gives each layer's value states and attention output projection, which value-weighted norms
need (:mod:`.measures`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .layers import LayerAttention, to_numpy


class OnDemandStack:
    """Weights recomputed one layer at a time (:class:`.layers.LayerAttention`)."""

    def __init__(self, layers: LayerAttention, projections: Sequence[nn.Module]) -> None:
        self.layers = layers
        self._projections = list(projections)

    def __len__(self) -> int:
        return len(self.layers)

    def tensor(self, layer: int) -> torch.Tensor:
        return self.layers.tensor(layer)

    def numpy(self, layer: int) -> np.ndarray:
        return self.layers.numpy(layer)

    def values(self, layer: int) -> torch.Tensor | None:
        return self.layers.values(layer)

    def projection(self, layer: int) -> nn.Module | None:
        return _at(self._projections, layer)


class StoredStack:
    """Weights computed by the pass for every layer: float32 numpy ``[layers, heads, n, m]`` or
    a list of per-layer tensors ``[heads, n, m]`` (on the model's device, in its dtype)."""

    def __init__(
        self,
        weights: np.ndarray | Sequence[torch.Tensor],
        values: Sequence[torch.Tensor | None] | None = None,
        projections: Sequence[nn.Module | None] = (),
    ) -> None:
        self._array = weights if isinstance(weights, np.ndarray) else None
        self._tensors = None if isinstance(weights, np.ndarray) else list(weights)
        self._numpy: dict[int, np.ndarray] = {}
        self._values = list(values) if values is not None else None
        self._projections = list(projections)

    def __len__(self) -> int:
        if self._array is not None:
            return int(self._array.shape[0])
        assert self._tensors is not None
        return len(self._tensors)

    def tensor(self, layer: int) -> torch.Tensor:
        if self._array is not None:
            return torch.from_numpy(self._array[layer])
        assert self._tensors is not None
        return self._tensors[layer]

    def numpy(self, layer: int) -> np.ndarray:
        if self._array is not None:
            view = self._array[layer].view()
        else:
            if layer not in self._numpy:
                self._numpy[layer] = to_numpy(self.tensor(layer))
            view = self._numpy[layer].view()
        view.flags.writeable = False
        return view

    def values(self, layer: int) -> torch.Tensor | None:
        return _at(self._values, layer)

    def projection(self, layer: int) -> nn.Module | None:
        return _at(self._projections, layer)


def _at(items: Sequence | None, layer: int):
    """``items[layer]``; the one item for every layer where there is one (ALBERT shares one
    layer across depth); None where there is no such item."""
    if not items:
        return None
    if len(items) == 1:
        return items[0]
    return items[layer] if 0 <= layer < len(items) else None
