"""String columns of search hits, kept in the array type pandas infers for strings.

pandas 3 infers ``str`` (pyarrow-backed where pyarrow is installed) for every column of Python
strings a DataFrame is built from, and converts it element by element: for a search's 50 hits
that conversion of six columns cost more than the search's own re-ranking. A
:class:`StringColumn` is converted once, when a corpus first searches; each search takes its
rows from it, already typed, and the hits keep exactly the dtype pandas would have inferred.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd

#: What pandas infers for a column of strings: ``object`` (pandas 2) or a ``str`` dtype.
INFERRED = pd.Series(["x"]).dtype


ARROW = isinstance(INFERRED, pd.StringDtype) and INFERRED.storage == "pyarrow"


class StringColumn:
    """Strings, taken by row into arrays of the dtype pandas infers for strings."""

    def __init__(self, values: Any) -> None:
        values = np.asarray(values, dtype=object)
        # pyarrow's own take, wrapped, costs less than pandas' take on its pyarrow arrays
        self._arrow = _arrow(values) if ARROW else None
        self._values = None if ARROW else strings(values)

    def take(self, rows: np.ndarray) -> Any:
        """The strings at ``rows``, as an array of pandas' inferred string dtype."""
        if self._arrow is not None:
            return pd.arrays.ArrowStringArray(self._arrow.take(rows), dtype=INFERRED)
        return cast(Any, self._values)[rows]


def strings(values: Any) -> Any:
    """A few strings as an array of pandas' inferred string dtype (built by pyarrow itself
    where pandas' ``str`` is pyarrow's: pandas' own conversion checks every element first)."""
    if ARROW:
        return pd.arrays.ArrowStringArray(_arrow(values), dtype=INFERRED)
    if isinstance(INFERRED, pd.StringDtype):
        return pd.array(values, dtype=INFERRED)
    return np.array(values, dtype=object)


def _arrow(values: Any) -> Any:
    import pyarrow as pa  # pandas' own choice for its str dtype, so it is installed

    return pa.array(values, type=pa.large_string())
