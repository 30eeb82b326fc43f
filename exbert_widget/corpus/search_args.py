"""The checks of :meth:`Corpus.search`'s arguments: each one turned into what the search uses
(plain ints, a unit-ready float32 query, sorted unique heads) or refused with an
:class:`~exbert_widget.errors.InputError` naming the argument.

Numpy integers are integers here (an id or a layer often comes out of an array); ``bool`` is not,
and neither is a float, even a whole one: ``k=2.5`` is more likely a slip than a wish.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["as_int", "check_exclude", "check_heads", "check_vector", "distinct_indices"]


def as_int(value: Any, name: str) -> int:
    """``value`` as an ``int``, if it is an integer (Python's or numpy's, not ``bool``).

    Raises:
        InputError: anything else, named ``name``.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        return int(value)
    raise InputError(f"{name} must be an integer, got {value!r:.60} ({type(value).__name__}).")


def check_vector(vector: Any, width: int, what: str, model: str) -> np.ndarray:
    """The query (a numpy array, a list, or a torch tensor of any dtype and device) as a
    float32 vector of ``width`` values, finite and not zero.

    Raises:
        InputError: not numbers, the wrong width, NaN or infinite values, or all zeros (its
            cosine with anything is undefined).
    """
    if hasattr(vector, "detach") and hasattr(vector, "cpu"):  # a torch tensor, of any dtype,
        vector = vector.detach().float().cpu()  # on any device, with or without grad
    try:
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
    except (TypeError, ValueError, RuntimeError):
        raise InputError(
            f"The query must be a vector of {width} numbers, got {type(vector).__name__}."
        ) from None
    if query.shape[0] != width:
        raise InputError(
            f"The query has {query.shape[0]} dimensions, the {what} index {width}: was it "
            f"computed with {model!r}?"
        )
    if not np.isfinite(query).all():
        raise InputError("The query holds NaN or infinite values: no cosine can be computed.")
    if not query.any():
        raise InputError("The query is all zeros: its cosine with any vector is undefined.")
    return query


def check_heads(heads: Any, count: int) -> list[int]:
    """``heads`` as sorted, distinct head numbers in 0..count-1.

    Raises:
        InputError: not a non-empty collection of integers in range.
    """
    message = f"heads must be a non-empty list of heads in 0..{count - 1}, got {heads!r:.80}."
    return distinct_indices(heads, count, message)


def distinct_indices(values: Any, count: int, message: str) -> list[int]:
    """``values`` as sorted, distinct integers in 0..count-1 (heads, layers).

    Raises:
        InputError: with ``message``, for anything but a non-empty collection of such integers.
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise InputError(message)
    try:
        chosen = sorted({as_int(v, "an index") for v in values})
    except InputError:
        raise InputError(message) from None
    if not chosen or chosen[0] < 0 or chosen[-1] >= count:
        raise InputError(message)
    return chosen


def check_exclude(exclude: Any, count: int) -> np.ndarray:
    """``exclude_sentences`` as an int64 array of sentence ids in 0..count-1 (``None``: none).

    Raises:
        InputError: not a collection of integers in range.
    """
    if exclude is None:
        return np.zeros(0, np.int64)
    message = f"exclude_sentences must hold sentence ids in 0..{count - 1}, got {exclude!r:.80}."
    if isinstance(exclude, (str, bytes)) or not isinstance(exclude, Iterable):
        raise InputError(message)
    if isinstance(exclude, np.ndarray) and exclude.ndim == 1 and exclude.dtype.kind in "iu":
        ids = exclude.astype(np.int64)  # many ids at once: no per-id check in Python
    else:
        try:
            ids = np.asarray([as_int(s, "a sentence id") for s in exclude], dtype=np.int64)
        except InputError:
            raise InputError(message) from None
    if ids.size and (ids.min() < 0 or ids.max() >= count):
        raise InputError(message)
    return ids
