"""exbert-widget: exBERT's transformer explorer as a Jupyter widget."""

from .corpus import Corpus, build_corpus, demo_corpus
from .errors import (
    CorpusError,
    CorpusSourceError,
    ExbertError,
    InputError,
    ModelLoadError,
    SpacyModelError,
    StateError,
)
from .models import Analysis, LanguageModel, load_model
from .widget import ExBertView

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
__version__ = "0.1.0"
