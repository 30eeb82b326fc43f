"""The inference engine: one forward pass per sentence; attention one layer at a time."""

from __future__ import annotations

import hashlib
import inspect
import json
import threading
import warnings
import weakref
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from functools import cached_property

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedModel

from ..errors import InputError
from . import attention as attention_impl
from . import lens, probe, seq2seq
from .analysis import Analysis, Encoding
from .contexts import capture_contexts, find_projections
from .demo import DEMO_LABEL, is_demo_name, load_demo_parts
from .generation import Generation, check_request, greedy
from .layers import (
    CHUNK_BYTES,
    LayerAttention,
    NoWeightsError,
    entry_modules,
    record_attention_calls,
)
from .loading import (
    KINDS,
    Kind,
    ModelLoadError,
    load_pretrained,
    pick_device,
    pick_dtype,
    prepare_given,
)
from .pairs import check_pair, segments_of
from .predictions import top_k as top_k_of
from .scopes import torch_threads

# RoBERTa-family position ids start after the padding index, so fewer positions are usable.
_POSITION_OFFSET_TYPES = {"roberta", "xlm-roberta", "camembert", "data2vec-text", "xlm-roberta-xl"}
# A tokenizer's model_max_length at or above this is transformers' "no limit" sentinel (1e30).
_NO_LIMIT = 10**9
_PROBE = probe.SENTENCE
# attention_batches: weights of one batch, all layers (float32), at most this many bytes.
BATCH_ATTENTION_BYTES = 256 * 2**20


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the wanted layer has run."""


class LayerCountError(RuntimeError):
    """A pass recorded a different number of attention calls or contexts than there are layers."""


class LanguageModel:
    """A Hugging Face model and tokenizer, ready for exBERT's analyses.

    Build it with :func:`load_model`. ``kind`` is ``"bidirectional"`` (masked LMs: BERT, RoBERTa,
    ModernBERT, ...) or ``"autoregressive"`` (GPT-2, Llama, Qwen, ...). ``dtype`` is the precision
    the model runs in; results reach numpy as float32 whatever it is.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer,
        *,
        kind: Kind,
        has_lm_head: bool,
        name: str,
        device: torch.device,
    ) -> None:
        # transformers types `to` as its own wrapper, which rejects a device argument
        self.model = model.to(device).eval()  # type: ignore[arg-type]
        self.tokenizer = tokenizer
        self.kind: Kind = kind
        self.has_lm_head = has_lm_head
        self.name = name
        self.device = device
        self.dtype: torch.dtype = next(model.parameters()).dtype
        config = model.config
        text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
        self.config = text_config
        try:
            self.num_layers: int = int(text_config.num_hidden_layers)
            self.num_heads: int = int(text_config.num_attention_heads)
            self.hidden_size: int = int(text_config.hidden_size)
        except AttributeError as exc:
            raise ModelLoadError(
                f"{type(model).__name__} ({text_config.model_type!r}) has no attention heads "
                f"to explore ({exc}). exbert-widget needs a transformer with self-attention."
            ) from exc
        head_dim = (
            getattr(text_config, "head_dim", None)
            or getattr(text_config, "d_kv", None)  # T5
            or self.hidden_size // self.num_heads
        )
        self.head_dim: int = int(head_dim)
        self.context_size: int = self.num_heads * self.head_dim
        self.max_length: int = self._max_length()
        self._bos_id = self._missing_bos_id()
        self._takes_token_types = "token_type_ids" in inspect.signature(model.forward).parameters
        self._chunk_bytes = CHUNK_BYTES
        if kind == "seq2seq":
            self.num_decoder_layers, self.num_decoder_heads = seq2seq.sizes(text_config)
            self._on_demand = self._fused = False
            self._projections: list[torch.nn.Module] = []
            self._seq2seq = seq2seq.setup(self)
            return
        self.num_decoder_layers = self.num_decoder_heads = 0
        # One layer at a time where the attention modules are known; fused where they allow it.
        self._on_demand = bool(self._attention_modules[0])
        self._fused = self._use_fused_attention()
        probe.check_runs(self)
        self._projections = find_projections(
            self.model,
            text_config.model_type,
            self.context_size,
            self.hidden_size,
            probe=self._probe_pass,
        )
        probe.check_capture(self)

    def __repr__(self) -> str:
        dtype = str(self.dtype).removeprefix("torch.")
        return (
            f"LanguageModel({self.name!r}, kind={self.kind!r}, layers={self.num_layers}, "
            f"heads={self.num_heads}, hidden={self.hidden_size}, lm_head={self.has_lm_head}, "
            f"dtype={dtype}, device={str(self.device)!r})"
        )

    # -- setup ---------------------------------------------------------------------------------

    def _max_length(self) -> int:
        """The longest input the model takes: the smaller of its tokenizer's limit (unless that
        is transformers' no-limit sentinel) and its position table (RoBERTa-style offsets off)."""
        candidates = []
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if tok_max and tok_max < _NO_LIMIT:
            candidates.append(int(tok_max))
        for attr in ("max_position_embeddings", "n_positions"):
            value = getattr(self.config, attr, None)
            if value:
                if self.config.model_type in _POSITION_OFFSET_TYPES:
                    value -= (getattr(self.config, "pad_token_id", 1) or 1) + 1
                candidates.append(int(value))
                break
        return min(candidates) if candidates else 512

    def _missing_bos_id(self) -> int | None:
        """Token id to prepend for autoregressive models whose tokenizer adds no BOS (as exBERT)."""
        if self.kind != "autoregressive":
            return None
        tok = self.tokenizer
        bos = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        if bos is None:
            return None
        ids = tok("a", add_special_tokens=True)["input_ids"]
        return None if ids and ids[0] == bos else bos

    def _use_fused_attention(self) -> bool:
        """Switch the model to :mod:`.attention`'s implementation where it supports it: eager as
        before by default (its weights recomputed a few heads and rows at a time), SDPA inside
        the engine's own passes where the model runs SDPA at all. True when passes are fused."""
        modules, _ = self._attention_modules
        if not attention_impl.supports(self.model, modules):
            return False
        name = attention_impl.register()
        try:
            self.model.set_attn_implementation(name)
        except (ValueError, KeyError, AttributeError):
            return False
        if self.model.config._attn_implementation != name:
            return False
        return attention_impl.supports_fused(self.model)

    @torch.no_grad()
    def _probe_pass(self) -> None:
        """One forward pass on a short sentence, for setup code that watches modules run."""
        with attention_impl.eager_attention():
            self.model(**self._batch_inputs([self.encode(_PROBE)]), output_attentions=True)

    @cached_property
    def fingerprint(self) -> str:
        """A hash of the tokenizer's vocabulary and special tokens plus the model's shape.

        A corpus stores it, so that it is never searched with vectors from another model.
        """
        tok = self.tokenizer
        payload = {
            "vocab": sorted(tok.get_vocab().items()),
            "special": sorted(str(t) for t in tok.all_special_tokens),
            "model_type": self.config.model_type,
            "layers": self.num_layers,
            "heads": self.num_heads,
            "hidden": self.hidden_size,
        }
        blob = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    @cached_property
    def weights_digest(self) -> str:
        """A digest of the model's weights (names, shapes and up to 4,096 evenly spaced values
        of each parameter): another checkpoint of the same architecture, which
        :attr:`fingerprint` cannot tell apart, gets another digest. For caches of results."""
        digest = hashlib.sha256()
        with torch.no_grad():
            for name, parameter in self.model.named_parameters():
                flat = parameter.detach().reshape(-1)
                sample = flat[:: max(1, flat.numel() // 4096)][:4096]
                digest.update(f"{name}{tuple(parameter.shape)}".encode())
                digest.update(sample.float().cpu().numpy().tobytes())
        return digest.hexdigest()

    # -- encoding ------------------------------------------------------------------------------

    def encode(
        self, text: str, masked: Sequence[int] = (), sentence_b: str | None = None
    ) -> Encoding:
        """Tokenise one sentence, or a pair: ids, tokens, special flags, character offsets and
        each token's segment.

        Input longer than ``max_length`` is truncated (``truncated`` is set and a warning issued;
        a pair loses tokens from the longer text first). Masked positions are replaced by the
        tokenizer's mask token.

        Raises:
            InputError: not a str, empty, only special tokens, a mask the model cannot take, or a
                pair the model's tokenizer has no convention for (see :meth:`analyze`).
        """
        return self._encode(text, masked, warn=True, text_b=sentence_b)

    def _encode(
        self, text: str, masked: Sequence[int], warn: bool, text_b: str | None = None
    ) -> Encoding:
        if not isinstance(text, str):
            raise InputError(f"A sentence must be a str, got {type(text).__name__}.")
        if not text.strip():
            raise InputError("The sentence is empty: type some text to analyse.")
        _check_encodable(text)
        if text_b is not None:
            check_pair(self.name, self.kind, self.tokenizer, text_b)
            _check_encodable(text_b)
        enc, truncated = self._tokenize(text, warn, text_b)
        ids = list(enc["input_ids"])
        special = [bool(s) for s in enc["special_tokens_mask"]]
        offsets = [
            (int(a), int(b)) if not s else (0, 0)
            for (a, b), s in zip(enc["offset_mapping"], special, strict=True)
        ]
        types = self._token_types(enc)
        raw_types = list(enc["token_type_ids"]) if "token_type_ids" in enc else None
        segments = segments_of(enc.sequence_ids(), raw_types) if text_b else [0] * len(ids)
        if self._bos_id is not None:
            ids.insert(0, self._bos_id)
            special.insert(0, True)
            offsets.insert(0, (0, 0))
            segments.insert(0, 0)
            if types is not None:
                types.insert(0, 0)
        if not any(not s for s in special):
            raise InputError(f"The sentence {text!r} gives no tokens besides special ones.")
        in_b = [g and not s for g, s in zip(segments, special, strict=True)]
        if text_b is not None and not any(in_b):
            raise InputError(f"sentence_b {text_b!r} gives no tokens besides special ones.")
        masked = self._check_mask(masked, special)
        for i in masked:
            ids[i] = self.tokenizer.mask_token_id
        tokens = self.tokenizer.convert_ids_to_tokens(ids)
        return Encoding(
            text, ids, tokens, special, offsets, truncated, masked, text_b, segments, types
        )

    def _token_types(self, enc) -> list[int] | None:
        """The tokenizer's token types, where the model takes them (BERT-style); else None.

        Raises:
            InputError: types past the model's token-type table (a pair for a model trained
                with one type only).
        """
        if not self._takes_token_types or "token_type_ids" not in enc:
            return None
        if "token_type_ids" not in getattr(self.tokenizer, "model_input_names", ()):
            return None
        types = [int(t) for t in enc["token_type_ids"]]
        table = getattr(self.config, "type_vocab_size", None)
        if table is not None and types and max(types) >= max(table, 1):  # 0: types unused
            raise InputError(
                f"{self.name} has {table} token type(s), so it cannot mark a second sentence; "
                "join the two texts into one sentence instead."
            )
        return types

    def _tokenize(self, text: str, warn: bool, text_b: str | None = None):
        """The tokenizer's encoding of ``text`` (and ``text_b``), cut to ``max_length`` (with a
        warning; a pair is cut longest text first)."""
        limit = self.max_length - (1 if self._bos_id is not None else 0)
        options = {
            "add_special_tokens": True,
            "return_offsets_mapping": True,
            "return_special_tokens_mask": True,
            "return_token_type_ids": True,
        }
        # verbose=False: transformers' own too-long log; ours below says what was done
        enc = self.tokenizer(text, text_b, verbose=False, **options)
        count = len(enc["input_ids"]) + (1 if self._bos_id is not None else 0)
        if count <= self.max_length:
            return enc, False
        if warn:
            self._warn_truncated(count)
        enc = self.tokenizer(text, text_b, truncation="longest_first", max_length=limit, **options)
        return enc, True

    def _warn_truncated(self, count: int) -> None:
        warnings.warn(
            f"The sentence has {count} tokens, more than {self.name} accepts ({self.max_length}, "
            f"from its tokenizer and position table); it was truncated to the first "
            f"{self.max_length}. Analyse a shorter text, or load a model with a longer context.",
            stacklevel=4,
        )

    def _check_mask(self, masked: Sequence[int], special: list[bool]) -> tuple[int, ...]:
        masked = tuple(sorted(set(_mask_indices(masked))))
        if not masked:
            return ()
        if self.kind == "autoregressive":
            raise InputError(
                "Masking is for bidirectional (masked-LM) models; an autoregressive model "
                "predicts the next token and has nothing to fill in."
            )
        if self.tokenizer.mask_token_id is None:
            raise InputError(f"The tokenizer of {self.name} has no mask token.")
        n = len(special)
        for i in masked:
            if not 0 <= i < n:
                raise InputError(
                    f"Mask index {i} is out of range: the sentence has tokens 0..{n - 1}."
                )
            if special[i]:
                raise InputError(f"Token {i} is a special token; only real tokens can be masked.")
        return masked

    # -- the forward pass ----------------------------------------------------------------------

    def _batch_inputs(self, encodings: Sequence[Encoding]) -> dict[str, torch.Tensor]:
        tok = self.tokenizer
        pad = tok.pad_token_id
        if pad is None:
            pad = tok.eos_token_id if tok.eos_token_id is not None else 0
        width = max(len(e) for e in encodings)
        ids = torch.full((len(encodings), width), pad, dtype=torch.long)
        mask = torch.zeros((len(encodings), width), dtype=torch.long)
        for row, enc in enumerate(encodings):
            ids[row, : len(enc)] = torch.tensor(enc.input_ids)
            mask[row, : len(enc)] = 1
        inputs = {"input_ids": ids}
        if not bool(mask.all()):  # without padding the mask is all ones: let the model skip it
            inputs["attention_mask"] = mask
        if self._takes_token_types and "token_type_ids" in getattr(tok, "model_input_names", ()):
            types = torch.zeros_like(ids)
            for row, enc in enumerate(encodings):
                if enc.token_type_ids is not None:
                    types[row, : len(enc)] = torch.tensor(enc.token_type_ids)
            inputs["token_type_ids"] = types
        return {k: v.to(self.device) for k, v in inputs.items()}

    def _fast(self):
        """The context a pass that needs no attention weights runs in: fused where possible."""
        return attention_impl.fused_attention() if self._fused else nullcontext()

    @property
    def _no_cache(self) -> dict[str, bool]:
        """``use_cache=False`` for decoders: one pass over the whole sentence keeps no K/V."""
        return {"use_cache": False} if getattr(self.config, "use_cache", None) else {}

    @torch.no_grad()
    def forward(
        self,
        encodings: Sequence[Encoding],
        *,
        attentions: bool = True,
        hidden_states: bool = True,
        contexts: bool = True,
        top_k: int = 0,
    ) -> list[Analysis]:
        """One padded, batched forward pass of every layer; each result is sliced to its length.

        With ``attentions=True`` every layer's weights are computed and kept (the model's
        ``output_attentions=True``): fine for short sentences and small batches. Without, the
        pass runs fused where the model allows and keeps no weights.

        Raises:
            InputError: ``encodings`` are not :meth:`encode` results (sentences, say).
            NoWeightsError: attentions were asked for and the model gives none.
            LayerCountError: contexts were asked for and the projections do not fit the model.
        """
        if not encodings:
            return []
        wrong = [e for e in encodings if not isinstance(e, Encoding)]  # a str: its characters
        if wrong:
            raise InputError(
                "forward takes encodings, lm.forward([lm.encode(sentence), ...]), got "
                f"{type(wrong[0]).__name__}."
            )
        self._check_one_stack("forward")
        inputs = self._batch_inputs(encodings)
        # Eager attention also needs output_attentions for the probe of a non-interface model.
        weights = attentions or not hidden_states
        mode = attention_impl.eager_attention() if weights else self._fast()
        with (
            mode,
            capture_contexts(self._projections if contexts else []) as captured,
            attention_impl.record_values() as values,
        ):
            out = self.model(
                **inputs,
                output_attentions=weights,
                output_hidden_states=hidden_states,
                return_dict=True,
            )
        if contexts and len(captured) != self.num_layers:
            raise LayerCountError(self._count_message(len(captured), "contexts"))
        att = _stack_weights(out.attentions, self.name) if weights else None
        # value states for norms, where every layer's attention passed through the dispatcher
        kept_values = [v for _, v in values] if att is not None and len(values) == len(att) else []
        hid = _stack(out.hidden_states) if hidden_states else None
        ctx = _stack(captured) if contexts else None
        predictions = top_k_of(
            getattr(out, "logits", None) if self.has_lm_head else None,
            top_k,
            self.tokenizer.convert_ids_to_tokens,
        )
        results = []
        for row, enc in enumerate(encodings):
            n = len(enc)
            results.append(
                self._own(
                    Analysis(
                        text=enc.text,
                        tokens=list(enc.tokens),
                        special=list(enc.special),
                        offsets=list(enc.offsets),
                        input_ids=list(enc.input_ids),
                        attentions=None if att is None else _own(att[:, row, :, :n, :n]),
                        hidden_states=None if hid is None else _own(hid[:, row, :n]),
                        contexts=None if ctx is None else _own(ctx[:, row, :n]),
                        top_k=predictions[row][:n] if predictions else None,
                        truncated=enc.truncated,
                        masked=enc.masked,
                        value_tensors=[v[row, :, :n] for v in kept_values] or None,
                        projections=self._projections,
                        segments=enc.segments,
                        sentence_b=enc.text_b,
                    )
                )
            )
        return results

    @torch.no_grad()
    def logits(self, analysis: Analysis) -> torch.Tensor:
        """float32 ``[n, vocabulary]``: the language-model head's logits at every token of
        ``analysis``, from the inputs its own pass was given (its ids, a pair's token types).

        Raises:
            InputError: the model has no language-model head, or is an encoder–decoder model
                (whose logits are per target token: see ``analysis.target``).
        """
        if not self.has_lm_head:
            raise InputError(f"{self.name} has no language-model head: it gives no logits.")
        self._check_one_stack("logits")
        pair = analysis.sentence_b is not None
        enc = Encoding(
            text=analysis.text,
            input_ids=list(analysis.input_ids),
            tokens=list(analysis.tokens),
            special=list(analysis.special),
            offsets=list(analysis.offsets),
            masked=analysis.masked,
            text_b=analysis.sentence_b,
            segments=list(analysis.segments),
            # BERT-style token types are the segments (see Analysis.segments)
            token_type_ids=list(analysis.segments) if pair else None,
        )
        with self._fast():
            out = self.model(**self._batch_inputs([enc]), return_dict=True, **self._no_cache)
        return out.logits[0].float()

    def _check_one_stack(self, what: str) -> None:
        """Refuse work done over one stack of layers for an encoder–decoder model.

        Raises:
            InputError: this is an encoder–decoder model.
        """
        if self.kind == "seq2seq":
            raise InputError(
                f"{what} works on encoders and decoders; {self.name} is an encoder–decoder "
                "model (lm.analyze(source, target=...) shows its three parts)."
            )

    def _count_message(self, count: int, what: str) -> str:
        return (
            f"Captured {count} {what} for {self.num_layers} layers of {self.name}; the "
            "projection table in exbert_widget.models.contexts does not fit this model."
        )

    def _recorded_modules(self, key: str) -> tuple[list[torch.nn.Module], int]:
        """The modules transformers' own output-recording table names for ``key``
        ("attentions", "hidden_states"), in order, and the output index it reads."""
        table = getattr(self.model.base_model, "_can_record_outputs", None) or {}
        spec = table.get(key)
        if spec is None:
            return [], 1
        target = getattr(spec, "target_class", spec)
        index = getattr(spec, "index", 1) if not isinstance(spec, type) else 1
        layer_name = getattr(spec, "layer_name", None)
        modules = [
            m
            for name, m in self.model.base_model.named_modules()
            if isinstance(m, target) and (layer_name is None or name.endswith(layer_name))
        ]
        return modules, index

    @cached_property
    def _attention_modules(self) -> tuple[list[torch.nn.Module], int]:
        """The modules whose output carries each layer's attention weights, and at which index.

        Read from transformers' own output-recording table; empty where a model has none.
        """
        return self._recorded_modules("attentions")

    @cached_property
    def _entries(self) -> dict[torch.nn.Module, torch.nn.Module]:
        """What a pass records to recompute attention: each layer and its attention module."""
        attentions, _ = self._attention_modules
        layers, _ = self._recorded_modules("hidden_states")
        return entry_modules(layers, attentions)

    @torch.no_grad()
    def _analyze_on_demand(self, enc: Encoding, top_k: int) -> Analysis:
        """One fused pass that keeps hidden states, contexts and each attention call's inputs."""
        _, index = self._attention_modules
        inputs = self._batch_inputs([enc])
        with (
            self._fast(),
            record_attention_calls(self._entries) as calls,
            capture_contexts(self._projections) as captured,
        ):
            out = self.model(
                **inputs, output_hidden_states=True, return_dict=True, **self._no_cache
            )
        if len(calls) != self.num_layers:
            raise LayerCountError(self._count_message(len(calls), "attention calls"))
        if len(captured) != self.num_layers:
            raise LayerCountError(self._count_message(len(captured), "contexts"))
        logits = getattr(out, "logits", None) if self.has_lm_head else None
        predictions = top_k_of(logits, top_k, self.tokenizer.convert_ids_to_tokens)
        return Analysis(
            text=enc.text,
            tokens=list(enc.tokens),
            special=list(enc.special),
            offsets=list(enc.offsets),
            input_ids=list(enc.input_ids),
            top_k=predictions[0] if predictions else None,
            truncated=enc.truncated,
            masked=enc.masked,
            layers=LayerAttention(calls, index, chunk_bytes=self._chunk_bytes),
            hidden_tensors=[h[0] for h in out.hidden_states],
            context_tensors=[c[0] for c in captured],
            projections=self._projections,
            segments=enc.segments,
            sentence_b=enc.text_b,
        )

    def analyze(
        self,
        sentence: str,
        masked: Sequence[int] = (),
        top_k: int = 5,
        sentence_b: str | None = None,
        *,
        target: str | None = None,
        max_new_tokens: int = 40,
    ) -> Analysis:
        """Run the model once on ``sentence`` and return exBERT's view of it.

        The pass keeps tokens, predictions, hidden states, contexts and what each layer's
        attention was given; ``a.attention(layer)`` then computes that layer's weights on demand
        (models whose attention modules are not known run all layers with weights at once).

        Args:
            sentence: the text; longer input is truncated to the model's maximum (with a warning).
                Encoder–decoder models: the source.
            masked: token indices (specials included in the count) to replace by the mask token;
                bidirectional models (and encoder–decoder models with a mask token) only.
            top_k: how many predictions to keep per position (at most the vocabulary size).
            sentence_b: a second sentence: the tokenizer encodes the pair (``[CLS] A [SEP] B
                [SEP]`` for BERT), its token types reach the model, and ``a.segments`` says which
                sentence each token is in. Models whose tokenizer has no pair convention (GPT-2,
                Qwen: no separator) refuse it; join the texts yourself for those.
            target: encoder–decoder models only: the target text. The decoder reads it shifted
                right behind ``decoder_start_token_id``, as in training; when None the model's
                greedy output for ``sentence`` is used (at most ``max_new_tokens`` tokens).
            max_new_tokens: the longest greedy target, when ``target`` is None (at most
                ``max_length``).

        Raises:
            InputError: an empty sentence, a bad mask (not a list of token indices, out of
                range, a special token), a ``top_k`` that is not an int of at least 0, a pair
                the tokenizer has no convention for, ``target`` for a model that is not
                encoder–decoder, or a ``max_new_tokens`` past ``max_length``.
        """
        _check_top_k(top_k)
        if self.kind == "seq2seq":
            if sentence_b is not None:
                check_pair(self.name, self.kind, self.tokenizer, sentence_b)
            return self._own(seq2seq.analyze(self, sentence, masked, top_k, target, max_new_tokens))
        if target is not None:
            raise InputError(
                f"target= is for encoder–decoder models (T5, BART, Marian); {self.name} is "
                f"{self.kind}. Use sentence_b= for a pair of sentences."
            )
        enc = self.encode(sentence, masked, sentence_b)
        if self._on_demand:
            return self._own(self._analyze_on_demand(enc, top_k))
        return self.forward([enc], top_k=top_k)[0]

    def _own(self, analysis: Analysis) -> Analysis:
        """Mark ``analysis`` as this model's (see :func:`.lens.check_source`)."""
        analysis._source = weakref.ref(self)
        return analysis

    # -- one layer for many sentences, and vectors for a corpus --------------------------------

    @torch.no_grad()
    def layer_attentions(
        self, encodings: Sequence[Encoding], layer: int, batch_size: int = 8
    ) -> list[np.ndarray]:
        """Attention ``[heads, n, n]`` of one layer for each encoding, running no deeper.

        The pass stops once ``layer`` has run and skips the LM head, and batches are
        length-sorted: for a corpus search this is a fraction of full forward passes. On CPU,
        batches run side by side in threads of one torch thread each; torch's thread count is
        restored afterwards.
        """
        self._check_one_stack("layer_attentions")
        modules, index = self._attention_modules
        if not modules:
            full = self.forward(encodings, hidden_states=False, contexts=False)
            return [a.attention(layer) for a in full]
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i]))
        # longest first, so that two threads finish together
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)][::-1]
        local = threading.local()  # each worker thread records its own batch's weights

        def hook(_module, _args, output) -> None:
            captured = getattr(local, "captured", None)
            if captured is None:  # another call's pass, running in another thread
                return
            captured.append(output[index] if isinstance(output, tuple) else output)
            if len(captured) > layer:
                raise _Stop

        def run(batch: list[int]) -> np.ndarray:
            local.captured = []
            with torch.no_grad(), attention_impl.eager_attention():  # both are per thread
                try:
                    self.model.base_model(
                        **self._batch_inputs([encodings[i] for i in batch]),
                        output_attentions=True,
                    )
                except _Stop:
                    pass
            if len(local.captured) <= layer or local.captured[layer] is None:
                raise NoWeightsError(f"{self.name} gave no attention weights for layer {layer}.")
            return local.captured[layer].float().cpu().numpy()

        # Small batches use two cores poorly: on CPU, batches run side by side in threads of
        # one torch thread each (~20 % faster for a search's 50 hit sentences on 2 cores).
        workers = min(torch.get_num_threads(), len(batches)) if self.device.type == "cpu" else 1
        handles = [m.register_forward_hook(hook) for m in modules]
        try:
            if workers > 1:
                with torch_threads(1), ThreadPoolExecutor(workers) as pool:
                    weights = list(pool.map(run, batches))
            else:
                weights = [run(batch) for batch in batches]
        finally:
            for handle in handles:
                handle.remove()
        out: list[np.ndarray] = [np.empty(0)] * len(encodings)
        for batch, w in zip(batches, weights, strict=True):
            for row, i in enumerate(batch):
                n = len(encodings[i])
                out[i] = w[row, :, :n, :n].copy()
        return out

    def attention_batches(
        self,
        encodings: Sequence[Encoding],
        batch_size: int = 32,
        max_bytes: int = BATCH_ATTENTION_BYTES,
    ) -> Iterator[tuple[list[int], list[torch.Tensor]]]:
        """Every layer's attention for many encodings, a length-sorted batch at a time.

        Yields ``(indices, weights)``: the encodings' positions in ``encodings`` and, per layer,
        float32 ``[batch, heads, width, width]`` on the model's device, ``width`` the batch's
        longest encoding (rows and columns past an encoding's length are padding). One eager
        pass of the base model per batch (no LM head), the cheapest way to every layer's
        weights at once; batches hold at most ``batch_size`` encodings of similar lengths (less
        padding) and at most ``max_bytes`` of weights.

        Raises:
            InputError: an encoder–decoder model.
            NoWeightsError: the model gives no weights.
        """
        self._check_one_stack("attention_batches")
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i]))
        per_token = self.num_layers * self.num_heads * 4  # bytes of one row of one token pair
        batch: list[int] = []
        for i in order:
            width = len(encodings[i])
            full = len(batch) == batch_size
            if batch and (full or (len(batch) + 1) * width * width * per_token > max_bytes):
                yield batch, self._batch_attention([encodings[j] for j in batch])
                batch = []
            batch.append(i)
        if batch:
            yield batch, self._batch_attention([encodings[j] for j in batch])

    @torch.no_grad()
    def _batch_attention(self, encodings: Sequence[Encoding]) -> list[torch.Tensor]:
        with attention_impl.eager_attention():
            out = self.model.base_model(
                **self._batch_inputs(encodings), output_attentions=True, **self._no_cache
            )
        if not out.attentions or any(a is None for a in out.attentions):
            raise NoWeightsError(f"{self.name} returned no attention weights.")
        return [a.float() for a in out.attentions]

    @torch.no_grad()
    def token_vectors(self, encodings: Sequence[Encoding]) -> tuple[torch.Tensor, torch.Tensor]:
        """Every layer's output and context vectors of every real token, for indexing.

        One padded pass of the base model (no LM head, no attention weights: fused where the
        model allows); returns float32 tensors ``embedding`` [L, N, hidden] =
        ``hidden_states[1:]`` and ``contexts`` [L, N, context], N = the encodings' tokens
        concatenated in order, padding dropped. They stay tensors so that a corpus build can
        normalise and rotate them without numpy copies.

        Raises:
            LayerCountError: the projections do not fit the model.
        """
        self._check_one_stack("token_vectors")
        inputs = self._batch_inputs(encodings)
        with self._fast(), capture_contexts(self._projections) as captured:
            out = self.model.base_model(
                **inputs, output_hidden_states=True, return_dict=True, **self._no_cache
            )
        if len(captured) != self.num_layers:
            raise LayerCountError(self._count_message(len(captured), "contexts"))
        width = inputs["input_ids"].shape[1]
        keep = torch.tensor(
            [i < len(e) for e in encodings for i in range(width)], device=self.device
        )
        hid = torch.stack(out.hidden_states[1:]).flatten(1, 2)[:, keep]
        ctx = torch.stack(captured).flatten(1, 2)[:, keep]
        return hid.float(), ctx.float()

    # -- the logit lens ------------------------------------------------------------------------

    def logit_lens(self, analysis: Analysis, position: int, top_k: int = 5) -> pd.DataFrame:
        """What each layer would predict at ``position``: its hidden state through the model's
        own final norm and language-model head (nostalgebraist's logit lens).

        Returns a DataFrame with ``layer`` (0 = the embedding output … ``num_layers``),
        ``rank`` (0 = best, as in ``a.top_k[position]``), ``token`` (a raw token string, as in
        ``a.top_k``) and ``prob`` (softmax over the vocabulary), ``top_k`` rows per layer.
        The last layer's rows are ``a.top_k[position]``: bidirectional models predict the token
        at ``position``, autoregressive ones the next token; encoder–decoder models read the
        decoder's layers and ``position`` is a target token. Masked LMs' head includes its
        transform (dense, activation, norm) before the vocabulary projection.

        Raises:
            InputError: the model has no LM head, ``position`` is out of range, ``top_k`` is
                not at least 1, or the analysis has no hidden states from this model.
        """
        return lens.logit_lens(self, lambda: self._lens_head, analysis, position, top_k)

    @cached_property
    def _lens_head(self) -> lens.LensHead:
        return lens.find_head(self)

    # -- generation ----------------------------------------------------------------------------

    def greedy_continuation(self, text: str, max_new_tokens: int = 20) -> Generation:
        """The model's greedy continuation of ``text``, with what a view needs to show it.

        Equal to ``model.generate(do_sample=False)`` on the ids :meth:`encode` gives (a BOS
        prepended where the engine adds one). ``result.text`` is the sentence to analyse next;
        ``result.generated(lm.analyze(result.text))`` marks the tokens that came from the model.

        Raises:
            InputError: a masked LM, a model without its head, a bad ``max_new_tokens``, or a
                prompt that leaves no room for ``max_new_tokens`` within ``max_length``.
        """
        check_request(self.name, self.kind, self.has_lm_head, max_new_tokens)
        enc = self._encode(text, (), warn=False)  # a prompt too long is refused, not truncated
        if enc.truncated or len(enc) + max_new_tokens > self.max_length:
            count = len(enc)
            if enc.truncated:
                count = len(self.tokenizer(text, verbose=False)["input_ids"]) + (
                    1 if self._bos_id is not None else 0
                )
            raise InputError(
                f"The prompt has {count} tokens; with max_new_tokens={max_new_tokens} that passes "
                f"{self.name}'s limit of {self.max_length} tokens. Shorten the prompt or ask for "
                f"at most {max(self.max_length - count, 0)} new tokens."
            )
        with self._fast():
            return greedy(self.model, self.tokenizer, enc, max_new_tokens, self.device)

    def generate(self, text: str, max_new_tokens: int = 20) -> str:
        """The model's greedy continuation of ``text``: only the new text, to append to it.

        Equal to ``model.generate(do_sample=False)`` on the same ids; see
        :meth:`greedy_continuation` for the ids and which tokens are new.

        Raises:
            InputError: as :meth:`greedy_continuation` (masked LMs cannot generate).
        """
        return self.greedy_continuation(text, max_new_tokens).new_text


def _own(view: np.ndarray) -> np.ndarray:
    """A batch row as its own array: no copy when it already is one (a batch of one)."""
    return np.ascontiguousarray(view)


def _stack(tensors) -> np.ndarray:
    """Layer tuple of [B, ...] tensors -> float32 numpy [layers, B, ...]."""
    return torch.stack(tuple(tensors)).float().cpu().numpy()


def _stack_weights(tensors, name: str) -> np.ndarray:
    """Like :func:`_stack`, refusing a model that returned no weights."""
    if not tensors or any(t is None for t in tensors):
        raise NoWeightsError(f"{name} returned no attention weights.")
    return _stack(tensors)


def _mask_indices(masked: object) -> list[int]:
    """``masked`` as a list of ints: a bool, a float or a string is no token index (``int()``
    would turn 1.5 into token 1 and ``True`` into token 1 without a word).

    Raises:
        InputError: not a sequence of integers.
    """
    if isinstance(masked, str | bytes) or not isinstance(masked, Iterable):
        raise InputError(
            f"masked must be a list of token indices, got {type(masked).__name__} {masked!r}."
        )
    indices = list(masked)
    bad = [i for i in indices if isinstance(i, bool) or not isinstance(i, int | np.integer)]
    if bad:
        raise InputError(f"masked must hold token indices (ints), got {bad[0]!r} in {indices!r}.")
    return [int(i) for i in indices]


def _check_top_k(top_k: object) -> None:
    """Raises InputError unless ``top_k`` is an int of at least 0 (a bool is not one)."""
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer):
        raise InputError(f"top_k must be an int of at least 0, got {top_k!r}.")
    if top_k < 0:
        raise InputError(f"top_k must be 0 or more, got {top_k}.")


def _check_encodable(text: str) -> None:
    """Tokenizers take valid Unicode only: a lone surrogate (from a broken decode, say) makes
    them raise a bare TypeError."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(
            f"The sentence has an invalid character {text[exc.start]!r} at position {exc.start} "
            "(a lone surrogate, not Unicode text); remove it or decode the text properly."
        ) from exc


def load_model(
    name_or_path: str | None = None,
    *,
    model: PreTrainedModel | None = None,
    tokenizer=None,
    kind: Kind | None = None,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
) -> LanguageModel:
    """Load a model for exploration, from a hub name, a local directory, or loaded objects.

    The masked-LM head is used for encoders and the causal-LM head for decoders; where the
    checkpoint has no head weights the bare model is used and predictions are absent. The engine's
    pass runs fused attention (SDPA) where the model supports it; attention weights are always
    computed by the model's own eager attention.

    Args:
        name_or_path: a Hugging Face hub name (``"bert-base-cased"``), a local directory, or
            ``"demo"``: the offline demo model (all-MiniLM-L6-v2 with a masked-LM head trained
            by this project, see ``exbert_widget.models.demo``; a local directory named
            ``demo`` wins).
        model, tokenizer: already-loaded transformers objects, instead of a name; or
            ``tokenizer`` alone with a name, for a checkpoint saved without its tokenizer.
        kind: force ``"bidirectional"`` or ``"autoregressive"`` instead of detecting it. Forcing
            ``"autoregressive"`` on an encoder family that has a causal-LM class (BERT, RoBERTa,
            ELECTRA, ...) loads it with ``is_decoder=True``: causal attention, and its head read
            as next-token predictions. A kind the architecture cannot run as (GPT-2 as a masked
            LM, DistilBERT as a decoder, a given model whose attention does not match) raises
            ModelLoadError; the engine checks causality on a probe sentence.
        dtype: ``"float32"`` (the default for a name; a given model keeps its own unless this
            is set), ``"bfloat16"`` or ``"float16"`` (half the memory, the natural choice on a
            GPU), or a torch dtype. Results reach numpy as float32 either way.
        device: ``"cpu"`` (default) or ``"cuda"`` (``"cuda:1"``, ...).
        trust_remote_code: allow model code from the checkpoint (off by default).

    Raises:
        ModelLoadError: the model cannot be found or loaded, gives no attention weights, or
            cannot run in ``dtype`` on ``device`` (the message says what to use instead).
    """
    if kind is not None and kind not in KINDS:
        raise ModelLoadError(f"kind must be one of {KINDS}, got {kind!r}.")
    dev = pick_device(device)
    wanted = pick_dtype(dtype)
    if model is not None:
        if tokenizer is None:
            raise ModelLoadError("Pass both model= and tokenizer=, or a name_or_path.")
        if name_or_path is not None:
            raise ModelLoadError("Pass either name_or_path or model=, not both.")
        model, detected, has_head = prepare_given(model, kind)
        if wanted is not None:
            model.to(wanted)  # type: ignore[arg-type]  # in place, as the move to the device
        name = getattr(model.config, "_name_or_path", "") or type(model).__name__
    elif name_or_path is None:
        raise ModelLoadError("Give a hub name or local directory, or both model= and tokenizer=.")
    elif is_demo_name(name_or_path, tokenizer):
        model, tokenizer = load_demo_parts()
        model, detected, has_head = prepare_given(model, kind)
        if wanted is not None:
            model.to(wanted)  # type: ignore[arg-type]
        name = DEMO_LABEL
    else:
        model, tokenizer, detected, has_head = load_pretrained(
            str(name_or_path),
            kind,
            trust_remote_code,
            tokenizer=tokenizer,
            dtype=wanted or torch.float32,
        )
        name = str(name_or_path)
    return LanguageModel(
        model, tokenizer, kind=detected, has_lm_head=has_head, name=name, device=dev
    )
