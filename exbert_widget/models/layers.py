"""Attention one layer at a time: each layer's call in a pass recorded, one layer run again.

During the engine's one forward pass a pre-hook records what every transformer layer received (its
input hidden states, rotary position embeddings, that layer's own mask, ...), by reference: the
inputs are the hidden states the analysis keeps anyway, so nothing is copied. Asking for a layer
calls that same layer again on those inputs with eager attention and stops as soon as its
attention module has returned its weights (the MLP never runs): every family detail (input norms,
grouped-query heads, q/k norms, soft-capping, sliding windows, local/global layers) is
transformers' own code, and the values are what the model's eager ``output_attentions=True``
gives for the same inputs. Where a layer does not hold exactly one attention module, the
attention modules themselves are recorded instead (their inputs are then kept, normed).
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

from .attention import eager_attention, record_values

# Recent layers' weights are kept while they take at most this much (at least two layers, so that
# going back and forth between two layers never recomputes).
CACHE_BYTES = 256 * 2**20
# Eager attention is recomputed a few heads and rows at a time, each block's scores at most
# this large: its temporaries stay small beside the [heads, n, n] result.
CHUNK_BYTES = 16 * 2**20


class NoWeightsError(RuntimeError):
    """An attention module gave no weights even when run eagerly (a fused-only implementation)."""


class _Stop(Exception):
    """Ends a recomputation once the attention module has returned its weights."""


@dataclass
class AttentionCall:
    """One call of a layer (or attention module): exactly what it was given, and the attention
    module inside it whose output holds the weights (the module itself, if it is one)."""

    module: nn.Module
    attention: nn.Module
    args: tuple
    kwargs: dict


# A key/value cache a call was given is not kept: running the module again would append to it.
_CACHE_KWARGS = ("cache", "past_key_values", "past_key_value", "layer_past")


def entry_modules(
    layers: list[nn.Module], attentions: list[nn.Module]
) -> dict[nn.Module, nn.Module]:
    """Module to record -> the attention module inside it: each layer, where every layer holds
    exactly one of the attention modules; else each attention module itself."""
    wanted = {id(m) for m in attentions}
    entries: dict[nn.Module, nn.Module] = {}
    for layer in layers:
        inner = [m for m in layer.modules() if id(m) in wanted]
        if len(inner) != 1:
            return {m: m for m in attentions}
        entries[layer] = inner[0]
    covered = {id(a) for a in entries.values()}
    if not entries or covered != wanted:
        return {m: m for m in attentions}
    return entries


@contextmanager
def record_attention_calls(entries: dict[nn.Module, nn.Module]) -> Iterator[list[AttentionCall]]:
    """Record every call of the given modules made from this thread, in call order (a shared
    module such as ALBERT's layer is recorded once per layer that calls it)."""
    calls: list[AttentionCall] = []
    owner = threading.get_ident()

    def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
        if threading.get_ident() == owner:
            kept = {k: (None if k in _CACHE_KWARGS else v) for k, v in kwargs.items()}
            calls.append(AttentionCall(module, entries[module], args, kept))

    handles = [m.register_forward_pre_hook(hook, with_kwargs=True) for m in entries]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def to_numpy(tensor: torch.Tensor) -> np.ndarray:
    """float32 numpy; no copy for a float32 tensor already on the CPU."""
    return tensor.detach().to(dtype=torch.float32).cpu().numpy()


@dataclass
class _Entry:
    """One cached layer: its weights on the device, their numpy copy once read, and the value
    states its attention used (for :mod:`.measures`)."""

    weights: torch.Tensor
    value: torch.Tensor | None
    array: np.ndarray | None = None


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
        self._cache: OrderedDict[int, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._calls)

    def compute(self, layer: int, chunk_bytes: int | None = None) -> torch.Tensor:
        """The weights of ``layer`` computed afresh (not cached), ``[heads, n, n]``; eager
        attention runs in chunks of ``chunk_bytes`` (default: as constructed; 0: all heads)."""
        return self._compute(layer, chunk_bytes)[0]

    @torch.no_grad()
    def _compute(
        self, layer: int, chunk_bytes: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The weights of ``layer`` and the value states its attention used (``[key/value heads,
        n, head_dim]``, None where the model's attention does not pass through
        :mod:`.attention`), computed afresh."""
        call = self._calls[layer]
        chunks = self._chunk_bytes if chunk_bytes is None else chunk_bytes
        owner = threading.get_ident()
        found: list[torch.Tensor | None] = []

        def hook(_module: nn.Module, _args: tuple, out) -> None:
            if threading.get_ident() != owner:
                return  # another thread running the model meanwhile
            found.append(out[self._index] if isinstance(out, tuple | list) else None)
            raise _Stop

        handle = call.attention.register_forward_hook(hook)
        try:
            with eager_attention(chunks), record_values() as values:
                call.module(*call.args, **call.kwargs)
        except _Stop:
            pass
        finally:
            handle.remove()
        if not found or found[0] is None:
            name = type(call.attention).__name__
            raise NoWeightsError(f"{name} returned no attention weights.")
        value = values[-1][1][0] if values else None
        return found[0][0], value

    def _entry(self, layer: int) -> _Entry:
        """The cache entry of ``layer``, computed and cached when absent."""
        with self._lock:
            hit = self._cache.get(layer)
            if hit is not None:
                self._cache.move_to_end(layer)
                return hit
        weights, value = self._compute(layer)
        entry = _Entry(weights, value)
        with self._lock:
            self._cache[layer] = entry
            self._cache.move_to_end(layer)
            self._trim(weights.numel() * weights.element_size())
        return entry

    def tensor(self, layer: int) -> torch.Tensor:
        """The weights of ``layer``, from the cache or computed and cached."""
        return self._entry(layer).weights

    def values(self, layer: int) -> torch.Tensor | None:
        """The value states ``[key/value heads, n, head_dim]`` the attention of ``layer`` used
        (cached with its weights), or None where the model's attention does not expose them."""
        return self._entry(layer).value

    def numpy(self, layer: int) -> np.ndarray:
        """The weights of ``layer`` as read-only float32 numpy (shared with the cache)."""
        entry = self._entry(layer)
        if entry.array is not None:
            return entry.array
        array = to_numpy(entry.weights)
        array.flags.writeable = False
        entry.array = array
        return array

    def _trim(self, layer_bytes: int) -> None:
        keep = max(2, self._cache_bytes // max(layer_bytes, 1))
        while len(self._cache) > keep:
            self._cache.popitem(last=False)

    def cached_layers(self) -> list[int]:
        """Layers whose weights are held now, least recently used first."""
        with self._lock:
            return list(self._cache)
