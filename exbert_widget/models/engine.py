"""The inference engine: one forward pass gives attentions, hidden states, contexts and top-k."""

from __future__ import annotations

import hashlib
import json
import threading
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property

import numpy as np
import torch
from transformers import PreTrainedModel

from ..errors import InputError
from .analysis import Analysis, Encoding
from .contexts import capture_contexts, find_projections
from .loading import (
    KINDS,
    Kind,
    ModelLoadError,
    load_pretrained,
    pick_device,
    prepare_given,
)

# RoBERTa-family position ids start after the padding index, so fewer positions are usable.
_POSITION_OFFSET_TYPES = {"roberta", "xlm-roberta", "camembert", "data2vec-text", "xlm-roberta-xl"}
_PROBE = "Attention is what we look at."


class _Stop(Exception):
    """Raised by a hook to end a forward pass once the wanted layer has run."""


class LanguageModel:
    """A Hugging Face model and tokenizer, ready for exBERT's analyses.

    Build it with :func:`load_model`. ``kind`` is ``"bidirectional"`` (masked LMs: BERT, RoBERTa,
    ...) or ``"autoregressive"`` (GPT-2, Llama, ...).
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
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.kind: Kind = kind
        self.has_lm_head = has_lm_head
        self.name = name
        self.device = device
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
        head_dim = getattr(text_config, "head_dim", None) or self.hidden_size // self.num_heads
        self.head_dim: int = int(head_dim)
        self.context_size: int = self.num_heads * self.head_dim
        self.max_length: int = self._max_length()
        self._bos_id = self._missing_bos_id()
        self._projections = find_projections(
            self.model,
            text_config.model_type,
            self.context_size,
            self.hidden_size,
            probe=self._probe_pass,
        )
        self._check_capture()

    def __repr__(self) -> str:
        return (
            f"LanguageModel({self.name!r}, kind={self.kind!r}, layers={self.num_layers}, "
            f"heads={self.num_heads}, hidden={self.hidden_size}, lm_head={self.has_lm_head})"
        )

    # -- setup ---------------------------------------------------------------------------------

    def _max_length(self) -> int:
        candidates = []
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        if tok_max and tok_max < 1_000_000:
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

    @torch.no_grad()
    def _probe_pass(self) -> None:
        """One forward pass on a short sentence, for setup code that watches modules run."""
        self.model(**self._batch_inputs([self.encode(_PROBE)]), output_attentions=True)

    def _check_capture(self) -> None:
        """One tiny probe pass: attention weights and one context per layer must come back, and
        the attention must be causal exactly when the kind is autoregressive."""
        if not self._projections:
            raise ModelLoadError(
                f"Could not find the attention output projections of {type(self.model).__name__} "
                f"(model_type {self.config.model_type!r}), so contexts cannot be captured. Add its "
                "module pattern to exbert_widget.models.contexts.PROJECTION_PATTERNS."
            )
        probe = self.forward([self.encode(_PROBE)], hidden_states=False, contexts=True)[0]
        if probe.attentions is None or probe.attentions.shape[:2] != (
            self.num_layers,
            self.num_heads,
        ):
            raise ModelLoadError(
                f"{type(self.model).__name__} returned no attention weights with eager attention; "
                "it has no attention to explore."
            )
        # The kind, forced or detected, must match what the model does: top_k is read as
        # next-token predictions only if no token sees a later one; masking only helps if they do.
        causal = float(np.abs(np.triu(probe.attentions, k=1)).max()) <= 1e-6
        name = type(self.model).__name__
        if self.kind == "autoregressive" and not causal:
            raise ModelLoadError(
                f"kind='autoregressive', but {name} lets tokens attend to later tokens, so its "
                "predictions would not be next-token ones. Load it from its directory or hub name "
                "with kind='autoregressive' (which sets is_decoder=True where the family allows "
                "it), pass a model built with is_decoder=True, or leave kind= out."
            )
        if self.kind == "bidirectional" and causal:
            raise ModelLoadError(
                f"kind='bidirectional', but {name} attends only to earlier tokens (causal "
                "attention), so it cannot fill in a masked token. Use kind='autoregressive' or "
                "leave kind= out."
            )

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

    # -- encoding ------------------------------------------------------------------------------

    def encode(self, text: str, masked: Sequence[int] = ()) -> Encoding:
        """Tokenise one sentence: ids, tokens, special flags and character offsets.

        Input longer than ``max_length`` is truncated (``truncated`` is set and a warning issued).
        Masked positions are replaced by the tokenizer's mask token.
        """
        if not isinstance(text, str):
            raise InputError(f"A sentence must be a str, got {type(text).__name__}.")
        if not text.strip():
            raise InputError("The sentence is empty: type some text to analyse.")
        tok = self.tokenizer
        limit = self.max_length - (1 if self._bos_id is not None else 0)
        enc = tok(
            text,
            add_special_tokens=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            verbose=False,  # transformers' own too-long log; ours below says what was done
        )
        truncated = len(enc["input_ids"]) > limit
        if truncated:
            enc = tok(
                text,
                add_special_tokens=True,
                return_offsets_mapping=True,
                return_special_tokens_mask=True,
                truncation=True,
                max_length=limit,
            )
            warnings.warn(
                f"The sentence has more tokens than {self.name} accepts ({self.max_length}); "
                "it was truncated.",
                stacklevel=2,
            )
        ids = list(enc["input_ids"])
        special = [bool(s) for s in enc["special_tokens_mask"]]
        offsets = [
            (int(a), int(b)) if not s else (0, 0)
            for (a, b), s in zip(enc["offset_mapping"], special, strict=True)
        ]
        if self._bos_id is not None:
            ids.insert(0, self._bos_id)
            special.insert(0, True)
            offsets.insert(0, (0, 0))
        if not any(not s for s in special):
            raise InputError(f"The sentence {text!r} gives no tokens besides special ones.")
        masked = self._check_mask(masked, special)
        for i in masked:
            ids[i] = tok.mask_token_id
        tokens = tok.convert_ids_to_tokens(ids)
        return Encoding(text, ids, tokens, special, offsets, truncated, masked)

    def _check_mask(self, masked: Sequence[int], special: list[bool]) -> tuple[int, ...]:
        masked = tuple(sorted({int(i) for i in masked}))
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
        if "token_type_ids" in getattr(tok, "model_input_names", ()):
            inputs["token_type_ids"] = torch.zeros_like(ids)
        return {k: v.to(self.device) for k, v in inputs.items()}

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
        """One padded, batched forward pass; each result is sliced to its own length."""
        if not encodings:
            return []
        inputs = self._batch_inputs(encodings)
        with capture_contexts(self._projections if contexts else []) as captured:
            out = self.model(
                **inputs,
                output_attentions=True,  # eager attention also needs it for the probe
                output_hidden_states=hidden_states,
                return_dict=True,
            )
        if contexts and len(captured) != self.num_layers:
            raise RuntimeError(
                f"Captured {len(captured)} contexts for {self.num_layers} layers of {self.name}; "
                "the projection table in exbert_widget.models.contexts does not fit this model."
            )
        att = _stack(out.attentions) if attentions or not hidden_states else None
        hid = _stack(out.hidden_states) if hidden_states else None
        ctx = _stack(captured) if contexts else None
        predictions = self._top_k(out, top_k)

        results = []
        for row, enc in enumerate(encodings):
            n = len(enc)
            results.append(
                Analysis(
                    text=enc.text,
                    tokens=list(enc.tokens),
                    special=list(enc.special),
                    offsets=list(enc.offsets),
                    input_ids=list(enc.input_ids),
                    attentions=None if att is None else _own(att[:, row, :, :n, :n]),
                    hidden_states=None if hid is None else _own(hid[:, row, :n]),
                    contexts=None if ctx is None else _own(ctx[:, row, :n]),
                    top_k=predictions[row][:n] if predictions else [[] for _ in range(n)],
                    truncated=enc.truncated,
                    masked=enc.masked,
                )
            )
        return results

    def _top_k(self, out, k: int) -> list[list[list[tuple[str, float]]]]:
        logits = getattr(out, "logits", None)
        if k <= 0 or not self.has_lm_head or logits is None:
            return []
        logits = logits.float()
        k = min(k, logits.shape[-1])  # asking for more than the vocabulary gives all of it
        # top-k of the logits, then their softmax probabilities: no [n, vocab] softmax kept
        top, indices = logits.topk(k, dim=-1)
        values = (top - torch.logsumexp(logits, dim=-1, keepdim=True)).exp()
        values, indices = values.cpu().numpy(), indices.cpu().numpy()
        convert = self.tokenizer.convert_ids_to_tokens
        return [
            [
                list(zip(convert(idx.tolist()), val.tolist(), strict=True))
                for idx, val in zip(indices[b], values[b], strict=True)
            ]
            for b in range(indices.shape[0])
        ]

    @cached_property
    def _attention_modules(self) -> tuple[list[torch.nn.Module], int]:
        """The modules whose output carries each layer's attention weights, and at which index.

        Read from transformers' own output-recording table; empty where a model has none.
        """
        table = getattr(self.model.base_model, "_can_record_outputs", None) or {}
        spec = table.get("attentions")
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

    @torch.no_grad()
    def layer_attentions(
        self, encodings: Sequence[Encoding], layer: int, batch_size: int = 8
    ) -> list[np.ndarray]:
        """Attention ``[heads, n, n]`` of one layer for each encoding, running no deeper.

        The pass stops once ``layer`` has run and skips the LM head, and batches are
        length-sorted: for a corpus search this is a fraction of full forward passes.
        """
        modules, index = self._attention_modules
        if not modules:
            full = self.forward(encodings, hidden_states=False, contexts=False)
            return [a.attentions[layer] for a in full]
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i]))
        # longest first, so that two threads finish together
        batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)][::-1]
        local = threading.local()  # each worker thread records its own batch's weights

        def hook(_module, _args, output) -> None:
            local.captured.append(output[index] if isinstance(output, tuple) else output)
            if len(local.captured) > layer:
                raise _Stop

        def run(batch: list[int]) -> np.ndarray:
            local.captured = []
            with torch.no_grad():  # grad mode is per thread
                try:
                    self.model.base_model(
                        **self._batch_inputs([encodings[i] for i in batch]),
                        output_attentions=True,
                    )
                except _Stop:
                    pass
            if len(local.captured) <= layer or local.captured[layer] is None:
                raise RuntimeError(f"{self.name} gave no attention weights for layer {layer}.")
            return local.captured[layer].float().cpu().numpy()

        # Small batches use two cores poorly: on CPU, batches run side by side in threads of
        # one torch thread each (~20 % faster for a search's 50 hit sentences on 2 cores).
        threads = torch.get_num_threads()
        workers = min(threads, len(batches)) if self.device.type == "cpu" else 1
        handles = [m.register_forward_hook(hook) for m in modules]
        try:
            if workers > 1:
                torch.set_num_threads(1)
                with ThreadPoolExecutor(workers) as pool:
                    weights = list(pool.map(run, batches))
            else:
                weights = [run(batch) for batch in batches]
        finally:
            torch.set_num_threads(threads)
            for handle in handles:
                handle.remove()
        out: list[np.ndarray] = [np.empty(0)] * len(encodings)
        for batch, w in zip(batches, weights, strict=True):
            for row, i in enumerate(batch):
                n = len(encodings[i])
                out[i] = w[row, :, :n, :n].copy()
        return out

    @torch.no_grad()
    def token_vectors(self, encodings: Sequence[Encoding]) -> tuple[torch.Tensor, torch.Tensor]:
        """Every layer's output and context vectors of every real token, for indexing.

        One padded pass of the base model (no LM head, no attention output); returns float32
        tensors ``embedding`` [L, N, hidden] = ``hidden_states[1:]`` and ``contexts`` [L, N,
        context], N = the encodings' tokens concatenated in order, padding dropped. They stay
        tensors so that a corpus build can normalise and rotate them without numpy copies.
        """
        inputs = self._batch_inputs(encodings)
        with capture_contexts(self._projections) as captured:
            out = self.model.base_model(**inputs, output_hidden_states=True, return_dict=True)
        if len(captured) != self.num_layers:
            raise RuntimeError(
                f"Captured {len(captured)} contexts for {self.num_layers} layers of {self.name}; "
                "the projection table in exbert_widget.models.contexts does not fit this model."
            )
        width = inputs["input_ids"].shape[1]
        keep = torch.tensor(
            [i < len(e) for e in encodings for i in range(width)], device=self.device
        )
        hid = torch.stack(out.hidden_states[1:]).flatten(1, 2)[:, keep]
        ctx = torch.stack(captured).flatten(1, 2)[:, keep]
        return hid.float(), ctx.float()

    def analyze(self, sentence: str, masked: Sequence[int] = (), top_k: int = 5) -> Analysis:
        """Run the model once on ``sentence`` and return exBERT's view of it.

        Args:
            sentence: the text; longer input is truncated to the model's maximum (with a warning).
            masked: token indices (specials included in the count) to replace by the mask token;
                bidirectional models only.
            top_k: how many predictions to keep per position (at most the vocabulary size).
        """
        if top_k < 0:
            raise InputError(f"top_k must be 0 or more, got {top_k}.")
        return self.forward([self.encode(sentence, masked)], top_k=top_k)[0]


def _own(view: np.ndarray) -> np.ndarray:
    """A batch row as its own array: no copy when it already is one (a batch of one)."""
    return np.ascontiguousarray(view)


def _stack(tensors) -> np.ndarray:
    """Layer tuple of [B, ...] tensors -> float32 numpy [layers, B, ...]."""
    return torch.stack(tuple(tensors)).float().cpu().numpy()


def load_model(
    name_or_path: str | None = None,
    *,
    model: PreTrainedModel | None = None,
    tokenizer=None,
    kind: Kind | None = None,
    device: str | torch.device | None = None,
    trust_remote_code: bool = False,
) -> LanguageModel:
    """Load a model for exploration, from a hub name, a local directory, or loaded objects.

    The masked-LM head is used for encoders and the causal-LM head for decoders; where the
    checkpoint has no head weights the bare model is used and predictions are absent. Attention
    always runs eagerly, so weights are returned.

    Args:
        name_or_path: a Hugging Face hub name (``"bert-base-cased"``) or a local directory.
        model, tokenizer: already-loaded transformers objects, instead of a name; or
            ``tokenizer`` alone with a name, for a checkpoint saved without its tokenizer.
        kind: force ``"bidirectional"`` or ``"autoregressive"`` instead of detecting it. Forcing
            ``"autoregressive"`` on an encoder family that has a causal-LM class (BERT, RoBERTa,
            ELECTRA, ...) loads it with ``is_decoder=True``: causal attention, and its head read
            as next-token predictions. A kind the architecture cannot run as (GPT-2 as a masked
            LM, DistilBERT as a decoder, a given model whose attention does not match) raises
            ModelLoadError; the engine checks causality on a probe sentence.
        device: ``"cpu"`` (default) or ``"cuda"``.
        trust_remote_code: allow model code from the checkpoint (off by default).

    Raises:
        ModelLoadError: the model cannot be found, loaded, or gives no attention weights.
    """
    if kind is not None and kind not in KINDS:
        raise ModelLoadError(f"kind must be one of {KINDS}, got {kind!r}.")
    dev = pick_device(device)
    if model is not None:
        if tokenizer is None:
            raise ModelLoadError("Pass both model= and tokenizer=, or a name_or_path.")
        if name_or_path is not None:
            raise ModelLoadError("Pass either name_or_path or model=, not both.")
        model, detected, has_head = prepare_given(model, kind)
        name = getattr(model.config, "_name_or_path", "") or type(model).__name__
    elif name_or_path is None:
        raise ModelLoadError("Give a hub name or local directory, or both model= and tokenizer=.")
    else:
        model, tokenizer, detected, has_head = load_pretrained(
            str(name_or_path), kind, trust_remote_code, tokenizer=tokenizer
        )
        name = str(name_or_path)
    return LanguageModel(
        model, tokenizer, kind=detected, has_lm_head=has_head, name=name, device=dev
    )
