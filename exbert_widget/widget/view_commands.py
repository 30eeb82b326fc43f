"""Commands of the model view, the logit-lens panel and export: their arguments and results.

Declared here and joined into :data:`.state.COMMANDS`, from which the view's TypeScript types
are generated.
"""

from __future__ import annotations

from typing import Literal, NotRequired, TypedDict

import numpy as np

ExportFormat = Literal["svg", "html", "png"]


class ModelViewArgs(TypedDict):
    pass


class ModelViewResult(TypedDict):
    """Every layer × head's thumbnail, keyed by what it was computed for."""

    sentence: str
    masked: list[int]
    hide_special: bool
    size: int
    thumbnails: np.ndarray


class LogitLensArgs(TypedDict):
    position: int
    top_k: NotRequired[int]


class LogitLensResult(TypedDict):
    """Per layer (0 = the embedding output), its top-k [token, probability] pairs, best first."""

    sentence: str
    position: int
    layers: list[list[tuple[str, float]]]


class ExportArgs(TypedDict):
    format: ExportFormat
    path: NotRequired[str]


class ExportResult(TypedDict):
    path: str
    bytes: int


class PngArgs(TypedDict):
    """The view's answer to the kernel's request for a PNG (``view.save("x.png")``)."""

    request: str
    data: str
    error: NotRequired[str]


class PngResult(TypedDict):
    path: str
    bytes: int
