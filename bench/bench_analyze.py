"""Overhead of lm.analyze over a bare forward pass with attentions and hidden states.

Target: <= 1.2x, for all-MiniLM-L6-v2 at n = 64 and a bert-base-sized random model at n = 512.
Both run in this process, interleaved.  Usage: python bench/bench_analyze.py
"""

from __future__ import annotations

import torch
from common import interleaved, sentence_of_length

import exbert_widget as ew
from tests import tiny_models


def measure(lm: ew.LanguageModel, n: int, label: str, repeat: int) -> None:
    text = sentence_of_length(lm, n)
    enc = lm.encode(text)
    inputs = lm.tokenizer(text, return_tensors="pt")  # what a user would pass by hand

    def bare():
        with torch.no_grad():
            lm.model(**inputs, output_attentions=True, output_hidden_states=True)

    times = interleaved({"bare": bare, "analyze": lambda: lm.analyze(text)}, repeat=repeat)
    ratio = times["analyze"] / times["bare"]
    print(
        f"{label:<34} n={len(enc):>3}  bare {times['bare'] * 1e3:8.1f} ms  "
        f"analyze {times['analyze'] * 1e3:8.1f} ms  overhead {ratio:5.2f}x  "
        f"(target <= 1.20x: {'ok' if ratio <= 1.2 else 'MISSED'})"
    )


def main() -> None:
    print(f"torch threads: {torch.get_num_threads()}")
    measure(ew.load_model(tiny_models.MINILM), 64, "all-MiniLM-L6-v2 (no LM head)", 21)
    model, tok = tiny_models.build("bert-base")
    measure(ew.load_model(model=model, tokenizer=tok), 512, "bert-base-sized random (MLM head)", 5)


if __name__ == "__main__":
    main()
