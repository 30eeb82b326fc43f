"""Overhead of lm.analyze over bare forward passes of transformers' own loads of the same model.

1. ``lm.analyze`` (one fused pass keeping hidden states, contexts and top-k; no attention) against
   a bare forward with hidden states under transformers' default attention (SDPA).
2. ``lm.analyze`` + ``a.attentions`` (every layer's weights, the old all-at-once API) against a bare
   eager forward with ``output_attentions=True`` and hidden states.

Target for both: <= 1.2x, for all-MiniLM-L6-v2 at n = 64 and a bert-base-sized random model at
n = 512. All run in this process, interleaved.  Usage: python bench/bench_analyze.py
"""

from __future__ import annotations

import torch
from common import interleaved, sentence_of_length
from transformers import AutoModel

import exbert_widget as ew
from tests import tiny_models


def _ratio(label: str, times: dict[str, float], bare: str, ours: str) -> None:
    ratio = times[ours] / times[bare]
    print(
        f"  {label:<44} bare {times[bare] * 1e3:8.1f} ms  ours {times[ours] * 1e3:8.1f} ms  "
        f"{ratio:5.2f}x (target <= 1.20x: {'ok' if ratio <= 1.2 else 'MISSED'})"
    )


def measure(lm: ew.LanguageModel, sdpa, eager, n: int, label: str, repeat: int) -> None:
    text = sentence_of_length(lm, n)
    inputs = lm.tokenizer(text, return_tensors="pt")  # what a user would pass by hand
    print(f"{label}, n = {inputs['input_ids'].shape[1]}")

    def bare_sdpa():
        with torch.no_grad():
            sdpa(**inputs, output_hidden_states=True)

    def bare_eager():
        with torch.no_grad():
            eager(**inputs, output_attentions=True, output_hidden_states=True)

    times = interleaved(
        {
            "sdpa": bare_sdpa,
            "analyze": lambda: lm.analyze(text),
            "eager": bare_eager,
            "all": lambda: lm.analyze(text).attentions,
        },
        repeat=repeat,
    )
    _ratio(
        f"analyze vs SDPA forward ({sdpa.config._attn_implementation})", times, "sdpa", "analyze"
    )
    _ratio("analyze + all layers' attentions vs eager", times, "eager", "all")


def main() -> None:
    print(f"torch threads: {torch.get_num_threads()}")
    path = tiny_models.MINILM
    sdpa = AutoModel.from_pretrained(path).eval()
    eager = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    measure(ew.load_model(path), sdpa, eager, 64, "all-MiniLM-L6-v2 (no LM head)", 21)
    model, tok = tiny_models.build("bert-base")
    sdpa, _ = tiny_models.build("bert-base")  # the same seed: the same weights
    eager, _ = tiny_models.build("bert-base")
    eager.set_attn_implementation("eager")
    lm = ew.load_model(model=model, tokenizer=tok)
    measure(lm, sdpa, eager, 512, "bert-base-sized random (MLM head)", 5)


if __name__ == "__main__":
    main()
