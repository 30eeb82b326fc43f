"""A corpus on disk: manifest, sentences and token table (HDF5), a FAISS index per layer and kind.

Layout of a corpus directory::

    manifest.json            written last: its presence marks a complete corpus
    tokens.h5                sentences, row offsets, the token table (labels as categorical codes)
    index/embedding_<l>.faiss   hidden_states[l + 1] (the output of layer l), L2-normalised
    index/context_<l>.faiss     contexts[l] (per-head attention-weighted values), L2-normalised
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from ..errors import CorpusError
from . import index as ix
from .annotate import LABELS

FORMAT = "exbert-widget-corpus"
FORMAT_VERSION = 2  # 2: index positions map to token rows through `index_rows`
MANIFEST = "manifest.json"
TOKENS = "tokens.h5"
KINDS = ("embedding", "context")
RESULT_COLUMNS = ["sentence_id", "token_index", "score", "token", "pos", "dep", "ent", "sentence"]


def index_path(root: Path, kind: str, layer: int) -> Path:
    return root / "index" / f"{kind}_{layer}.faiss"


class Sentences(Sequence):
    """The corpus sentences, indexable by sentence_id, read from HDF5 on demand."""

    def __init__(self, dataset: h5py.Dataset) -> None:
        self._data = dataset

    def __len__(self) -> int:
        return len(self._data)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [s.decode("utf-8") for s in self._data[i]]
        i = int(i)
        if not -len(self) <= i < len(self):
            raise IndexError(f"sentence_id {i} out of range 0..{len(self) - 1}")
        return self._data[i].decode("utf-8")


class Corpus:
    """A reference corpus built by :func:`build_corpus`, opened lazily.

    ``corpus.sentences[sentence_id]`` gives a sentence, ``corpus.tokens`` the token table (a
    DataFrame), ``corpus.search(vector, layer, by=..., k=...)`` the nearest tokens.
    """

    def __init__(self, root: Path, manifest: dict) -> None:
        self.root = root
        self.manifest = manifest
        self._h5 = h5py.File(root / TOKENS, "r")
        self.sentences = Sentences(self._h5["sentences"])
        self._offsets = self._h5["sentence_offsets"][:]
        rows = self._h5.get("index_rows")  # absent (format 1): index position = token row
        self._index_rows = None if rows is None else rows[:]
        self._indexes: dict[tuple[str, int], object] = {}
        if (
            len(self._offsets) != manifest["counts"]["sentences"] + 1
            or int(self._offsets[-1]) != manifest["counts"]["tokens"]
        ):
            raise CorpusError(f"{root}: the token table does not match the manifest's counts.")

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, directory: str | os.PathLike) -> Corpus:
        """Open a corpus directory, checking that it is complete and of a format we read."""
        root = Path(directory)
        if not root.is_dir():
            raise CorpusError(
                f"No corpus at {str(root)!r}: not a directory. Build one with "
                "ew.build_corpus(source, lm, out_dir) or `exbert corpus build`."
            )
        path = root / MANIFEST
        if not path.is_file():
            raise CorpusError(
                f"{str(root)!r} holds no {MANIFEST}: it is not a corpus, or its build did not "
                "finish. Build it again."
            )
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorpusError(f"{path} is corrupt ({exc}); build the corpus again.") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise CorpusError(f"{path} is not an exbert-widget corpus manifest.")
        version = manifest.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CorpusError(
                f"{str(root)!r} has corpus format {version}, newer than this exbert-widget reads "
                f"({FORMAT_VERSION}); upgrade exbert-widget."
            )
        missing = [
            str(p.relative_to(root))
            for p in [root / TOKENS]
            + [index_path(root, k, layer) for k in KINDS for layer in range(manifest["layers"])]
            if not p.is_file()
        ]
        if missing:
            raise CorpusError(f"{str(root)!r} is incomplete: missing {', '.join(missing[:4])}.")
        try:
            return cls(root, manifest)
        except (OSError, KeyError) as exc:
            raise CorpusError(f"{root / TOKENS} is unreadable ({exc}); build again.") from exc

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"Corpus({str(self.root)!r}, model={m['model']!r}, "
            f"sentences={m['counts']['sentences']}, tokens={m['counts']['tokens']}, "
            f"index={m['index']!r})"
        )

    def close(self) -> None:
        self._h5.close()

    # -- the model it belongs to -------------------------------------------------------------------

    def check_model(self, lm) -> None:
        """Refuse a model other than the one this corpus was built with."""
        m = self.manifest
        if lm.fingerprint != m["fingerprint"] or lm.num_layers != m["layers"]:
            raise CorpusError(
                f"This corpus was built with {m['model']!r} ({m['layers']} layers, "
                f"fingerprint {m['fingerprint'][:12]}), not {lm.name!r} ({lm.num_layers} layers, "
                f"fingerprint {lm.fingerprint[:12]}): its vectors are not comparable. Build a "
                "corpus for this model."
            )

    # -- the token table ---------------------------------------------------------------------------

    def _column(self, name: str, rows=slice(None)) -> np.ndarray:
        data = self._h5["tokens"][name]
        if f"{name}_vocab" in self._h5["tokens"]:
            vocab = self._vocab(name)
            return vocab[data[rows]]
        values = data[rows]
        if values.dtype.kind == "O" or values.dtype.kind == "S":
            return np.array([v.decode("utf-8") for v in values], dtype=object)
        return values

    def _vocab(self, name: str) -> np.ndarray:
        cache = self.__dict__.setdefault("_vocabs", {})
        if name not in cache:
            raw = self._h5["tokens"][f"{name}_vocab"][:]
            cache[name] = np.array([v.decode("utf-8") for v in raw], dtype=object)
        return cache[name]

    def _table(self, rows=slice(None)) -> pd.DataFrame:
        cols = [
            "sentence_id",
            "token_index",
            "token",
            *LABELS,
            "head",
            "is_stop",
            "special",
            "word",
        ]
        return pd.DataFrame({name: self._column(name, rows) for name in cols})

    @cached_property
    def tokens(self) -> pd.DataFrame:
        """Every stored token: sentence_id, token_index, token, pos, tag, dep, lemma, ent,
        ent_iob, head (token index of the syntactic head's first token, -1 for none), is_stop,
        special, word (spaCy word index in the sentence, -1 for special tokens)."""
        return self._table()

    def sentence_tokens(self, sentence_id: int) -> pd.DataFrame:
        """One sentence's rows of the token table, in token order.

        The table is read once and kept: a search shows ~50 sentences, and ~13 compressed HDF5
        reads per sentence would cost more than the whole search.
        """
        start, end = self._offsets[int(sentence_id)], self._offsets[int(sentence_id) + 1]
        return self.tokens.iloc[start:end].reset_index(drop=True)

    def sentence_labels(self, sentence_id: int) -> dict[str, list[str]]:
        """token, pos, dep and ent of one sentence's tokens, as lists: what a search hit shows,
        ~20x faster than slicing :meth:`sentence_tokens`."""
        start, end = self._offsets[int(sentence_id)], self._offsets[int(sentence_id) + 1]
        columns = self._hit_columns
        return {name: columns[name][start:end].tolist() for name in ("token", "pos", "dep", "ent")}

    # -- search ------------------------------------------------------------------------------------

    def _index(self, kind: str, layer: int):
        key = (kind, layer)
        if key not in self._indexes:
            self._indexes[key] = ix.load(
                index_path(self.root, kind, layer), int(self.manifest.get("nprobe", 48))
            )
        return self._indexes[key]

    def search(
        self,
        vector: np.ndarray,
        layer: int,
        by: str = "embedding",
        k: int = 50,
        heads: Sequence[int] | None = None,
        lm=None,
    ) -> pd.DataFrame:
        """The ``k`` stored tokens nearest (by cosine) to ``vector`` at ``layer``, best first.

        ``by="embedding"`` searches ``hidden_states[layer + 1]``; ``by="context"`` searches
        ``contexts[layer]``, where ``heads`` keeps only those heads' slices of the query and of
        the stored vectors, renormalised (exBERT's head-restricted search): candidates come from
        the index with the restricted query, then are re-ranked by the exact restricted cosine of
        their decoded vectors. Without ``heads``, candidates (4 x k) are re-ranked the same way
        over all dimensions. Pass ``lm`` (the model that computed ``vector``) to have the corpus
        refuse a model other than its own (:meth:`check_model`).
        """
        if lm is not None:
            self.check_model(lm)
        m = self.manifest
        if by not in KINDS:
            raise ValueError(f"by must be 'embedding' or 'context', got {by!r}.")
        if not 0 <= layer < m["layers"]:
            raise ValueError(
                f"layer {layer} is out of range: this corpus has 0..{m['layers'] - 1}."
            )
        width = m["hidden_size"] if by == "embedding" else m["context_size"]
        query = np.asarray(vector, dtype=np.float32).reshape(-1)
        if query.shape[0] != width:
            raise ValueError(
                f"The query has {query.shape[0]} dimensions, the {by} index {width}: was it "
                f"computed with {m['model']!r}?"
            )
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}.")
        index = self._index(by, layer)
        k = min(k, index.ntotal)
        if heads is not None and by == "context" and len(heads) < m["heads"]:
            ids, scores = self._restricted(index, query, heads, k, layer)
        else:
            ids, scores = ix.search(index, query, k)
        return self._hits(ids, scores)

    def _restricted(self, index, query, heads, k, layer):
        m = self.manifest
        head_dim = m["context_size"] // m["heads"]
        bad = [h for h in heads if not 0 <= h < m["heads"]]
        if not heads or bad:
            raise ValueError(f"heads must be a non-empty subset of 0..{m['heads'] - 1}.")
        mask = np.zeros(m["context_size"], dtype=bool)
        for h in heads:
            mask[h * head_dim : (h + 1) * head_dim] = True
        norms = self._head_norms(layer)
        if norms is None:  # a corpus without per-head norms: restricted candidates from the index
            return ix.search(index, query, k, mask=mask, candidates=max(10 * k, 500))
        # Score every vector the index visits by its restricted cosine, from the restricted
        # inner product and the stored per-head norms; re-rank the best on decoded vectors.
        q = ix.normalise(np.where(mask, query, 0.0))
        ids, dots = ix.scan(index, q)
        restricted = np.sqrt(np.square(norms[ids][:, list(heads)]).sum(axis=1))
        approx = dots / np.maximum(restricted, 1e-6)
        n = min(len(ids), max(ix.RERANK * k, 200))
        best = np.argpartition(-approx, n - 1)[:n] if n < len(ids) else np.arange(len(ids))
        return ix.rerank(index, q, ids[best], k, mask)

    def _head_norms(self, layer: int) -> np.ndarray | None:
        """Per-head norms of the stored (unit) context vectors of ``layer``: [index positions,
        heads]."""
        cache = self.__dict__.setdefault("_norms", {})
        if layer not in cache:
            data = self._h5.get("context_head_norms")
            cache[layer] = None if data is None else data[layer].astype(np.float32)
        return cache[layer]

    @cached_property
    def _hit_columns(self) -> dict[str, np.ndarray]:
        columns = ("sentence_id", "token_index", "token", "pos", "dep", "ent")
        if "tokens" in self.__dict__:
            return {name: self.tokens[name].to_numpy() for name in columns}
        return {name: self._column(name) for name in columns}

    @cached_property
    def _sentence_list(self) -> list[str]:
        return self.sentences[:]

    def _hits(self, ids: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
        ids = np.asarray(ids, dtype=np.int64)
        if self._index_rows is not None:
            ids = self._index_rows[ids]
        columns = self._hit_columns  # loaded once, on the first search
        data = {name: values[ids] for name, values in columns.items()}
        data["score"] = np.asarray(scores, dtype=np.float32)
        sentences = self._sentence_list
        data["sentence"] = [sentences[s] for s in data["sentence_id"].tolist()]
        # one DataFrame built in its final column order: inserting and reordering cost more
        return pd.DataFrame({name: data[name] for name in RESULT_COLUMNS})
