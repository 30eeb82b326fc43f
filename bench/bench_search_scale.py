"""Search latency at 1 M and 10 M vectors, on a quiet machine and with both cores kept busy.

Synthetic vectors of all-MiniLM-L6-v2's shape (384 dimensions; clustered, with a few outlier
dimensions as BERT has, L2-normalised), in the index ``"auto"`` picks for that many, and in any
other specs given (``--specs``, separated by ``;``). For each size and spec it prints p50/p99 of
k = 50 through ``exbert_widget.corpus.index.on_search_thread(ix.search)`` plus the hits
DataFrame ``Corpus.search`` returns (13 columns, built by ``Corpus._hits`` over a synthetic
token table), recall@50 against exact float32 search (50 queries, brute force over the same
vectors, chunk by chunk), the index's bytes on disk and the process's
resident memory; then the same while two other processes keep both cores busy, against the
anchor measured in the same run: FAISS called from the caller's thread with OpenMP's default
team (what search did before: its threads spin at barriers, waiting for a descheduled member).
Back to back, the search is itself one more CPU-bound process; a user's searches come one per
click, so each set also times queries with an idle pause before each (``--pause-ms``).

Usage: python bench/bench_search_scale.py [--sizes 1000000,10000000] [--queries 200]
           [--specs "RR,IVF2048,SQ6;RR,IVF2048,PQ96x4fs,SQ6"] [--nprobe 64,128] [--keep DIR]
           [--pause-ms 50]

``--keep DIR`` saves the built indexes there and reads them back on the next run (a 10 M build
takes far longer than its measurement: build once, measure when the machine is quiet).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from common import ROOT  # noqa: F401  (puts the repository on sys.path)

from exbert_widget.corpus import index as ix
from exbert_widget.corpus.store import Corpus

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


def timed(run, queries: np.ndarray, pause: float = 0.0) -> tuple[float, float, float]:
    """p50 and p99 of the wall time per query, and p50 of the process's CPU time (every
    thread's) per query, in ms; ``pause`` seconds idle before each query (not timed)."""
    times, cpu = [], []
    for q in queries:
        if pause:
            time.sleep(pause)
        t, c = time.perf_counter(), time.process_time()
        run(q)
        times.append((time.perf_counter() - t) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
    times.sort()
    return statistics.median(times), times[int(0.99 * (len(times) - 1))], statistics.median(cpu)


def load_average() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--specs", default="", help="more index specs, ';'-separated")
    parser.add_argument("--nprobe", default="", help="nprobe values to sweep, ','-separated")
    parser.add_argument(
        "--keep", default="", help="a folder to save the built indexes in and reuse them from"
    )
    parser.add_argument(
        "--pause-ms",
        type=float,
        default=50.0,
        help="also time queries with this idle pause before each, as a user's clicks come "
        "(0: only back to back)",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((4096, DIM)).astype(np.float32)
    specs = [s for s in args.specs.split(";") if s]
    sweep = [int(v) for v in args.nprobe.split(",") if v]
    for n in [int(s) for s in args.sizes.split(",")]:
        keep = Path(args.keep) if args.keep else None
        measure(n, args.queries, centers, specs, sweep, keep, args.pause_ms)


def build(n: int, specs: list[ix.IndexSpec], centers: np.ndarray, queries: np.ndarray):
    """The indexes of ``n`` vectors, added chunk by chunk, and the exact top 50 of the first 50
    queries (brute force over the same chunks)."""
    train = vectors(ix.TRAIN_MAX, 1, centers)
    indexes = []
    for spec in specs:
        index = spec.make(DIM)
        ix.train(index, train)
        indexes.append(index)
    best_s = np.full((len(queries), 0), -np.inf, np.float32)
    best_i = np.zeros((len(queries), 0), np.int64)
    for start in range(0, n, CHUNK):
        part = vectors(min(CHUNK, n - start), 100 + start // CHUNK, centers)
        for index in indexes:
            index.add(part)
        scores = np.concatenate([best_s, queries @ part.T], axis=1)
        ids = np.concatenate(
            [
                best_i,
                np.broadcast_to(np.arange(start, start + len(part)), (len(queries), len(part))),
            ],
            axis=1,
        )
        top = np.argsort(-scores, axis=1)[:, :50]
        best_s, best_i = np.take_along_axis(scores, top, 1), np.take_along_axis(ids, top, 1)
    for spec, index in zip(specs, indexes, strict=True):
        ix.prepare(index, spec.nprobe)
        ix.finalize(index)
    return indexes, best_i


def hit_table(n: int) -> Corpus:
    """A ``Corpus`` holding nothing but what its ``_hits`` reads, for ``n`` synthetic tokens
    (20 a sentence): each search's hits DataFrame (13 columns, 50 rows) is built by the
    library's own code."""
    table = Corpus.__new__(Corpus)
    rows = np.arange(n)
    words = np.array([f"word{i}" for i in range(1000)], dtype=object)
    labels = np.array(["NOUN", "VERB", "ADJ", "DET", "PROPN"], dtype=object)
    start = (rows % 20 * 6).astype(np.int32)
    table._index_rows = rows
    table.__dict__["_hit_columns"] = {
        "sentence_id": (rows // 20).astype(np.int32),
        "token_index": (rows % 20).astype(np.int32),
        "token": words[rows % 1000],
        **{name: labels[rows % 5] for name in ("pos", "dep", "ent")},
        "start": start,
        "end": start + 5,
        "word_start": start,
        "word_end": start + 5,
    }
    table.__dict__["_sentence_list"] = [
        " ".join(f"word{(s * 20 + i) % 1000}" for i in range(20)) for s in range(n // 20 + 1)
    ]
    return table


def disk_bytes(index: faiss.Index) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        ix.save(index, Path(tmp) / "index.faiss")
        return sum(p.stat().st_size for p in Path(tmp).iterdir())


def built(n: int, specs: list[ix.IndexSpec], centers, queries, keep: Path | None):
    """:func:`build`, or the indexes and exact top 50 saved by an earlier run in ``keep`` (with
    the queries they are the top 50 of: ``queries`` is then replaced by those)."""
    paths = [keep / f"{n}-{str(spec).replace(',', '_')}.faiss" for spec in specs] if keep else []
    if keep and (keep / f"{n}-truth.npy").exists() and all(p.exists() for p in paths):
        rotation = faiss.read_VectorTransform(str(keep / f"rotation_{DIM}.faiss"))
        indexes = [faiss.IndexPreTransform(rotation, faiss.read_index(str(p))) for p in paths]
        for spec, index in zip(specs, indexes, strict=True):
            ix.prepare(index, spec.nprobe)
        queries[:] = np.load(keep / f"{n}-queries.npy")
        return indexes, np.load(keep / f"{n}-truth.npy"), "read back"
    started = time.perf_counter()
    indexes, truth = build(n, specs, centers, queries)
    if keep:
        keep.mkdir(parents=True, exist_ok=True)
        for index, path in zip(indexes, paths, strict=True):
            ix.save(index, path)
        np.save(keep / f"{n}-truth.npy", truth)
        np.save(keep / f"{n}-queries.npy", queries)
    return indexes, truth, f"built in {time.perf_counter() - started:.0f} s"


def measure(
    n, n_queries, centers, more: list[str], sweep: list[int], keep: Path | None, pause: float
):
    """Build the indexes of ``n`` vectors and print their latencies, quiet and loaded."""
    specs = [ix.IndexSpec.parse("auto", expected_vectors=n)]
    specs += [ix.IndexSpec.parse(s) for s in more if s != str(specs[0])]
    queries = vectors(n_queries, 7, centers)
    indexes, truth, how = built(n, specs, centers, queries[:50], keep)  # may set queries[:50]
    print(f"\n== {n:,} vectors, {how}; resident memory {rss_gb():.1f} GB; "
          f"load average {load_average()}")  # fmt: skip
    table = hit_table(n)

    def hits(ids, scores):
        return table._hits(ids, scores)

    def ours(index):
        return lambda q: hits(*ix.on_search_thread(lambda: ix.search(index, q, 50)))

    def before(index):  # the caller's thread, OpenMP's default team, lists not split
        def run(q):
            split, ix.SEARCH_SPLIT = ix.SEARCH_SPLIT, 1
            try:
                return hits(*ix.search(index, q, 50))
            finally:
                ix.SEARCH_SPLIT = split

        return run

    runs = []
    for spec, index in zip(specs, indexes, strict=True):
        for nprobe in sweep or [spec.nprobe]:
            ix.prepare(index, nprobe)
            got = [set(ix.on_search_thread(lambda q=q, i=index: ix.search(i, q, 50))[0].tolist())
                   for q in queries[:50]]  # fmt: skip
            recall = np.mean(
                [len(g & set(t.tolist())) / 50 for g, t in zip(got, truth, strict=True)]
            )
            label = f"{spec} nprobe {nprobe}"
            print(f"{label}: recall@50 {recall:.3f}, {disk_bytes(index) / n:.0f} B/vector on disk")
            runs.append((label, index, nprobe))
    for busy_cores in (0, 2):
        stop = mp.Event()
        load = [mp.Process(target=busy, args=(stop,)) for _ in range(busy_cores)]
        for p in load:
            p.start()
        try:
            time.sleep(1.0 if busy_cores else 0.0)
            state = "both cores busy" if busy_cores else "quiet"
            print(f"-- {state} (load average {load_average()})")
            for i, (label, index, nprobe) in enumerate(runs):
                ix.prepare(index, nprobe)
                ours(index)(queries[0])
                p50, p99, cpu = timed(ours(index), queries)
                print(f"{label:40s}: p50 {p50:6.2f} ms  p99 {p99:7.2f} ms  (CPU {cpu:.2f} ms)")
                if i == 0:
                    p50, p99, cpu = timed(before(index), queries)
                    name = label + ", before (OpenMP team)"
                    print(f"{name:40s}: p50 {p50:6.2f} ms  p99 {p99:7.2f} ms  (CPU {cpu:.2f} ms)")
                if i == 0 and pause:
                    p50, p99, cpu = timed(ours(index), queries, pause / 1e3)
                    name = label + f", one query every {pause:g} ms"
                    print(f"{name:40s}: p50 {p50:6.2f} ms  p99 {p99:7.2f} ms  (CPU {cpu:.2f} ms)")
        finally:
            stop.set()
            for p in load:
                p.join()


if __name__ == "__main__":
    main()
