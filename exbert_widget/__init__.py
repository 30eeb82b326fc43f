"""exbert-widget: exBERT's transformer explorer as a Jupyter widget."""

from .models import Analysis, InputError, LanguageModel, ModelLoadError, load_model
from .widget import ExBertView

__all__ = [
    "Analysis",
    "ExBertView",
    "InputError",
    "LanguageModel",
    "ModelLoadError",
    "load_model",
]
__version__ = "0.1.0"
