"""Loading models and analysing sentences: attentions, hidden states, contexts, predictions."""

from .analysis import Analysis, Encoding
from .engine import InputError, LanguageModel, load_model
from .generation import Generation
from .loading import ModelLoadError

__all__ = [
    "Analysis",
    "Encoding",
    "Generation",
    "InputError",
    "LanguageModel",
    "ModelLoadError",
    "load_model",
]
