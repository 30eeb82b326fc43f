"""A cache of tables computed over a corpus with a model: next to the corpus, or in the user
cache directory where the corpus directory cannot be written.

A table is kept per corpus build and model (fingerprint and a digest of its weights), so a
rebuilt corpus or another checkpoint computes it afresh. A corpus directory is untrusted input
(corpora are shared), so a cached table is read without pickles, size-capped and checked against
its schema before it is returned; anything amiss is treated as absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# A cached table bigger than this was not written by this module.
MAX_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Schema:
    """What a cached table must look like: ``kind`` names it (and its files), ``version`` is
    bumped whenever what it holds changes, ``dtypes`` gives its columns in order, and ``valid``
    checks a table read back (ranges, labels)."""

    kind: str
    version: int
    dtypes: dict[str, Any]
    valid: Callable[[pd.DataFrame], bool]


def corpus_key(corpus) -> str:
    """What identifies one build of a corpus: its manifest's build id (format 3), else a hash of
    its manifest, else of its sentences."""
    manifest = getattr(corpus, "manifest", None)
    if isinstance(manifest, dict):
        if isinstance(manifest.get("build_id"), str):
            return "build:" + manifest["build_id"]
        text = json.dumps(manifest, sort_keys=True, ensure_ascii=True, default=str)
        return "manifest:" + hashlib.sha256(text.encode()).hexdigest()
    digest = hashlib.sha256()
    for sentence in corpus.sentences[:]:
        digest.update(sentence.encode("utf-8") + b"\0")
    return "sentences:" + digest.hexdigest()


def model_key(lm) -> str:
    """The model's fingerprint (vocabulary and shape) and a digest of its weights, so that
    another checkpoint of the same architecture is told apart."""
    return f"{lm.fingerprint}:{lm.weights_digest}"


def user_cache() -> Path:
    """``$XDG_CACHE_HOME/exbert-widget`` (default ``~/.cache/exbert-widget``)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "exbert-widget"


def cache_paths(schema: Schema, corpus, lm) -> list[Path]:
    """Where the table is cached: ``<corpus>/<kind>s/``, then the user cache directory."""
    name = f"{schema.kind}-{hashlib.sha256(model_key(lm).encode()).hexdigest()[:16]}.npz"
    paths = []
    root = getattr(corpus, "root", None)
    if root is not None:
        paths.append(Path(root) / f"{schema.kind}s" / name)
    corpus_id = hashlib.sha256(corpus_key(corpus).encode()).hexdigest()[:16]
    paths.append(user_cache() / f"{schema.kind}s" / f"{corpus_id}-{name}")
    return paths


def meta(schema: Schema, corpus, lm) -> dict[str, str]:
    """What a cached table must have been computed for."""
    return {"version": str(schema.version), "corpus": corpus_key(corpus), "model": model_key(lm)}


def load(schema: Schema, path: Path, wanted: dict[str, str]) -> pd.DataFrame | None:
    """The table cached at ``path`` for ``wanted``, or None (absent, stale or damaged)."""
    try:
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            return None
        with np.load(path, allow_pickle=False) as data:
            if any(str(data[f"meta_{k}"]) != v for k, v in wanted.items()):
                return None
            frame = pd.DataFrame({name: data[name] for name in schema.dtypes})
        frame = frame.astype(schema.dtypes)
    except (OSError, ValueError, KeyError, EOFError, TypeError, zipfile.BadZipFile, zlib.error):
        return None
    return frame if schema.valid(frame) else None


def save(schema: Schema, frame: pd.DataFrame, paths: list[Path], wanted: dict[str, str]):
    """Write the table to the first of ``paths`` that can be written (atomically: a reader never
    sees half a file). Returns that path, or None when none can be written (the table is then
    only not kept)."""
    arrays: dict[str, np.ndarray] = {
        name: frame[name].to_numpy(dtype=str if dtype is str else dtype)
        for name, dtype in schema.dtypes.items()
    }
    arrays.update({f"meta_{k}": np.array(v) for k, v in wanted.items()})
    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        except OSError:
            continue  # read-only, or not a directory: try the next place
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)  # type: ignore[arg-type]  # numpy's stub types allow_pickle here
            os.replace(tmp, path)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            continue
        return path
    return None
