"""Capturing exBERT's "contexts" with forward pre-hooks, for any architecture.

The input of each layer's attention output projection is the per-head attention-weighted values,
heads concatenated: exactly what exBERT's forked transformers returned as the context. A pre-hook
on that projection reads it without changing the model.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

# model_type -> regex matching the attention output projections, in layer order.
PROJECTION_PATTERNS: dict[str, str] = {
    "bert": r"encoder\.layer\.\d+\.attention\.output\.dense",
    "roberta": r"encoder\.layer\.\d+\.attention\.output\.dense",
    "xlm-roberta": r"encoder\.layer\.\d+\.attention\.output\.dense",
    "camembert": r"encoder\.layer\.\d+\.attention\.output\.dense",
    "electra": r"encoder\.layer\.\d+\.attention\.output\.dense",
    "distilbert": r"transformer\.layer\.\d+\.attention\.out_lin",
    "albert": r"encoder\.albert_layer_groups\.\d+\.albert_layers\.\d+\.attention\.dense",
    "gpt2": r"h\.\d+\.attn\.c_proj",
    "gpt_neo": r"h\.\d+\.attn\.attention\.out_proj",
    "gptj": r"h\.\d+\.attn\.out_proj",
    "opt": r"layers\.\d+\.self_attn\.out_proj",
    # Llama-class decoders: the output projection of each layer's self-attention
    **{
        t: r"layers\.\d+\.self_attn\.o_proj"
        for t in (
            "llama",
            "mistral",
            "mixtral",
            "qwen2",
            "qwen2_moe",
            "qwen3",
            "qwen3_moe",
            "gemma",
            "gemma2",
            "gemma3_text",
            "phi3",
            "olmo",
            "olmo2",
            "starcoder2",
            "cohere",
            "granite",
            "smollm3",
        )
    },
    "phi": r"layers\.\d+\.self_attn\.dense",
    "gpt_neox": r"layers\.\d+\.attention\.dense",
    "modernbert": r"layers\.\d+\.attn\.Wo",
}

_ATTENTION_NAME = re.compile(r"(attn|attention)$", re.IGNORECASE)


def _in_out(module: nn.Module) -> tuple[int, int] | None:
    """(in_features, out_features) of a Linear or GPT-2 style Conv1D, else None."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features
    weight = getattr(module, "weight", None)
    if type(module).__name__ == "Conv1D" and weight is not None:
        return int(weight.shape[0]), int(weight.shape[1])
    return None


def _attention_blocks(model: nn.Module) -> list[nn.Module]:
    """The outermost modules named like attention blocks (attn, self_attn, attention, ...)."""
    names: list[str] = []
    blocks: list[nn.Module] = []
    for name, module in model.named_modules():
        if not name or not _ATTENTION_NAME.search(name.rsplit(".", 1)[-1]):
            continue
        if any(name.startswith(outer + ".") for outer in names):
            continue  # e.g. MPNet's attention.attn, GPT-Neo's attn.attention
        names.append(name)
        blocks.append(module)
    return blocks


def _by_shape(
    model: nn.Module,
    context_size: int,
    hidden_size: int,
    probe: Callable[[], object] | None = None,
) -> list[nn.Module]:
    """Generic fallback: in each attention block, the projection from contexts to hidden that
    runs last, at any depth (BERT-derived families nest it as ``attention.output.dense``).

    Q/K/V projections go hidden -> context too, but run on the block's input before the weights
    are applied; the output projection runs on their result, so it is the last of them called.
    ``probe`` runs one forward pass to observe that order; without one (or for a block the probe
    did not run) the last registered candidate is taken, which is the output projection in every
    family we know.
    """
    blocks = _attention_blocks(model)
    candidates = [
        [m for m in block.modules() if _in_out(m) == (context_size, hidden_size)]
        for block in blocks
    ]
    last_call: dict[int, int] = {}
    if probe is not None:
        calls: list[nn.Module] = []
        unique = {id(m): m for group in candidates for m in group}.values()
        handles = [
            m.register_forward_hook(lambda module, _args, _out: calls.append(module))
            for m in unique
        ]
        try:
            probe()
        finally:
            for handle in handles:
                handle.remove()
        last_call = {id(m): i for i, m in enumerate(calls)}
    found: list[nn.Module] = []
    for group in candidates:
        called = [m for m in group if id(m) in last_call]
        if called:
            pick = max(called, key=lambda m: last_call[id(m)])
        elif group and not last_call:
            pick = group[-1]
        else:
            continue  # no candidate, or a block the forward pass never used (cross-attention)
        if all(pick is not f for f in found):
            found.append(pick)
    return found


def find_projections(
    model: nn.Module,
    model_type: str,
    context_size: int,
    hidden_size: int,
    probe: Callable[[], object] | None = None,
) -> list[nn.Module]:
    """The modules whose input is each layer's context, unique and in layer order.

    Families in :data:`PROJECTION_PATTERNS` are looked up by name; any other is searched by
    shape (see :func:`_by_shape`, which uses ``probe``, a callable running one forward pass).
    ALBERT shares one layer across depth, so it yields a single module called once per layer.
    """
    pattern = PROJECTION_PATTERNS.get(model_type)
    if pattern is not None:
        regex = re.compile(rf"(^|\.){pattern}$")
        modules = [m for name, m in model.named_modules() if regex.search(name)]
        if modules:
            return modules
    return _by_shape(model, context_size, hidden_size, probe)


@contextmanager
def capture_contexts(projections: list[nn.Module]) -> Iterator[list[torch.Tensor]]:
    """Record the input of every call to the given projections, in call order, made from this
    thread (forward passes running at the same time in other threads are not recorded)."""
    captured: list[torch.Tensor] = []
    owner = threading.get_ident()

    def hook(_module: nn.Module, args: tuple) -> None:
        if threading.get_ident() == owner:
            captured.append(args[0].detach())

    handles = [p.register_forward_pre_hook(hook) for p in projections]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()
