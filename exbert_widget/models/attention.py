"""One attention implementation that runs fused (SDPA) for the pass and eager for the weights.

A model set to :data:`IMPLEMENTATION` dispatches every attention call here. By default it runs the
model family's own eager attention, so ``output_attentions=True`` works as with
``attn_implementation="eager"``. Inside :func:`fused_attention` it runs transformers' SDPA instead:
much faster, never materialising ``[heads, n, n]``, and returning no weights. The engine runs its
one forward pass fused and later recomputes one layer's weights eagerly, by calling that layer's
attention module again on the inputs it recorded (see :mod:`.layers`).

The mode lives in :class:`contextvars.ContextVar`\\ s, so a fused pass in one thread never changes
what another thread computes. Registering the implementation adds one name to transformers'
attention and mask registries and changes nothing for any other name.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

IMPLEMENTATION = "exbert_widget"


class _Unsplittable(Exception):
    """An eager function whose output layout the chunked call does not know."""


_FUSED: contextvars.ContextVar[bool] = contextvars.ContextVar("exbert_fused", default=False)
# Eager attention in chunks of key/value heads of at most this many bytes of weights (0: whole).
_CHUNK_BYTES: contextvars.ContextVar[int] = contextvars.ContextVar("exbert_chunks", default=0)
# Where each attention call's (module, value states) go while values are recorded, else None.
_VALUES: contextvars.ContextVar[list | None] = contextvars.ContextVar("exbert_values", default=None)


@contextmanager
def fused_attention() -> Iterator[None]:
    """Within this block (this thread or context only), attention runs as SDPA, without weights."""
    token = _FUSED.set(True)
    try:
        yield
    finally:
        _FUSED.reset(token)


@contextmanager
def eager_attention(chunk_bytes: int = 0) -> Iterator[None]:
    """Within this block attention runs eagerly and returns weights; with ``chunk_bytes``, a few
    heads and rows at a time, so that the scores of each block stay within that size."""
    fused, chunks = _FUSED.set(False), _CHUNK_BYTES.set(chunk_bytes)
    try:
        yield
    finally:
        _CHUNK_BYTES.reset(chunks)
        _FUSED.reset(fused)


@contextmanager
def record_values() -> Iterator[list[tuple[nn.Module, torch.Tensor]]]:
    """Within this block (this thread or context only), every attention call through
    :data:`IMPLEMENTATION` appends ``(module, value)``: the value states exactly as the module
    passed them, ``[batch, key/value heads, n, head_dim]`` (projected, bias included, before
    grouped-query heads are repeated). Kept by reference; nothing is copied."""
    found: list[tuple[nn.Module, torch.Tensor]] = []
    token = _VALUES.set(found)
    try:
        yield found
    finally:
        _VALUES.reset(token)


def eager_function(module: nn.Module) -> Callable | None:
    """The eager attention function of the file that defines ``module``'s forward: exactly what
    the module itself calls when its config says ``"eager"``."""
    forward = type(module).forward
    source = sys.modules.get(getattr(forward, "__module__", ""), None)
    return getattr(source, "eager_attention_forward", None)


def _additive_mask(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    mask: torch.Tensor | None,
    is_causal: bool | None,
) -> torch.Tensor | None:
    """An SDPA-style mask (boolean, or None meaning "causal" or "none") in the additive float
    form eager attention adds to its scores, read exactly as ``sdpa_attention_forward`` reads it."""
    if mask is not None and mask.dtype != torch.bool:
        return mask  # already additive
    if mask is None:
        causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
        q_length, kv_length = query.shape[2], key.shape[2]
        if not (causal and q_length > 1):
            return None
        rows = torch.arange(q_length, device=query.device)[:, None]
        mask = (rows >= torch.arange(kv_length, device=query.device)[None, :])[None, None]
    zero = torch.zeros((), device=mask.device, dtype=query.dtype)
    return torch.where(mask, zero, torch.finfo(query.dtype).min)


# Tensors an attention call may be given that are per sequence, not per head.
_SEQUENCE_TENSORS = frozenset({"position_ids", "cache_position"})


def _chunkable(query: torch.Tensor, key: torch.Tensor, mask, kwargs: dict) -> bool:
    """Heads and query rows are independent in eager attention unless a per-head tensor
    (attention sinks, a position bias, a per-head mask) is passed along; then it is not split."""
    return (
        query.shape[1] % key.shape[1] == 0
        and (mask is None or (mask.shape[1] == 1 and mask.shape[2] == query.shape[2]))
        and not any(torch.is_tensor(v) for k, v in kwargs.items() if k not in _SEQUENCE_TENSORS)
    )


def _eager_in_chunks(
    eager: Callable, module: nn.Module, query, key, value, mask, budget: int, kwargs: dict
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention over blocks of key/value heads (with their query heads) and of query
    rows, written into one weights tensor: the temporaries are those of a block of at most
    ``budget`` bytes of scores, not of all heads and rows."""
    batch, heads, q_length, _ = query.shape
    kv_heads, kv_length = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    per_row = batch * groups * kv_length * query.element_size()  # one row of one key/value head
    if per_row * q_length * kv_heads <= budget:
        return eager(module, query, key, value, mask, **kwargs)
    if per_row * q_length <= budget:
        head_step, row_step = budget // (per_row * q_length), q_length
    else:
        head_step, row_step = 1, max(1, budget // per_row)
    weights: torch.Tensor | None = None
    output: torch.Tensor | None = None
    for k0 in range(0, kv_heads, head_step):
        k1 = min(k0 + head_step, kv_heads)
        q0, q1 = k0 * groups, k1 * groups
        for r0 in range(0, q_length, row_step):
            r1 = min(r0 + row_step, q_length)
            rows_mask = None if mask is None else mask[:, :, r0:r1]
            out, w = eager(
                module,
                query[:, q0:q1, r0:r1],
                key[:, k0:k1],
                value[:, k0:k1],
                rows_mask,
                **kwargs,
            )
            if w is None or out.shape[:3] != (batch, r1 - r0, q1 - q0):
                raise _Unsplittable
            if weights is None or output is None:
                weights = w.new_empty((batch, heads, q_length, kv_length))
                output = out.new_empty((batch, q_length, heads, out.shape[3]))
            weights[:, q0:q1, r0:r1] = w
            output[:, r0:r1, q0:q1] = out
    assert weights is not None and output is not None
    return output, weights


def _attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    sink = _VALUES.get()
    if sink is not None:
        sink.append((module, value))
    if _FUSED.get() and kwargs.get("softcap") is None:  # SDPA has no soft-capping (Gemma 2)
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    eager = eager_function(module)
    if eager is None:  # the engine checks this before setting a model to this implementation
        raise RuntimeError(f"{type(module).__name__} has no eager attention function.")
    mask = _additive_mask(module, query, key, attention_mask, kwargs.get("is_causal"))
    budget = _CHUNK_BYTES.get()
    if budget and _chunkable(query, key, mask, kwargs):
        try:
            return _eager_in_chunks(eager, module, query, key, value, mask, budget, kwargs)
        except _Unsplittable:
            pass
    return eager(module, query, key, value, mask, **kwargs)


def _mask(*args, **kwargs):
    """SDPA's boolean mask (None where SDPA can use is_causal) in a fused pass; else eager's."""
    if _FUSED.get():
        return sdpa_mask(*args, **kwargs)
    return eager_mask(*args, **kwargs)


def register() -> str:
    """Make :data:`IMPLEMENTATION` known to transformers (idempotent); returns its name."""
    if AttentionInterface._global_mapping.get(IMPLEMENTATION) is not _attention:
        AttentionInterface.register(IMPLEMENTATION, _attention)
    if AttentionMaskInterface._global_mapping.get(IMPLEMENTATION) is not _mask:
        AttentionMaskInterface.register(IMPLEMENTATION, _mask)
    return IMPLEMENTATION


def supports(model: nn.Module, modules: list[nn.Module]) -> bool:
    """Whether ``model`` can run :data:`IMPLEMENTATION`: it dispatches attention through
    transformers' interface and each attention module has an eager function."""
    return (
        bool(modules)
        and bool(getattr(type(model), "_supports_attention_backend", False))
        and all(eager_function(m) is not None for m in modules)
    )


def supports_fused(model: nn.Module) -> bool:
    """Whether transformers runs ``model`` with SDPA at all (some families, e.g. with attention
    sinks, do not); the others stay eager inside :func:`fused_attention` blocks too."""
    return bool(getattr(type(model), "_supports_sdpa", False))
