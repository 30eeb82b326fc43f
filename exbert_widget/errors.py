"""The library's exceptions: one base, :class:`ExbertError`, so callers can catch them all.

Each also derives from ``ValueError``, which is what they were before there was a base, so
existing ``except ValueError`` code keeps working.
"""

from __future__ import annotations

from traitlets import TraitError


class ExbertError(Exception):
    """Base of every error exbert-widget raises on purpose; the message says what to do."""


class ModelLoadError(ExbertError, ValueError):
    """A model could not be loaded or cannot be explored; the message says what was tried."""


class InputError(ExbertError, ValueError):
    """A sentence, mask or argument the model cannot analyse; the message says what is allowed."""


class StateError(InputError, TraitError):
    """A value the view refuses for one of its traits (wrong type, out of range, not valid for
    the sentence); the view keeps its last good state.

    Also a ``traitlets.TraitError``: traitlets rolls a batch of trait changes back on it.
    """


class CorpusError(ExbertError, ValueError):
    """A directory is not a usable corpus (missing, partial, corrupt, newer, or another model's)."""


class CorpusSourceError(ExbertError, ValueError):
    """A corpus source text could not be read (wrong type, not UTF-8, ...)."""


class SpacyModelError(ExbertError, ValueError):
    """No usable spaCy pipeline could be loaded."""


__all__ = [
    "CorpusError",
    "CorpusSourceError",
    "ExbertError",
    "InputError",
    "ModelLoadError",
    "SpacyModelError",
    "StateError",
]
