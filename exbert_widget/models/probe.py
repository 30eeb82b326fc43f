"""Checks run once at load, on a short probe sentence, so that problems surface there.

The model must run in its dtype on its device with finite results, give attention weights, capture
one context per layer, and be causal exactly when its kind is autoregressive. Recomputing a layer a
few heads at a time must give the same weights as all heads at once, or it is not used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import ModelLoadError
from .attention import eager_attention
from .layers import NoWeightsError

if TYPE_CHECKING:
    from .analysis import Analysis
    from .engine import LanguageModel

SENTENCE = "Attention is what we look at."


def _dtype_name(lm: LanguageModel) -> str:
    return str(lm.dtype).removeprefix("torch.")


def _cannot_run(lm: LanguageModel, detail: str) -> ModelLoadError:
    other = "float32" if lm.dtype != torch.float32 else "bfloat16"
    return ModelLoadError(
        f"{lm.name} cannot run in {_dtype_name(lm)} on {lm.device}: {detail}. Load it with "
        f"dtype='{other}'" + (" or on another device" if lm.device.type != "cpu" else "") + "."
    )


@torch.no_grad()
def check_runs(lm: LanguageModel) -> None:
    """One pass, fused as the engine runs it and eager with weights, in the model's dtype.

    Raises:
        ModelLoadError: an operation is not implemented for this dtype on this device, or the
            results overflow (float16's range is small).
    """
    inputs = lm._batch_inputs([lm.encode(SENTENCE)])
    try:
        with lm._fast():
            fused = lm.model(**inputs, output_hidden_states=True, return_dict=True)
        with eager_attention():
            eager = lm.model(**inputs, output_attentions=True, return_dict=True)
    except (RuntimeError, NotImplementedError) as exc:
        raise _cannot_run(lm, f"{type(exc).__name__}: {str(exc).splitlines()[0]}") from exc
    outputs = [*fused.hidden_states, *(a for a in (eager.attentions or ()) if a is not None)]
    if not all(bool(torch.isfinite(t).all()) for t in outputs):
        raise _cannot_run(lm, "the probe sentence gives infinite or NaN values (overflow)")


def check_capture(lm: LanguageModel) -> None:
    """Weights and one context per layer on the probe sentence; the kind matches causality.

    Raises:
        ModelLoadError: no projections, no weights, or a kind the model's attention contradicts.
    """
    name = type(lm.model).__name__
    if not lm._projections:
        raise ModelLoadError(
            f"Could not find the attention output projections of {name} (model_type "
            f"{lm.config.model_type!r}), so contexts cannot be captured. Add its module pattern "
            "to exbert_widget.models.contexts.PROJECTION_PATTERNS."
        )
    probe, weights = _probe_weights(lm)
    if any(tuple(w.shape) != (lm.num_heads, len(probe), len(probe)) for w in weights):
        raise ModelLoadError(
            f"{name} returned attention weights of shape {tuple(weights[0].shape)}, not "
            f"(heads={lm.num_heads}, n, n); it has no attention exbert-widget can show."
        )
    _check_chunks(lm, probe, weights)
    _check_kind(lm, np.stack([w.float().cpu().numpy() for w in weights]), name)


def _probe_weights(lm: LanguageModel) -> tuple[Analysis, list[torch.Tensor]]:
    from .engine import LayerCountError  # the engine imports this module

    try:
        try:
            probe = lm.analyze(SENTENCE, top_k=0)
        except LayerCountError:
            if not lm._on_demand:
                raise
            lm._on_demand = False  # attention modules called other than once a layer
            probe = lm.analyze(SENTENCE, top_k=0)
        weights = [probe.attention_tensor(layer) for layer in range(lm.num_layers)]
    except NoWeightsError as exc:
        raise ModelLoadError(
            f"{lm.name} ({type(lm.model).__name__}) computes attention only in fused kernels "
            "that return no weights, even when asked for eager attention, so there is no "
            "attention to show. Use a model whose transformers implementation runs eager "
            "attention (for a checkpoint with its own code, try trust_remote_code=False)."
        ) from exc
    except LayerCountError as exc:
        raise ModelLoadError(str(exc)) from exc
    return probe, weights


def _check_chunks(lm: LanguageModel, probe: Analysis, weights: list[torch.Tensor]) -> None:
    """Recomputing a few heads and rows at a time must equal all at once; else it is off."""
    layers = probe._layers
    if layers is None:
        return
    tolerance = 2 * torch.finfo(lm.dtype).eps
    for layer, whole in enumerate(weights):
        split = layers.compute(layer, chunk_bytes=1)  # one key/value head and one row at a time
        if not torch.allclose(split, whole, rtol=0, atol=tolerance):
            lm._chunk_bytes = 0
            return


def _check_kind(lm: LanguageModel, attentions: np.ndarray, name: str) -> None:
    """The kind, forced or detected, must match what the model does: top_k is read as next-token
    predictions only if no token sees a later one; masking only helps if they do."""
    causal = float(np.abs(np.triu(attentions, k=1)).max()) <= 1e-6
    if lm.kind == "autoregressive" and not causal:
        raise ModelLoadError(
            f"kind='autoregressive', but {name} lets tokens attend to later tokens, so its "
            "predictions would not be next-token ones. Load it from its directory or hub name "
            "with kind='autoregressive' (which sets is_decoder=True where the family allows "
            "it), pass a model built with is_decoder=True, or leave kind= out."
        )
    if lm.kind == "bidirectional" and causal:
        raise ModelLoadError(
            f"kind='bidirectional', but {name} attends only to earlier tokens (causal "
            "attention), so it cannot fill in a masked token. Use kind='autoregressive' or "
            "leave kind= out."
        )
