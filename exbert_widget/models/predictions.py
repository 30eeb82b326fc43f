"""Top-k predictions from a language-model head's logits."""

from __future__ import annotations

import torch

# Positions converted to float32 at a time: at 2,048 tokens and a 150 k vocabulary the whole
# [n, vocab] in float32 would be over a gigabyte.
_ROWS = 256


def top_k(logits: torch.Tensor | None, k: int, convert) -> list[list[list[tuple[str, float]]]]:
    """Per batch row and position, the ``k`` most probable tokens and their probabilities.

    ``logits`` is ``[batch, n, vocab]`` in any dtype; probabilities are the softmax in float32,
    computed from the top-k logits and the log-sum-exp, without an ``[n, vocab]`` softmax.
    ``convert`` maps a list of ids to token strings. Empty when ``logits`` is None or ``k <= 0``.
    """
    if logits is None or k <= 0:
        return []
    k = min(k, logits.shape[-1])  # asking for more than the vocabulary gives all of it
    rows = []
    for row in logits:
        values, indices = [], []
        for chunk in row.split(_ROWS):
            chunk = chunk.float()
            top, idx = chunk.topk(k, dim=-1)
            values.append((top - torch.logsumexp(chunk, dim=-1, keepdim=True)).exp())
            indices.append(idx)
        val = torch.cat(values).cpu().numpy()
        idx = torch.cat(indices).cpu().numpy()
        rows.append(
            [
                list(zip(convert(i.tolist()), v.tolist(), strict=True))
                for i, v in zip(idx, val, strict=True)
            ]
        )
    return rows
