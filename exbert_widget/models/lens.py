"""The logit lens: each layer's hidden state read through the model's own final norm and head.

Layer 0 is the embedding output, layer L the last layer's. Each state goes through the final norm
the model applies after its last layer (none for post-norm encoders such as BERT) and then through
the model's own head, run by the model's own ``forward``: the base model's (or, for encoder–decoder
models, the decoder's) output is replaced by the states, so whatever the model does after it
(BERT's and ModernBERT's MLM transform, T5's rescaling of tied embeddings, Gemma 2's final
soft-capping, BART's logit bias) is applied exactly as in a real pass. That pass runs over
``layers + 1`` placeholder tokens and its own stack's output is discarded.

Where the recorded last hidden state already has the final norm applied (GPT-2's ``ln_f``,
Llama's ``norm``, ...), it is not normed twice; this is found once per model on a probe sentence.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import pandas as pd
import torch
from torch import nn

from ..errors import InputError
from .analysis import Analysis, Encoding
from .predictions import top_k as top_k_of

if TYPE_CHECKING:
    from .analysis import Analysis
    from .engine import LanguageModel

COLUMNS = ["layer", "rank", "token", "prob"]
PROBE = "Attention is what we look at."


@dataclass
class LensHead:
    """How one model's hidden states reach its logits.

    Attributes:
        stack: the module whose output the head reads (the base model, or the decoder).
        norm: the final norm applied to that output's last hidden state, or None.
        last_normed: the recorded last hidden state already has ``norm`` applied.
    """

    stack: nn.Module
    norm: nn.Module | None
    last_normed: bool


def _norm_candidates(stack: nn.Module) -> dict[str, nn.Module]:
    """The stack's own normalisation modules (direct children named or typed as norms)."""
    return {
        name: child
        for name, child in stack.named_children()
        if "norm" in type(child).__name__.lower() or "norm" in name.lower()
    }


@torch.no_grad()
def find_head(lm: LanguageModel) -> LensHead:
    """The stack, its final norm and whether the last recorded state is normed, from one probe
    pass: the final norm is the stack's norm whose output is the stack's output.

    Raises:
        InputError: no language-model head, or a stack whose output is neither its last hidden
            state nor one of its norms' outputs (the lens cannot tell what the head reads).
    """
    if not lm.has_lm_head:
        raise InputError(
            f"{lm.name} was loaded without a language-model head, so there is nothing to read the "
            "layers through: the logit lens needs a checkpoint with its LM head."
        )
    seq2seq = lm.kind == "seq2seq"
    stack = lm.model.get_decoder() if seq2seq else lm.model.base_model
    candidates = _norm_candidates(stack)
    outputs: dict[str, torch.Tensor] = {}
    owner = threading.get_ident()

    def keep(name: str) -> Callable:
        def hook(_module, _args, out) -> None:
            if threading.get_ident() == owner:
                outputs[name] = _first(out) if name == "" else out

        return hook

    modules = {**candidates, "": stack}
    handles = [module.register_forward_hook(keep(name)) for name, module in modules.items()]
    try:
        probe = lm.analyze(PROBE, top_k=0, target=_probe_target(seq2seq))
    finally:
        for handle in handles:
            handle.remove()
    last_hidden = outputs.pop("")[0]
    recorded = probe.hidden_tensors(decoder=seq2seq)
    assert recorded is not None
    norm = next(
        (candidates[name] for name, out in outputs.items() if _same(out, last_hidden)), None
    )
    last_normed = _same(recorded[-1], last_hidden)
    if norm is None and not last_normed:
        raise InputError(
            f"The logit lens cannot tell how {lm.name}'s head reads its layers: the output of "
            f"{type(stack).__name__} is neither its last hidden state nor one of its norms' "
            "outputs."
        )
    return LensHead(stack, norm, last_normed and norm is not None)


def _probe_target(seq2seq: bool) -> str | None:
    return "We look." if seq2seq else None


def _same(a, b: torch.Tensor) -> bool:
    return (
        isinstance(a, torch.Tensor)
        and a.shape[-2:] == b.shape[-2:]
        and bool(torch.allclose(a.reshape(b.shape).float(), b.float(), rtol=1e-5, atol=1e-6))
    )


def _first(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple | list) else output["last_hidden_state"]


def _run(lm: LanguageModel, a: Analysis, width: int, **kwargs):
    """The model's forward over ``width`` tokens: the analysis's own ids where it has that
    many, else placeholders (only the head's reading of the stack's output matters then)."""
    device = lm.device
    if a.target is not None:
        source = torch.tensor([a.input_ids], device=device)
        target = a.target.input_ids
        ids = target[:width] if len(target) >= width else [target[0]] * width
        return lm.model(
            input_ids=source,
            decoder_input_ids=torch.tensor([ids], device=device),
            use_cache=False,
            return_dict=True,
            **kwargs,
        )
    ids = a.input_ids[:width] if len(a.input_ids) >= width else [a.input_ids[0]] * width
    return lm.model(
        **lm._batch_inputs([_placeholder(lm, ids)]), return_dict=True, **lm._no_cache, **kwargs
    )


def _placeholder(lm: LanguageModel, ids: list[int]) -> Encoding:
    return Encoding("", ids, [], [False] * len(ids), [(0, 0)] * len(ids))


@torch.no_grad()
def logits_of(lm: LanguageModel, head: LensHead, a: Analysis, states: torch.Tensor):
    """The model's logits ``[1, rows, vocab]`` for hidden states ``[rows, hidden]`` put in
    place of the stack's output (in this thread's pass only)."""
    owner = threading.get_ident()

    def replace(_module, _args, output):
        if threading.get_ident() != owner:
            return None
        if isinstance(output, tuple | list):
            return (states[None], *output[1:])
        output["last_hidden_state"] = states[None]
        return output

    handle = head.stack.register_forward_hook(replace)
    try:
        with lm._fast():
            out = _run(lm, a, states.shape[0])
    finally:
        handle.remove()
    return out.logits


def _is_index(position: object, count: int) -> bool:
    return (
        isinstance(position, int) and not isinstance(position, bool) and -count <= position < count
    )


def check_source(lm: LanguageModel, a: object) -> None:
    """Refuse what is not an analysis made by ``lm``: another model's hidden states through this
    model's head are numbers with no meaning (or an index error deep in the model).

    Raises:
        InputError: not an Analysis, or one made by another model.
    """
    if not isinstance(a, Analysis):
        raise InputError(
            f"The logit lens reads an analysis: pass lm.analyze(sentence), got {type(a).__name__}."
        )
    source = cast("LanguageModel | None", a._source() if a._source is not None else None)
    # the same model loaded twice (same vocabulary and shape) reads it; a model no longer loaded
    # leaves the checks of tokens and size below
    if source is not None and source is not lm and source.fingerprint != lm.fingerprint:
        other = source.name
        raise InputError(
            f"This analysis was made by {other!r}, not by {lm.name!r}: the logit lens puts a "
            "model's own hidden states through its own head. Call logit_lens on the model that "
            "made the analysis, or analyse the sentence with this one."
        )
    if source is None and not _fits(lm, a):
        raise InputError(
            f"This analysis does not fit {lm.name!r} (other tokens or hidden size): pass "
            "lm.analyze(sentence) of the same model."
        )


def _fits(lm: LanguageModel, a: Analysis) -> bool:
    """For an analysis built by hand: same tokens for the same ids, same hidden size."""
    hidden = a.hidden_tensors(decoder=a.target is not None)
    if hidden and hidden[0].shape[-1] != lm.hidden_size:
        return False
    ids = a.target.input_ids if a.target is not None else a.input_ids
    tokens = a.target.tokens if a.target is not None else a.tokens
    if any(not 0 <= i < len(lm.tokenizer) for i in ids):
        return False
    return lm.tokenizer.convert_ids_to_tokens(list(ids)) == list(tokens)


def logit_lens(
    lm: LanguageModel, head_of: Callable[[], LensHead], a: Analysis, position: int, top_k: int
) -> pd.DataFrame:
    """See :meth:`LanguageModel.logit_lens`."""
    if not lm.has_lm_head:
        find_head(lm)  # raises the no-head error
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise InputError(f"top_k must be an int of at least 1, got {top_k!r}.")
    check_source(lm, a)
    seq2seq = a.target is not None
    hidden = a.hidden_tensors(decoder=seq2seq)
    layers = lm.num_decoder_layers if seq2seq else lm.num_layers
    if hidden is None or len(hidden) != layers + 1:
        raise InputError(
            "The logit lens needs the analysis's hidden states of every layer, from "
            f"lm.analyze with this model ({lm.name}, {layers} layers)."
        )
    count = len(hidden[0])
    if not _is_index(position, count):
        what = "target token" if seq2seq else "token"
        raise InputError(f"position must be a {what} index in 0..{count - 1}, got {position!r}.")
    head = head_of()
    states = torch.stack([h[position] for h in hidden]).to(lm.dtype)
    if head.norm is not None:
        normed = head.norm(states)
        if head.last_normed:
            normed[-1] = states[-1]
        states = normed
    logits = logits_of(lm, head, a, states)
    rows = top_k_of(logits, top_k, lm.tokenizer.convert_ids_to_tokens)[0]
    return pd.DataFrame(
        [
            (layer, rank, token, float(prob))
            for layer, row in enumerate(rows)
            for rank, (token, prob) in enumerate(row)
        ],
        columns=COLUMNS,
    )
