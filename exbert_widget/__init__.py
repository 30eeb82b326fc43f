"""exbert-widget: exBERT's transformer explorer as a Jupyter widget."""

from .corpus import Corpus, CorpusError, build_corpus, demo_corpus
from .models import Analysis, InputError, LanguageModel, ModelLoadError, load_model
from .widget import ExBertView

__all__ = [
    "Analysis",
    "Corpus",
    "CorpusError",
    "ExBertView",
    "InputError",
    "LanguageModel",
    "ModelLoadError",
    "build_corpus",
    "demo_corpus",
    "load_model",
]
__version__ = "0.1.0"
