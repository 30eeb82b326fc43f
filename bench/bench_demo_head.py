"""The demo head measured the way the view uses it: one word masked in one sentence.

``scripts/train_demo_head.py`` reports accuracy on 128-token windows with 15 % of the tokens
masked (how the head is trained). The view masks one token of one sentence, which the model
sees differently; this script measures that case through the real demo model
(``ew.load_model("demo")``, ``lm.analyze(sentence, masked=[i])``, the top 5 the view shows):
one randomly chosen (seeded) non-special token per sentence, over the held-out last tenth of
each Baum book (the head never saw it) and over the project's own sample text
(``corpus/sample.txt``). Anchor: the unigram guess (the most frequent token of the books'
training part, ranked by frequency), on the same positions.

Usage: python bench/bench_demo_head.py [--per-source 400]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter

import numpy as np
import pandas as pd
from common import ROOT

import exbert_widget as ew
from exbert_widget.corpus.text import read_paragraphs

sys.path.insert(0, str(ROOT / "scripts"))
# the books, their held-out tenth and the sample text exactly as the head was trained and tested
from train_demo_head import SAMPLE, split_books

# a sentence ends at . ! or ? (a closing quote may follow) before a capital or an opening quote
_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"])|(?<=[.!?][\"'])\s+(?=[A-Z\"])")


def sentences(paragraphs: list[str], lm) -> list[str]:
    """Sentences of 5 to 60 word pieces."""
    out = []
    for paragraph in paragraphs:
        for text in _SPLIT.split(paragraph):
            if 5 <= len(lm.tokenizer(text, add_special_tokens=False)["input_ids"]) <= 60:
                out.append(text)
    return out


def measure(lm, texts: list[str], unigram: list[str], seed: int) -> dict[str, float]:
    """Top-1 / top-5 of the view's predictions and of the unigram guess at one masked token."""
    rng = np.random.default_rng(seed)
    hits = Counter()
    for text in texts:
        plain = lm.encode(text)
        position = int(rng.choice([i for i, s in enumerate(plain.special) if not s]))
        truth = plain.tokens[position]
        top = [token for token, _ in lm.analyze(text, masked=[position]).top_k[position]]
        hits["top1"] += top[:1] == [truth]
        hits["top5"] += truth in top
        hits["unigram top1"] += unigram[:1] == [truth]
        hits["unigram top5"] += truth in unigram[:5]
    names = ("top1", "top5", "unigram top1", "unigram top5")
    return {name: hits[name] / len(texts) for name in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-source", type=int, default=400, help="sentences per source")
    args = parser.parse_args()
    lm = ew.load_model("demo")
    train, held = split_books()
    counts = Counter(token for text in train for token in lm.tokenizer.tokenize(text))
    unigram = [token for token, _ in counts.most_common(5)]
    rng = np.random.default_rng(0)
    rows = {}
    sources = {
        "held-out Baum sentences": sentences(held, lm),
        "sample text sentences": sentences(list(read_paragraphs(SAMPLE)), lm),
    }
    for name, texts in sources.items():
        chosen = [texts[i] for i in sorted(rng.permutation(len(texts))[: args.per_source])]
        rows[name] = {"sentences": len(chosen), **measure(lm, chosen, unigram, seed=1)}
    frame = pd.DataFrame(rows).T
    print("the demo head, one masked token per sentence (as the view masks):")
    print(frame.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"unigram guess: {unigram}")


if __name__ == "__main__":
    main()
