"""Trait classes of the view's contract: strict about types, and every refusal a StateError.

traitlets' own ``Int`` and ``Float`` take ``True`` (``bool`` is an ``int`` in Python): here
``view.layer = True`` is refused. Each class raises :class:`~exbert_widget.errors.StateError`
(an ``ExbertError`` and a ``TraitError``) so one ``except ew.ExbertError`` catches refusals too.
:class:`NDArray` checks an array's dtype and shape when it is set; :class:`JSON` carries a Python
type that the TypeScript contract is generated from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np
import traitlets as t

from ..errors import StateError
from .arrays import array_serialization


def _raise_state_error(trait: Any, raise_error: Any) -> NoReturn:
    """Run traitlets' own ``error`` (which formats the message) and re-raise as StateError."""
    try:
        raise_error()
    except StateError:
        raise
    except t.TraitError as exc:
        if trait.name is None:  # an item trait inside a container: the container reports
            raise
        raise StateError(*exc.args) from None
    raise AssertionError("TraitType.error returned")  # pragma: no cover


class _StateErrors:
    """Refusals raised as :class:`StateError`, with traitlets' own message (put first among the
    bases of a trait class)."""

    def error(
        self, obj: Any, value: Any, error: Exception | None = None, info: str | None = None
    ) -> NoReturn:
        parent: Any = super()  # the trait class after this one in the bases
        _raise_state_error(self, lambda: parent.error(obj, value, error, info))


class _NotBool(_StateErrors):
    """Refuses a ``bool`` before the number trait behind it sees it (``True`` is an ``int``)."""

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, bool):
            self.error(obj, value)
        parent: Any = super()
        return parent.validate(obj, value)


class StrictInt(_NotBool, t.Int[int, int]):
    """An ``int`` that is not a ``bool``."""

    info_text = "an int (not a bool)"


class OptionalInt(_NotBool, t.Int[int | None, int | None]):
    """An ``int`` (not a ``bool``) or ``None``."""

    info_text = "an int (not a bool) or None"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(None, allow_none=True, **kwargs)


class StrictFloat(_NotBool, t.Float[float, float]):
    """A ``float`` (an ``int`` is widened); not a ``bool``."""

    info_text = "a number (not a bool)"


class Text(_StateErrors, t.Unicode[str, str]):
    """A ``str``."""


class Flag(_StateErrors, t.Bool[bool, bool]):
    """A ``bool`` (traitlets' own ``Bool`` also takes 0 and 1)."""

    def validate(self, obj: Any, value: Any) -> bool:
        if not isinstance(value, bool):
            self.error(obj, value)
        return value


class ListOf(_StateErrors, t.List[Any]):
    """A list whose items are checked by ``trait`` (a ``tuple`` is taken as a list)."""


class JSON(_StateErrors, t.Any):
    """A JSON value described by a Python type (``list[Hit]``, ``dict[str, int]``, ...).

    The type is the contract: the TypeScript type is generated from it. The kernel computes
    these values, so they are not checked item by item on every set (a search's hit list would
    pay for it); they are read-only everywhere else.
    """

    def __init__(self, py_type: Any, default_value: Any, **kwargs: Any) -> None:
        self.py_type = py_type
        super().__init__(default_value, **kwargs)


class NDArray(_StateErrors, t.TraitType[np.ndarray | None, np.ndarray | None]):
    """A numpy array of one dtype and shape, or ``None``; sent as bytes (see ``arrays``).

    ``shape`` names each dimension: an ``int`` is a fixed size; a name that is an ``int`` trait
    of the owner (``"num_heads"``) must equal that trait; names repeated within the shape
    (``"n", "n"``) must be equal; other names are free.
    """

    info_text = "a numpy array"

    def __init__(self, dtype: str, shape: Sequence[str | int], **kwargs: Any) -> None:
        self.dtype = np.dtype(dtype)
        self.shape = tuple(shape)
        super().__init__(None, allow_none=True, **kwargs)
        self.tag(**array_serialization)

    def info(self) -> str:
        dims = ", ".join(str(d) for d in self.shape)
        return f"a {self.dtype.name} numpy array of shape [{dims}], or None"

    def validate(self, obj: Any, value: Any) -> np.ndarray | None:
        if value is None:
            return None
        if not isinstance(value, np.ndarray):
            self.error(obj, value)
        got = f"a {value.dtype.name} array of shape {list(value.shape)}"
        if value.dtype != self.dtype or value.ndim != len(self.shape):
            self._refuse(got)
        sizes: dict[str, int] = {}
        for axis, (dim, size) in enumerate(zip(self.shape, value.shape, strict=True)):
            expected = self._expected(obj, dim, sizes)
            if expected is not None and size != expected:
                self._refuse(f"{got} (axis {axis}, {dim}, should be {expected})")
            if isinstance(dim, str):
                sizes.setdefault(dim, size)
        return value

    def _refuse(self, got: str) -> NoReturn:
        raise StateError(f"The {self.name!r} trait expected {self.info()}, not {got}.")

    @staticmethod
    def _expected(obj: Any, dim: str | int, sizes: dict[str, int]) -> int | None:
        if isinstance(dim, int):
            return dim
        if dim in sizes:
            return sizes[dim]
        if obj is not None and obj.has_trait(dim):
            value = getattr(obj, dim)
            return value if isinstance(value, int) else None
        return None
