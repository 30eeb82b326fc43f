"""ExBertView: exBERT's explorer as an anywidget. The kernel computes; the bundled view draws."""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence
from typing import Any

import anywidget
import numpy as np
import pandas as pd
import torch
import traitlets as t

from ..models import Analysis, InputError, LanguageModel, load_model
from .arrays import array_serialization

STATIC = pathlib.Path(__file__).resolve().parents[1] / "static"
DEFAULT_SENTENCE = "The girl ran to a local pub to escape the din of her city."

_MISSING_BUNDLE = """
export default { render({ el }) {
  el.textContent = "exbert-widget: the view bundle is not built. Run "
    + "`npm install && npm run build` in js/, or install the package from a wheel.";
} };
"""


def _asset(name: str, fallback: str) -> pathlib.Path | str:
    path = STATIC / name
    return path if path.exists() else fallback


def _half(values: np.ndarray) -> np.ndarray:
    """float32 -> float16 for the wire; torch's vectorised cast is ~20x faster than numpy's."""
    return torch.from_numpy(np.ascontiguousarray(values)).half().numpy()


def _label(name: str) -> str:
    """A short model label for the view: hub names as they are, local paths by their last parts."""
    path = pathlib.Path(name)
    return "/".join(path.parts[-2:]) if path.is_absolute() and path.exists() else name


def _as_model(model: Any) -> LanguageModel:
    if isinstance(model, LanguageModel):
        return model
    if isinstance(model, tuple) and len(model) == 2:
        return load_model(model=model[0], tokenizer=model[1])
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)
    raise TypeError(
        "ExBertView takes a load_model() result, a hub name or directory, or (model, tokenizer); "
        f"got {type(model).__name__}."
    )


class ExBertView(anywidget.AnyWidget):
    """exBERT's attention explorer for one model, with optional corpus search.

    Args:
        model: a :func:`load_model` result, a hub name or local directory, or
            ``(model, tokenizer)`` objects.
        corpus: ``None``, a corpus directory, or an opened :class:`Corpus`.
        **traits: initial values of the synced traits (``sentence``, ``layer``, ``heads``, ...).

    What the user does in the view comes back in the traits, and setting a trait from Python
    redraws the view. A forward pass runs only when ``sentence`` or ``masked`` change; the other
    traits re-slice what is already computed. ``hide_special`` drops special tokens' rows and
    columns from the drawing and renormalises each remaining row; ``view.analysis`` keeps the raw
    values.
    """

    _esm = _asset("widget.js", _MISSING_BUNDLE)
    _css = _asset("widget.css", "")

    # What the user controls.
    sentence = t.Unicode(DEFAULT_SENTENCE).tag(sync=True)
    layer = t.Int(0).tag(sync=True)
    heads = t.List(t.Int()).tag(sync=True)
    head_weights = t.List(t.Float(), default_value=None, allow_none=True).tag(sync=True)
    masked = t.List(t.Int()).tag(sync=True)
    hide_special = t.Bool(True).tag(sync=True)
    threshold = t.Float(0.7).tag(sync=True)
    selected = t.Int(None, allow_none=True).tag(sync=True)

    # What the kernel computed, for drawing.
    model_name = t.Unicode("").tag(sync=True)
    kind = t.Unicode("bidirectional").tag(sync=True)
    num_layers = t.Int(0).tag(sync=True)
    num_heads = t.Int(0).tag(sync=True)
    has_lm_head = t.Bool(False).tag(sync=True)
    tokens = t.List(t.Unicode()).tag(sync=True)
    special = t.List(t.Bool()).tag(sync=True)
    top_k = t.List().tag(sync=True)
    truncated = t.Bool(False).tag(sync=True)
    attention = t.Any(None).tag(sync=True, **array_serialization)
    error = t.Unicode("").tag(sync=True)

    # Corpus search.
    has_corpus = t.Bool(False).tag(sync=True)
    search_k = t.Int(50).tag(sync=True)
    search_busy = t.Bool(False).tag(sync=True)
    search_error = t.Unicode("").tag(sync=True)
    hit_list = t.List().tag(sync=True)
    hits_attention = t.Any(None).tag(sync=True, **array_serialization)
    summaries = t.Dict().tag(sync=True)

    _building = False

    def __init__(self, model: Any, corpus: Any = None, **traits: Any) -> None:
        lm = _as_model(model)
        self.lm = lm
        self.corpus = self._open_corpus(corpus, lm)
        self.analysis: Analysis | None = None
        self.hits: pd.DataFrame | None = None
        self._building = True  # no forward pass until every constructor trait is in
        super().__init__(
            model_name=_label(lm.name),
            kind=lm.kind,
            num_layers=lm.num_layers,
            num_heads=lm.num_heads,
            has_lm_head=lm.has_lm_head,
            has_corpus=self.corpus is not None,
        )
        self._apply_initial(lm, traits)
        self.on_msg(self._on_message)

    def _apply_initial(self, lm: LanguageModel, traits: dict[str, Any]) -> None:
        """Constructor traits, each validated as if set later. The sentence goes first (its
        observer resets masked and selected), and selected last, once there are tokens to check
        it against."""
        unknown = [name for name in traits if not self.has_trait(name)]
        if unknown:
            raise TypeError(f"ExBertView has no trait {unknown[0]!r}.")
        self.heads = traits.pop("heads", list(range(lm.num_heads)))
        if "sentence" in traits:
            self.sentence = traits.pop("sentence")
        selected = traits.pop("selected", None)
        for name, value in traits.items():
            setattr(self, name, value)
        self._building = False
        self._reanalyze()
        self.selected = selected

    @staticmethod
    def _open_corpus(corpus: Any, lm: LanguageModel):
        if corpus is None:
            return None
        from ..corpus import Corpus

        opened = corpus if isinstance(corpus, Corpus) else Corpus.open(corpus)
        opened.check_model(lm)
        return opened

    # -- validation: refuse what does not fit, keep the last good state ----------------------

    @t.validate("sentence")
    def _valid_sentence(self, proposal):
        try:
            self.lm.encode(proposal["value"])
        except InputError as exc:
            raise t.TraitError(str(exc)) from None
        return proposal["value"]

    @t.validate("layer")
    def _valid_layer(self, proposal):
        layer = proposal["value"]
        if not 0 <= layer < self.lm.num_layers:
            raise t.TraitError(
                f"layer {layer} is out of range: {_label(self.lm.name)} has layers "
                f"0..{self.lm.num_layers - 1}."
            )
        return layer

    @t.validate("heads")
    def _valid_heads(self, proposal):
        heads = sorted({int(h) for h in proposal["value"]})
        bad = [h for h in heads if not 0 <= h < self.lm.num_heads]
        if bad:
            raise t.TraitError(
                f"head(s) {bad} out of range: {_label(self.lm.name)} has heads "
                f"0..{self.lm.num_heads - 1}."
            )
        return heads

    @t.validate("head_weights")
    def _valid_weights(self, proposal):
        weights = proposal["value"]
        if weights is None:
            return None
        if len(weights) != self.lm.num_heads or not np.all(np.isfinite(weights)):
            raise t.TraitError(
                f"head_weights needs {self.lm.num_heads} finite numbers (one per head), or None."
            )
        return [float(w) for w in weights]

    @t.validate("masked")
    def _valid_masked(self, proposal):
        masked = sorted({int(i) for i in proposal["value"]})
        try:
            self.lm.encode(self.sentence, masked)
        except InputError as exc:
            raise t.TraitError(str(exc)) from None
        return masked

    @t.validate("selected")
    def _valid_selected(self, proposal):
        index = proposal["value"]
        n = len(self.tokens)
        if index is not None and not 0 <= index < n:
            raise t.TraitError(f"selected token {index} is out of range: tokens are 0..{n - 1}.")
        return index

    @t.validate("threshold")
    def _valid_threshold(self, proposal):
        value = proposal["value"]
        if not 0.0 < value <= 1.0:
            raise t.TraitError(f"threshold must be in (0, 1], got {value}.")
        return value

    @t.validate("search_k")
    def _valid_k(self, proposal):
        if not 1 <= proposal["value"] <= 1000:
            raise t.TraitError(f"search_k must be between 1 and 1000, got {proposal['value']}.")
        return proposal["value"]

    def set_state(self, sync_data: dict) -> None:
        """Browser state: a refused value keeps the kernel as it was and resets the view."""
        try:
            super().set_state(sync_data)
        except t.TraitError as exc:
            self.error = str(exc)
            self.send_state(list(sync_data))
        else:
            if self.error:
                self.error = ""

    # -- computing -------------------------------------------------------------------------------

    @t.observe("sentence")
    def _sentence_changed(self, _change) -> None:
        with self.hold_trait_notifications():
            self.masked = []
            self.selected = None
        self._reanalyze()

    @t.observe("masked")
    def _masked_changed(self, _change) -> None:
        self._reanalyze()

    @t.observe("layer")
    def _layer_changed(self, _change) -> None:
        if self.analysis is not None:
            self.attention = _half(self.analysis.attentions[self.layer])

    def _reanalyze(self) -> None:
        if self._building:
            return
        a = self.analysis
        if a is not None and (a.text, a.masked) == (self.sentence, tuple(self.masked)):
            return  # one forward pass per (sentence, mask), however many observers fire
        analysis = self.lm.analyze(self.sentence, self.masked, top_k=5)
        self.analysis = analysis
        with self.hold_sync():
            self.tokens = analysis.tokens
            self.special = analysis.special
            self.top_k = [[[tok, round(p, 6)] for tok, p in row] for row in analysis.top_k]
            self.truncated = analysis.truncated
            self.attention = _half(analysis.attentions[self.layer])
            if self.selected is not None and self.selected >= len(analysis.tokens):
                self.selected = None

    # -- corpus search ---------------------------------------------------------------------------

    def search(self, by: str = "embedding", k: int | None = None) -> pd.DataFrame:
        """Search the corpus for the tokens nearest to the selected token at the current layer.

        ``by="embedding"`` uses ``hidden_states[layer + 1]`` (the output of the layer);
        ``by="context"`` uses ``contexts[layer]`` restricted to the selected heads. Each hit also
        gets what the matched token attends to most in its own sentence (``max_att_*``),
        recomputed in one batched forward pass. The result is kept as ``view.hits``.
        """
        if self.corpus is None:
            raise ValueError("This view has no corpus: pass corpus=DIR (or ew.demo_corpus(lm)).")
        if self.selected is None:
            raise ValueError("Select a token first (click it, or set view.selected = index).")
        if by not in ("embedding", "context"):
            raise ValueError(f"by must be 'embedding' or 'context', got {by!r}.")
        if by == "context" and not self.heads:
            raise ValueError("Search by context needs at least one selected head.")
        from .hits import search_hits

        k = self.search_k if k is None else k
        result = search_hits(
            self.lm,
            self.corpus,
            self.analysis,
            layer=self.layer,
            heads=self.heads or list(range(self.lm.num_heads)),
            selected=self.selected,
            by=by,
            k=k,
            hide_special=self.hide_special,
        )
        self.hits = result.frame
        with self.hold_sync():
            self.hit_list = result.rows
            self.hits_attention = result.attention
            self.summaries = result.summaries
        return result.frame

    def summary(self, field: str = "pos", of: str = "match") -> pd.Series:
        """Counts of the last hits' labels, as the histograms draw them, largest first.

        Args:
            field: ``"pos"``, ``"dep"``, ``"ent"`` or ``"offset"``.
            of: ``"match"`` (the matched tokens) or ``"max_att"`` (what they attend to most).
        """
        from .hits import summarize

        if self.hits is None:
            raise ValueError("No search yet: call view.search() first.")
        return summarize(self.hits, field, of)

    def _on_message(self, _widget, content: dict, _buffers: Sequence) -> None:
        kind = content.get("type")
        if kind == "search":
            self.search_busy = True
            self.search_error = ""
            try:
                self.search(by=content.get("by", "embedding"), k=int(content.get("k", 50)))
            except (ValueError, InputError) as exc:
                self.search_error = str(exc)
            finally:
                self.search_busy = False
        elif kind == "load_hit":
            self.load_hit(int(content["index"]))

    def load_hit(self, index: int) -> None:
        """Load hit ``index``'s sentence into the view and select its matched token."""
        if self.hits is None or not 0 <= index < len(self.hits):
            raise IndexError(f"No hit {index}.")
        row = self.hits.iloc[index]
        self.sentence = str(row["sentence"])
        if int(row["token_index"]) < len(self.tokens):
            self.selected = int(row["token_index"])
