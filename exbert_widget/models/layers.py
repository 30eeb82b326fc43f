"""Attention one layer at a time: each attention call of a pass recorded, one layer run again.

During the engine's one forward pass a pre-hook records what every attention module received (the
normed hidden states, rotary position embeddings, that layer's own mask, ...), by reference, so
nothing is copied. Asking for a layer calls that same module again on those inputs with eager
attention and keeps the weights it returns: every family detail (grouped-query heads, q/k norms,
soft-capping, sliding windows, local/global layers) is transformers' own code, and the values are
what the model's eager ``output_attentions=True`` gives for the same inputs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .attention import eager_attention

# Recent layers' weights are kept while they take at most this much (at least two layers, so that
# going back and forth between two layers never recomputes).
CACHE_BYTES = 256 * 2**20
# Eager attention is recomputed a few heads at a time, each chunk's scores at most this large.
CHUNK_BYTES = 64 * 2**20


class NoWeightsError(RuntimeError):
    """An attention module gave no weights even when run eagerly (a fused-only implementation)."""


@dataclass
class AttentionCall:
    """One call of an attention module: the module and exactly what it was given."""

    module: nn.Module
    args: tuple
    kwargs: dict


# A key/value cache a call was given is not kept: running the module again would append to it.
_CACHE_KWARGS = ("cache", "past_key_values", "past_key_value", "layer_past")


@contextmanager
def record_attention_calls(modules: list[nn.Module]) -> Iterator[list[AttentionCall]]:
    """Record every call of the given modules made from this thread, in call order (a shared
    module such as ALBERT's is recorded once per layer that calls it)."""
    calls: list[AttentionCall] = []
    owner = threading.get_ident()

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        if threading.get_ident() == owner:
            kept = {k: (None if k in _CACHE_KWARGS else v) for k, v in kwargs.items()}
            calls.append(AttentionCall(module, args, kept))

    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in set(modules)]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """float32 numpy; no copy for a float32 tensor already on the CPU."""
    return tensor.detach().to(dtype=torch.float32).cpu().numpy()


class LayerAttention:
    """Computes and caches one layer's attention weights ``[heads, n, n]`` from recorded calls.

    Weights stay on the model's device, in its dtype, until :meth:`numpy` is asked for.
    """

    def __init__(
        self,
        calls: list[AttentionCall],
        index: int,
        *,
        chunk_bytes: int = CHUNK_BYTES,
        cache_bytes: int = CACHE_BYTES,
    ) -> None:
        self._calls = calls
        self._index = index
        self._chunk_bytes = chunk_bytes
        self._cache_bytes = cache_bytes
        self._cache: OrderedDict[int, tuple[torch.Tensor, np.ndarray | None]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._calls)

    @torch.no_grad()
    def compute(self, layer: int, chunk_bytes: int | None = None) -> torch.Tensor:
        """The weights of ``layer`` computed afresh (not cached), ``[heads, n, n]``; eager
        attention runs in chunks of ``chunk_bytes`` (default: as constructed; 0: all heads)."""
        call = self._calls[layer]
        chunks = self._chunk_bytes if chunk_bytes is None else chunk_bytes
        with eager_attention(chunks):
            out = call.module(*call.args, **call.kwargs)
        weights = out[self._index] if isinstance(out, tuple | list) else None
        if weights is None:
            raise NoWeightsError(f"{type(call.module).__name__} returned no attention weights.")
        return weights[0]

    def tensor(self, layer: int) -> torch.Tensor:
        """The weights of ``layer``, from the cache or computed and cached."""
        with self._lock:
            hit = self._cache.get(layer)
            if hit is not None:
                self._cache.move_to_end(layer)
                return hit[0]
        weights = self.compute(layer)
        with self._lock:
            self._cache[layer] = (weights, None)
            self._cache.move_to_end(layer)
            self._trim(weights.numel() * weights.element_size())
        return weights

    def numpy(self, layer: int) -> np.ndarray:
        """The weights of ``layer`` as read-only float32 numpy (shared with the cache)."""
        weights = self.tensor(layer)
        with self._lock:
            entry = self._cache.get(layer)
            if entry is not None and entry[1] is not None:
                return entry[1]
        array = to_numpy(weights)
        array.flags.writeable = False
        with self._lock:
            if layer in self._cache:
                self._cache[layer] = (weights, array)
        return array

    def _trim(self, layer_bytes: int) -> None:
        keep = max(2, self._cache_bytes // max(layer_bytes, 1))
        while len(self._cache) > keep:
            self._cache.popitem(last=False)

    def cached_layers(self) -> list[int]:
        """Layers whose weights are held now, least recently used first."""
        with self._lock:
            return list(self._cache)
