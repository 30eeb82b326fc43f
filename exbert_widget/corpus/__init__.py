"""Reference corpora: build (spaCy + the model), store (HDF5 + FAISS), open and search."""

from .build import build_corpus
from .demo import demo_corpus
from .index import IndexSpec
from .store import Corpus, CorpusError

__all__ = ["Corpus", "CorpusError", "IndexSpec", "build_corpus", "demo_corpus"]
