"""A sharded corpus, opened and verified: a top directory and ``shards/NNNN/``, each shard a
format-3 corpus of its own, searched in parallel and merged.

Layout::

    manifest.json               written last: the model, the counts, every shard's manifest
                                checksum (a shard swapped for another build's is refused)
    quantizer/<kind>_<l>.faiss  the shared trained quantisers (empty indexes), trained once on a
                                sample; every shard's indexes were filled from these
    index/rotation_<d>.faiss    the shared rotation (RR specs; each shard holds a copy)
    shards/0000/ ...            complete corpora (:mod:`.store`'s layout) with a ``shard`` field

Every shard is opened as :meth:`Corpus.open` opens a corpus (manifest, sizes, the token table's
checksum and structure, every index file's structure; checksums before first use), and checked
against the top manifest: same model, format, index spec and build plan. Sentence ids and index
positions are global: a shard's own plus the sentences / tokens of the shards before it, so the
same build gives the same ids on every open.

Search asks every shard for its best candidates by the quantised score in parallel (FAISS
releases the GIL), keeps the best ``n`` over all shards, and re-ranks those by decoded cosine:
the same candidates, and so the same hits, as one index holding every shard's codes.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from ..errors import CorpusError
from . import index as ix
from . import manifest as mf
from .files import BuildFiles
from .store import Corpus

#: Manifest fields every shard must share with the top manifest.
SHARED_FIELDS = (
    "format_version",
    "model",
    "fingerprint",
    "kind",
    "layers",
    "heads",
    "hidden_size",
    "context_size",
    "index",
    "nprobe",
    "indexed",
)


def open_sharded(
    root: Path, manifest: dict, files: BuildFiles, verify: str, progress: bool
) -> ShardedCorpus:
    """Open every shard of the sharded corpus at ``root`` (whose top files are held in
    ``files``) and return the corpus over all of them.

    Raises:
        CorpusError: a missing, extra, half-written or foreign shard, or any shard's own
            refusal (:meth:`Corpus.open`).
    """
    files.verify_all()  # the top files are small: quantisers and rotations
    _check_shard_dirs(root, manifest)
    shards: list[Corpus] = []
    try:
        for number, record in enumerate(manifest["sharded"]["shards"]):
            shards.append(_open_shard(root, manifest, number, record, verify, progress))
        return ShardedCorpus(root, manifest, files, shards)
    except BaseException:
        for shard in shards:
            shard.close()
        raise


def _check_shard_dirs(root: Path, manifest: dict) -> None:
    wanted = {mf.shard_name(i) for i in range(len(manifest["sharded"]["shards"]))}
    top = root / mf.SHARDS
    found = {f"{mf.SHARDS}/{p.name}" for p in top.iterdir()} if top.is_dir() else set()
    extra = sorted(found - wanted)
    if extra:
        raise CorpusError(
            f"{str(root)!r} holds shards its manifest does not list ({', '.join(extra[:3])}): "
            "a half-written shard or one from another build. Build the corpus again (or "
            "remove them)."
        )
    missing = sorted(wanted - found)
    if missing:
        raise CorpusError(
            f"{str(root)!r} is incomplete: shard {', '.join(missing[:3])} is missing. Build "
            "it again (resume=True rebuilds only what is missing)."
        )


def _open_shard(root, top: dict, number: int, record: dict, verify, progress) -> Corpus:
    where = root / mf.shard_name(number)
    try:
        shard_manifest = mf.read(where)
    except CorpusError as exc:
        raise CorpusError(
            f"Shard {number} of {str(root)!r} is half-written or damaged: {exc}"
        ) from exc
    if shard_manifest["format_version"] != mf.FORMAT_VERSION:
        raise CorpusError(
            f"{where}: a shard of format {shard_manifest['format_version']}, where a sharded "
            f"corpus has shards of format {mf.FORMAT_VERSION}. Build the corpus again."
        )
    for name in SHARED_FIELDS:
        if shard_manifest.get(name) != top.get(name):
            raise CorpusError(
                f"{where} is not a shard of this corpus: its {name} is "
                f"{shard_manifest.get(name)!r:.60}, the corpus's {top.get(name)!r:.60} (a shard "
                "of another model, format or build). Build the corpus again."
            )
    shard = shard_manifest.get("shard")
    if (
        shard_manifest["checksum"] != record["checksum"]
        or not isinstance(shard, dict)
        or shard.get("plan") != top["sharded"]["plan"]
        or shard.get("number") != number
    ):
        raise CorpusError(
            f"{where} is not the shard this corpus's build wrote (another build's, or "
            "replaced since). Build the corpus again."
        )
    corpus = Corpus.open(where, verify=verify, progress=progress)
    for name in ("sentences", "tokens"):
        if corpus.manifest["counts"][name] != record[name]:
            corpus.close()
            raise CorpusError(f"{where}: counts.{name} differs from the top manifest's.")
    return corpus


class ShardedTokens:
    """The shards' token tables read as one: what :class:`Corpus` reads from a ``TokenFile``,
    with sentence ids, token rows and index positions made global."""

    def __init__(self, shards: list[Corpus]) -> None:
        self.shards = shards
        sentences = [len(s.sentences) for s in shards]
        tokens = [s.manifest["counts"]["tokens"] for s in shards]
        self.sentence_starts = np.concatenate([[0], np.cumsum(sentences)]).astype(np.int64)
        self.row_starts = np.concatenate([[0], np.cumsum(tokens)]).astype(np.int64)
        self.n_sentences = int(self.sentence_starts[-1])
        self.n_tokens = int(self.row_starts[-1])

    def offsets(self) -> np.ndarray:
        parts = [
            s._offsets[:-1] + start
            for s, start in zip(self.shards, self.row_starts[:-1], strict=True)
        ]
        return np.concatenate([*parts, [self.n_tokens]]).astype(np.int64)

    def index_rows(self) -> np.ndarray:
        # a shard's index positions hold its own rows: global position = row start + local
        parts = [
            s._index_rows + start
            for s, start in zip(self.shards, self.row_starts[:-1], strict=True)
        ]
        return np.concatenate(parts).astype(np.int64)

    def sentences(self, index) -> Any:
        if isinstance(index, slice):
            out: list[str] = []
            for shard in self.shards:
                out.extend(shard.sentences[:])
            return out[index]
        number = int(np.searchsorted(self.sentence_starts, index, side="right")) - 1
        return self.shards[number].sentences[int(index - self.sentence_starts[number])]

    def has(self, name: str) -> bool:
        return all(s._tokens_file.has(name) for s in self.shards)

    def column(self, name: str, offsets: np.ndarray) -> np.ndarray:
        parts = [s._column(name) for s in self.shards]
        if name == "sentence_id":  # global ids, in the shards' own type while they fit
            wide = np.int64 if self.n_sentences >= 2**31 else parts[0].dtype
            starts = self.sentence_starts[:-1]
            parts = [(p + start).astype(wide) for p, start in zip(parts, starts, strict=True)]
        return np.concatenate(parts)

    def head_norms(self, layer: int) -> np.ndarray:
        return np.concatenate([s._head_norms(layer) for s in self.shards])

    def close(self) -> None:
        for shard in self.shards:
            shard.close()


class ShardedCorpus(Corpus):
    """A corpus of several shards, with :class:`Corpus`'s whole API (:mod:`.sharded`)."""

    def __init__(self, root: Path, manifest: dict, files: BuildFiles, shards: list[Corpus]):
        self.shards = shards
        super().__init__(root, manifest, files, ShardedTokens(shards))  # type: ignore[arg-type]
        # one OpenMP thread each, as every search thread (see index.on_search_thread)
        self._pool = ThreadPoolExecutor(
            min(len(shards), 8),
            thread_name_prefix="exbert-shard-search",
            initializer=faiss.omp_set_num_threads,
            initargs=(1,),
        )

    def _check_index_files(self) -> None:
        pass  # each shard checked its own when it opened

    def _index(self, kind: str, layer: int) -> ShardedIndex:  # type: ignore[override]
        key = (kind, layer)
        with self._lock:
            if key not in self._indexes:
                self._check_open()
                parts = [shard._index(kind, layer) for shard in self.shards]
                self._indexes[key] = ShardedIndex(parts, self._pool)  # type: ignore[assignment]
            return self._indexes[key]  # type: ignore[return-value]

    def close(self) -> None:
        super().close()
        self._pool.shutdown(wait=False)


class ShardedIndex:
    """Several FAISS indexes searched as one: positions run on from shard to shard.

    :mod:`.index` treats it like a FAISS index where it matters (``ntotal``, ``d``,
    candidates, decoding, scans, inverted-file settings).
    """

    def __init__(self, parts: list[faiss.Index], pool: ThreadPoolExecutor) -> None:
        self.parts = parts
        self.pool = pool
        self.starts = np.concatenate([[0], np.cumsum([p.ntotal for p in parts])]).astype(np.int64)
        self.ntotal = int(self.starts[-1])
        self.d = parts[0].d
        self._lock = threading.Lock()

    def _each(self, fn) -> list:
        if len(self.parts) == 1:
            return [fn(0, self.parts[0])]
        return list(self.pool.map(lambda i: fn(i, self.parts[i]), range(len(self.parts))))

    def candidates(self, q: np.ndarray, n: int, nprobe: int | None) -> np.ndarray:
        """The ``n`` best positions over all shards by the quantised score, best first (ties:
        the lower position first, as one index gives them)."""

        def one(i, part):
            scores, ids = ix.candidate_search(part, q, min(n, part.ntotal), nprobe)
            keep = ids[0] >= 0
            return scores[0][keep], ids[0][keep] + self.starts[i]

        found = self._each(one)
        scores = np.concatenate([f[0] for f in found])
        ids = np.concatenate([f[1] for f in found])
        order = np.lexsort((ids, -scores))[:n]
        return ids[order]

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, dtype=np.int64)
        out = np.empty((len(ids), self.d), np.float32)
        shard = np.searchsorted(self.starts, ids, side="right") - 1
        for i in np.unique(shard):
            where = np.flatnonzero(shard == i)
            out[where] = ix.reconstruct(self.parts[i], ids[where] - self.starts[i])
        return out

    def scan(self, q: np.ndarray, nprobe: int | None) -> tuple[np.ndarray, np.ndarray]:
        found = self._each(lambda i, part: ix.scan(part, q, nprobe))
        ids = np.concatenate([f[0] + self.starts[i] for i, f in enumerate(found)])
        return ids, np.concatenate([f[1] for f in found])

    @property
    def ivf(self):
        return ix._ivf(self.parts[0])
