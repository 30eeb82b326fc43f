"""Loading any Hugging Face model with the right head, eager attention and a detected kind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, cast

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from ..errors import ModelLoadError
from .hub import hub_options
from .scopes import transformers_verbosity

Kind = Literal["bidirectional", "autoregressive", "seq2seq"]
KINDS: tuple[str, ...] = ("bidirectional", "autoregressive", "seq2seq")


def _quiet_transformers():
    """Silence load reports: a missing LM head is expected, and we handle it ourselves."""
    return transformers_verbosity(transformers.logging.ERROR)


DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


def pick_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """The torch dtype asked for, or None for the default.

    Raises:
        ModelLoadError: a dtype other than float32, bfloat16 or float16.
    """
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        if dtype in DTYPES.values():
            return dtype
    elif isinstance(dtype, str) and dtype.removeprefix("torch.") in DTYPES:
        return DTYPES[dtype.removeprefix("torch.")]
    raise ModelLoadError(
        f"dtype={dtype!r} is not one exbert-widget runs models in; use one of "
        f"{', '.join(repr(d) for d in DTYPES)} (or the torch dtypes): float32 on CPU, "
        "bfloat16 or float16 on a GPU."
    )


def detect_kind(config: PretrainedConfig) -> Kind:
    """Encoder–decoder models are seq2seq; encoders with a masked-LM head family are
    bidirectional; decoders are autoregressive."""
    if getattr(config, "is_encoder_decoder", False):
        return "seq2seq"
    if getattr(config, "is_decoder", False):
        return "autoregressive"
    if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "bidirectional"
    if config.model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "autoregressive"
    return "bidirectional"


def resolve_kind(config: PretrainedConfig, kind: Kind | None) -> Kind:
    """The kind to explore a checkpoint as; a forced kind adapts ``config`` or is refused.

    ``"autoregressive"`` on an encoder whose family has a causal-LM class (BERT, RoBERTa, ELECTRA,
    ...) sets ``is_decoder=True``: attention becomes causal and the causal-LM class is loaded, its
    head reading the same weights as next-token predictions. ``"bidirectional"`` on such an
    encoder saved as a decoder clears ``is_decoder``. Families that cannot run the other way
    (DistilBERT or ALBERT as decoders; GPT-2 or Llama as masked LMs) raise ModelLoadError.
    """
    detected = detect_kind(config)
    if kind is None or kind == detected:
        return detected
    model_type = config.model_type
    if "seq2seq" in (kind, detected):
        raise ModelLoadError(
            f"kind={kind!r} cannot be forced on {model_type!r}, which is "
            f"{'an encoder–decoder' if detected == 'seq2seq' else 'not an encoder–decoder'} "
            "model. Leave kind= out."
        )
    if kind == "autoregressive":
        if (
            model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES
            and model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        ):
            raise ModelLoadError(
                f"kind='autoregressive' cannot be forced on {model_type!r}: transformers has no "
                "causal-LM class for it, so its attention cannot be made causal. Leave kind= out "
                "to explore it as the bidirectional encoder it is."
            )
        # Unknown families load bare; the engine's probe pass then checks attention is causal.
        config.is_decoder = True
    else:
        if model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
            raise ModelLoadError(
                f"kind='bidirectional' cannot be forced on {model_type!r}: it is a decoder whose "
                "attention is causal by construction, with no masked-LM head to predict a masked "
                "token. Leave kind= out to explore it as autoregressive (top_k = next token)."
            )
        config.is_decoder = False
    return kind


# transformers renamed from_pretrained's torch_dtype= to dtype= in 4.56
_DTYPE_KWARG = (
    "dtype"
    if tuple(int(p) for p in transformers.__version__.split(".")[:2]) >= (4, 56)
    else "torch_dtype"
)


def _head_missing(model: PreTrainedModel, missing_keys: set[str] | list[str]) -> bool:
    """True when weights outside the base model (i.e. the LM head) were not in the checkpoint."""
    prefix = model.base_model_prefix
    return any(not key.startswith(prefix + ".") and key != prefix for key in missing_keys)


def _describe_source(name_or_path: str) -> str:
    if Path(name_or_path).exists():
        return f"the local directory {name_or_path!r}"
    return f"{name_or_path!r} (not a local directory, so tried as a Hugging Face hub name)"


def _check_tokenizer(
    tokenizer, config: PretrainedConfig, name_or_path: str, source: str, given: bool
) -> None:
    """Refuse a tokenizer that cannot be the model's own.

    transformers 5 builds a near-empty tokenizer (BERT: 5 tokens) from a directory that holds a
    config and weights but no tokenizer files, and then every word becomes [UNK], silently.
    """
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    vocab = getattr(text_config, "vocab_size", None) or 0
    size = len(tokenizer)
    wanted = [str(f) for f in getattr(tokenizer, "vocab_files_names", {}).values()]
    directory = Path(name_or_path)
    files_missing = (
        not given
        and directory.is_dir()
        and bool(wanted)  # byte-level tokenizers need no files
        and not any((directory / f).exists() for f in wanted)
    )
    too_small = size < vocab / 2  # models pad their embeddings a little, never by half
    if not (files_missing or too_small):
        return
    what = (
        f"no tokenizer files there (looked for {', '.join(sorted(set(wanted)))})"
        if files_missing
        else f"a tokenizer of {size} tokens for a model whose embeddings have {vocab} rows"
    )
    if given:
        raise ModelLoadError(
            f"The tokenizer= given for {source} has {size} tokens, but the model's embedding "
            f"matrix has {vocab} rows: it is not this model's tokenizer. Pass the tokenizer the "
            "model was trained with."
        )
    raise ModelLoadError(
        f"Found a {config.model_type!r} model in {source} but {what}, so every word would be "
        "an unknown token. Save the tokenizer next to the model "
        "(tokenizer.save_pretrained(dir)) or pass it: load_model(path, "
        "tokenizer=AutoTokenizer.from_pretrained('<the name the model came from>'))."
    )


def load_pretrained(
    name_or_path: str,
    kind: Kind | None,
    trust_remote_code: bool,
    tokenizer=None,
    dtype: torch.dtype = torch.float32,
) -> tuple[PreTrainedModel, object, Kind, bool]:
    """Load tokenizer and model from a hub name or directory, the model in ``dtype``.

    Returns (model, tokenizer, kind, has_lm_head). The LM-head class is chosen from the config
    (and a forced ``kind``, see :func:`resolve_kind`); when the checkpoint has no head weights
    (e.g. sentence-transformers encoders) the bare model is used instead, so predictions are
    simply absent rather than random. A ``tokenizer`` given is used instead of the saved one.
    """
    name_or_path = os.fspath(name_or_path)
    source = _describe_source(name_or_path)
    hub = hub_options(name_or_path)
    try:
        config = AutoConfig.from_pretrained(
            name_or_path, trust_remote_code=trust_remote_code, **hub
        )
    except (OSError, ValueError) as exc:
        raise ModelLoadError(
            f"Could not load a model config from {source}: {exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}\n"
            "Pass a directory holding config.json and the weights, a hub name that is cached or "
            "reachable (e.g. 'bert-base-cased', 'gpt2'), or load_model(model=..., tokenizer=...)."
        ) from exc
    detected = resolve_kind(config, kind)
    given = tokenizer is not None
    if not given:
        try:
            tokenizer = AutoTokenizer.from_pretrained(
                name_or_path, trust_remote_code=trust_remote_code, **hub
            )
        except (OSError, ValueError, TypeError) as exc:
            raise ModelLoadError(
                f"Found a {config.model_type!r} config in {source} but no usable tokenizer: "
                f"{exc}. Save the tokenizer next to the model (tokenizer.save_pretrained(dir)) or "
                "pass load_model(path, tokenizer=...)."
            ) from exc
    _check_tokenizer(tokenizer, config, name_or_path, source, given)

    head_class = {
        "bidirectional": AutoModelForMaskedLM,
        "autoregressive": AutoModelForCausalLM,
        "seq2seq": AutoModelForSeq2SeqLM,
    }[detected]
    common = {
        **hub,
        "config": config,  # carries is_decoder where a kind was forced
        "attn_implementation": "eager",
        "trust_remote_code": trust_remote_code,
        # float32 unless asked, whatever the checkpoint was saved in (transformers 5 would keep a
        # float16 or bfloat16 checkpoint as it is): exBERT's numbers; half precision is slow on CPU
        _DTYPE_KWARG: dtype,
    }
    try:
        with _quiet_transformers():
            loaded = head_class.from_pretrained(name_or_path, output_loading_info=True, **common)
        model, info = cast(tuple[PreTrainedModel, dict], loaded)  # typed as the model alone
        has_head = not _head_missing(model, info.get("missing_keys", ()))
        if not has_head:
            model = cast(PreTrainedModel, model.base_model)
    except ValueError:
        # No LM-head class for this architecture: the bare model still has attention to show.
        try:
            with _quiet_transformers():
                model = AutoModel.from_pretrained(name_or_path, **common)
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"Could not load the weights from {source}: {exc}") from exc
        has_head = False
    except OSError as exc:
        raise ModelLoadError(f"Could not load the weights from {source}: {exc}") from exc
    return model, tokenizer, detected, has_head


def prepare_given(model: PreTrainedModel, kind: Kind | None) -> tuple[PreTrainedModel, Kind, bool]:
    """Adopt an already-loaded model: switch it to eager attention and detect kind and head."""
    if not isinstance(model, PreTrainedModel):
        raise ModelLoadError(
            f"model= must be a transformers PreTrainedModel, got {type(model).__name__}."
        )
    if hasattr(model, "set_attn_implementation"):
        try:
            model.set_attn_implementation("eager")
        except (ValueError, AttributeError) as exc:
            raise ModelLoadError(
                f"{type(model).__name__} cannot run eager attention, so it has no attention "
                f"weights to show: {exc}"
            ) from exc
    else:  # pragma: no cover - older transformers
        model.config._attn_implementation = "eager"
    detected = detect_kind(model.config)
    if kind is not None and "seq2seq" in (kind, detected):
        detected = resolve_kind(model.config, kind)  # refuses forcing a kind across the line
    elif kind is not None:
        detected = kind
    has_head = model.get_output_embeddings() is not None
    return model, detected, has_head


def pick_device(device: str | torch.device | None) -> torch.device:
    """CPU unless asked; a clear error for CUDA requested where none is available."""
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelLoadError(
            f"device={device!r} is not a torch device: use 'cpu' or 'cuda' (or 'cuda:1', ...)."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device={device!r} was asked for, but torch sees no CUDA device.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ModelLoadError(
            f"device={device!r} was asked for, but torch sees {torch.cuda.device_count()} CUDA "
            f"device(s): use 'cuda:0' to 'cuda:{torch.cuda.device_count() - 1}'."
        )
    return dev
