"""The token table file, ``tokens.h5``: its layout, written by a build, checked when opened.

Layout (``S`` sentences, ``T`` tokens, ``L`` layers, ``H`` heads)::

    sentences            [S] UTF-8 strings
    sentence_offsets     [S + 1] int64: sentence s holds token rows offsets[s]:offsets[s + 1]
    index_rows           [T] int64: the token row of each index position (a permutation)
    context_head_norms   [L, T, H] float16: per-head norms of the unit context vectors, index order
    tokens/<column>      [T]: sentence_id, token_index, head, word (int32), special, is_stop
                         (bool), token and the spaCy labels as uint32 codes into <column>_vocab;
                         from format 3, start, end (the token's characters in its sentence) and
                         word_start, word_end (its whole word's), int32, -1 for special tokens
    attrs: build_id      (format 3) the build's id, also in the manifest

Opening checks the structure before any data is read: exactly these objects, hard links only (an
external link or external storage would read a file outside the corpus), no virtual datasets, only
the deflate and shuffle filters, and every shape and type above. Values are checked when they
are read (offsets increasing, ``index_rows`` a permutation, codes within their vocabulary, head
norms finite).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import h5py
import numpy as np
import pandas as pd

from ..errors import CorpusError
from .annotate import LABELS
from .files import HeldFile

INT_COLUMNS = ("sentence_id", "token_index", "head", "word")
SPAN_COLUMNS = ("start", "end", "word_start", "word_end")  # format 3
BOOL_COLUMNS = ("special", "is_stop")
CATEGORICAL = ("token", *LABELS)
_FILTERS = {h5py.h5z.FILTER_DEFLATE, h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_FLETCHER32}
_LAYOUTS = {h5py.h5d.COMPACT, h5py.h5d.CONTIGUOUS, h5py.h5d.CHUNKED}
_STR = "str"
_GZIP = {"compression": "gzip", "compression_opts": 4, "shuffle": True}


def write(
    path,
    sentences: list[str],
    columns: dict[str, list],
    head_norms: np.ndarray,
    index_rows: np.ndarray,
    build_id: str,
) -> None:
    """Write a token table (see the module's docstring for the layout)."""
    text = h5py.string_dtype("utf-8")
    lengths = np.bincount(
        np.asarray(columns["sentence_id"], dtype=np.int64), minlength=len(sentences)
    )
    with h5py.File(path, "w") as f:
        f.attrs["build_id"] = build_id
        f.create_dataset("sentences", data=np.array(sentences, dtype=object), dtype=text, **_GZIP)
        f.create_dataset("sentence_offsets", data=np.concatenate([[0], np.cumsum(lengths)]))
        f.create_dataset("index_rows", data=index_rows.astype(np.int64), **_GZIP)
        f.create_dataset("context_head_norms", data=head_norms.astype(np.float16), **_GZIP)
        g = f.create_group("tokens")
        for name in (*INT_COLUMNS, *SPAN_COLUMNS):
            g.create_dataset(name, data=np.asarray(columns[name], dtype=np.int32), **_GZIP)
        for name in BOOL_COLUMNS:
            g.create_dataset(name, data=np.asarray(columns[name], dtype=bool), **_GZIP)
        for name in CATEGORICAL:  # codes plus a vocabulary
            codes, vocab = pd.factorize(pd.Series(columns[name], dtype=object), sort=True)
            g.create_dataset(name, data=codes.astype(np.uint32), **_GZIP)
            g.create_dataset(f"{name}_vocab", data=np.array(vocab, dtype=object), dtype=text)


class TokenFile:
    """An opened, structurally checked ``tokens.h5`` of a corpus with manifest ``manifest``.

    Raises:
        CorpusError: naming the file and the object that is missing, extra, linked, stored
            outside the file, or of the wrong shape or type.
    """

    def __init__(self, held: HeldFile, manifest: dict[str, Any]) -> None:
        self.held = held
        counts = manifest["counts"]
        self.n_sentences, self.n_tokens = counts["sentences"], counts["tokens"]
        self.version = manifest["format_version"]
        self.closed = False
        try:
            self.h5 = h5py.File(held.handle, "r")
        except (OSError, ValueError, RuntimeError) as exc:
            raise held.error(
                f"is not a readable HDF5 file ({exc}); build the corpus again"
            ) from exc
        try:
            self._check_structure(manifest)
        except BaseException:
            self.h5.close()
            raise

    def error(self, what: str) -> CorpusError:
        return self.held.error(f"{what}; build the corpus again")

    # -- structure ---------------------------------------------------------------------------------

    def _check_structure(self, manifest: dict[str, Any]) -> None:
        s, t = self.n_sentences, self.n_tokens
        root: dict[str, tuple] = {
            "sentences": ((s,), _STR),
            "sentence_offsets": ((s + 1,), np.int64),
            "index_rows": ((t,), np.int64),
            "context_head_norms": ((manifest["layers"], t, manifest["heads"]), np.float16),
        }
        self._check_group(self.h5, "/", root, subgroups={"tokens"})
        columns: dict[str, tuple] = {name: ((t,), np.int32) for name in INT_COLUMNS}
        if self.version >= 3:
            columns.update({name: ((t,), np.int32) for name in SPAN_COLUMNS})
        columns.update({name: ((t,), np.bool_) for name in BOOL_COLUMNS})
        for name in CATEGORICAL:
            columns[name] = ((t,), np.uint32)
            columns[f"{name}_vocab"] = (None, _STR)
        self._check_group(self.h5["tokens"], "tokens/", columns, subgroups=set())
        if self.version >= 3:
            build_id = self._read("the build id", lambda: self.h5.attrs.get("build_id"))
            if isinstance(build_id, bytes):
                build_id = build_id.decode("utf-8", "replace")
            if build_id != manifest["build_id"]:
                raise self.error(f"is from another build ({build_id!r:.40}) than the manifest")

    def _check_group(self, group, prefix: str, datasets: dict[str, tuple], subgroups: set) -> None:
        names = set(self._read(f"the names in {prefix}", lambda: list(group.keys())))
        extra = sorted(names - set(datasets) - subgroups)
        missing = sorted(set(datasets) - names) + sorted(subgroups - names)
        if extra or missing:
            parts = []
            if extra:
                parts.append("unexpected objects " + ", ".join(prefix + n for n in extra[:4]))
            if missing:
                parts.append("no " + ", ".join(prefix + n for n in missing[:4]))
            raise self.error("has " + " and ".join(parts))
        for name in sorted(names):
            link = self._read(f"{prefix}{name}", functools.partial(group.get, name, getlink=True))
            if not isinstance(link, h5py.HardLink):
                raise self.error(f"links {prefix}{name} elsewhere ({type(link).__name__})")
            obj = self._read(f"{prefix}{name}", functools.partial(group.__getitem__, name))
            want = h5py.Group if name in subgroups else h5py.Dataset
            if not isinstance(obj, want):
                raise self.error(f"has {prefix}{name} as a {type(obj).__name__}")
            if want is h5py.Dataset:
                self._check_dataset(obj, prefix + name, *datasets[name])

    def _check_dataset(self, ds: h5py.Dataset, name: str, shape, dtype) -> None:
        plist = ds.id.get_create_plist()
        if plist.get_layout() not in _LAYOUTS:
            raise self.error(f"stores {name} as a virtual dataset (data in other files)")
        if plist.get_external_count():
            raise self.error(f"stores {name} in external files")
        filters = {plist.get_filter(i)[0] for i in range(plist.get_nfilters())}
        if filters - _FILTERS:
            raise self.error(f"compresses {name} with filters {sorted(filters - _FILTERS)}")
        if dtype == _STR:
            info = h5py.check_string_dtype(ds.dtype)
            ok = info is not None and info.length is None and ds.ndim == 1
            if shape is None:
                shape = (min(ds.shape[0], self.n_tokens),) if ds.ndim == 1 else None
        else:
            ok = ds.dtype == np.dtype(dtype)
        if not ok:
            raise self.error(f"has {name} of type {ds.dtype}")
        if ds.shape != shape:
            raise self.error(f"has {name} of shape {ds.shape} where {shape} is expected")

    # -- reading -----------------------------------------------------------------------------------

    def _read(self, what: str, read: Callable[[], Any]) -> Any:
        """``read()``, with whatever HDF5 raises on damaged data turned into a CorpusError."""
        self._check_open()
        try:
            return read()
        except CorpusError:
            raise
        except (OSError, KeyError, ValueError, RuntimeError, TypeError, IndexError) as exc:
            raise self.error(f"cannot read {what} ({exc})") from exc

    def offsets(self) -> np.ndarray:
        """``sentence_offsets``, checked: from 0 to the token count, every sentence non-empty."""
        offsets = self._read("sentence_offsets", lambda: self.h5["sentence_offsets"][:])
        if offsets[0] != 0 or offsets[-1] != self.n_tokens or (np.diff(offsets) < 1).any():
            raise self.error("has sentence_offsets that do not cut the token table into sentences")
        return offsets

    def index_rows(self) -> np.ndarray:
        """``index_rows``, checked to be a permutation of the token rows."""
        rows = self._read("index_rows", lambda: self.h5["index_rows"][:])
        n = self.n_tokens
        if rows.min() < 0 or rows.max() >= n or not (np.bincount(rows, minlength=n) == 1).all():
            raise self.error("has index_rows that are not a permutation of the token rows")
        return rows

    def sentences(self, index) -> Any:
        """Sentence(s) at ``index`` (an int or a slice), decoded."""
        data = self._read("sentences", lambda: self.h5["sentences"][index])
        try:
            if isinstance(index, slice):
                return [s.decode("utf-8") for s in data]
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.error(f"holds a sentence that is not UTF-8 ({exc})") from exc

    def has(self, name: str) -> bool:
        self._check_open()
        return name in self.h5["tokens"]

    def _check_open(self) -> None:
        """Refuse reads after :meth:`close` (HDF5 would answer with a KeyError, or with a read
        error that looks like damage)."""
        if self.closed:
            raise CorpusError(
                f"The corpus {str(self.held.root)!r} is closed; open it again (Corpus.open)."
            )

    def column(self, name: str, offsets: np.ndarray) -> np.ndarray:
        """A whole token-table column, decoded and checked against ``offsets``."""
        values = self._read(f"tokens/{name}", lambda: self.h5["tokens"][name][:])
        if name in CATEGORICAL:
            vocab = self._vocab(name)
            if len(values) and values.max() >= len(vocab):
                raise self.error(f"has tokens/{name} codes past its vocabulary")
            return vocab[values]
        lengths = np.diff(offsets)
        sentence_id = np.repeat(np.arange(self.n_sentences), lengths)
        own = np.repeat(lengths, lengths)  # each row's sentence length
        ok = {
            "sentence_id": lambda v: np.array_equal(v, sentence_id),
            "token_index": lambda v: np.array_equal(v, np.arange(len(v)) - offsets[sentence_id]),
            "head": lambda v: ((v >= -1) & (v < own)).all(),
            "word": lambda v: (v >= -1).all(),
        }.get(name, lambda v: name in BOOL_COLUMNS or ((v >= -1).all()))
        if not ok(values):
            raise self.error(f"has tokens/{name} values that do not fit the sentences")
        return values

    def _vocab(self, name: str) -> np.ndarray:
        raw = self._read(f"tokens/{name}_vocab", lambda: self.h5["tokens"][f"{name}_vocab"][:])
        try:
            return np.array([v.decode("utf-8") for v in raw], dtype=object)
        except UnicodeDecodeError as exc:
            raise self.error(f"has tokens/{name}_vocab entries that are not UTF-8") from exc

    def head_norms(self, layer: int) -> np.ndarray:
        """Per-head norms of ``layer``'s unit context vectors, [index positions, heads] float32,
        checked: finite, between 0 and 1."""
        norms = self._read(
            "context_head_norms", lambda: self.h5["context_head_norms"][layer].astype(np.float32)
        )
        if not (np.isfinite(norms) & (norms >= 0) & (norms <= 1.01)).all():
            raise self.error(f"has context_head_norms of layer {layer} outside 0..1 (or NaN)")
        return norms

    def close(self) -> None:
        self.closed = True
        self.h5.close()
