"""Reference corpora: build (spaCy + the model), store (HDF5 + FAISS), open and search.

The names are imported on first use, so that opening a corpus (``exbert corpus info``) needs
neither torch nor spaCy: only :func:`build_corpus` and :func:`demo_corpus` run a model.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .build import build_corpus
    from .demo import demo_corpus
    from .index_spec import IndexSpec
    from .store import Corpus, CorpusError

_WHERE = {
    "Corpus": ".store",
    "CorpusError": ".store",
    "IndexSpec": ".index_spec",
    "build_corpus": ".build",
    "demo_corpus": ".demo",
}
__all__ = ["Corpus", "CorpusError", "IndexSpec", "build_corpus", "demo_corpus"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value
