"""The one serializer for every array trait: numpy <-> {view, dtype, shape} with binary bytes.

ipywidgets lifts the memoryview out of the JSON state and sends it as a binary buffer, so arrays
never travel as JSON number lists; the view turns {view, dtype, shape} back into a typed array.
"""

from __future__ import annotations

from typing import Any

import numpy as np

WIRE_DTYPES = ("float16", "float32", "uint8", "uint16", "int32")


def array_to_json(value: np.ndarray | None, _widget: Any = None) -> dict | None:
    """Serialise a numpy array (or None) for the wire."""
    if value is None:
        return None
    arr = np.ascontiguousarray(value)
    if arr.dtype.name not in WIRE_DTYPES:
        raise TypeError(f"Array traits carry {WIRE_DTYPES}, not {arr.dtype.name}.")
    return {
        "view": arr.reshape(-1).view(np.uint8).data,
        "dtype": arr.dtype.name,
        "shape": list(arr.shape),
    }


def array_from_json(value: dict | None, _widget: Any = None) -> np.ndarray | None:
    """Inverse of :func:`array_to_json` (for state coming back from the browser)."""
    if value is None:
        return None
    buffer = value["view"]
    data = np.frombuffer(
        bytes(buffer) if not isinstance(buffer, bytes) else buffer, dtype=np.dtype(value["dtype"])
    )
    return data.reshape(value["shape"])


array_serialization = {"to_json": array_to_json, "from_json": array_from_json}
