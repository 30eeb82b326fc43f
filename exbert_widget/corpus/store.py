"""A corpus on disk, opened and verified: manifest, token table (HDF5), a FAISS index per layer
and kind.

Layout of a corpus directory::

    manifest.json               written last: its presence marks a complete corpus
    tokens.h5                   sentences, row offsets, the token table (see :mod:`.tokens_file`)
    index/embedding_<l>.faiss   hidden_states[l + 1] (the output of layer l), L2-normalised
    index/context_<l>.faiss     contexts[l] (per-head attention-weighted values), L2-normalised
    index/rotation_<d>.faiss    the rotation in front of every index of d dimensions (RR specs)

A corpus directory is untrusted input (corpora are shared): :meth:`Corpus.open` validates the
manifest (:mod:`.manifest`), holds every file open (:mod:`.files`: an open corpus keeps serving
the build it opened, even while the directory is rebuilt), checks sizes, the token table's
structure and every index file's structure before any is used (:mod:`.tokens_file`,
:mod:`.faiss_file`), and checks every file's SHA-256 before its content is used.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pandas as pd

from ..errors import CorpusError, InputError
from . import index as ix
from . import manifest as mf
from .annotate import LABELS
from .faiss_file import IndexShape, check_index_file, check_rotation_file, read_index, read_rotation
from .files import BuildFiles
from .hit_strings import StringColumn, strings
from .manifest import FORMAT, FORMAT_VERSION, KINDS, MANIFEST, TOKENS
from .search_args import as_int, check_exclude, check_heads, check_vector
from .tokens_file import SPAN_COLUMNS, TokenFile

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "KINDS",
    "MANIFEST",
    "TOKENS",
    "Corpus",
    "CorpusError",
    "SentenceIdError",
]

RESULT_COLUMNS = ["sentence_id", "token_index", "score", "token", "pos", "dep", "ent", "sentence"]
#: Extra hit columns: the matched token's characters in ``sentence`` and its whole word's.
WORD_COLUMNS = ["whole_word", "word_start", "word_end", "token_start", "token_end"]
VERIFY = ("fast", "full")


def check_lm(lm: Any) -> None:
    """Refuse what is not a model (by what a corpus reads of one: no torch import here).

    Raises:
        InputError: ``lm`` has no fingerprint or layer count.
    """
    if not isinstance(getattr(lm, "fingerprint", None), str) or not isinstance(
        getattr(lm, "num_layers", None), int
    ):
        raise InputError(
            f"lm must be a model loaded with ew.load_model(...), got {type(lm).__name__}."
        )


class SentenceIdError(InputError, IndexError):
    """A sentence id that is not an integer or out of range; also an ``IndexError``, so that
    ``corpus.sentences`` behaves as a sequence (iteration stops at its end)."""


def check_sentence_id(sentence_id: Any, count: int, negative: bool = False) -> int:
    """``sentence_id`` as an int in 0..count-1 (``negative``: -count..-1 too, counted from the
    end).

    Raises:
        SentenceIdError: not an integer, or out of range.
    """
    try:
        sid = as_int(sentence_id, "sentence_id")
    except InputError as exc:
        raise SentenceIdError(str(exc)) from None
    if not (-count if negative else 0) <= sid < count:
        raise SentenceIdError(f"sentence_id {sid} out of range 0..{count - 1}")
    return sid % count


class Sentences(Sequence):
    """The corpus sentences, indexable by sentence_id, read from HDF5 on demand."""

    def __init__(self, tokens: TokenFile) -> None:
        self._tokens = tokens

    def __len__(self) -> int:
        return self._tokens.n_sentences

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self._slice(i)
        return self._tokens.sentences(check_sentence_id(i, len(self), negative=True))

    def _slice(self, i: slice) -> list[str]:
        """A slice as a list, as a list's slice would be (HDF5 reads only forward steps)."""
        if i.step == 0:
            raise InputError("slice step cannot be zero")
        start, stop, step = i.indices(len(self))
        if step > 0:
            return self._tokens.sentences(slice(start, stop, step))
        wanted = range(start, stop, step)
        if not wanted:
            return []
        return self._tokens.sentences(slice(wanted[-1], wanted[0] + 1, -step))[::-1]


class Corpus:
    """A reference corpus built by :func:`build_corpus`, opened with :meth:`open`.

    ``corpus.sentences[sentence_id]`` gives a sentence, ``corpus.tokens`` the token table (a
    DataFrame), ``corpus.search(vector, layer, by=..., k=...)`` the nearest tokens.
    """

    def __init__(self, root: Path, manifest: dict, files: BuildFiles, tokens: TokenFile) -> None:
        self.root = root
        self.manifest = manifest
        self._files = files
        self._tokens_file = tokens
        self._spec = ix.IndexSpec.parse(manifest["index"])
        self.sentences = Sentences(tokens)
        self._offsets = tokens.offsets()
        self._index_rows = tokens.index_rows()
        self._indexes: dict[tuple[str, int], faiss.Index] = {}
        self._rotations: dict[int, faiss.VectorTransform] = {}
        self._lock = threading.RLock()  # lazy loads may come from several threads
        self._closed = False

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(
        cls, directory: str | os.PathLike, verify: str = "fast", progress: bool = True
    ) -> Corpus:
        """Open a corpus directory, verified.

        Both modes check the manifest (types, ranges, format version), every file's presence
        and size, the token table's checksum and structure (shapes, types, no links or storage
        outside the file) and every index file's structure against the manifest (type,
        dimension, vector count, every size field against the file's real size). ``"fast"``
        checks each index file's checksum when it is first loaded, before its first search;
        ``"full"`` checks every checksum now. Corpora of format 2 (built before checksums) open
        with a warning, with the structural checks only.

        Args:
            directory: the corpus directory (:func:`build_corpus`'s ``out_dir``).
            verify: ``"fast"`` (default) or ``"full"``.
            progress: a progress bar while ``"full"`` hashes a large corpus (1 GB and more).

        Warns:
            UserWarning: a corpus of format 2, whose contents cannot be verified.

        Raises:
            CorpusError: naming the file and what is wrong with it.
            InputError: ``verify`` is not ``"fast"`` or ``"full"``, or ``directory`` not a path.
        """
        if verify not in VERIFY:
            raise InputError(f"verify must be 'fast' or 'full', got {verify!r}.")
        if not isinstance(directory, (str, os.PathLike)):
            raise InputError(
                "A corpus directory is a path (str or os.PathLike), got "
                f"{type(directory).__name__}."
            )
        root = Path(directory)
        if not root.is_dir():
            raise CorpusError(
                f"No corpus at {str(root)!r}: not a directory. Build one with "
                "ew.build_corpus(source, lm, out_dir) or `exbert corpus build`."
            )
        manifest = mf.read(root)
        if manifest["format_version"] < 3:
            warnings.warn(
                f"{str(root)!r} was built before corpora carried checksums (format "
                f"{manifest['format_version']}): its structure is checked, its contents cannot "
                "be. Rebuild it to have them verified.",
                stacklevel=2,
            )
        records = manifest.get("files") or dict.fromkeys(mf.data_files(manifest))
        files = BuildFiles(root, records)
        try:
            if "sharded" in manifest:
                from .sharded import open_sharded

                return open_sharded(root, manifest, files, verify, progress)
            return cls._verified(root, manifest, files, verify, progress)
        except BaseException:
            files.close()
            raise

    @classmethod
    def _verified(cls, root, manifest, files: BuildFiles, verify: str, progress: bool) -> Corpus:
        held = files[TOKENS]
        held.verify()  # before HDF5 parses a byte of it
        tokens = TokenFile(held, manifest)
        try:
            corpus = cls(root, manifest, files, tokens)
        except BaseException:
            tokens.close()
            raise
        try:
            corpus._check_index_files()
            if verify == "full":
                files.verify_all(progress)
        except BaseException:
            corpus.close()
            raise
        return corpus

    def _check_index_files(self) -> None:
        """Every index and rotation file walked against the manifest, without FAISS."""
        kinds, layers = mf.indexed(self.manifest)
        for kind in kinds:
            for layer in layers:
                check_index_file(self._files[mf.index_name(kind, layer)], self._shape(kind))
        if self._spec.rotate:
            for dim in {self._dim(kind) for kind in kinds}:
                check_rotation_file(self._files[mf.rotation_name(dim)], dim)

    def _dim(self, kind: str) -> int:
        return self.manifest["hidden_size" if kind == "embedding" else "context_size"]

    def _shape(self, kind: str) -> IndexShape:
        spec = self._spec
        try:
            subquantizers = spec.subquantizers(self._dim(kind))
        except ValueError as exc:
            raise CorpusError(f"{str(self.root)!r}: manifest.json: {exc}") from None
        return IndexShape(
            self._dim(kind),
            self.manifest["counts"]["tokens"],
            spec.quantizer,
            spec.nlist,
            subquantizers,
        )

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"Corpus({str(self.root)!r}, model={m['model']!r}, "
            f"sentences={m['counts']['sentences']}, tokens={m['counts']['tokens']}, "
            f"index={m['index']!r})"
        )

    def close(self) -> None:
        """Close the corpus's files (indexes already loaded stay usable)."""
        self._closed = True
        self._tokens_file.close()
        self._files.close()

    def __del__(self) -> None:
        # a corpus left to the garbage collector closes its files quietly
        if not getattr(self, "_closed", True):
            try:
                self.close()
            except Exception:
                pass

    def __enter__(self) -> Corpus:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- the model it belongs to -------------------------------------------------------------------

    def check_model(self, lm) -> None:
        """Refuse a model other than the one this corpus was built with.

        Raises:
            CorpusError: naming both models.
            InputError: ``lm`` is not a model (:func:`exbert_widget.load_model`'s result).
        """
        m = self.manifest
        check_lm(lm)
        if lm.fingerprint != m["fingerprint"] or lm.num_layers != m["layers"]:
            raise CorpusError(
                f"This corpus was built with {m['model']!r} ({m['layers']} layers, "
                f"fingerprint {m['fingerprint'][:12]}), not {lm.name!r} ({lm.num_layers} layers, "
                f"fingerprint {lm.fingerprint[:12]}): its vectors are not comparable. Build a "
                "corpus for this model."
            )

    def head_report(self, lm, *, refresh: bool = False, progress: bool = True) -> pd.DataFrame:
        """Which heads of ``lm`` track which dependency relations over this corpus (Clark et
        al. 2019), with per-head attention statistics; see :mod:`.head_report` for every
        convention. Columns: relation, layer, head, direction, accuracy, count,
        baseline_offset, baseline_accuracy, few, entropy, to_special, to_previous, to_next.

        Cached next to the corpus (or in the user cache directory) per corpus build and model;
        ``refresh=True`` computes it again.

        Raises:
            CorpusError: ``lm`` is not the corpus's model, or the corpus is closed.
            InputError: an encoder–decoder model, or ``lm`` not a model.
        """
        from .head_report import head_report  # torch only when a report is asked for

        return head_report(self, lm, refresh=refresh, progress=progress)

    # -- the token table ---------------------------------------------------------------------------

    def _column(self, name: str) -> np.ndarray:
        with self._lock:
            self._check_open()
            return self._tokens_file.column(name, self._offsets)

    def _check_open(self) -> None:
        if self._closed:
            raise CorpusError(f"The corpus {str(self.root)!r} is closed; open it again.")

    @cached_property
    def tokens(self) -> pd.DataFrame:
        """Every stored token: sentence_id, token_index, token, pos, tag, dep, lemma, ent,
        ent_iob, head (token index of the syntactic head's first token, -1 for none), is_stop,
        special, word (spaCy word index in the sentence, -1 for special tokens) and, from
        format 3, start, end (the token's characters in its sentence), word_start, word_end
        (its whole word's; -1 for special tokens)."""
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
        if self._tokens_file.has("start"):
            cols += list(SPAN_COLUMNS)
        return pd.DataFrame({name: self._column(name) for name in cols})

    def sentence_tokens(self, sentence_id: int) -> pd.DataFrame:
        """One sentence's rows of the token table, in token order.

        The table is read once and kept: a search shows ~50 sentences, and ~13 compressed HDF5
        reads per sentence would cost more than the whole search.

        Raises:
            SentenceIdError: (an ``InputError``) ``sentence_id`` is not an integer or out of
                range.
        """
        start, end = self._sentence_rows(sentence_id)
        return self.tokens.iloc[start:end].reset_index(drop=True)

    def _sentence_rows(self, sentence_id: int) -> tuple[int, int]:
        sid = check_sentence_id(sentence_id, len(self.sentences))
        return int(self._offsets[sid]), int(self._offsets[sid + 1])

    def sentence_labels(self, sentence_id: int) -> dict[str, list[str]]:
        """token, pos, dep and ent of one sentence's tokens, as lists: what a search hit shows,
        ~20x faster than slicing :meth:`sentence_tokens`.

        Raises:
            SentenceIdError: (an ``InputError``) ``sentence_id`` is not an integer or out of
                range.
        """
        start, end = self._sentence_rows(sentence_id)
        columns = self._hit_columns
        return {name: columns[name][start:end].tolist() for name in ("token", "pos", "dep", "ent")}

    def sentence_words(self, sentence_id: int) -> pd.DataFrame:
        """Per token of one sentence: ``token``, ``whole_word`` (the text of the spaCy word it
        lies in, joined with the word's other pieces: ``alnwick`` for ``##n``), ``word_start``,
        ``word_end`` (that word's characters in the sentence) and ``token_start``,
        ``token_end`` (the token's own). Special tokens get an empty word and -1 spans; corpora
        of format 2 (no offsets stored) give each token as its own word, spans -1.

        Raises:
            SentenceIdError: (an ``InputError``) ``sentence_id`` is not an integer or out of
                range.
        """
        start, end = self._sentence_rows(sentence_id)
        rows = np.arange(start, end)
        sentence = self.sentences[sentence_id]
        return pd.DataFrame(
            {"token": self._hit_columns["token"][rows], **self._words(rows, [sentence] * len(rows))}
        )

    # -- search ------------------------------------------------------------------------------------

    def _index(self, kind: str, layer: int) -> faiss.Index:
        """The index of ``kind`` at ``layer``, read (and its checksum checked) on first use."""
        key = (kind, layer)
        with self._lock:
            if key not in self._indexes:
                self._check_open()
                index = read_index(self._files[mf.index_name(kind, layer)], self._shape(kind))
                if self._spec.rotate:
                    index = faiss.IndexPreTransform(self._rotation(self._dim(kind)), index)
                ix.prepare(index, self.manifest["nprobe"])
                self._indexes[key] = index
            return self._indexes[key]

    def _rotation(self, dim: int) -> faiss.VectorTransform:
        if dim not in self._rotations:
            self._rotations[dim] = read_rotation(self._files[mf.rotation_name(dim)], dim)
        return self._rotations[dim]

    def search(
        self,
        vector: np.ndarray,
        layer: int,
        by: str = "embedding",
        k: int = 50,
        heads: Sequence[int] | None = None,
        lm=None,
        *,
        exclude_sentences: Iterable[int] = (),
        max_per_sentence: int | None = None,
    ) -> pd.DataFrame:
        """The ``k`` stored tokens nearest (by cosine) to ``vector`` at ``layer``, best first.

        ``by="embedding"`` searches ``hidden_states[layer + 1]``; ``by="context"`` searches
        ``contexts[layer]``, where ``heads`` keeps only those heads' slices of the query and of
        the stored vectors, renormalised (exBERT's head-restricted search): candidates come from
        the index with the restricted query, then are re-ranked by the exact restricted cosine of
        their decoded vectors (a head named twice counts once; all heads is no restriction).
        Without ``heads``, candidates (4 x k) are re-ranked the same way over all dimensions.
        Pass ``lm`` (the model that computed ``vector``) to have the corpus refuse a model other
        than its own (:meth:`check_model`).

        ``exclude_sentences`` leaves out hits in those sentences; ``max_per_sentence`` keeps at
        most that many hits from one sentence (the best ones). Either way, more candidates are
        fetched until ``k`` hits are found or the corpus has no more.

        Hits carry ``sentence_id``, ``token_index``, ``score``, ``token``, ``pos``, ``dep``,
        ``ent``, ``sentence``, and the whole word around the matched token: ``whole_word``,
        ``word_start``, ``word_end``, ``token_start``, ``token_end`` (see
        :meth:`sentence_words`).

        Raises:
            InputError: an unknown ``by``; a layer, head, sentence id or dimension out of range;
                ``k`` or ``max_per_sentence`` below 1; a ``layer``, ``k``, head, sentence id or
                ``max_per_sentence`` that is not an integer; a query holding NaN or infinite
                values, or all zeros (in the chosen heads).
            CorpusError: another model's ``lm``, an index file found damaged when loaded, or
                the corpus closed (before the index was loaded).
        """
        if lm is not None:
            self.check_model(lm)
        query, layer, k, accept = self._check_query(
            vector, layer, by, k, exclude_sentences, max_per_sentence
        )
        chosen = (
            None if heads is None or by != "context" else check_heads(heads, self.manifest["heads"])
        )
        index = self._index(by, layer)
        if chosen is not None and len(chosen) < self.manifest["heads"]:
            ids, scores = ix.on_search_thread(
                lambda: self._restricted(index, query, chosen, k, layer, accept)
            )
        else:
            ids, scores = ix.on_search_thread(lambda: ix.search(index, query, k, accept=accept))
        return self._hits(ids, scores)

    def _check_query(self, vector, layer, by, k, exclude, most):
        m = self.manifest
        if by not in KINDS:
            raise InputError(f"by must be 'embedding' or 'context', got {by!r}.")
        layer = as_int(layer, "layer")
        if not 0 <= layer < m["layers"]:
            raise InputError(
                f"layer {layer} is out of range: this corpus has 0..{m['layers'] - 1}."
            )
        kinds, layers = mf.indexed(m)
        if by not in kinds or layer not in layers:
            raise CorpusError(
                f"This corpus has no {by} index of layer {layer}: it indexes "
                f"{' and '.join(kinds)} vectors of layers {_ranges(layers)} (chosen with "
                "layers= and kinds= when it was built)."
            )
        query = check_vector(vector, self._dim(by), by, m["model"])
        k = as_int(k, "k")
        if k < 1:
            raise InputError(f"k must be at least 1, got {k}.")
        return query, layer, k, self._acceptor(exclude, most)

    def _acceptor(self, exclude: Iterable[int], most: int | None) -> Callable | None:
        """A filter over candidate index positions (best first) for the sentence options."""
        n = len(self.sentences)
        excluded_ids = check_exclude(exclude, n)
        if most is not None:
            most = as_int(most, "max_per_sentence")
            if most < 1:
                raise InputError(f"max_per_sentence must be None or at least 1, got {most}.")
        if not excluded_ids.size and most is None:
            return None
        excluded = np.zeros(n, dtype=bool)
        excluded[excluded_ids] = True

        def accept(positions: np.ndarray) -> np.ndarray:
            sentence = self._sentence_of_position(positions)
            keep = ~excluded[sentence]
            if most is not None:
                keep &= _rank_in_group(np.where(keep, sentence, -1)) < most
            return keep

        return accept

    def _sentence_of_position(self, positions: np.ndarray) -> np.ndarray:
        rows = self._index_rows[positions]
        return np.searchsorted(self._offsets, rows, side="right") - 1

    def _restricted(self, index, query, heads, k, layer, accept):
        """Head-restricted search: every vector the index visits is scored by its restricted
        cosine (the restricted inner product over the stored per-head norms); the best are
        re-ranked on decoded vectors. More are taken (and, for an inverted file, more lists
        visited) until ``k`` hits pass ``accept``."""
        m = self.manifest
        head_dim = m["context_size"] // m["heads"]
        mask = np.zeros(m["context_size"], dtype=bool)
        for h in heads:
            mask[h * head_dim : (h + 1) * head_dim] = True
        if not query[mask].any():
            raise InputError(
                f"The query is all zeros in heads {heads}: its cosine with any vector is undefined."
            )
        norms = self._head_norms(layer)
        q = ix.normalise(np.where(mask, query, 0.0))
        nprobe = None
        while True:
            ids, dots = ix.scan(index, q, nprobe)
            restricted = np.sqrt(np.square(norms[ids][:, list(heads)]).sum(axis=1))
            approx = dots / np.maximum(restricted, 1e-6)
            order = np.argsort(-approx, kind="stable")
            n = min(len(ids), max(ix.rerank_factor(index) * k, 200))
            while True:
                found, scores = ix.rerank(index, q, ids[order[:n]], None, mask)
                if accept is not None:
                    keep = accept(found)
                    found, scores = found[keep], scores[keep]
                if len(found) >= k or n >= len(ids):
                    break
                n = ix.more_candidates(n, len(found), k, len(ids))
            wider = ix.wider_nprobe(index, nprobe)
            if len(found) >= k or wider is None:
                return found[:k], scores[:k]
            nprobe = wider

    def _head_norms(self, layer: int) -> np.ndarray:
        """Per-head norms of the stored (unit) context vectors of ``layer``: [index positions,
        heads]."""
        with self._lock:
            cache = self.__dict__.setdefault("_norms", {})
            if layer not in cache:
                self._check_open()
                cache[layer] = self._tokens_file.head_norms(layer)
            return cache[layer]

    @cached_property
    def _hit_columns(self) -> dict[str, np.ndarray]:
        columns = ["sentence_id", "token_index", "token", "pos", "dep", "ent"]
        if self._tokens_file.has("start"):
            columns += list(SPAN_COLUMNS)
        if "tokens" in self.__dict__:
            return {name: self.tokens[name].to_numpy() for name in columns}
        return {name: self._column(name) for name in columns}

    @cached_property
    def _sentence_list(self) -> list[str]:
        return self.sentences[:]

    @cached_property
    def _hit_strings(self) -> dict[str, StringColumn]:
        """The string columns of hits, converted once (see :mod:`.hit_strings`)."""
        columns = self._hit_columns
        found = {name: StringColumn(columns[name]) for name in ("token", "pos", "dep", "ent")}
        found["sentence"] = StringColumn(self._sentence_list)
        return found

    def _hits(self, ids: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
        rows = self._index_rows[np.asarray(ids, dtype=np.int64)]
        columns = self._hit_columns  # loaded once, on the first search
        data = {name: columns[name][rows] for name in ("sentence_id", "token_index")}
        data["score"] = np.asarray(scores, dtype=np.float32)
        text = self._hit_strings
        data.update({name: text[name].take(rows) for name in ("token", "pos", "dep", "ent")})
        data["sentence"] = text["sentence"].take(data["sentence_id"])
        listed = self._sentence_list
        data.update(self._words(rows, [listed[s] for s in data["sentence_id"].tolist()]))
        # one DataFrame built in its final column order: inserting and reordering cost more
        return pd.DataFrame({name: data[name] for name in RESULT_COLUMNS + WORD_COLUMNS})

    def _words(self, rows: np.ndarray, sentences: list[str]) -> dict[str, Any]:
        """The WORD_COLUMNS of token rows ``rows`` in their ``sentences``."""
        columns = self._hit_columns
        if "start" not in columns:  # format 2: no offsets stored
            minus = np.full(len(rows), -1, dtype=np.int32)
            return {
                "whole_word": self._hit_strings["token"].take(rows),
                "word_start": minus,
                "word_end": minus,
                "token_start": minus,
                "token_end": minus,
            }
        starts, ends = columns["word_start"][rows], columns["word_end"][rows]
        return {
            "whole_word": strings(
                [s[a:b] if a >= 0 else "" for s, a, b in zip(sentences, starts, ends, strict=True)]
            ),
            "word_start": starts,
            "word_end": ends,
            "token_start": columns["start"][rows],
            "token_end": columns["end"][rows],
        }


def _rank_in_group(groups: np.ndarray) -> np.ndarray:
    """For each element, how many earlier elements share its group (0 for the first)."""
    order = np.argsort(groups, kind="stable")
    ordered = groups[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(ordered)]))
    rank = np.empty(len(groups), dtype=np.int64)
    rank[order] = np.arange(len(ordered)) - run_start
    return rank


def _ranges(values: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2, 5"``."""
    parts: list[str] = []
    for v in values:
        if parts and v == int(parts[-1].rsplit("-", 1)[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{v}"
        else:
            parts.append(str(v))
    return ", ".join(parts)
