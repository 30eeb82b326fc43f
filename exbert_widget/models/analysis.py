"""What one forward pass tells about one sentence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from .layers import LayerAttention, to_numpy


@dataclass
class Encoding:
    """A sentence as the model sees it, before the forward pass.

    ``offsets`` are character spans into ``text``; special tokens (and a prepended BOS)
    get ``(0, 0)``.
    """

    text: str
    input_ids: list[int]
    tokens: list[str]
    special: list[bool]
    offsets: list[tuple[int, int]]
    truncated: bool = False
    masked: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.input_ids)


class Analysis:
    """Everything exBERT shows about one sentence.

    ``lm.analyze`` runs the model once and keeps what is cheap: tokens, predictions, every layer's
    hidden states and contexts (``O(layers × n × hidden)``, on the model's device and in its dtype
    until read) and what each attention module was given. Attention, ``O(heads × n²)`` per layer,
    is computed one layer at a time when asked for, with :meth:`attention`.

    Attributes:
        tokens: the model's tokens, special tokens included (the mask token where masked).
        special: which tokens are special ([CLS], [SEP], <s>, <|endoftext|>, ...).
        offsets: character spans of the tokens in ``text``; ``(0, 0)`` for special tokens.
        input_ids: the ids the model was run on.
        top_k: per position, ``(token, probability)`` pairs, best first. Bidirectional models:
            what the model predicts at that position; autoregressive: what it predicts next.
            Empty lists when the model has no language-model head.
        truncated: the input was cut to the model's maximum length.
        masked: the masked token indices.
    """

    def __init__(
        self,
        text: str,
        tokens: list[str],
        special: list[bool],
        offsets: list[tuple[int, int]],
        input_ids: list[int],
        attentions: np.ndarray | None = None,
        hidden_states: np.ndarray | None = None,
        contexts: np.ndarray | None = None,
        top_k: list[list[tuple[str, float]]] | None = None,
        truncated: bool = False,
        masked: tuple[int, ...] = (),
        *,
        layers: LayerAttention | None = None,
        hidden_tensors: Sequence[torch.Tensor] | None = None,
        context_tensors: Sequence[torch.Tensor] | None = None,
    ) -> None:
        self.text = text
        self.tokens = tokens
        self.special = special
        self.offsets = offsets
        self.input_ids = input_ids
        self.top_k = top_k if top_k is not None else [[] for _ in tokens]
        self.truncated = truncated
        self.masked = masked
        self._attentions = attentions
        self._hidden_states = hidden_states
        self._contexts = contexts
        self._layers = layers
        self._hidden_tensors = list(hidden_tensors) if hidden_tensors is not None else None
        self._context_tensors = list(context_tensors) if context_tensors is not None else None

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def num_layers(self) -> int:
        """How many layers there is attention for."""
        if self._attentions is not None:
            return int(self._attentions.shape[0])
        if self._layers is not None:
            return len(self._layers)
        return 0

    # -- attention -------------------------------------------------------------------------

    def attention(self, layer: int) -> np.ndarray:
        """One layer's attention, float32 ``[heads, n, n]``; each row sums to 1.

        Computed on the first call for a layer by running that layer's attention module once
        more, eagerly, on what it was given in the pass (a fraction of the pass's cost), and kept
        for the layers asked for most recently (at least two). The array is read-only.

        Raises:
            InputError: ``layer`` is not a layer index, or this analysis was made without
                attentions (``lm.forward(..., attentions=False)``).
        """
        layer = self._check_layer(layer)
        if self._attentions is not None:
            return _read_only(self._attentions[layer])
        assert self._layers is not None
        return self._layers.numpy(layer)

    def attention_tensor(self, layer: int) -> torch.Tensor:
        """:meth:`attention` as a torch tensor on the model's device, in the model's dtype,
        without copying it to the host: for work (combining heads, thresholds) done on the device
        before anything is sent. Cached like :meth:`attention`; do not modify it.

        Raises:
            InputError: as :meth:`attention`.
        """
        layer = self._check_layer(layer)
        if self._attentions is not None:
            return torch.from_numpy(self._attentions[layer])
        assert self._layers is not None
        return self._layers.tensor(layer)

    @property
    def attentions(self) -> np.ndarray | None:
        """Every layer's attention, float32 ``[layers, heads, n, n]``; rows sum to 1.

        From ``lm.analyze`` this computes all layers on first access and keeps them: the cost of
        ``output_attentions=True``, ``layers × heads × n² × 4`` bytes (about 8.6 GB for 16 layers
        of 32 heads at 2,048 tokens). Prefer :meth:`attention` for one layer. None when made by
        ``lm.forward(..., attentions=False)``.
        """
        if self._attentions is None and self._layers is not None:
            first = to_numpy(self._layers.compute(0))
            stacked = np.empty((len(self._layers), *first.shape), dtype=np.float32)
            stacked[0] = first
            del first
            for layer in range(1, len(self._layers)):
                stacked[layer] = to_numpy(self._layers.compute(layer))
            self._attentions = stacked
        return self._attentions

    def _check_layer(self, layer: int) -> int:
        if self._attentions is None and self._layers is None:
            raise InputError(
                "This analysis was made without attentions (lm.forward(..., attentions=False)); "
                "use lm.analyze(sentence) for attention."
            )
        return _layer_index(layer, self.num_layers)

    # -- vectors ---------------------------------------------------------------------------

    @property
    def hidden_states(self) -> np.ndarray | None:
        """float32 ``[layers + 1, n, hidden]``; ``[0]`` is the embedding output. Kept from the
        pass (cheap: ``(layers + 1) × n × hidden``); converted to numpy on first access."""
        if self._hidden_states is None and self._hidden_tensors is not None:
            self._hidden_states = np.stack([to_numpy(t) for t in self._hidden_tensors])
            self._hidden_tensors = None
        return self._hidden_states

    @property
    def contexts(self) -> np.ndarray | None:
        """float32 ``[layers, n, heads * head_dim]``: per-head attention-weighted values, heads
        concatenated (the input of each layer's attention output projection; grouped-query
        models: per query head, values repeated as the model does). Kept from the pass."""
        if self._contexts is None and self._context_tensors is not None:
            self._contexts = np.stack([to_numpy(t) for t in self._context_tensors])
            self._context_tensors = None
        return self._contexts

    def context(self, layer: int) -> np.ndarray:
        """One layer's contexts, float32 ``[n, heads * head_dim]`` (see :attr:`contexts`).

        Raises:
            InputError: ``layer`` is not a layer index, or there are no contexts.
        """
        if self._contexts is not None:
            return self._contexts[_layer_index(layer, len(self._contexts))]
        if self._context_tensors is None:
            raise InputError("This analysis was made without contexts.")
        return to_numpy(self._context_tensors[_layer_index(layer, len(self._context_tensors))])

    def __repr__(self) -> str:
        if self._attentions is not None:
            att = str(tuple(self._attentions.shape))
        elif self._layers is not None:
            att = f"per layer on demand, {len(self._layers)} layers"
        else:
            att = "None"
        return (
            f"Analysis(n={len(self)}, tokens={self.tokens[:8]}{'…' if len(self) > 8 else ''}, "
            f"masked={list(self.masked)}, truncated={self.truncated}, attentions={att})"
        )


def _layer_index(layer: int, count: int) -> int:
    """``layer`` as an index in ``0..count - 1`` (negative counts from the end).

    Raises:
        InputError: not an int, or out of range.
    """
    if isinstance(layer, bool) or not isinstance(layer, int | np.integer):
        raise InputError(f"layer must be an int, got {type(layer).__name__}.")
    if not -count <= int(layer) < count:
        raise InputError(f"Layer {layer} is out of range: the model has layers 0..{count - 1}.")
    return int(layer) % count


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view
