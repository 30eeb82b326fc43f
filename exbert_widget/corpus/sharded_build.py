"""Building a sharded corpus (:mod:`.sharded`'s layout), in this process or on Ray, resumable.

The source is read and cut into ``shards`` contiguous runs of paragraphs of about equal
length. The quantisers are trained once, on the driver, on a sample spread over the whole
source; every shard is then a complete corpus built from those trained (empty) indexes, so that
all shards hold codes of the same quantiser and their search merges exactly.

Everything is written into ``.<out>.partial/`` beside ``out_dir``: ``build.json`` (the plan: what
is being built, by its digest), the trained quantisers (then ``quantizer.ready``: shard builders
on Ray start before the training ends and wait for it), and each shard as soon as it is
finished (built in a hidden directory, then renamed: a shard is there whole or not at all). The
top manifest is written last and the whole directory renamed to ``out_dir``: until then nothing
at ``out_dir`` changes. ``resume=True`` with the same plan keeps the finished shards where they
are and builds the others.
"""

from __future__ import annotations

import fcntl
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from tqdm.auto import tqdm

from ..errors import CorpusError, CorpusSourceError, InputError
from ..models import LanguageModel
from ..models.scopes import torch_threads
from . import index as ix
from . import manifest as mf
from .annotate import check_script, load_spacy, spacy_info
from .build import (
    TRAIN_VECTORS,
    BuildOptions,
    _batches,
    _IndexWriter,
    _manifest,
    build_directory,
    make_rotations,
    parse_spec,
)
from .manifest import KINDS, MANIFEST
from .out_dir import check_out_dir, move_into_place
from .search_args import distinct_indices
from .store import Corpus
from .text import Source, read_source

# default characters a shard (~250 k tokens): a shard's indexes are built in memory
SHARD_CHARS = 1_000_000
PLAN = "build.json"
LOCK = "build.lock"
READY = "quantizer.ready"  # written once every trained quantiser is (shard builders wait for it)
FAILED = "quantizer.failed"  # the driver's training failed: the waiting builders give up
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Selection:
    """The kinds and layers a build indexes."""

    kinds: tuple[str, ...]
    layers: tuple[int, ...]

    def manifest_field(self, num_layers: int) -> dict:
        """``{"indexed": ...}`` when some are left out, else nothing (the manifest stays as it
        was before selections existed)."""
        if self.kinds == KINDS and self.layers == tuple(range(num_layers)):
            return {}
        return {"indexed": {"layers": list(self.layers), "kinds": list(self.kinds)}}


def selection(lm: LanguageModel, layers: Iterable[int] | None, kinds: Iterable[str]) -> Selection:
    """Check ``layers=`` and ``kinds=`` against the model.

    Raises:
        InputError: an unknown kind, a layer out of range, or nothing chosen.
    """
    kinds = tuple(kinds) if not isinstance(kinds, str) else (kinds,)
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise InputError(f"kinds must be a non-empty subset of {KINDS}, got {kinds!r}.")
    message = (
        f"layers must be a non-empty list of layers 0..{lm.num_layers - 1} of {lm.name}, "
        f"got {layers!r:.80}."
    )
    chosen = (
        range(lm.num_layers) if layers is None else distinct_indices(layers, lm.num_layers, message)
    )
    return Selection(tuple(k for k in KINDS if k in kinds), tuple(chosen))


def split_source(text: Source, shards: int) -> list[Source]:
    """``shards`` contiguous runs of the paragraphs of about equal length (in characters)."""
    lengths = np.cumsum([len(p) for p in text.paragraphs])
    bounds = np.searchsorted(lengths, lengths[-1] * np.arange(1, shards) / shards, side="left")
    cuts = [0, *(int(b) + 1 for b in bounds), len(text.paragraphs)]
    parts = [text.paragraphs[a:b] for a, b in itertools.pairwise(cuts)]
    if any(not part for part in parts):
        raise InputError(
            f"shards={shards} is more than this source has paragraphs to share out "
            f"({len(text.paragraphs)}); use fewer shards."
        )
    return [Source(paragraphs=part) for part in parts]


def plan_digest(text: Source, lm: LanguageModel, fields: dict) -> str:
    """What a build produces, as one digest: the source, the model and every option that
    changes the stored data. A resumed build must have the same."""
    digest = hashlib.sha256()
    for paragraph in text.paragraphs:
        digest.update(paragraph.encode("utf-8") + b"\x00")
    body = {"model": lm.fingerprint, **fields}
    digest.update(json.dumps(body, sort_keys=True, default=str).encode("utf-8"))
    return digest.hexdigest()


def train_quantizers(
    lm: LanguageModel,
    text: Source,
    spec: ix.IndexSpec,
    chosen: Selection,
    min_chars: int,
    stop: threading.Event | None = None,
) -> dict[tuple[str, int], faiss.Index]:
    """Trained, empty indexes per chosen (kind, layer), trained on the model's vectors of
    sentences spread over the whole source (split at sentence ends, without spaCy); the
    indexes train side by side, one thread (and one OpenMP thread) per core.

    Raises:
        CorpusError: ``stop`` was set (the build failed elsewhere) before the sample pass ended.
    """
    wanted = min(ix.TRAIN_MAX, max(TRAIN_VECTORS, 32 * spec.nlist))
    encodings = _sample(lm, text, wanted, min_chars)
    dims = {"embedding": lm.hidden_size, "context": lm.context_size}
    writer = _IndexWriter(spec, dims, lm.num_layers, lm.num_heads, chosen=chosen)
    writer.train_threads = os.cpu_count() or 1
    try:
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i]))
        lengths = [len(e) for e in encodings]
        # length-sorted batches, as the build's: far less padding than the sample's own order
        for batch in _batches(order, lengths, 32):
            if stop is not None and stop.is_set():
                raise CorpusError("The build stopped before its quantisers were trained.")
            embedding, contexts = lm.token_vectors([encodings[i] for i in batch])
            writer.add(embedding, contexts, np.zeros(sum(lengths[i] for i in batch), np.int64))
        writer.close()
    finally:
        writer.close(check=False)
    if not writer.indexes:
        writer._train()
    for index in writer.indexes.values():
        index.reset()  # keeps the training, drops the sample's vectors
    return writer.indexes


def _sample(lm: LanguageModel, text: Source, wanted: int, min_chars: int) -> list:
    """Encodings of sentences spread evenly over ``text``, about ``wanted`` tokens in all."""
    pieces = [
        s
        for p in text.paragraphs
        for s in _SENTENCE_END.split(p)
        if len(s) >= min_chars and not s.isspace()
    ]
    # every step-th sentence, so that the sample spans the whole source: ~4 characters a token,
    # and a quarter to spare (it stops at ``wanted`` tokens)
    tokens_there = sum(len(s) for s in pieces) // 4
    step = max(1, int(tokens_there / (1.25 * wanted)))
    encodings: list = []
    tokens = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # truncation: only a sample
        for sentence in pieces[::step]:
            try:
                encodings.append(lm.encode(sentence))
            except InputError:
                continue
            tokens += len(encodings[-1])
            if tokens >= wanted:
                break
    return encodings


@dataclass
class ShardJob:
    """What every shard builder needs (sent once to each Ray actor); the trained quantisers
    are files in ``partial`` (:func:`read_templates`)."""

    partial: str
    plan: str
    count: int
    spec: str
    options: BuildOptions
    chosen: Selection


def build_shard(
    job: ShardJob,
    number: int,
    text: Source,
    lm,
    nlp,
    progress: bool,
    templates: dict[tuple[str, int], faiss.Index],
) -> dict:
    """Build shard ``number`` into a hidden directory, its indexes filled from (copies of) the
    trained ``templates``, and rename it into place; return its manifest. A shard already there
    (a retried task that finished twice) is kept."""
    shards = Path(job.partial) / mf.SHARDS
    final = Path(job.partial) / mf.shard_name(number)
    tmp = shards / f".{number:04d}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    extra = {"shard": {"plan": job.plan, "number": number, "of": job.count}}
    options = BuildOptions(**{**asdict(job.options), "progress": progress})
    spec = ix.IndexSpec.parse(job.spec)
    try:
        manifest = build_directory(
            tmp, text, lm, nlp, spec, options, templates=templates, extra=extra,
            chosen=job.chosen, desc=f"Shard {number}",
        )  # fmt: skip
        try:
            tmp.rename(final)
        except OSError:
            if not (final / MANIFEST).is_file():
                raise
            manifest = mf.read(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def read_templates(root: Path, chosen: Selection) -> dict[tuple[str, int], faiss.Index] | None:
    """The trained quantisers saved in the build directory ``root``, or None when they are not
    (all) there."""
    if not (root / READY).is_file():
        return None
    out = {}
    for kind in chosen.kinds:
        for layer in chosen.layers:
            out[(kind, layer)] = faiss.read_index(str(root / mf.quantizer_name(kind, layer)))
    return out


def wait_for_templates(root: Path, chosen: Selection) -> dict[tuple[str, int], faiss.Index]:
    """:func:`read_templates`, once the driver has saved them.

    Raises:
        CorpusError: the driver's training failed (its message).
    """
    while (templates := read_templates(root, chosen)) is None:
        training_failed(root)
        time.sleep(0.2)
    return templates


def training_failed(root: Path) -> None:
    """Raise the driver's training error, if it wrote one into the build directory ``root``.

    Raises:
        CorpusError: the driver's training failed (its message).
    """
    if (root / FAILED).is_file():
        reason = (root / FAILED).read_text(encoding="utf-8", errors="replace")
        raise CorpusError(f"The driver could not train the quantisers: {reason}")


class Partial:
    """The directory a sharded build fills, ``.<out>.partial`` beside ``out_dir``, held by
    one build at a time (an advisory lock that dies with its process)."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.root = out.parent / f".{out.name}.partial"
        self._lock_fd: int | None = None

    def open(self, plan: dict, resume: bool) -> list[int]:
        """Take the directory (fresh unless resuming the same plan); return the numbers of the
        shards already finished.

        Raises:
            CorpusError: another build holds it, or ``resume`` with a different plan.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CorpusError(
                f"Another build of {str(self.out)!r} is running (it holds {self.root}); wait "
                "for it, or build elsewhere."
            ) from None
        old = self._read_plan()
        if resume and old is not None and old != plan:
            differ = sorted(k for k in plan if old.get(k) != plan[k])
            raise CorpusError(
                f"resume=True, but the unfinished build at {self.root} was of another plan "
                f"({', '.join(differ)} differ). Use the same source, model, shard count and "
                "options, or build without resume=True."
            )
        if not resume or old is None:
            self._clear()
            (self.root / mf.SHARDS).mkdir()
            (self.root / PLAN).write_text(json.dumps(plan, indent=2), encoding="utf-8")
        return self._finished(plan)

    def _read_plan(self) -> dict | None:
        try:
            return json.loads((self.root / PLAN).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _clear(self) -> None:
        for child in self.root.iterdir():
            if child.name == LOCK:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def _finished(self, plan: dict) -> list[int]:
        """Shards that are whole (each verified as a corpus opens) and of this plan; hidden
        leftovers of killed shard builds are removed."""
        shards = self.root / mf.SHARDS
        shards.mkdir(exist_ok=True)
        done = []
        for child in sorted(shards.iterdir()):
            if child.name.startswith("."):
                shutil.rmtree(child, ignore_errors=True)
                continue
            number = int(child.name) if child.name.isdigit() else -1
            if self._whole(child, plan, number):
                done.append(number)
            else:
                shutil.rmtree(child, ignore_errors=True)
        return done

    @staticmethod
    def _whole(shard: Path, plan: dict, number: int) -> bool:
        try:
            manifest = mf.read(shard)
            if manifest.get("shard", {}).get("plan") != plan["digest"]:
                return False
            if manifest["shard"].get("number") != number or number >= plan["shards"]:
                return False
            Corpus.open(shard, verify="full", progress=False).close()
            return True
        except CorpusError:
            return False

    def save_templates(self, templates: dict[tuple[str, int], faiss.Index], spec) -> None:
        """Write the trained quantisers (and rotations), then the mark that they are whole."""
        (self.root / "quantizer").mkdir(exist_ok=True)
        (self.root / "index").mkdir(exist_ok=True)
        for (kind, layer), index in templates.items():
            faiss.write_index(index, str(self.root / mf.quantizer_name(kind, layer)))
            if spec.rotate:
                path = self.root / mf.rotation_name(index.d)
                faiss.write_VectorTransform(ix.rotation(index.d), str(path))
        (self.root / READY).touch()

    def training_failed(self, error: BaseException) -> None:
        """Tell the shard builders waiting for the quantisers that none will come."""
        (self.root / FAILED).write_text(f"{type(error).__name__}: {error}", encoding="utf-8")

    def forget_templates(self) -> None:
        """Before training: no mark of an earlier attempt (ready or failed) stays."""
        for name in (READY, FAILED):
            (self.root / name).unlink(missing_ok=True)

    def finish(self, manifest: dict) -> None:
        """Write the top manifest (last) and move the whole build to ``out_dir``."""
        for child in (self.root / mf.SHARDS).iterdir():  # left by killed shard builders
            if child.name.startswith("."):
                shutil.rmtree(child, ignore_errors=True)
        (self.root / PLAN).unlink()
        self.forget_templates()
        (self.root / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        os.unlink(self.root / LOCK)
        move_into_place(self.root, self.out)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def build_sharded(
    source,
    lm: LanguageModel,
    out_dir,
    *,
    engine: str,
    address: str | None,
    shards: int | None,
    resume: bool,
    spacy_model,
    index: str,
    options: BuildOptions,
    chosen: Selection,
    actors: int | None = None,
) -> Corpus:
    """:func:`build_corpus` with shards (see the module docstring); raises as it does, and
    ``CorpusError`` for an unreachable Ray cluster or a resume of another plan."""
    out = Path(out_dir)
    check_out_dir(out)
    if engine == "ray":
        from .ray_build import preflight  # Ray only when asked for

        preflight(address)
    text = read_source(source)
    if not text.paragraphs:
        raise CorpusSourceError("The source holds no running text (only headings or nothing).")
    spec = parse_spec(index, text, lm, chosen.kinds)
    count = shards or max(1, math.ceil(text.chars / SHARD_CHARS))
    if engine == "ray" and shards is None:
        count = max(count, 2)  # the default pool has two actors or more
    parts = split_source(text, count)
    nlp = load_spacy(spacy_model)
    check_script(text.paragraphs, nlp)
    fields = {
        "shards": count,
        "index": str(spec),
        "spacy": spacy_info(nlp),
        "batch_size": options.batch_size,
        "min_chars": options.min_chars,
        "indexed": [list(chosen.kinds), list(chosen.layers)],
    }
    plan: dict[str, Any] = {"digest": plan_digest(text, lm, fields), **fields}
    if resume and _complete(out, plan["digest"]):
        return Corpus.open(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = Partial(out)
    try:
        done = partial.open(plan, resume)
        todo = [i for i in range(count) if i not in done]
        templates = read_templates(partial.root, chosen)
        job = ShardJob(str(partial.root), plan["digest"], count, str(spec), options, chosen)

        def train(stop: threading.Event | None = None) -> dict:
            partial.forget_templates()
            trained = train_quantizers(lm, text, spec, chosen, options.min_chars, stop)
            partial.save_templates(trained, spec)
            return trained

        if engine == "ray":
            trainer = train if templates is None and todo else None
            if trainer is not None and spec.rotate:
                make_rotations({lm.hidden_size, lm.context_size})  # here, not in its thread
            _build_on_ray(job, todo, parts, lm, spacy_model, address, actors, trainer, partial)
        else:
            ready = templates if templates is not None or not todo else train()
            show = options.progress
            for number in tqdm(todo, desc="Shards", disable=not show or len(todo) < 2):
                build_shard(job, number, parts[number], lm, nlp, show, ready or {})
        manifest = _top_manifest(lm, nlp, spec, plan, partial.root, text, chosen)
        partial.finish(manifest)
    finally:
        partial.close()
    return Corpus.open(out)


def _complete(out: Path, digest: str) -> bool:
    try:
        return mf.read(out).get("sharded", {}).get("plan") == digest
    except CorpusError:
        return False


def _build_on_ray(job, todo, parts, lm, spacy_model, address, actors, train, partial) -> None:
    """The shards on Ray. Quantisers still to train are trained in a thread of this process
    from the start, while Ray is imported and started and the actors load the model and spaCy
    (they wait for its files before they build): on a small source the Ray build's start-up
    is most of its time."""
    from .ray_build import run_on_ray  # Ray only when asked for

    trainer = _Trainer(train, partial) if train is not None else None
    try:
        run_on_ray(job, todo, parts, lm, spacy_model, address, actors)
    except BaseException as exc:
        if trainer is not None:
            trainer.stop_and_join()
            if trainer.error is not None and not isinstance(trainer.error, _Stopped):
                raise trainer.error from exc  # the cause: the actors only gave up waiting
        raise
    if trainer is not None:
        trainer.stop_and_join()
        if trainer.error is not None:
            raise trainer.error


class _Stopped(CorpusError):
    """The training was stopped because the build failed elsewhere."""


class _Trainer:
    """``train`` in a daemon thread; its error kept for the caller, and announced to the shard
    builders waiting for the quantisers."""

    def __init__(self, train: Callable, partial: Partial) -> None:
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._train, self._partial = train, partial
        self._thread = threading.Thread(target=self._run, daemon=True, name="exbert-train")
        self._thread.start()

    def _run(self) -> None:
        try:
            # half the cores at most: the others start Ray and load the actors meanwhile.
            # With torch's threads on all of them, the sample pass took three times the CPU
            # (OpenMP's threads wait for each other on cores that are busy elsewhere)
            with torch_threads(max(1, (os.cpu_count() or 1) // 2)):
                self._train(self.stop)
        except BaseException as exc:
            self.error = _Stopped(str(exc)) if self.stop.is_set() else exc
            self._partial.training_failed(exc)

    def stop_and_join(self) -> None:
        self.stop.set()
        self._thread.join()


def _top_manifest(lm, nlp, spec, plan, root: Path, text: Source, chosen: Selection) -> dict:
    shard_manifests = [mf.read(root / mf.shard_name(i)) for i in range(plan["shards"])]
    counts = {
        name: sum(m["counts"].get(name, 0) for m in shard_manifests)
        for name in ("sentences", "tokens", "dropped", "truncated")
    }
    counts["cut"] = text.cut
    sharded = {
        "plan": plan["digest"],
        "shards": [
            {
                "checksum": m["checksum"],
                "sentences": m["counts"]["sentences"],
                "tokens": m["counts"]["tokens"],
            }
            for m in shard_manifests
        ],
    }
    extra = {"sharded": sharded, **chosen.manifest_field(lm.num_layers)}
    manifest = _manifest(lm, nlp, spec, counts, uuid.uuid4().hex, root, extra)
    manifest["build_seconds"] = round(sum(m.get("build_seconds", 0) for m in shard_manifests), 2)
    manifest["checksum"] = mf.checksum(manifest)
    return manifest
