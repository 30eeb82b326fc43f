"""Measures beyond attention weights: value-weighted norms and attention rollout.

Norms follow Kobayashi et al. 2020 ("Attention is not only a weight"): how much token j moves
into token i through head h is ‖α_ij · f_h(x_j)‖, where f_h(x_j) is token j's value vector for
head h passed through that head's slice of the attention output projection (value bias included;
the output bias is shared by all tokens and excluded). As α_ij ≥ 0, the norm is α_ij · ‖f_h(x_j)‖:
one norm per head and token, times the weights.

Rollout follows Abnar & Zuidema 2020: Â_l = 0.5 · mean over heads of A_l + 0.5 · I, rows
renormalised, and rollout_l = Â_l · Â_{l−1} ⋯ Â_0.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import nn

from ..errors import InputError

MEASURES = ("attention", "norm")
# Rollout products kept per analysis, at most this many bytes (at least two layers).
ROLLOUT_BYTES = 256 * 2**20
# Heads projected at a time for the norms: [heads, n, hidden] float32 stays below this size.
_NORM_BLOCK_BYTES = 64 * 2**20


def check_measure(measure: str) -> str:
    """``measure`` if it is one :meth:`Analysis.attention` knows.

    Raises:
        InputError: any other value.
    """
    if measure not in MEASURES:
        raise InputError(
            f"measure must be one of {', '.join(repr(m) for m in MEASURES)}, got {measure!r} "
            "(rollout is a.rollout(layer))."
        )
    return measure


def projection_matrix(projection: nn.Module) -> torch.Tensor:
    """The attention output projection's weight as ``[context, hidden]`` (input rows): a Linear's
    weight transposed, or a GPT-2 style Conv1D's as it is.

    Raises:
        InputError: a projection of another kind.
    """
    if isinstance(projection, nn.Linear):
        return projection.weight.t()
    if type(projection).__name__ == "Conv1D":
        return cast(torch.Tensor, projection.weight)
    raise InputError(
        f"The attention output projection is a {type(projection).__name__}, not a linear map; "
        "value-weighted norms are not available for this model."
    )


@torch.no_grad()
def head_output_norms(value: torch.Tensor, projection: nn.Module, heads: int) -> torch.Tensor:
    """‖f_h(x_j)‖ for every head h and token j, float32 ``[heads, n]``.

    ``value`` is ``[key/value heads, n, head_dim]`` as the attention used it; grouped-query
    models share each key/value head among ``heads // key/value heads`` query heads, repeated
    as the model repeats them. Computed in float32, a few heads at a time.

    Raises:
        InputError: the projection does not take ``heads × head_dim`` inputs.
    """
    kv_heads, n, head_dim = value.shape
    if heads % kv_heads:
        raise InputError(f"{heads} query heads cannot share {kv_heads} key/value heads evenly.")
    gram = _per_head_gram(projection, heads, head_dim)  # [heads, head_dim, head_dim]
    values = value.float()
    if kv_heads != heads:
        values = values.repeat_interleave(heads // kv_heads, dim=0)  # as the model repeats
    # ‖v W_h‖² = v (W_h W_hᵀ) vᵀ: a head_dim × head_dim product per token instead of projecting
    # every value to the hidden size (heads times less work); the Gram matrix is kept per module.
    step = max(1, _NORM_BLOCK_BYTES // max(1, n * head_dim * 4))
    out = torch.empty((heads, n), dtype=torch.float32, device=value.device)
    for h0 in range(0, heads, step):
        h1 = min(h0 + step, heads)
        v = values[h0:h1]
        squared = (torch.bmm(v, gram[h0:h1]) * v).sum(-1)
        out[h0:h1] = squared.clamp_min_(0).sqrt_()
    return out


# projection -> (its weight's identity and version, float32 [heads, dim, dim]: W_h W_hᵀ per head)
_PER_HEAD: weakref.WeakKeyDictionary[nn.Module, tuple[tuple, torch.Tensor]] = (
    weakref.WeakKeyDictionary()
)
_PER_HEAD_LOCK = threading.Lock()


def _per_head_gram(projection: nn.Module, heads: int, head_dim: int) -> torch.Tensor:
    """W_h W_hᵀ for each head's slice W_h ``[head_dim, hidden]`` of the projection's weight,
    float32 ``[heads, head_dim, head_dim]`` (summed in float64 where the device has it); kept
    per module until its weight changes (in place or replaced).

    Raises:
        InputError: the projection does not take ``heads × head_dim`` inputs.
    """
    weight = projection_matrix(projection)
    if weight.shape[0] != heads * head_dim:
        raise InputError(
            f"The attention output projection takes {weight.shape[0]} inputs, not {heads} heads "
            f"× {head_dim}; value-weighted norms are not available for this model."
        )
    key = (weight.data_ptr(), weight._version, heads, head_dim, weight.device, weight.dtype)
    with _PER_HEAD_LOCK:
        kept = _PER_HEAD.get(projection)
        if kept is not None and kept[0] == key:
            return kept[1]
    wide = torch.float32 if weight.device.type == "mps" else torch.float64  # MPS has no float64
    split = weight.detach().to(wide).reshape(heads, head_dim, -1)
    gram = torch.bmm(split, split.transpose(1, 2)).float().contiguous()
    with _PER_HEAD_LOCK:
        _PER_HEAD[projection] = (key, gram)
    return gram


def norm_weights(weights: torch.Tensor, output_norms: torch.Tensor) -> torch.Tensor:
    """‖α_ij · f_h(x_j)‖ = α_ij · ‖f_h(x_j)‖, float32 ``[heads, n, m]`` from weights
    ``[heads, n, m]`` and the norms ``[heads, m]``."""
    return weights.float() * output_norms[:, None, :]


def rollout_step(weights: torch.Tensor, heads: Sequence[int] | None = None) -> torch.Tensor:
    """Â = 0.5 · mean over ``heads`` (all by default) of ``weights`` + 0.5 · I, rows renormalised;
    float32 ``[n, n]``.

    Raises:
        InputError: ``heads`` empty or out of range.
    """
    total = weights.shape[0]
    if heads is not None:
        chosen = check_heads(heads, total)
        weights = weights[list(chosen)]
    mean = weights.float().mean(dim=0)
    n = mean.shape[-1]
    step = 0.5 * mean + 0.5 * torch.eye(n, dtype=mean.dtype, device=mean.device)
    return step / step.sum(dim=-1, keepdim=True)


def check_heads(heads: Sequence[int], total: int) -> tuple[int, ...]:
    """``heads`` as a tuple of distinct head indices.

    Raises:
        InputError: not a non-empty sequence of ints in ``0..total - 1``.
    """
    if isinstance(heads, int | str) or not isinstance(heads, Sequence) or not heads:
        raise InputError(f"heads must be a non-empty list of head indices, got {heads!r}.")
    if any(isinstance(h, bool) or not isinstance(h, int) or not 0 <= h < total for h in heads):
        raise InputError(f"heads must be head indices in 0..{total - 1}, got {list(heads)}.")
    return tuple(dict.fromkeys(int(h) for h in heads))


class Rollout:
    """Rollout products of one stack of layers, computed on demand and kept.

    ``weights(layer)`` gives a layer's attention ``[heads, n, n]`` (a tensor). Products over all
    heads are kept per layer (``n × n`` float32 each) within :data:`ROLLOUT_BYTES`, so asking
    for the next layer costs one matrix product.
    """

    def __init__(self, weights: Callable[[int], torch.Tensor]) -> None:
        self._weights = weights
        self._products: OrderedDict[int, torch.Tensor] = OrderedDict()

    def product(self, layer: int, heads: Sequence[int] | None = None) -> torch.Tensor:
        """rollout_layer ``[n, n]``, with the head selection applied to ``layer``'s mean."""
        if heads is None and layer in self._products:
            self._products.move_to_end(layer)
            return self._products[layer]
        below = self._all_heads(layer - 1) if layer > 0 else None
        step = rollout_step(self._weights(layer), heads)
        result = step if below is None else step @ below
        if heads is None:
            self._keep(layer, result)
        return result

    def _all_heads(self, layer: int) -> torch.Tensor:
        """rollout_layer over all heads, from the highest kept product below it."""
        start = max((kept for kept in self._products if kept <= layer), default=-1)
        result = self._products[start] if start >= 0 else None
        for current in range(start + 1, layer + 1):
            step = rollout_step(self._weights(current))
            result = step if result is None else step @ result
            self._keep(current, result)
        assert result is not None
        return result

    def _keep(self, layer: int, product: torch.Tensor) -> None:
        self._products[layer] = product
        self._products.move_to_end(layer)
        most = max(2, ROLLOUT_BYTES // max(1, product.numel() * product.element_size()))
        while len(self._products) > most:
            self._products.popitem(last=False)
