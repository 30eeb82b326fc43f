"""Capturing exBERT's "contexts" with forward pre-hooks, for any architecture.

The input of each layer's attention output projection is the per-head attention-weighted values,
heads concatenated: exactly what exBERT's forked transformers returned as the context. A pre-hook
on that projection reads it without changing the model.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
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
    "llama": r"layers\.\d+\.self_attn\.o_proj",
    "mistral": r"layers\.\d+\.self_attn\.o_proj",
    "qwen2": r"layers\.\d+\.self_attn\.o_proj",
    "qwen3": r"layers\.\d+\.self_attn\.o_proj",
    "gemma": r"layers\.\d+\.self_attn\.o_proj",
    "phi3": r"layers\.\d+\.self_attn\.o_proj",
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


def _by_shape(model: nn.Module, context_size: int, hidden_size: int) -> list[nn.Module]:
    """Generic fallback: in each attention module, the last projection from contexts to hidden.

    Q/K/V projections go hidden -> context; when both widths are equal the output projection is
    told apart by being registered last in its attention block, as in every family we know.
    """
    found: list[nn.Module] = []
    for name, module in model.named_modules():
        if not _ATTENTION_NAME.search(name.rsplit(".", 1)[-1]):
            continue
        last = None
        for child in module.children():
            if _in_out(child) == (context_size, hidden_size):
                last = child
        if last is not None and all(last is not f for f in found):
            found.append(last)
    return found


def find_projections(
    model: nn.Module, model_type: str, context_size: int, hidden_size: int
) -> list[nn.Module]:
    """The modules whose input is each layer's context, unique and in call order.

    ALBERT shares one layer across depth, so it yields a single module called once per layer.
    """
    pattern = PROJECTION_PATTERNS.get(model_type)
    if pattern is not None:
        regex = re.compile(rf"(^|\.){pattern}$")
        modules = [m for name, m in model.named_modules() if regex.search(name)]
        if modules:
            return modules
    return _by_shape(model, context_size, hidden_size)


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
