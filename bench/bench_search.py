"""Search round trip in the kernel: a "search" message from the view to hits ready to draw.

  python bench/bench_search.py

For all-MiniLM-L6-v2, k = 50, on the demo corpus (the project's sample text) and on a corpus of
Dorothy and the Wizard in Oz (built once into bench/out/). What is timed is everything the kernel
does for a click on "Search by ...": the index search, the one batched forward pass that
recomputes the hit sentences' attention, max-attention fields, summaries, and serialising the
new state for the browser. Target <= 300 ms for the whole round trip (the view then draws 50 rows).
"""

from __future__ import annotations

import statistics
import time

import numpy as np
from common import ROOT

import exbert_widget as ew
from exbert_widget.corpus.store import CorpusError
from tests import tiny_models

BOOK = ROOT.parent / "shared" / "data" / "dorothy-and-the-wizard-in-oz.txt"
OUT = ROOT / "bench" / "out" / "dorothy-minilm"


def book_corpus(lm) -> ew.Corpus:
    try:
        corpus = ew.Corpus.open(OUT)
        corpus.check_model(lm)
        return corpus
    except CorpusError:
        return ew.build_corpus(BOOK, lm, OUT)


def round_trips(view: ew.ExBertView, corpus: ew.Corpus, by: str, runs: int = 15) -> list[float]:
    rng = np.random.default_rng(1)
    times = []
    for sid in rng.choice(len(corpus.sentences), runs, replace=False):
        view.sentence = corpus.sentences[int(sid)]
        words = [i for i, s in enumerate(view.special) if not s]
        view.selected = int(rng.choice(words))
        view.layer = int(rng.integers(0, view.num_layers))
        start = time.perf_counter()
        view._on_message(view, {"type": "search", "by": by, "k": 50}, [])
        view.get_state()  # what goes to the browser
        times.append(time.perf_counter() - start)
        assert not view.search_error, view.search_error
    return times


def main() -> None:
    lm = ew.load_model(tiny_models.MINILM)
    for label, corpus in (("demo corpus", ew.demo_corpus(lm)), ("Dorothy", book_corpus(lm))):
        view = ew.ExBertView(lm, corpus=corpus)
        for by in ("embedding", "context"):
            if by == "context":
                view.heads = [0, 3, 7]
            ms = np.array(round_trips(view, corpus, by)) * 1e3
            print(
                f"{label:<12} ({corpus.manifest['counts']['tokens']:>6} tokens) by {by:<9} k=50: "
                f"p50 {statistics.median(ms):6.1f} ms  p90 {np.percentile(ms, 90):6.1f} ms  "
                f"(target <= 300 ms: {'ok' if statistics.median(ms) <= 300 else 'MISSED'})"
            )


if __name__ == "__main__":
    main()
