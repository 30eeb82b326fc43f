"""Process-wide settings changed only inside scopes that restore them, safely across threads.

torch's intra-op thread count and transformers' log level belong to the whole process. Library code
may change them only for the duration of a call, and two threads inside such scopes at once must
not leave the process changed: the first scope to enter saves the value, the last to leave
restores it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

import torch
import transformers

T = TypeVar("T")


class ScopedSetting(Generic[T]):
    """A process-wide setting, changed within ``with setting(value):`` and restored after.

    Overlapping scopes (from several threads) share one saved value: the setting goes back to it
    when the last of them ends. While they overlap, the most recently entered value holds.
    """

    def __init__(self, get: Callable[[], T], set_: Callable[[T], object]) -> None:
        self._get, self._set = get, set_
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: T | None = None

    @contextmanager
    def __call__(self, value: T) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._saved = self._get()
            self._depth += 1
            self._set(value)
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._set(self._saved)  # type: ignore[arg-type]
                    self._saved = None


torch_threads: ScopedSetting[int] = ScopedSetting(torch.get_num_threads, torch.set_num_threads)
transformers_verbosity: ScopedSetting[int] = ScopedSetting(
    transformers.logging.get_verbosity, transformers.logging.set_verbosity
)
