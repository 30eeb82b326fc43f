"""Search latency at 1 M and 10 M vectors, on a quiet machine and with both cores kept busy.

Synthetic vectors of all-MiniLM-L6-v2's shape (384 dimensions; clustered, with a few outlier
dimensions as BERT has, L2-normalised), in the index ``"auto"`` picks for that many (rotation,
inverted file, 6-bit codes). For each size it prints p50/p99 of k = 50 through
``exbert_widget.corpus.index.on_search_thread(ix.search)`` plus the hits DataFrame a corpus
builds (50 rows of metadata), recall@50 against exact float32 search, and the process's
resident memory; then the same while two other processes keep both cores busy, against the
anchor measured in the same run: FAISS called from the caller's thread with OpenMP's default
team (what search did before: its threads spin at barriers, waiting for a descheduled member).

Usage: python bench/bench_search_scale.py [--sizes 1000000,10000000] [--queries 200]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import time

import faiss
import numpy as np
import pandas as pd
from common import ROOT  # noqa: F401  (puts the repository on sys.path)

from exbert_widget.corpus import index as ix

DIM = 384
CHUNK = 250_000


def vectors(n: int, seed: int, centers: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = centers[rng.integers(0, len(centers), n)] + 0.6 * rng.standard_normal((n, DIM))
    x[:, :4] *= 8.0  # outlier dimensions, as BERT-like models have
    return ix.normalise(x.astype(np.float32))


def rss_gb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1e6
    return float("nan")


def busy(stop) -> None:
    x = 0
    while not stop.is_set():
        x = (x * 1103515245 + 12345) % 2**31


def timed(run, queries: np.ndarray) -> tuple[float, float]:
    times = []
    for q in queries:
        t = time.perf_counter()
        run(q)
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((4096, DIM)).astype(np.float32)
    for n in [int(s) for s in args.sizes.split(",")]:
        measure(n, args.queries, centers)


def measure(n: int, n_queries: int, centers: np.ndarray) -> None:
    """Build the index of ``n`` vectors and print its latencies, quiet and loaded."""
    spec = ix.IndexSpec.parse("auto", expected_vectors=n)
    index = spec.make(DIM)
    started = time.perf_counter()
    ix.train(index, vectors(ix.TRAIN_MAX, 1, centers))
    exact = faiss.IndexFlatIP(DIM) if n <= 2_000_000 else None
    for start in range(0, n, CHUNK):
        part = vectors(min(CHUNK, n - start), 100 + start // CHUNK, centers)
        index.add(part)
        if exact is not None:
            exact.add(part)
    ix.prepare(index, spec.nprobe)
    ix.finalize(index)
    took = time.perf_counter() - started
    print(f"\n== {n:,} vectors, {spec} (nprobe {spec.nprobe}): built in {took:.0f} s; "
          f"resident memory {rss_gb():.1f} GB")  # fmt: skip
    queries = vectors(n_queries, 7, centers)
    meta = {
        "sentence_id": np.arange(n, dtype=np.int32) // 20,
        "token_index": np.arange(n, dtype=np.int32) % 20,
        "token": np.array(["token"] * 1000, dtype=object),
    }

    def hits(ids, scores):
        return pd.DataFrame(
            {
                "sentence_id": meta["sentence_id"][ids],
                "token_index": meta["token_index"][ids],
                "score": scores,
                "token": meta["token"][ids % 1000],
            }
        )

    def ours(q):
        return hits(*ix.on_search_thread(lambda: ix.search(index, q, 50)))

    def before(q):  # the caller's thread, OpenMP's default team, lists not split
        split, ix.SEARCH_SPLIT = ix.SEARCH_SPLIT, 1
        try:
            return hits(*ix.search(index, q, 50))
        finally:
            ix.SEARCH_SPLIT = split

    ours(queries[0])
    if exact is not None:
        _, truth = exact.search(queries[:50], 50)
        got = [set(ix.on_search_thread(lambda q=q: ix.search(index, q, 50))[0].tolist())
               for q in queries[:50]]  # fmt: skip
        recall = np.mean([len(g & set(t.tolist())) / 50 for g, t in zip(got, truth, strict=True)])
        print(f"recall@50 against exact float32: {recall:.3f}")
        del exact
    for label, run in (("this release", ours), ("before (OpenMP team)", before)):
        p50, p99 = timed(run, queries)
        print(f"quiet, {label:22s}: p50 {p50:6.2f} ms  p99 {p99:7.2f} ms")
    stop = mp.Event()
    load = [mp.Process(target=busy, args=(stop,)) for _ in range(2)]
    for p in load:
        p.start()
    try:
        time.sleep(1.0)
        for label, run in (("this release", ours), ("before (OpenMP team)", before)):
            p50, p99 = timed(run, queries)
            print(f"both cores busy, {label:22s}: p50 {p50:6.2f} ms  p99 {p99:7.2f} ms")
    finally:
        stop.set()
        for p in load:
            p.join()


if __name__ == "__main__":
    main()
