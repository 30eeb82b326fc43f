"""ExBertView: exBERT's explorer as an anywidget. The kernel computes; the bundled view draws.

The synced state is declared in :mod:`.state` and checked in :mod:`.validation`; the corpus side
is in :mod:`.corpus_panel`. This module keeps the analysis in step with the state, draws, and
answers the view's commands (:mod:`.commands`).
"""

from __future__ import annotations

import logging
import os
import pathlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import anywidget
import numpy as np
import pandas as pd
import torch
import traitlets as t

from ..errors import CorpusError, ExbertError, InputError, StateError
from ..models import Analysis, LanguageModel, load_model
from ..models.demo import DEMO_LABEL, demo_description
from ..models.pairs import has_pair_convention
from . import compare as diff
from . import lines as drawing
from . import pairs as pairing
from . import parts
from .commands import Dispatcher
from .corpus_panel import CorpusPanel
from .measures import measure_for_wire, measure_tensor
from .state import (
    MAX_NEW_TOKENS,
    PARTS,
    GenerateArgs,
    GenerateResult,
    HeadLinesArgs,
    HeadLinesResult,
    ReapplyArgs,
    ReapplyResult,
    computed_traits,
    user_traits,
)
from .validation import check_int, check_text

STATIC = pathlib.Path(__file__).resolve().parents[1] / "static"
_log = logging.getLogger(__name__)

_MISSING_BUNDLE = """
export default { render({ el }) {
  el.textContent = "exbert-widget: the view bundle is not built. Run "
    + "`npm install && npm run build` in js/, or install the package from a wheel.";
} };
"""


def _asset(name: str, fallback: str) -> pathlib.Path | str:
    path = STATIC / name
    return path if path.exists() else fallback


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
        return load_model(os.fspath(model))
    raise TypeError(
        "ExBertView takes a load_model() result, a hub name or directory, or (model, tokenizer); "
        f"got {type(model).__name__}."
    )


def _lines_frame(drawn: drawing.Lines, tokens: Sequence[str]) -> pd.DataFrame:
    counts = np.diff(drawn.rows)
    rows = np.repeat(np.arange(len(counts)), counts).tolist()
    columns = drawn.lines[:, 0].astype(np.int64).tolist()
    weights = drawn.lines[:, 1].astype(np.float64) / drawing.WEIGHT_LEVELS * drawn.scale
    return pd.DataFrame(
        {
            "from": rows,
            "to": columns,
            "from_token": [tokens[i] for i in rows],
            "to_token": [tokens[j] for j in columns],
            "weight": weights,
        }
    )


class ExBertView(anywidget.AnyWidget, CorpusPanel):
    """exBERT's attention explorer for one model, with optional corpus search.

    Args:
        model: a :func:`load_model` result, a hub name or local directory, or
            ``(model, tokenizer)`` objects.
        corpus: ``None``, a corpus directory, or an opened :class:`Corpus`.
        compare_model: a second model with the same tokenizer (another checkpoint), taken as
            ``model`` is; the second panel shows it beside the first (``compare="side"``, the
            default with a compare model) or as Δ (``compare="model"``).
        **traits: initial values of the traits the user controls (``sentence``, ``layer``,
            ``heads``, ``head_weights``, ``masked``, ``hide_special``, ``threshold``,
            ``selected``, ``search_k``, ``sentence_b``, ``pair_filter``, ``target``,
            ``part``), applied together and checked against each other.

    Raises:
        TypeError: ``model`` is none of the above, or a trait name is unknown or computed.
        InputError: ``compare_model`` reads other tokens than ``model`` (names both).
        ModelLoadError: the model cannot be loaded.
        CorpusError: ``corpus`` is not a directory or a Corpus, cannot be opened, or was
            built for another model.
        StateError: an initial trait value is refused (out of range, wrong type).

    What the user does in the view comes back in the traits, and setting a trait from Python
    redraws the view. A forward pass runs only when ``sentence`` or ``masked`` change; the other
    traits re-slice what is already computed. Setting ``sentence`` alone clears ``masked`` and
    ``selected``; the view can send a sentence with its mask in one update. ``hide_special``
    drops special tokens' rows and columns from the drawing and renormalises each remaining row;
    ``view.analysis`` keeps the raw values. A refused value raises :class:`StateError` (an
    ``ExbertError`` and a ``TraitError``) and keeps the last good state; a value refused from the
    browser is shown in the view instead.

    Sentence pairs: ``sentence_b`` (``""`` = no pair) is the second sentence, ``segments`` says
    which sentence each token is in, and ``pair_filter`` (``"all"``, ``"A->A"``, ``"A->B"``,
    ``"B->A"``, ``"B->B"``) keeps only the lines from one segment's tokens to another's.
    Encoder–decoder models (``kind == "seq2seq"``): ``target`` (``""`` = the model's greedy
    output, shown back in ``target_text``) and ``part`` (``"encoder"``, ``"decoder"``,
    ``"cross"``); ``tokens`` lists the source's tokens, then the target's, and ``row_span`` /
    ``column_span`` say which of them each column shows (see :mod:`.parts`).
    """

    _esm = _asset("widget.js", _MISSING_BUNDLE)
    _css = _asset("widget.css", "")
    #: Up to this many tokens the view gets every head of the layer (and combines, cuts and
    #: summarises them itself); above it the kernel sends only what is drawn (see ``lines``).
    all_heads_max_tokens: int = drawing.ALL_HEADS_MAX_TOKENS

    def __init__(
        self, model: Any, corpus: Any = None, compare_model: Any = None, **traits: Any
    ) -> None:
        lm = _as_model(model)
        self.lm = lm
        self.compare_lm = None if compare_model is None else _as_model(compare_model)
        if self.compare_lm is not None:
            diff.check_same_tokenizer(lm, self.compare_lm)
            traits.setdefault("compare", "side")
        # Reference analyses of the second panel, by what they were made from.
        self._references: dict[tuple, Analysis] = {}
        self.corpus = self._open_corpus(corpus, lm)
        self.analysis: Analysis | None = None
        self.hits: pd.DataFrame | None = None
        # One update of the analysis at a time, whichever thread sends it.
        self._lock = threading.RLock()
        self._batch: frozenset[str] = frozenset()
        # What was last sent for drawing, by what it was computed from (see _draw).
        self._drawn: dict[str, tuple] = {}
        self._pairs: tuple[tuple, list] | None = None  # see _top_k_pairs
        # What the analysis was computed from: (sentence, masked, sentence_b, target).
        self._analysed: tuple | None = None
        # (text, start): the sentence view.generate wrote, and where the model's text begins.
        self._generation: tuple[str, int] | None = None
        self._own_ids: tuple[Any, dict[str, list[int]]] | None = None
        self._measured: tuple[tuple, Any] | None = None
        super().__init__()
        with self.hold_sync():
            self.set_trait("model_name", _label(lm.name))
            if lm.name == DEMO_LABEL:
                self.set_trait("model_description", demo_description())
            self.set_trait("kind", lm.kind)
            self.set_trait("num_layers", lm.num_layers)
            self.set_trait("num_heads", lm.num_heads)
            self.set_trait("has_lm_head", lm.has_lm_head)
            self.set_trait("has_corpus", self.corpus is not None)
            self.set_trait("parts", list(PARTS) if lm.kind == "seq2seq" else [])
            self.set_trait("takes_pair", lm.kind != "seq2seq" and has_pair_convention(lm.tokenizer))
            if self.compare_lm is not None:
                self.set_trait("compare_model_name", _label(self.compare_lm.name))
        self._apply_initial(lm, traits)
        self._commands = Dispatcher(
            {
                "search": self._search_command,
                "load_hit": self._load_hit_command,
                "generate": self._generate_command,
                "head_lines": self._head_lines_command,
                "head_report": self._head_report_command,
                "reapply": self._reapply_command,
                **self._extra_commands(),
            },
            send=lambda reply, buffers: self.send(reply, buffers),
            beat=lambda message: self.send(message),
        )
        self.on_msg(self._on_message)

    def _apply_initial(self, lm: LanguageModel, traits: dict[str, Any]) -> None:
        """Constructor traits as one update, then the first analysis (one forward pass)."""
        for name in traits:
            if name in computed_traits():
                raise TypeError(
                    f"ExBertView's {name!r} is computed from the model: not an argument."
                )
            if name not in user_traits():
                raise TypeError(f"ExBertView has no trait {name!r}.")
        self.apply({"heads": list(range(lm.num_heads)), **traits})
        self._reanalyze()

    @staticmethod
    def _open_corpus(corpus: Any, lm: LanguageModel) -> Any:
        if corpus is None:
            return None
        from ..corpus import Corpus

        if not isinstance(corpus, Corpus | str | os.PathLike):
            raise CorpusError(
                "corpus must be None, a corpus directory (str or path) or an ew.Corpus, got "
                f"{type(corpus).__name__}."
            )
        opened = corpus if isinstance(corpus, Corpus) else Corpus.open(corpus)
        opened.check_model(lm)
        return opened

    # -- state from the browser ---------------------------------------------------------------
    def set_state(self, sync_data: dict[str, Any]) -> None:
        """State from the browser: a refused update changes nothing, says why in the view, and
        puts the view's copy of the refused traits back. An update that passes the checks but
        fails while computing or drawing (the model raising, say) is undone the same way: the
        traits it set go back to their last good values, and the view shows the error."""
        ours = [name for name in sync_data if self.has_trait(name)]
        before = {name: getattr(self, name) for name in user_traits()}  # observers set more
        try:
            with self._lock:
                self._check_browser_keys(sync_data)
                if "sentence" in sync_data:  # before the echo: a lone surrogate cannot be sent
                    check_text(sync_data["sentence"])
                with self._batched(sync_data):
                    super().set_state(sync_data)
        except t.TraitError as exc:
            self.set_trait("error", str(exc))
            self.send_state([name for name in ours if name in self.keys])
        except Exception as exc:  # the browser's update reached no Python caller to raise to
            self._restore({n: v for n, v in before.items() if not _same(getattr(self, n), v)})
            self.set_trait("error", f"{type(exc).__name__}: {exc}")
            self.send_state([name for name in ours if name in self.keys])
        else:
            if self.error:
                self.set_trait("error", "")

    def _reapply_command(self, args: ReapplyArgs) -> ReapplyResult:
        """An Apply in the view that changed nothing sends no state, so a refusal shown before
        would stay up over a good value: the kernel's values go through :meth:`set_state` again.

        Raises:
            InputError: a name that is not a trait the user sets.
        """
        names = args["names"]
        settable = user_traits()
        for name in names:
            if name not in settable:
                raise InputError(f"reapply: {name!r} is not a trait the view sets.")
        self.set_state(self.get_state(names))
        return {"error": self.error}

    def _restore(self, values: Mapping[str, Any]) -> None:
        """Put traits back to ``values`` (their last good state) as one update, recomputing what
        depends on them."""
        with self._lock, self._batched(values), self.hold_trait_notifications():
            for name, value in values.items():
                self.set_trait(name, value)

    def _check_browser_keys(self, sync_data: Mapping[str, Any]) -> None:
        computed = set(computed_traits())
        for name in sync_data:
            if name in computed:
                raise StateError(f"{name!r} is computed by the kernel; the view cannot set it.")
            if not self.has_trait(name):
                raise StateError(f"ExBertView has no trait {name!r}.")

    # -- computing -------------------------------------------------------------------------------

    @t.observe("sentence")
    def _sentence_changed(self, _change: t.Bunch) -> None:
        with self.hold_trait_notifications():
            if "masked" not in self._batch:
                self.masked = []
            if "selected" not in self._batch:
                self.selected = None
        self._reanalyze()

    @t.observe("sentence_b")
    def _sentence_b_changed(self, _change: t.Bunch) -> None:
        self._sentence_changed(_change)

    @t.observe("masked", "target")
    def _masked_changed(self, _change: t.Bunch) -> None:
        self._reanalyze()

    @t.observe("part")
    def _part_changed(self, _change: t.Bunch) -> None:
        """The layer selector and the heads follow the part's stack; the drawing its block."""
        with self._lock, self.hold_sync():
            layers = parts.layer_count(self.lm, self.part)
            heads = parts.head_count(self.lm, self.part)
            self.set_trait("num_layers", layers)
            if heads != self.num_heads:
                self.set_trait("num_heads", heads)
                self.apply({"heads": list(range(heads)), "head_weights": None})
            if self.layer >= layers:
                self.layer = layers - 1
            if self.analysis is not None:
                self._publish_spans(self.analysis)
            self._draw()

    @t.observe("layer", "hide_special", "heads", "head_weights", "threshold", "measure", "compare")
    def _drawing_changed(self, _change: t.Bunch) -> None:
        if self.compare is None:  # None is off, as "" (traitlets lets None past validation)
            self.compare = ""
            return
        with self._lock:
            self._draw()

    def _reanalyze(self) -> None:
        """Bring the analysis in line with (sentence, masked); one forward pass per change."""
        with self._lock:
            wanted = self._wanted()
            if self.analysis is not None and self._analysed == wanted:
                return
            if self.lm.kind == "seq2seq":
                analysis = self.lm.analyze(
                    self.sentence, self.masked, top_k=5, target=self.target or None
                )
            else:
                analysis = self.lm.analyze(
                    self.sentence, self.masked, top_k=5, sentence_b=self.sentence_b or None
                )
            self.analysis = analysis
            self._analysed = wanted
            self._publish(analysis)

    def _wanted(self) -> tuple:
        """What the analysis is to be computed from."""
        return (self.sentence, tuple(self.masked), self.sentence_b, self.target)

    def _publish(self, analysis: Analysis) -> None:
        with self.hold_sync():
            tokens, special = parts.tokens(analysis)
            self.set_trait("tokens", tokens)
            self.set_trait("special", special)
            self.set_trait("segments", self._segments(analysis, len(tokens)))
            self._publish_spans(analysis)
            self.set_trait("generated", self._generated_flags(analysis))
            self.set_trait("top_k", parts.top_k(analysis))
            self.set_trait("truncated", analysis.truncated)
            self._draw()
            if self.selected is not None and self.selected >= len(tokens):
                self.selected = None

    @staticmethod
    def _segments(analysis: Analysis, n: int) -> list[int]:
        return list(analysis.segments) if analysis.target is None else [0] * n

    def _publish_spans(self, analysis: Analysis) -> None:
        rows, columns = parts.spans(analysis, self.part)
        self.set_trait("row_span", rows)
        self.set_trait("column_span", columns)
        target = analysis.target
        self.set_trait("target_text", target.text if target is not None else "")
        self.set_trait("target_generated", bool(target is not None and target.generated))

    def _generated_flags(self, analysis: Analysis) -> list[bool]:
        """Tokens that end after where view.generate's text began (none once the sentence is
        another): matched by characters, as ``Generation.generated`` does. Encoder–decoder
        models: the target's tokens, when the model wrote the target."""
        if analysis.target is not None:
            return parts.generated(analysis)
        if self._generation is None or self._generation[0] != analysis.text:
            self._generation = None
            return [False] * len(analysis.tokens)
        start = self._generation[1]
        return [
            not special and stop > start
            for (_, stop), special in zip(analysis.offsets, analysis.special, strict=True)
        ]

    # -- what the view draws ---------------------------------------------------------------------

    def _combined(self, analysis: Analysis) -> bool:
        return len(analysis.tokens) > self.all_heads_max_tokens

    def _draw(self) -> None:
        """Send what the view draws of the current layer, computing only what changed: every
        head (short inputs), or the lines and the heads grids' summaries (long inputs).
        Called under the lock."""
        a = self.analysis
        if a is None:
            return
        with self.hold_sync():
            self._draw_compare(a)
            if not self._combined(a):
                key: tuple = (a, self.layer, self.part, self.measure)
                self._send_drawing("attention", key, self._all_heads)
                return
            key = (a, self.layer, self.part, self.measure, self.hide_special)
            self._send_drawing("summary", key, self._summary)
            weights = tuple(self.head_weights) if self.head_weights else None
            cut = (*key, tuple(self.heads), weights, self.threshold)
            self._send_drawing("lines", cut, self._lines)

    def _send_drawing(self, part: str, key: tuple, send: Any) -> None:
        if self._drawn.get(part) == key:
            return
        send(key[0])
        self._drawn[part] = key

    def _draw_compare(self, analysis: Analysis) -> None:
        """The second panel (see :mod:`.compare`), when what it is computed from changed."""
        weights = tuple(self.head_weights) if self.head_weights else None
        key: tuple = (analysis, self.compare, self.layer, self.measure, tuple(self.heads))
        key += (weights, self.hide_special, self.threshold)
        if self._drawn.get("compare") == key:
            return
        try:
            lines, note, top_k = self._compare_drawing(analysis)
        except ExbertError as exc:  # what the compare model refuses (norms it has no values
            # for, ...) empties the second panel only; the first draws what was asked
            lines, note, top_k = None, f"The second panel cannot draw this: {exc}", []
        self.set_trait("compare_lines", lines)
        self.set_trait("compare_note", note)
        self.set_trait("compare_top_k", top_k)
        self._drawn["compare"] = key

    def _compare_drawing(self, analysis: Analysis) -> tuple[np.ndarray | None, str, list]:
        """(lines, note, probabilities) of the second panel for ``view.compare``."""
        if not self.compare:
            return None, "", []
        shown = diff.Side(analysis, self.lm)
        reference = self.reference()
        assert reference is not None
        layer_count, head_count = reference.lm.num_layers, reference.lm.num_heads
        if len(reference.analysis.tokens) != len(analysis.tokens):  # cut at a shorter limit
            return (
                None,
                f"{reference.lm.name} reads the sentence as {len(reference.analysis.tokens)} "
                f"tokens, not {len(analysis.tokens)} (its limit is {reference.lm.max_length}): "
                "shorten the sentence to compare the same tokens.",
                [],
            )
        if self.layer >= layer_count:
            return None, f"{reference.lm.name} has layers 0..{layer_count - 1} only.", []
        # Heads it lacks would be dropped on its side only: a Δ of different heads.
        if any(h >= head_count for h in self.heads) or (
            self.head_weights and len(self.head_weights) != head_count
        ):
            return (
                None,
                f"{reference.lm.name} has heads 0..{head_count - 1} only: select heads in that "
                "range (and no head_weights) to compare.",
                [],
            )
        args = (self.layer, self.measure, self.heads, self.head_weights, self.hide_special)
        if self.compare == "side":
            matrix = diff.combined(reference, *args)
            top_k = self._top_k_pairs(reference, shown)
            return diff.shown_lines(matrix, self.threshold), "", top_k
        if self.compare == "unmasked" and not analysis.masked:
            return None, "Mask a token (double-click it) to see what masking changes.", []
        delta = diff.combined(shown, *args) - diff.combined(reference, *args)
        return diff.signed_lines(delta, self.threshold), "", self._top_k_pairs(shown, reference)

    def _top_k_pairs(self, shown: diff.Side, reference: diff.Side) -> list:
        """:func:`.compare.top_k_pairs` (a forward pass of the reference model), once per pair
        of analyses: a layer, head or threshold change redraws the lines only."""
        key = (shown.analysis, shown.lm, reference.analysis, reference.lm)
        if self._pairs is None or self._pairs[0] != key:
            self._pairs = (key, diff.top_k_pairs(shown, reference))
        return self._pairs[1]

    def reference(self) -> diff.Side | None:
        """What the second panel compares the view's analysis with: the sentence without its
        mask (``compare="unmasked"``), the compare model's analysis of the same sentence and
        mask (``"model"``, ``"side"``), or None (``compare=""``)."""
        a = self.analysis
        if not self.compare or a is None:
            return None
        if self.compare == "unmasked":
            if not a.masked:
                return diff.Side(a, self.lm)
            key: tuple = ("unmasked", a.text, a.sentence_b)
            lm: LanguageModel | None = self.lm
        else:
            key = ("model", a.text, a.sentence_b, a.masked)
            lm = self.compare_lm
        assert lm is not None
        if key not in self._references:
            self._references.clear()  # one sentence at a time
            masked = () if self.compare == "unmasked" else a.masked
            self._references[key] = lm.analyze(a.text, masked, top_k=5, sentence_b=a.sentence_b)
        return diff.Side(self._references[key], lm)

    def _measure(self, analysis: Analysis) -> Any:
        """The layer's ``[heads, n, n]`` of ``view.measure`` (see :mod:`.measures`); the last
        norm or rollout is kept, as the engine keeps attention."""
        key = (analysis, self.layer, self.measure, self.part)
        if self._measured is not None and self._measured[0] == key:
            return self._measured[1]
        tensor = measure_tensor(analysis, self.layer, self.measure, self.part)
        self._measured = (key, tensor) if self.measure != "attention" else None
        return tensor

    def _all_heads(self, analysis: Analysis) -> None:
        self._drawn.pop("summary", None)
        self._drawn.pop("lines", None)
        self.set_trait("attention_mode", "all_heads")
        self.set_trait("lines", None)
        self.set_trait("lines_rows", None)
        self.set_trait("head_summary", None)
        self.set_trait("attention", self._measure(analysis).to(torch.float16).cpu().numpy())

    def _summary(self, analysis: Analysis) -> None:
        self._drawn.pop("attention", None)
        attention = self._measure(analysis)
        visible = drawing.visible_mask(self.special, self.hide_special, attention.device)
        self.set_trait("attention", None)
        summary = drawing.head_summary(attention, visible)
        summary = parts.rescale_summary(
            summary, analysis, self.part, self.special, self.hide_special
        )
        self.set_trait("head_summary", summary)
        self.set_trait("attention_mode", "combined")

    def _lines(self, analysis: Analysis) -> None:
        attention = self._measure(analysis)
        visible = drawing.visible_mask(self.special, self.hide_special, attention.device)
        drawn = drawing.drawn_lines(
            attention, visible, self.heads, self.head_weights, self.threshold
        )
        self.set_trait("lines_rows", drawn.rows)
        self.set_trait("lines", drawn.lines)
        self.set_trait("lines_scale", drawn.scale)

    def head_lines(self, head: int) -> drawing.Lines:
        """The lines of one head alone at the current layer, threshold and hidden tokens: what
        the view draws while that head is hovered (it asks for them when the input is long).

        Raises:
            InputError: ``head`` is not a head index.
        """
        head = check_int("head", head, 0, self.num_heads - 1)
        with self._lock:
            a = self.analysis
            assert a is not None
            attention = self._measure(a)
            visible = drawing.visible_mask(self.special, self.hide_special, attention.device)
            return drawing.head_lines(attention, visible, head, self.threshold)

    def drawn_lines(self) -> pd.DataFrame:
        """The lines the view draws now, one row each: ``from`` and ``to`` (token indices),
        their tokens, and ``weight``, for the layer, part, heads, hidden tokens, threshold and
        pair filter in effect (the view draws the same lines).

        Short inputs: from the float16 attention the view receives, combined as the view does;
        long inputs: the kernel's lines as sent.
        """
        with self._lock:
            a = self.analysis
            assert a is not None
            if self._combined(a):
                assert self.lines_rows is not None and self.lines is not None
                drawn = drawing.Lines(self.lines_rows, self.lines, self.lines_scale)
            else:
                attention = torch.from_numpy(
                    measure_for_wire(a, self.layer, self.measure, self.part)
                )
                visible = drawing.visible_mask(self.special, self.hide_special, attention.device)
                weights = self.head_weights or None
                drawn = drawing.drawn_lines(
                    attention.float(), visible, self.heads, weights, self.threshold
                )
            drawn = pairing.filter_lines(drawn, self.segments, self.pair_filter)
            return _lines_frame(drawn, self.tokens)

    # -- model view, logit lens, export (view_extras.py) ---------------------------------------

    def thumbnails(self) -> np.ndarray:
        """The model view's thumbnails: uint8 ``[layers, heads, s, s]`` (``s`` ≤ 64), each
        head's attention with hidden tokens removed (as drawn), block-averaged where it lives
        and scaled so its strongest cell is 255. One layer is recomputed at a time. For an
        encoder–decoder model, the layers of ``view.part``."""
        from .thumbnails import model_thumbnails

        with self._lock:
            a = self.analysis
            assert a is not None
            return model_thumbnails(a, self.special, self.hide_special, part=self.part)

    def logit_lens(self, top_k: int = 5) -> pd.DataFrame:
        """The logit lens at the selected token: ``lm.logit_lens(view.analysis, view.selected)``,
        a DataFrame ``layer`` (0 = the embedding output), ``rank``, ``token``, ``prob``.

        Raises:
            InputError: no token is selected (or, for an encoder–decoder model, a source token:
                the lens reads the decoder), the model has no language-model head, or a bad
                ``top_k``.
        """
        with self._lock:
            if self.selected is None or self.analysis is None:
                raise InputError("Select a token first (click it, or set view.selected = index).")
            if not self.lm.has_lm_head:
                raise InputError(
                    f"{self.model_name} has no language-model head: there is no logit lens."
                )
            from .view_extras import lens_position

            position = lens_position(self, self.selected)
            return self.lm.logit_lens(self.analysis, position, top_k=top_k)

    def save(self, path: str | os.PathLike[str]) -> pathlib.Path:
        """Save the view as a figure, by the suffix of ``path``: ``.svg`` (vector: each token a
        text element, each line a path), ``.html`` (one self-contained, interactive file that
        opens offline) or ``.png`` (2× pixel density, drawn by a displayed view).

        ``.svg`` and ``.html`` are rendered from the kernel's state and need no view on screen.
        ``.png`` asks a displayed view to draw it: the file is written when the view answers,
        after this call returns (the kernel cannot wait for the browser while a cell runs).
        The file appears whole or not at all.

        Returns:
            The path written (or, for ``.png``, to be written).

        Raises:
            InputError: an unknown suffix, a folder that does not exist, or ``.png`` with no
                view displayed; nothing is written.
            ExbertError: ``.html`` without the built view bundle (``npm run build`` in js/).
        """
        from .view_extras import save_view

        with self._lock:
            return save_view(self, pathlib.Path(path))

    def _extra_commands(self) -> dict[str, Any]:
        from .view_extras import commands

        return commands(self)

    # -- generation ------------------------------------------------------------------------------

    def generate(self, max_new_tokens: int = MAX_NEW_TOKENS) -> str:
        """Append the model's greedy continuation to the sentence and mark the new tokens.

        The continuation is ``model.generate(do_sample=False)`` on the sentence's ids (see
        ``lm.greedy_continuation``); the longer sentence is analysed like any other, and
        ``view.generated`` marks the tokens the model wrote (also those of earlier calls, until
        the sentence is set to something else).

        Returns:
            The text appended.

        Raises:
            InputError: a masked LM (or a model without its LM head), a bad
                ``max_new_tokens``, or a prompt with no room left; the view keeps its state.
        """
        with self._lock:
            prompt = self.sentence
            generation = self.lm.greedy_continuation(prompt, max_new_tokens)
            before = self._generation
            start = before[1] if before is not None and before[0] == prompt else len(prompt)
            self._generation = (generation.text, start)
            try:
                if generation.text == prompt:  # nothing new (it stopped at once)
                    self._generation = before
                    self._check_begun_character(generation.new_ids)
                else:
                    self.apply({"sentence": generation.text})
            except Exception:
                self._generation = before
                raise
            return generation.new_text

    def _check_begun_character(self, new_ids: list[int]) -> None:
        """Refuse a generation whose new tokens only began a character (``new_text`` is empty,
        see ``Generation.new_text``): else the Generate button would do nothing, silently, again
        and again.

        Raises:
            InputError: saying to ask for more new tokens.
        """
        special = set(self.lm.tokenizer.all_special_ids)
        begun = [i for i in new_ids if i not in special]
        if begun:
            raise InputError(
                f"The model's next {len(begun)} token(s) only begin a character it writes as "
                "several byte tokens (an emoji, a CJK character): ask for more new tokens to "
                "see it."
            )

    # -- commands from the view ------------------------------------------------------------------

    def _on_message(self, _widget: Any, content: Any, _buffers: Sequence[Any]) -> None:
        from .view_extras import attach_message

        if not self._commands.handle(content) and not attach_message(self, content):
            _log.warning("exbert-widget: ignored a message that is not a command: %.200r", content)

    def _generate_command(self, args: GenerateArgs) -> GenerateResult:
        self.generate(args["max_new_tokens"])
        return {"sentence": self.sentence, "generated": sum(self.generated)}

    def _head_lines_command(self, args: HeadLinesArgs) -> HeadLinesResult:
        with self._lock:
            drawn = self.head_lines(args["head"])
            return {
                "head": args["head"],
                "layer": self.layer,
                "threshold": self.threshold,
                "hide_special": self.hide_special,
                "lines": drawn.lines,
                "rows": drawn.rows,
                "scale": drawn.scale,
            }


def _same(a: Any, b: Any) -> bool:
    """Whether two trait values are equal (False where comparing them fails or is ambiguous)."""
    try:
        return bool(a == b)
    except Exception:
        return False
