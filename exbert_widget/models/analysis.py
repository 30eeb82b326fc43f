"""What one forward pass tells about one sentence."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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


@dataclass
class Analysis:
    """Everything exBERT shows about one sentence, as numpy arrays.

    Attributes:
        tokens: the model's tokens, special tokens included (the mask token where masked).
        special: which tokens are special ([CLS], [SEP], <s>, <|endoftext|>, ...).
        attentions: float32 ``[num_layers, num_heads, n, n]``; each row sums to 1.
        hidden_states: float32 ``[num_layers + 1, n, hidden_size]``; ``[0]`` is the
            embedding output.
        contexts: float32 ``[num_layers, n, num_heads * head_dim]``: per-head attention-weighted
            values, heads concatenated (the input of each layer's attention output projection).
        top_k: per position, ``(token, probability)`` pairs, best first. Bidirectional models:
            what the model predicts at that position; autoregressive: what it predicts next.
            Empty lists when the model has no language-model head.
        truncated: the input was cut to the model's maximum length.
    """

    text: str
    tokens: list[str]
    special: list[bool]
    offsets: list[tuple[int, int]]
    input_ids: list[int]
    attentions: np.ndarray | None
    hidden_states: np.ndarray | None
    contexts: np.ndarray | None
    top_k: list[list[tuple[str, float]]] = field(default_factory=list)
    truncated: bool = False
    masked: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.tokens)

    def __repr__(self) -> str:
        shapes = {
            name: None if arr is None else tuple(arr.shape)
            for name, arr in (
                ("attentions", self.attentions),
                ("hidden_states", self.hidden_states),
                ("contexts", self.contexts),
            )
        }
        return (
            f"Analysis(n={len(self)}, tokens={self.tokens[:8]}{'…' if len(self) > 8 else ''}, "
            f"masked={list(self.masked)}, truncated={self.truncated}, shapes={shapes})"
        )
