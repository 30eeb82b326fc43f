"""Ray build against the single-process build, in the same run, with all-MiniLM-L6-v2.

  python bench/bench_ray_build.py [--books 1,4] [--actors 2]

"one book": ../shared/data/the-wonderful-wizard-of-oz.txt; "four books": that book and
../shared/data/dorothy-and-the-wizard-in-oz.txt, each twice (the data folder has two books), as
one iterable source. For each: the single-process build (``engine="local"``, unsharded: today's
build) and the Ray build (``engine="ray"``, ``actors=--actors``; ``build_corpus`` starts the
local Ray itself, on all the machine's cores, inside the timing, so Ray's start and the actors'
model and spaCy loads are included), in characters a second, and the ratio Ray / single
(targets: >= 0.65 on one book, >= 0.85 on four), with the load average before and after. Then
resume: a Ray build of one book whose driver (a subprocess) is killed once its first shard is
written, finished with ``resume=True``; the resume's time against the fresh Ray build's.

With ``--ray-running``, the one-book Ray build is also timed with a local Ray started
beforehand (``address=None`` joins it): the difference is Ray's own start. Each build's CPU
seconds, Ray's processes included (psutil, sampled), say what a machine's cores bound: a build
of C CPU seconds on n cores takes at least C / n seconds, however its work overlaps.

Prints figures, asserts nothing. Minutes on 2 cores; run on a quiet machine for figures.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from common import ROOT

import exbert_widget as ew
from exbert_widget.corpus.text import read_source
from tests import tiny_models

DATA = ROOT.parent / "shared" / "data"
OZ = DATA / "the-wonderful-wizard-of-oz.txt"
DOROTHY = DATA / "dorothy-and-the-wizard-in-oz.txt"


def source(books: int) -> list[str]:
    paragraphs = read_source(OZ).paragraphs
    if books == 1:
        return paragraphs
    other = read_source(DOROTHY).paragraphs
    return (paragraphs + other) * (books // 2)


class CpuSeconds:
    """CPU seconds of this process and all its descendants (Ray's processes, spaCy's) while
    the ``with`` block runs; processes are sampled every 0.2 s, so a process that lives less
    than that may be missed, and the last 0.2 s of one that ends is."""

    def __init__(self) -> None:
        self.seconds: float | None = None

    def __enter__(self) -> CpuSeconds:
        try:
            import psutil
        except ImportError:  # the figure is left out
            return self
        self._me = psutil.Process()
        self._seen: dict[int, float] = {}
        # what the processes already running (a Ray started before) had spent
        self._before: dict[int, float] = {}
        self._sample_once(self._before)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _cpu(process) -> float:
        times = process.cpu_times()
        return times.user + times.system

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self._sample_once(self._seen)

    def _sample_once(self, into: dict[int, float]) -> None:
        try:
            processes = [self._me, *self._me.children(recursive=True)]
        except Exception:  # a process ended while the tree was listed
            return
        for process in processes:
            try:
                into[process.pid] = self._cpu(process)
            except Exception:  # it ended meanwhile: its last sample stands
                pass

    def __exit__(self, *exc) -> None:
        if not hasattr(self, "_thread"):
            return
        self._stop.set()
        self._thread.join()
        self._seen[self._me.pid] = self._cpu(self._me)
        self.seconds = sum(cpu - self._before.get(pid, 0.0) for pid, cpu in self._seen.items())


def timed(build: Callable[[], None]) -> tuple[float, CpuSeconds]:
    """Wall seconds and CPU seconds of ``build()``."""
    with CpuSeconds() as cpu:
        started = time.perf_counter()
        build()
        took = time.perf_counter() - started
    return took, cpu


def cpu_note(cpu: CpuSeconds) -> str:
    if cpu.seconds is None:
        return ""
    cores = os.cpu_count() or 1
    return f", {cpu.seconds:.0f} CPU s: at least {cpu.seconds / cores:.0f} s on {cores} cores"


def ray_build(
    text, lm, out: Path, actors: int, shards: int | None = None, resume: bool = False
) -> float:
    return ray_build_cpu(text, lm, out, actors, shards, resume)[0]


def ray_build_cpu(
    text, lm, out: Path, actors: int, shards: int | None = None, resume: bool = False
) -> tuple[float, CpuSeconds]:
    return timed(
        lambda: ew.build_corpus(
            text, lm, out, engine="ray", actors=actors, shards=shards, resume=resume,
            progress=False,
        ).close()
    )  # fmt: skip


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def compare(books: int, lm, work: Path, actors: int, ray_running: bool) -> None:
    text = source(books)
    chars = sum(len(p) for p in text)
    before = load()
    single, single_cpu = timed(
        lambda: ew.build_corpus(text, lm, work / f"single-{books}", progress=False).close()
    )
    middle = load()
    on_ray, ray_cpu = ray_build_cpu(text, lm, work / f"ray-{books}", actors)
    print(
        f"{books} book(s), {chars:,} characters: single process {chars / single:,.0f} char/s "
        f"({single:.0f} s{cpu_note(single_cpu)}; load {before} before); Ray with "
        f"{actors} actors {chars / on_ray:,.0f} char/s ({on_ray:.0f} s, start-up included"
        f"{cpu_note(ray_cpu)}; load {middle} before, {load()} after); "
        f"Ray / single = {single / on_ray:.2f}",
        flush=True,
    )
    if ray_running:
        import ray

        ray.init(include_dashboard=False, log_to_driver=False)
        try:
            warm, warm_cpu = ray_build_cpu(text, lm, work / f"ray-running-{books}", actors)
        finally:
            ray.shutdown()
        print(
            f"  with a local Ray started beforehand (not timed): {warm:.0f} s"
            f"{cpu_note(warm_cpu)}; Ray / single = {single / warm:.2f} (load {load()})",
            flush=True,
        )


CHILD = """
import sys
import exbert_widget as ew
sys.path.insert(0, {bench!r})
from bench_ray_build import source
from tests import tiny_models
ew.build_corpus(source(1), ew.load_model(tiny_models.MINILM), {out!r}, engine="ray",
                actors={actors}, shards={shards}, progress=False)
"""


def resume(lm, work: Path, actors: int, shards: int) -> None:
    fresh = ray_build(source(1), lm, work / "fresh", actors, shards)
    out = work / "resumed"
    code = CHILD.format(bench=str(ROOT / "bench"), actors=actors, out=str(out), shards=shards)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    first = work / ".resumed.partial" / "shards" / "0000" / "manifest.json"
    while not first.exists() and child.poll() is None:
        time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    done = len([p for p in first.parent.parent.iterdir() if p.name.isdigit()])
    took = ray_build(source(1), lm, out, actors, shards, resume=True)
    print(
        f"resume after the driver was killed with {done} of {shards} shards written: "
        f"{took:.0f} s to finish, against {fresh:.0f} s for a fresh Ray build "
        f"({took / fresh:.2f})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--books", default="1,4")
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--shards", type=int, default=4, help="shards of the resume run")
    parser.add_argument("--no-resume", action="store_true")
    parser.add_argument(
        "--ray-running", action="store_true", help="also time a build on a Ray started before"
    )
    args = parser.parse_args()
    lm = ew.load_model(tiny_models.MINILM)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for i, books in enumerate(int(b) for b in args.books.split(",")):
            compare(books, lm, work, args.actors, args.ray_running)
            if i == 0 and not args.no_resume:  # before the long runs
                resume(lm, work, args.actors, args.shards)


if __name__ == "__main__":
    main()
