"""exbert-widget: exBERT's transformer explorer as a Jupyter widget.

The public names are imported on first use: ``import exbert_widget`` (and the ``exbert``
command) stays cheap, and torch, transformers, spaCy and FAISS load only when a model, a corpus
or the view is first asked for. The errors are light and imported at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    CorpusError,
    CorpusSourceError,
    ExbertError,
    InputError,
    ModelLoadError,
    SpacyModelError,
    StateError,
)

if TYPE_CHECKING:
    from .corpus import Corpus, build_corpus, demo_corpus
    from .models import Analysis, LanguageModel, load_model
    from .widget import ExBertView

__version__ = "0.1.0"

_WHERE = {
    "Analysis": ".models",
    "LanguageModel": ".models",
    "load_model": ".models",
    "Corpus": ".corpus",
    "build_corpus": ".corpus",
    "demo_corpus": ".corpus",
    "ExBertView": ".widget",
}

__all__ = [
    "Analysis",
    "Corpus",
    "CorpusError",
    "CorpusSourceError",
    "ExBertView",
    "ExbertError",
    "InputError",
    "LanguageModel",
    "ModelLoadError",
    "SpacyModelError",
    "StateError",
    "build_corpus",
    "demo_corpus",
    "load_model",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
