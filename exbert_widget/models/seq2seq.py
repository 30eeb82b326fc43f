"""Encoder–decoder models (T5, BART, Marian): one eager pass over a source and a target.

The decoder reads the target shifted right behind ``decoder_start_token_id``, as in training; its
final end token is left out, so the last position predicts it. Without a target the model's own
greedy output is used. The pass computes every layer's weights at once (the model's
``output_attentions=True``: encoder, decoder and cross attention); sentences for these models are
short, and the three parts stay on the model's device until a layer is read. Where the model's
attention runs through exbert-widget's attention implementation (it does for T5, BART and
Marian), each call's value states are kept too, for value-weighted norms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from ..errors import InputError, ModelLoadError
from . import attention as attention_impl
from .analysis import Analysis, Stack, Target
from .predictions import top_k as top_k_of
from .stacks import StoredStack

if TYPE_CHECKING:
    from .engine import LanguageModel

PROBE_SOURCE = "Attention is what we look at."
PROBE_TARGET = "We look."
# Names of the attention output projection inside an attention module, by family.
_OUTPUT_NAMES = ("o", "out_proj", "o_proj", "dense", "output")


@dataclass
class Layout:
    """Where each part's attention modules are, in layer order, and their output projections."""

    modules: dict[str, list[nn.Module]] = field(default_factory=dict)
    projections: dict[str, list[nn.Module | None]] = field(default_factory=dict)

    def index(self) -> dict[int, tuple[str, int]]:
        """id(attention module) -> (part, layer)."""
        return {
            id(m): (part, layer)
            for part, modules in self.modules.items()
            for layer, m in enumerate(modules)
        }


def sizes(config) -> tuple[int, int]:
    """(decoder layers, decoder heads) from an encoder–decoder config (T5's or BART's names)."""
    layers = (
        getattr(config, "num_decoder_layers", None)
        or getattr(config, "decoder_layers", None)
        or config.num_hidden_layers
    )
    heads = getattr(config, "decoder_attention_heads", None) or config.num_attention_heads
    return int(layers), int(heads)


def setup(lm: LanguageModel) -> Layout:
    """Route the model's attention through :mod:`.attention` where it can (for the value states),
    find each part's attention modules from a probe pass, and check the pass.

    Raises:
        ModelLoadError: the model gives no weights, or a part's layers do not add up.
    """
    layout = Layout()
    enc = lm.encode(PROBE_SOURCE)
    ids = _decoder_ids(lm, lm.tokenizer(text_target=PROBE_TARGET)["input_ids"])
    try:
        lm.model.set_attn_implementation(attention_impl.register())
        out, values = _pass(lm, enc.input_ids, ids)
    except (ValueError, KeyError, AttributeError, RuntimeError, TypeError):
        values = []  # the family's own eager attention, without value states (no norms)
        lm.model.set_attn_implementation("eager")
    try:
        if not values:
            out, _ = _pass(lm, enc.input_ids, ids)
    except (RuntimeError, NotImplementedError) as exc:
        raise ModelLoadError(f"{lm.name} failed on a probe sentence: {exc}") from exc
    for part, weights in _weights(out).items():
        if not weights or any(w is None for w in weights):
            raise ModelLoadError(f"{lm.name} returned no {part} attention weights.")
    _find_modules(lm, layout, values, len(enc), len(ids))
    return layout


def _find_modules(lm: LanguageModel, layout: Layout, values, n_source: int, n_target: int):
    """Each recorded attention call's module, by part: the encoder's calls come first; in the
    decoder, cross-attention's values have the source's length (the probe's lengths differ)."""
    encoder = {id(m) for m in lm.model.get_encoder().modules()}
    parts: dict[str, list[nn.Module]] = {"encoder": [], "decoder": [], "cross": []}
    for module, value in values:
        if id(module) in encoder:
            parts["encoder"].append(module)
        elif value.shape[-2] == n_source and n_source != n_target:
            parts["cross"].append(module)
        else:
            parts["decoder"].append(module)
    counts = {"encoder": lm.num_layers, "decoder": lm.num_decoder_layers}
    counts["cross"] = lm.num_decoder_layers
    if values and any(len(parts[p]) != counts[p] for p in parts):
        found = {p: len(m) for p, m in parts.items()}
        raise ModelLoadError(f"{lm.name}: attention calls per part {found}, expected {counts}.")
    layout.modules = parts if values else {}
    layout.projections = {p: [_output_projection(lm, m) for m in ms] for p, ms in parts.items()}


def _output_projection(lm: LanguageModel, module: nn.Module) -> nn.Module | None:
    """The attention output projection inside an attention module: by its usual names, else
    the last linear map from the heads' width to the hidden size."""
    for name in _OUTPUT_NAMES:
        child = getattr(module, name, None)
        if isinstance(child, nn.Linear) and child.out_features == lm.hidden_size:
            return child
    candidates = [
        m for m in module.modules() if isinstance(m, nn.Linear) and m.out_features == lm.hidden_size
    ]
    return candidates[-1] if candidates else None


def _decoder_ids(lm: LanguageModel, target_ids: Sequence[int]) -> list[int]:
    """The target shifted right: ``decoder_start_token_id``, then the target without its
    final end token."""
    ids = list(target_ids)
    eos = lm.tokenizer.eos_token_id
    if ids and eos is not None and ids[-1] == eos:
        ids = ids[:-1]
    return [decoder_start(lm), *ids]


def decoder_start(lm: LanguageModel) -> int:
    """The decoder's first input id, from the model's config or generation config.

    Raises:
        ModelLoadError: neither says.
    """
    for source in (lm.model.config, getattr(lm.model, "generation_config", None)):
        start = getattr(source, "decoder_start_token_id", None)
        if start is not None:
            return int(start)
    raise ModelLoadError(f"{lm.name} has no decoder_start_token_id in its config.")


@torch.no_grad()
def _pass(lm: LanguageModel, source_ids: list[int], decoder_ids: list[int]):
    """One eager pass with every weight and hidden state; the attention calls' value states."""
    with attention_impl.eager_attention(), attention_impl.record_values() as values:
        out = lm.model(
            input_ids=torch.tensor([source_ids], device=lm.device),
            decoder_input_ids=torch.tensor([decoder_ids], device=lm.device),
            output_attentions=True,
            output_hidden_states=True,
            use_cache=False,
            return_dict=True,
        )
    return out, list(values)


def _weights(out) -> dict[str, Sequence[torch.Tensor]]:
    return {
        "encoder": out.encoder_attentions or (),
        "decoder": out.decoder_attentions or (),
        "cross": out.cross_attentions or (),
    }


def _target(lm: LanguageModel, source_ids: list[int], target: str | None, most: int) -> Target:
    """The decoder side: a given target tokenised, or the model's greedy output."""
    if target is None:
        return _generated(lm, source_ids, most)
    if not isinstance(target, str):
        raise InputError(f"target must be a str or None, got {type(target).__name__}.")
    if not target.strip():
        raise InputError("The target is empty: give the target text, or None to generate it.")
    enc = lm.tokenizer(
        text_target=target,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
        truncation=True,
        max_length=lm.max_length,
    )
    ids = _decoder_ids(lm, enc["input_ids"])
    special = [True, *(bool(s) for s in enc["special_tokens_mask"][: len(ids) - 1])]
    offsets = [
        (0, 0),
        *(
            (0, 0) if s else (int(a), int(b))
            for (a, b), s in zip(enc["offset_mapping"], special[1:], strict=False)
        ),
    ]
    tokens = lm.tokenizer.convert_ids_to_tokens(ids)
    return Target(target, tokens, special, offsets[: len(ids)], ids)


@torch.no_grad()
def _generated(lm: LanguageModel, source_ids: list[int], most: int) -> Target:
    """The model's greedy target (``model.generate(do_sample=False)``), with character offsets
    of each token in the decoded text."""
    if isinstance(most, bool) or not isinstance(most, int) or most < 1:
        raise InputError(f"max_new_tokens must be an int of at least 1, got {most!r}.")
    if most > lm.max_length:  # a given target is cut there too; past it generation runs on
        raise InputError(
            f"max_new_tokens={most} passes {lm.name}'s limit of {lm.max_length} tokens; ask "
            f"for at most {lm.max_length} (or give the target text)."
        )
    ids = torch.tensor([source_ids], device=lm.device)
    with attention_impl.eager_attention():
        out = lm.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            num_beams=1,
            max_new_tokens=most,
        )
    generated = out[0].tolist()
    body = generated[1:]
    for stop in (lm.tokenizer.pad_token_id, lm.tokenizer.eos_token_id):
        while body and stop is not None and body[-1] == stop:
            body = body[:-1]
    decoder_ids = [generated[0], *body]
    tok = lm.tokenizer
    special_ids = set(tok.all_special_ids)
    text = tok.decode(body, skip_special_tokens=True)
    offsets, special = [(0, 0)], [True]
    for i, token_id in enumerate(body):
        before = len(tok.decode(body[:i], skip_special_tokens=True))
        after = len(tok.decode(body[: i + 1], skip_special_tokens=True))
        is_special = token_id in special_ids
        special.append(is_special)
        offsets.append((0, 0) if is_special else (before, after))
    tokens = tok.convert_ids_to_tokens(decoder_ids)
    return Target(text, tokens, special, offsets, decoder_ids, generated=True)


def analyze(
    lm: LanguageModel,
    source: str,
    masked: Sequence[int],
    top_k: int,
    target: str | None,
    max_new_tokens: int,
) -> Analysis:
    """Source and target through the model once; see the module's docstring.

    Raises:
        InputError: a bad source, mask or target.
    """
    enc = lm.encode(source, masked)
    side = _target(lm, enc.input_ids, target, max_new_tokens)
    out, values = _pass(lm, enc.input_ids, side.input_ids)
    layout: Layout = lm._seq2seq
    where = layout.index()
    per_part: dict[str, list[torch.Tensor | None]] = {
        part: [None] * len(modules) for part, modules in layout.modules.items()
    }
    for module, value in values:
        if id(module) in where:
            part, layer = where[id(module)]
            per_part[part][layer] = value[0]
    parts: dict[str, Stack] = {
        part: StoredStack(
            [w[0] for w in weights],
            per_part.get(part),
            layout.projections.get(part, []),
        )
        for part, weights in _weights(out).items()
    }
    logits = getattr(out, "logits", None) if lm.has_lm_head else None
    predictions = top_k_of(logits, top_k, lm.tokenizer.convert_ids_to_tokens)
    return Analysis(
        text=enc.text,
        tokens=list(enc.tokens),
        special=list(enc.special),
        offsets=list(enc.offsets),
        input_ids=list(enc.input_ids),
        top_k=predictions[0] if predictions else None,
        truncated=enc.truncated,
        masked=enc.masked,
        hidden_tensors=[h[0] for h in out.encoder_hidden_states],
        parts=parts,
        target=side,
        target_hidden_tensors=[h[0] for h in out.decoder_hidden_states],
    )
