"""The corpus head report against one forward pass with attentions over the same sentences.

Anchor: transformers' own eager load of all-MiniLM-L6-v2 run with ``output_attentions=True`` over
every sentence of the corpus, tokenised by its tokenizer, in the same length-sorted batches of 32
(the cheapest way to have every layer's weights). Ours: ``corpus.head_report(lm)`` computed
afresh (the cache bypassed): reading the token table, encoding, the passes, word-level attention,
predictions, statistics and the table. Target (issue 12): <= 1.5x. Over the demo corpus and the
Oz book (Dorothy and the Wizard in Oz, built once into bench/out/ like bench_search). Runs
alternate, so that machine noise hits both alike.

Usage: python bench/bench_head_report.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from common import ROOT
from transformers import AutoModel

import exbert_widget as ew
from exbert_widget.corpus import head_report as hr
from exbert_widget.corpus.store import CorpusError
from tests import tiny_models

BOOK = ROOT.parent / "shared" / "data" / "dorothy-and-the-wizard-in-oz.txt"
OUT = ROOT / "bench" / "out" / "dorothy-minilm"
BATCH = 32


def book_corpus(lm) -> ew.Corpus:
    try:
        corpus = ew.Corpus.open(OUT)
        corpus.check_model(lm)
        return corpus
    except CorpusError:
        return ew.build_corpus(BOOK, lm, OUT)


def anchor(model, tokenizer, sentences: list[str]):
    """One eager forward pass with attentions over every sentence, length-sorted batches."""
    lengths = [len(ids) for ids in tokenizer(sentences, truncation=True)["input_ids"]]
    order = sorted(range(len(sentences)), key=lengths.__getitem__)

    def run() -> None:
        with torch.no_grad():
            for start in range(0, len(order), BATCH):
                batch = [sentences[i] for i in order[start : start + BATCH]]
                inputs = tokenizer(batch, padding=True, truncation=True, return_tensors="pt")
                model(**inputs, output_attentions=True)

    return run


def measure(label: str, corpus: ew.Corpus, lm, model, repeat: int) -> None:
    sentences = corpus.sentences[:]
    runs = {
        "forward with attentions": anchor(model, lm.tokenizer, sentences),
        "head report": lambda: hr.compute(corpus, lm, batch_size=BATCH, progress=False),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    ratio = median["head report"] / median["forward with attentions"]
    tokens = sum(len(lm.tokenizer(s)["input_ids"]) for s in sentences)
    print(
        f"{label}: {len(sentences)} sentences, {tokens} tokens; forward with attentions "
        f"{median['forward with attentions']:6.2f} s, head report {median['head report']:6.2f} s:"
        f" {ratio:4.2f}x (target <= 1.50x: {'ok' if ratio <= 1.5 else 'MISSED'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}  (machine shared: ratios, not times)")
    lm = ew.load_model(tiny_models.MINILM)
    model = AutoModel.from_pretrained(tiny_models.MINILM, attn_implementation="eager").eval()
    demo = ew.demo_corpus(lm)
    measure("demo corpus", demo, lm, model, args.repeat)
    measure("Dorothy and the Wizard in Oz", book_corpus(lm), lm, model, args.repeat)
    report = demo.head_report(lm, progress=False)
    best = report.loc[report.groupby(["relation", "direction"])["accuracy"].idxmax()]
    best = best[~best["few"]].sort_values(["count", "relation"], ascending=[False, True])
    print("\nBest head per relation and direction, MiniLM on the demo corpus (>= 100 instances):")
    columns = ["relation", "direction", "layer", "head", "accuracy", "count", "baseline_offset"]
    print(best[[*columns, "baseline_accuracy"]].to_string(index=False, float_format="%.2f"))


if __name__ == "__main__":
    main()
