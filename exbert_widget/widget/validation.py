"""The view's synced state with its checks: every trait a user sets is validated here, alone
and against the others, and a refused value raises :class:`StateError` and changes nothing.

:class:`CheckedState` is the base of :class:`.view.ExBertView`; the view supplies the model
(``lm``, ``compare_lm``) and the current analysis the checks read.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import traitlets as t

from ..errors import InputError, StateError
from ..models import Analysis, LanguageModel
from . import pairs as pairing
from . import parts
from .measures import check_measure
from .state import SEARCH_K_MAX, ViewState


def check_text(text: object) -> None:
    """Refuse text the tokenizer cannot take, before it reaches the tokenizer or the wire."""
    if not isinstance(text, str):
        return  # the trait's own type check says so
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise StateError(
            f"The sentence is not valid Unicode text: {exc.reason} at character {exc.start} "
            f"({text[exc.start]!a}). Type or paste the text again."
        ) from None


def check_int(name: str, value: object, low: int, high: int) -> int:
    """``value`` as an int, when it is an integer in ``low..high``.

    Raises:
        InputError: not an integer (a bool is not one), or out of range (naming ``name``).
    """
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
        raise InputError(f"{name} must be an integer, got {value!r}.")
    if not low <= value <= high:
        raise InputError(f"{name} must be between {low} and {high}, got {value}.")
    return int(value)


class CheckedState(ViewState):
    """Every synced trait, checked: what the view and Python may set, and as one update."""

    lm: LanguageModel
    compare_lm: LanguageModel | None
    analysis: Analysis | None
    # What the analysis was computed from, and the names being set together (see _batched).
    _analysed: tuple | None
    _batch: frozenset[str]
    _lock: threading.RLock

    def _wanted(self) -> tuple:
        """What the analysis should be computed from now (the view's sentence, mask, ...)."""
        raise NotImplementedError

    # -- updates: several traits at once, checked together, all or none ------------------------

    @contextmanager
    def _batched(self, names: Sequence[str] | Mapping[str, Any]) -> Iterator[None]:
        """Mark ``names`` as set together: the sentence observer then keeps a mask sent with it."""
        with self._lock:
            outer = self._batch
            self._batch = outer | frozenset(names)
            try:
                yield
            finally:
                self._batch = outer

    def apply(self, values: Mapping[str, Any]) -> None:
        """Set several traits as one update: checked against each other, applied all or none.

        ``view.apply({"sentence": s, "masked": [3]})`` masks token 3 of the new sentence (setting
        ``view.sentence`` alone would clear the mask).

        Raises:
            StateError: a value is refused; no trait changes.
        """
        if "sentence" in values:
            check_text(values["sentence"])
        with self._batched(values), self.hold_trait_notifications():
            for name, value in values.items():
                setattr(self, name, value)

    # -- validation: refuse what does not fit, keep the last good state ----------------------

    @t.validate("sentence")
    def _valid_sentence(self, proposal: t.Bunch) -> str:
        text = proposal["value"]
        check_text(text)
        try:
            self.lm.encode(text)
        except InputError as exc:
            raise StateError(str(exc)) from None
        except (TypeError, ValueError) as exc:  # the tokenizer's own refusals
            raise StateError(
                f"The tokenizer of {self.model_name} refused the sentence: {exc}"
            ) from None
        return str(text)

    @t.validate("layer")
    def _valid_layer(self, proposal: t.Bunch) -> int:
        layer = int(proposal["value"])
        count = parts.layer_count(self.lm, self.part)
        if not 0 <= layer < count:
            where = f" in its {self.part}" if self.lm.kind == "seq2seq" else ""
            raise StateError(
                f"layer {layer} is out of range: {self.model_name} has layers "
                f"0..{count - 1}{where}."
            )
        return layer

    @t.validate("heads")
    def _valid_heads(self, proposal: t.Bunch) -> list[int]:
        heads = sorted(set(proposal["value"]))
        count = parts.head_count(self.lm, self.part)
        bad = [h for h in heads if not 0 <= h < count]
        if bad:
            raise StateError(
                f"head(s) {bad} out of range: {self.model_name} has heads 0..{count - 1}."
            )
        return heads

    @t.validate("head_weights")
    def _valid_weights(self, proposal: t.Bunch) -> list[float] | None:
        weights = proposal["value"]
        if weights is None:
            return None
        count = parts.head_count(self.lm, self.part)
        if len(weights) != count or not np.all(np.isfinite(weights)):
            raise StateError(f"head_weights needs {count} finite numbers (one per head), or None.")
        return [float(w) for w in weights]

    @t.validate("masked")
    def _valid_masked(self, proposal: t.Bunch) -> list[int]:
        masked = sorted(set(proposal["value"]))
        try:
            if self.lm.kind == "seq2seq":  # source tokens only, before the encoder's own checks
                parts.check_mask(masked, len(self.lm.encode(self.sentence)))
            self.lm.encode(self.sentence, masked, self.sentence_b or None)
        except InputError as exc:
            raise StateError(str(exc)) from None
        return masked

    @t.validate("selected")
    def _valid_selected(self, proposal: t.Bunch) -> int | None:
        index = proposal["value"]
        n = self._token_count()
        if index is not None and n is not None and not 0 <= index < n:
            raise StateError(f"selected token {index} is out of range: tokens are 0..{n - 1}.")
        return index

    def _token_count(self) -> int | None:
        """Tokens of the current sentence and mask (new ones included, mid-update)."""
        if self.analysis is not None and self._analysed == self._wanted():
            return len(self.tokens)
        if self.lm.kind == "seq2seq":
            return None  # the target's length is known once it is analysed
        try:
            return len(self.lm.encode(self.sentence, self.masked, self.sentence_b or None))
        except InputError:
            return None  # the sentence or mask is refused on its own

    @t.validate("threshold")
    def _valid_threshold(self, proposal: t.Bunch) -> float:
        value = proposal["value"]
        if not 0.0 < value <= 1.0:
            raise StateError(f"threshold must be in (0, 1], got {value}.")
        return float(value)

    @t.validate("measure")
    def _valid_measure(self, proposal: t.Bunch) -> str:
        try:
            measure = check_measure(proposal["value"])
            if measure == "rollout" and self.part == "cross":
                raise InputError(
                    "Rollout chains a stack's self-attention layers; the cross part has none: "
                    "choose the encoder or decoder part first."
                )
            if measure == "norm" and self.analysis is not None:  # refused models say so now
                part = self.part if self.analysis.target is not None else None
                self.analysis.attention(self.layer, measure="norm", part=part)
        except InputError as exc:
            raise StateError(str(exc)) from None
        return measure

    @t.validate("compare")
    def _valid_compare(self, proposal: t.Bunch) -> str:
        value = "" if proposal["value"] is None else proposal["value"]
        if value not in ("", "unmasked", "model", "side"):
            raise StateError(
                f"compare must be '', 'unmasked', 'model' or 'side' (or None), not {value!r}."
            )
        if value and self.lm.kind == "seq2seq":
            raise StateError(
                "The second panel compares one stack of layers; encoder–decoder models have three."
            )
        if value in ("model", "side") and self.compare_lm is None:
            raise StateError(
                f"compare={value!r} needs a second model: ExBertView(lm, compare_model=other)."
            )
        return str(value)

    @t.validate("sentence_b")
    def _valid_sentence_b(self, proposal: t.Bunch) -> str:
        text = proposal["value"]
        check_text(text)
        if text:
            try:
                self.lm.encode(self.sentence, (), text)
            except InputError as exc:
                raise StateError(str(exc)) from None
        return str(text)

    @t.validate("target")
    def _valid_target(self, proposal: t.Bunch) -> str:
        text = proposal["value"]
        check_text(text)
        if text and self.lm.kind != "seq2seq":
            raise StateError(
                f"target is for encoder–decoder models (T5, BART, Marian); {self.model_name} is "
                f"{self.lm.kind}. Use sentence_b for a pair of sentences."
            )
        if text and not text.strip():
            raise StateError('The target is blank: give the target text, or "" to generate it.')
        return str(text)

    @t.validate("pair_filter")
    def _valid_pair_filter(self, proposal: t.Bunch) -> str:
        return pairing.check_pair_filter(proposal["value"])

    @t.validate("part")
    def _valid_part(self, proposal: t.Bunch) -> str:
        part = parts.check_part(self.lm, proposal["value"])
        if part == "cross" and self.measure == "rollout":
            raise StateError("Rollout has no cross part: choose another measure first.")
        return part

    @t.validate("search_k")
    def _valid_k(self, proposal: t.Bunch) -> int:
        try:
            return check_int("search_k", proposal["value"], 1, SEARCH_K_MAX)
        except InputError as exc:
            raise StateError(str(exc)) from None
