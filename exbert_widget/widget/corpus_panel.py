"""The view's corpus side: search from the selected token, the hits' summaries, loading a hit,
and the head report over the corpus, with the commands the view sends for them."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pandas as pd

from ..errors import InputError
from .state import (
    MAX_PER_SENTENCE,
    SEARCH_K_MAX,
    SKIP_OWN_SENTENCE,
    HeadReportArgs,
    HeadReportResult,
    LoadHitArgs,
    LoadHitResult,
    SearchArgs,
    SearchResult,
)
from .validation import CheckedState, check_int


class CorpusPanel(CheckedState):
    """Corpus search, summaries, hits and the head report of :class:`.view.ExBertView`."""

    corpus: Any
    hits: pd.DataFrame | None
    _own_ids: tuple[Any, dict[str, list[int]]] | None
    hold_sync: Callable[[], AbstractContextManager[Any]]  # the widget's (ipywidgets)

    # -- corpus search ---------------------------------------------------------------------------

    def search(
        self,
        by: str = "embedding",
        k: int | None = None,
        skip_own_sentence: bool = SKIP_OWN_SENTENCE,
        max_per_sentence: int | None = MAX_PER_SENTENCE,
    ) -> pd.DataFrame:
        """Search the corpus for the tokens nearest to the selected token at the current layer.

        ``by="embedding"`` uses ``hidden_states[layer + 1]`` (the output of the layer);
        ``by="context"`` uses ``contexts[layer]`` restricted to the selected heads. Each hit also
        gets what the matched token attends to most in its own sentence (``max_att_*``),
        recomputed in one batched forward pass. The result is kept as ``view.hits``.

        By default the first list is varied: the view's own sentence (corpus sentences whose
        text equals it) is left out, and at most two hits come from one sentence. ``k`` hits
        are still returned when the corpus has them.

        Args:
            by: ``"embedding"`` or ``"context"``.
            k: hits to return, 1..1000 (default ``view.search_k``).
            skip_own_sentence: leave out corpus sentences equal to the view's sentence.
            max_per_sentence: at most this many hits from one sentence (the best); ``None``:
                no cap.

        Raises:
            InputError: no corpus, no selected token, an unknown ``by``, ``k`` out of range,
                ``max_per_sentence`` below 1, or a context search with no head selected.
            CorpusError: the corpus does not match the model's tokens.
        """
        if by not in ("embedding", "context"):
            raise InputError(f"by must be 'embedding' or 'context', got {by!r}.")
        k = check_int("k", self.search_k if k is None else k, 1, SEARCH_K_MAX)
        if max_per_sentence is not None:
            max_per_sentence = check_int("max_per_sentence", max_per_sentence, 1, SEARCH_K_MAX)
        if self.lm.kind == "seq2seq":
            raise InputError(
                "Corpus search is not available for encoder–decoder models: a corpus holds one "
                "encoder's vectors per sentence, and the engine builds none for them."
            )
        if self.corpus is None:
            raise InputError("This view has no corpus: pass corpus=DIR (or ew.demo_corpus(lm)).")
        from .hits import search_hits

        with self._lock:
            if self.selected is None or self.analysis is None:
                raise InputError("Select a token first (click it, or set view.selected = index).")
            if by == "context" and not self.heads:
                raise InputError("Search by context needs at least one selected head.")
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
                exclude_sentences=self._own_sentence_ids() if skip_own_sentence else [],
                max_per_sentence=max_per_sentence,
            )
            self.hits = result.frame
            with self.hold_sync():
                self.set_trait("hit_list", result.rows)
                self.set_trait("hits_attention", result.attention)
                self.set_trait("summaries", result.summaries)
        return result.frame

    def _own_sentence_ids(self) -> list[int]:
        """Corpus sentences whose text is the view's sentence (an index built once per corpus)."""
        corpus = self.corpus
        if self._own_ids is None or self._own_ids[0] is not corpus:
            ids: dict[str, list[int]] = {}
            for sid, text in enumerate(corpus.sentences[:]):
                ids.setdefault(text, []).append(sid)
            self._own_ids = (corpus, ids)
        return self._own_ids[1].get(self.sentence, [])

    def summary(self, field: str = "pos", of: str = "match") -> pd.Series:
        """Counts of the last hits' labels, as the histograms draw them, largest first.

        Args:
            field: ``"pos"``, ``"dep"``, ``"ent"`` or ``"offset"``.
            of: ``"match"`` (the matched tokens) or ``"max_att"`` (what they attend to most).

        Raises:
            InputError: no search yet, or an unknown ``field`` or ``of``.
        """
        from .hits import summarize

        if self.hits is None:
            raise InputError("No search yet: call view.search() first.")
        return summarize(self.hits, field, of)

    def load_hit(self, index: int) -> None:
        """Load hit ``index``'s sentence into the view, clear the mask, select its matched token.

        Raises:
            InputError: no search yet, or ``index`` is not a hit's index.
        """
        if self.hits is None:
            raise InputError("No search yet: there is no hit to load.")
        index = check_int("hit index", index, 0, len(self.hits) - 1)
        row = self.hits.iloc[index]
        sentence, token = str(row["sentence"]), int(row["token_index"])
        n = len(self.lm.encode(sentence))
        self.apply({"sentence": sentence, "masked": [], "selected": token if token < n else None})

    # -- head report -----------------------------------------------------------------------------

    def head_report(self, refresh: bool = False) -> pd.DataFrame:
        """Which heads track which dependency relations over the view's corpus
        (``corpus.head_report(lm)``, cached next to the corpus), also drawn as the view's
        heatmap: click a cell to show that layer and head.

        Raises:
            InputError: the view has no corpus, or the model is encoder–decoder.
            CorpusError: the corpus was built for another model.
        """
        if self.corpus is None:
            raise InputError(
                "The head report reads a corpus: pass corpus=DIR (or ew.demo_corpus(lm))."
            )
        from .report import report_view

        frame = self.corpus.head_report(self.lm, refresh=refresh)
        self.set_trait("report", report_view(frame, self.lm.num_layers, self.lm.num_heads))
        return frame

    def _search_command(self, args: SearchArgs) -> SearchResult:
        frame = self.search(
            by=args["by"],
            k=args["k"],
            skip_own_sentence=args.get("skip_own_sentence", SKIP_OWN_SENTENCE),
            max_per_sentence=args.get("max_per_sentence", MAX_PER_SENTENCE),
        )
        return {"count": len(frame)}

    def _load_hit_command(self, args: LoadHitArgs) -> LoadHitResult:
        self.load_hit(args["index"])
        return {"sentence": self.sentence, "selected": self.selected}

    def _head_report_command(self, args: HeadReportArgs) -> HeadReportResult:
        return {"rows": len(self.head_report(refresh=args["refresh"]))}
