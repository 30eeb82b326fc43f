"""spaCy annotation running beside the model during a corpus build.

spaCy holds the GIL for much of its work, so in a thread it barely overlaps with the model (the
two together took the sum of their times). On Linux it therefore runs in a forked child process,
which inherits the loaded pipeline (no second load, nothing to pickle but the results) and dies
with its parent; elsewhere, or when forking is not possible, it runs in a thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import multiprocessing
import pickle
import queue
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import Any

from .annotate import AnnotatedSentence, annotate_paragraphs

__all__ = ["SpacyFeed"]

_DONE = "done"


def _produce(
    paragraphs: list[str], nlp: Any, min_chars: int, chunk: int, small_first: bool, put
) -> None:
    """Annotated sentences in chunks of ``chunk``, then the end marker; an exception is passed
    on instead of being raised here. With ``small_first`` the first chunks are small, so that
    the model starts early."""
    try:
        batch: list[AnnotatedSentence] = []
        size = min(16, chunk) if small_first else chunk
        # spaCy yields nothing until a whole batch of paragraphs is done: start with a small one
        first = itertools.chain(
            annotate_paragraphs(paragraphs[:8], nlp, batch_size=8, min_chars=min_chars),
            annotate_paragraphs(paragraphs[8:], nlp, min_chars=min_chars),
        )
        for sentence in first:
            batch.append(sentence)
            if len(batch) == size:
                put(batch)
                batch = []
                size = min(2 * size, chunk)
        if batch:
            put(batch)
        put(_DONE)
    except BaseException as exc:
        put(exc)


def _child(paragraphs, nlp, min_chars, chunk, small_first, out, done) -> None:
    with contextlib.suppress(OSError, AttributeError):  # die with the parent, even on SIGKILL
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def put(item) -> None:
        if isinstance(item, BaseException):
            try:
                pickle.dumps(item)
            except Exception:
                item = RuntimeError(f"{type(item).__name__}: {item}")
        if isinstance(item, BaseException) or item == _DONE:
            done.set()  # spaCy's work is over, though results may still wait in the pipe
        out.put(item)

    _produce(paragraphs, nlp, min_chars, chunk, small_first, put)
    out.close()
    out.join_thread()


class _Producer:
    """spaCy over one contiguous part of the paragraphs, in a forked child process where
    possible, else in a thread; its results wait in a bounded queue."""

    def __init__(self, paragraphs, nlp, min_chars, chunk, ahead, fork, small_first) -> None:
        self.process = None
        self.done: Any = None
        if fork:
            try:
                ctx = multiprocessing.get_context("fork")
                self.queue: Any = ctx.Queue(maxsize=ahead)
                self.done = ctx.Event()
                self.process = ctx.Process(
                    target=_child,
                    args=(paragraphs, nlp, min_chars, chunk, small_first, self.queue, self.done),
                    daemon=True,
                )
                with warnings.catch_warnings():
                    # Python >= 3.12 warns about forking a process with threads (torch's,
                    # Jupyter's): the child touches none of their locks, it only runs spaCy
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self.process.start()
                return
            except (OSError, ValueError, RuntimeError):
                self.process = None
        self.queue = queue.Queue(maxsize=ahead)
        threading.Thread(
            target=_produce,
            args=(paragraphs, nlp, min_chars, chunk, small_first, self.queue.put),
            daemon=True,
        ).start()

    @property
    def producing(self) -> bool:
        return self.process is not None and not self.done.is_set()

    def get(self, block: bool = True):
        """The next chunk, the end marker or an exception; None when not blocking and nothing
        is ready."""
        if not block:
            try:
                return self.queue.get_nowait()
            except queue.Empty:
                return None
        if self.process is None:
            return self.queue.get()
        while True:
            try:
                return self.queue.get(timeout=1.0)
            except queue.Empty:
                if not self.process.is_alive() and self.queue.empty():
                    raise RuntimeError(
                        "The spaCy process ended without its results "
                        f"(exit code {self.process.exitcode})."
                    ) from None

    def stop(self, wait: bool = False) -> None:
        if self.process is not None:
            if wait:
                self.process.join(timeout=5)
            if self.process.is_alive():
                self.process.kill()
            self.process.join()
            self.process = None


def _split(paragraphs: list[str], parts: int) -> list[list[str]]:
    """Contiguous parts of about equal characters."""
    total = sum(len(p) for p in paragraphs)
    out: list[list[str]] = [[]]
    size = 0
    for p in paragraphs:
        if size >= total * len(out) / parts and len(out) < parts:
            out.append([])
        out[-1].append(p)
        size += len(p)
    return [part for part in out if part]


class SpacyFeed:
    """Annotated sentences in source order, produced ahead of the consumer.

    ``processes`` forked children (Linux) each annotate a contiguous part of the paragraphs;
    elsewhere one thread does it all. Use as a context manager; leaving the block stops the
    producers. ``producing`` says whether spaCy is still at work in a child process (and so
    takes a core).
    """

    def __init__(
        self,
        paragraphs: list[str],
        nlp: Any,
        min_chars: int,
        chunk: int,
        processes: int = 1,
        ahead: int = 64,
    ) -> None:
        fork = sys.platform.startswith("linux")
        parts = _split(paragraphs, max(1, processes) if fork else 1)
        self._producers = [
            _Producer(part, nlp, min_chars, chunk, ahead, fork, small_first=i == 0)
            for i, part in enumerate(parts)
        ]

    @property
    def producing(self) -> bool:
        """Whether spaCy still works in a child process."""
        return any(p.producing for p in self._producers)

    def __iter__(self) -> Iterator[list[AnnotatedSentence]]:
        """Chunks in source order."""
        return self.windows(0)

    def windows(self, most: int) -> Iterator[list[AnnotatedSentence]]:
        """Sentences in source order, in windows of everything produced so far: at least one
        chunk, more while ready and fewer than ``most`` (0 = one chunk a window).

        The consumer sorts a window by length before batching it: the further spaCy runs ahead,
        the larger the windows and the less padding.
        """
        window: list[AnnotatedSentence] = []
        for producer in self._producers:
            while True:
                item = producer.get(block=not window)
                if item is None:  # nothing ready: hand over what there is
                    yield window
                    window = []
                    continue
                if isinstance(item, BaseException):
                    raise item
                if isinstance(item, str) and item == _DONE:
                    producer.stop(wait=True)
                    break
                window.extend(item)
                if len(window) >= most:
                    yield window
                    window = []
        if window:
            yield window

    def __enter__(self) -> SpacyFeed:
        return self

    def __exit__(self, *exc) -> None:
        for producer in self._producers:
            producer.stop()
