"""A layer change with ``measure="norm"`` against the same change with ``"attention"``.

A layer change is what the view does when the user picks another layer: the layer's weights
computed from what the pass recorded (not cached), to float32 numpy. ``"norm"`` adds the
per-head projected value norms (Kobayashi et al. 2020) and their product with the weights.
Target (issue 12): norm <= 1.5x attention. Also the next layer's rollout (one n x n product on
top of that layer's weights). All in this process, interleaved.

Usage: python bench/bench_measures.py
"""

from __future__ import annotations

import torch
from common import interleaved, sentence_of_length

import exbert_widget as ew
from tests import tiny_models

LAYER = 1


def _fresh(a: ew.Analysis) -> None:
    """Forget the layers' cached weights, norms and rollouts (a layer change computes them)."""
    a._layers._cache.clear()
    a._norms.clear()
    a._rollouts.clear()


def measure(lm: ew.LanguageModel, n: int, label: str, repeat: int) -> None:
    text = sentence_of_length(lm, n)
    a = lm.analyze(text)
    rollout_below = LAYER - 1

    def attention():
        _fresh(a)
        a.attention(LAYER)

    def norm():
        _fresh(a)
        a.attention(LAYER, measure="norm")

    def rollout():
        _fresh(a)
        a.rollout(rollout_below)  # the layers below, as a view that showed them has them
        a._layers._cache.clear()
        a.rollout(LAYER)

    times = interleaved({"attention": attention, "norm": norm, "rollout": rollout}, repeat)
    ratio = times["norm"] / times["attention"]
    print(
        f"{label}, n = {len(a)}: attention {times['attention'] * 1e3:7.1f} ms  "
        f"norm {times['norm'] * 1e3:7.1f} ms  {ratio:4.2f}x "
        f"(target <= 1.50x: {'ok' if ratio <= 1.5 else 'MISSED'})  "
        f"rollout (next layer) {times['rollout'] * 1e3:7.1f} ms"
    )


def main() -> None:
    print(f"torch threads: {torch.get_num_threads()}  (machine shared: ratios, not times)")
    minilm = ew.load_model(tiny_models.MINILM)
    measure(minilm, 64, "all-MiniLM-L6-v2", repeat=15)
    measure(minilm, 512, "all-MiniLM-L6-v2", repeat=7)
    model, tok = tiny_models.build("bert-base")
    measure(ew.load_model(model=model, tokenizer=tok), 512, "bert-base-sized (random)", repeat=5)
    model, tok = tiny_models.build("llama3")
    measure(ew.load_model(model=model, tokenizer=tok), 2048, "tiny Llama 3 (GQA)", repeat=7)


if __name__ == "__main__":
    main()
