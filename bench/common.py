"""Helpers shared by the benchmarks: sentences of a given token length, timing, printing."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "corpus" / "sample.txt"


def sentence_of_length(lm, n: int) -> str:
    """Words of the sample text, as many as give at most ``n`` tokens (specials included)."""
    words = SAMPLE.read_text(encoding="utf-8").split()
    lo, hi = 1, len(words)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        ids = lm.tokenizer(" ".join(words[:mid]))["input_ids"]
        if len(ids) <= n:
            lo = mid
        else:
            hi = mid - 1
    return " ".join(words[:lo])


def median_time(fn: Callable[[], object], repeat: int = 7, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved(fns: dict[str, Callable[[], object]], repeat: int = 7) -> dict[str, float]:
    """Median seconds of each function, run alternately so machine noise hits all alike."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}
