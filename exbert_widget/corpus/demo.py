"""The demo corpus: the project's own sample text, built once per model and cached."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from ..models import LanguageModel
from .build import build_corpus
from .store import FORMAT_VERSION, Corpus, CorpusError, check_lm


def sample_text_path() -> Path:
    """The sample text: shipped in the wheel, or the checkout's ``corpus/sample.txt``."""
    shipped = resources.files("exbert_widget") / "data" / "sample.txt"
    if shipped.is_file():
        return Path(str(shipped))
    return Path(__file__).resolve().parents[2] / "corpus" / "sample.txt"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "exbert-widget"


def demo_corpus(lm: LanguageModel, *, rebuild: bool = False, progress: bool = True) -> Corpus:
    """The demo corpus for ``lm``, built offline from the project's sample text on first use.

    Cached in ``$XDG_CACHE_HOME/exbert-widget`` (default ``~/.cache/exbert-widget``), one corpus
    per model fingerprint and corpus format (a new format builds it afresh).

    Raises:
        InputError: ``lm`` is not a model (pass ``ew.load_model(name)``, not the name).
    """
    check_lm(lm)
    out = cache_dir() / f"demo-{lm.fingerprint[:16]}-v{FORMAT_VERSION}"
    if not rebuild:
        try:
            corpus = Corpus.open(out)
            corpus.check_model(lm)
            return corpus
        except CorpusError:
            pass
    return build_corpus(sample_text_path(), lm, out, progress=progress)
