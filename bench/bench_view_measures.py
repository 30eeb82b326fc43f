"""A layer change in the view (``view.layer = l``) with each ``view.measure``, against the same
change with ``"attention"``: what the user waits for in the kernel when picking another layer.

Each change computes the layer afresh (the engine's caches and the view's kept measure are
cleared first, as for a layer not seen before), brings it to rows that sum to 1
(``exbert_widget/widget/measures.py``) and sets the ``attention`` trait (float16, every head).
Target (issue 12): norm <= 1.5x attention. All in this process, interleaved.

Usage: python bench/bench_view_measures.py
"""

from __future__ import annotations

import torch
from common import interleaved, sentence_of_length

import exbert_widget as ew
from tests import tiny_models


def _fresh(view: ew.ExBertView) -> None:
    a = view.analysis
    a._layers._cache.clear()
    a._norms.clear()
    a._rollouts.clear()
    view._measured = None
    view._drawn.clear()


def measure(lm: ew.LanguageModel, n: int, label: str, repeat: int) -> None:
    views = {m: ew.ExBertView(lm, sentence=sentence_of_length(lm, n), measure=m) for m in
             ("attention", "norm", "rollout")}  # fmt: skip

    def change(view: ew.ExBertView):
        def run() -> None:
            _fresh(view)
            view.layer = 2 if view.layer != 2 else 3

        return run

    times = interleaved({m: change(v) for m, v in views.items()}, repeat)
    ratio = times["norm"] / times["attention"]
    print(
        f"{label}, n = {len(views['attention'].tokens)}: attention "
        f"{times['attention'] * 1e3:7.1f} ms  norm {times['norm'] * 1e3:7.1f} ms  {ratio:4.2f}x "
        f"(target <= 1.50x: {'ok' if ratio <= 1.5 else 'MISSED'})  rollout "
        f"{times['rollout'] * 1e3:7.1f} ms  {times['rollout'] / times['attention']:4.2f}x "
        "(every layer below recomputed too)"
    )


def main() -> None:
    print(f"torch threads: {torch.get_num_threads()}  (machine shared: ratios, not times)")
    minilm = ew.load_model(tiny_models.MINILM)
    measure(minilm, 64, "all-MiniLM-L6-v2", repeat=15)
    measure(minilm, 512, "all-MiniLM-L6-v2", repeat=7)


if __name__ == "__main__":
    main()
