"""Sentence pairs: which tokenizers join two texts, and which segment each token is in."""

from __future__ import annotations

from ..errors import InputError


def has_pair_convention(tokenizer) -> bool:
    """Whether the tokenizer marks where a second text starts: its pair template adds special
    tokens beyond a single text's ([SEP] for BERT, ``</s></s>`` for RoBERTa, a second BOS for
    Llama 3). GPT-2's and Qwen's add none, so the two texts would simply run together."""
    try:
        pair = tokenizer.num_special_tokens_to_add(pair=True)
        single = tokenizer.num_special_tokens_to_add(pair=False)
    except (AttributeError, NotImplementedError, TypeError):
        return False
    return pair > single


def check_pair(name: str, kind: str, tokenizer, sentence_b: object) -> str:
    """``sentence_b`` if this model can take it as the second text of a pair.

    Raises:
        InputError: not a str, empty, an encoder–decoder model (whose second text is the
            target), or a tokenizer with no pair convention (the message says how to join them).
    """
    if not isinstance(sentence_b, str):
        raise InputError(f"sentence_b must be a str or None, got {type(sentence_b).__name__}.")
    if not sentence_b.strip():
        raise InputError("sentence_b is empty: give the second sentence, or None for no pair.")
    if kind == "seq2seq":
        raise InputError(
            f"{name} is an encoder–decoder model: give the second text as the target, "
            "lm.analyze(source, target=...), not as sentence_b."
        )
    if not has_pair_convention(tokenizer):
        raise InputError(
            f"The tokenizer of {name} has no convention for a pair of sentences (it adds no "
            "separator between them), so the model would read them as one run-on text. Join "
            "them yourself, e.g. lm.analyze(text + ' ' + text_b), and leave sentence_b out."
        )
    return sentence_b


def segments_of(sequence_ids: list[int | None], token_types: list[int] | None) -> list[int]:
    """0/1 per token: which text of the pair it belongs to.

    The tokenizer's token types where it gives any 1 (BERT, Llama 3's second BOS); otherwise
    (RoBERTa's are all 0) from its sequence ids, a special token taking the segment of the text
    before it, so that ``<s> A </s></s> B </s>`` reads 0 … 0 0 1 … 1 as BERT's types do.
    """
    if token_types is not None and any(token_types):
        return [int(t) for t in token_types]
    segments, current = [], 0
    for sid in sequence_ids:
        if sid is not None:
            current = int(sid)
        segments.append(current)
    return segments
