"""Greedy continuation of a prompt by a decoder: the text, and which tokens it added."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError
from .analysis import Analysis, Encoding


@dataclass(frozen=True)
class Generation:
    """A prompt and the model's greedy continuation of it.

    Attributes:
        prompt: the text given, unchanged.
        new_text: the continuation as text (special tokens such as an end-of-sequence left out),
            to be appended to ``prompt`` as it is: ``text == prompt + new_text``. A character
            whose bytes ``max_new_tokens`` cut is left out (its ids stay in ``new_ids``).
        prompt_ids: the ids the model continued (a BOS prepended where the engine adds one).
        new_ids: the ids it generated, in order, exactly as ``model.generate`` returned them
            (an end-of-sequence id included if it stopped on one).
    """

    prompt: str
    new_text: str
    prompt_ids: list[int]
    new_ids: list[int]

    @property
    def text(self) -> str:
        """The prompt with its continuation: the sentence to analyse next."""
        return self.prompt + self.new_text

    def generated(self, analysis: Analysis) -> list[bool]:
        """For an analysis of :attr:`text`, which tokens come from the continuation.

        Tokens are matched by character offsets, not by position: tokenising prompt and
        continuation together may merge the boundary differently than generation did. A token
        that ends after the prompt is generated; special tokens never are.
        """
        end = len(self.prompt)
        return [
            not special and stop > end
            for (_, stop), special in zip(analysis.offsets, analysis.special, strict=True)
        ]


def _continuation_text(tokenizer, prompt_ids: list[int], new_ids: list[int]) -> str:
    """The text the new ids add after the prompt's, as decoding both together writes it (some
    tokenizers drop a leading space when a piece is decoded alone), without a last character
    that ``max_new_tokens`` cut (see :func:`_whole_characters`)."""
    prefix = tokenizer.decode(prompt_ids, skip_special_tokens=True)
    whole = _whole_characters(tokenizer, prompt_ids, new_ids)
    if whole.startswith(prefix):
        return whole[len(prefix) :]
    return tokenizer.decode(new_ids, skip_special_tokens=True)


SPLIT_CHARACTER_IDS = 3  # a UTF-8 character's bytes but one: the most ids an unfinished one ends


def _whole_characters(tokenizer, prompt_ids: list[int], new_ids: list[int]) -> str:
    """Prompt and continuation decoded, without the bytes of a character the last ids only began.

    Byte-level models (GPT-2, Llama 3, Qwen) write a character outside ASCII as several byte
    tokens, so generation can stop inside one: decoding then ends in U+FFFD, and appending that
    to the sentence would make the next continuation start from a character the model never
    wrote. The unfinished character is the one whose bytes come from the last 1-3 ids alone: the
    text without them is the text without its last character. Bytes that never form a character
    (a model's invalid UTF-8) stay U+FFFD, as decoding writes them.
    """
    whole = tokenizer.decode(prompt_ids + new_ids, skip_special_tokens=True)
    if not whole.endswith("\ufffd"):
        return whole
    for cut in range(1, min(SPLIT_CHARACTER_IDS, len(new_ids)) + 1):
        shorter = tokenizer.decode(prompt_ids + new_ids[:-cut], skip_special_tokens=True)
        if shorter == whole[:-1]:
            return shorter
    return whole


@torch.no_grad()
def greedy(
    model, tokenizer, encoding: Encoding, max_new_tokens: int, device: torch.device
) -> Generation:
    """``model.generate(do_sample=False)`` on the encoding's ids; the model's own generation
    config applies otherwise (as it would to a user's call)."""
    ids = torch.tensor([encoding.input_ids], device=device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out = model.generate(
        input_ids=ids,
        attention_mask=torch.ones_like(ids),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        num_beams=1,
        pad_token_id=pad,
    )
    new_ids = out[0, ids.shape[1] :].tolist()
    prompt_ids = list(encoding.input_ids)
    new_text = _continuation_text(tokenizer, prompt_ids, new_ids)
    return Generation(encoding.text, new_text, prompt_ids, new_ids)


def check_request(name: str, kind: str, has_lm_head: bool, max_new_tokens: int) -> None:
    """Refuse what cannot be generated, saying what to do instead.

    Raises:
        InputError: a masked LM, a model without its LM head, or a bad ``max_new_tokens``.
    """
    if kind == "seq2seq":
        raise InputError(
            f"{name} is an encoder–decoder model: lm.analyze(source) generates its target "
            "greedily (or give target=...); generate() continues a decoder's prompt."
        )
    if kind != "autoregressive":
        raise InputError(
            f"{name} is a masked (bidirectional) language model: it fills in masked tokens and "
            "has no next-token continuation to generate. Mask a token to see its predictions, or "
            "load a decoder (e.g. 'gpt2' or 'Qwen/Qwen2.5-0.5B') to generate."
        )
    if not has_lm_head:
        raise InputError(
            f"{name} was loaded without its language-model head, so it cannot predict tokens to "
            "generate. Load a checkpoint that includes the head."
        )
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
        raise InputError(f"max_new_tokens must be an int, got {type(max_new_tokens).__name__}.")
    if max_new_tokens < 1:
        raise InputError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
