"""The corpus manifest: what a build wrote, validated as untrusted input before anything else.

A manifest is read from a directory that may come from anyone, so every field is checked for
type and range before it is used (``layers = 10**9`` must not make :meth:`Corpus.open` loop for
minutes), the format version must be an exact supported integer, and the set of files it
describes is derived from its own fields, never taken from it: a corpus never names the files
to read. This module needs only the standard library, so that ``exbert corpus info`` can use it
without FAISS or HDF5.

Format history: 1 - index position = token row (no longer read: its quantisers were trained on
several threads, see ``notes/corpus-index.md``); 2 - ``index_rows`` maps index positions to token
rows; 3 - per-file sizes and SHA-256 checksums, a build id, a checksum of the manifest itself,
and the character offsets of every token and of its whole word in the token table.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from ..errors import CorpusError

FORMAT = "exbert-widget-corpus"
FORMAT_VERSION = 3
#: Versions this release opens: 3 fully verified, 2 with structural checks only (a warning).
READABLE_VERSIONS = (2, 3)
MANIFEST = "manifest.json"
SHARDS = "shards"
MAX_SHARDS = 10_000
TOKENS = "tokens.h5"
KINDS = ("embedding", "context")
MODEL_KINDS = ("bidirectional", "autoregressive", "seq2seq")
#: A manifest is a few kB; anything far larger is not one (and is not read whole).
MANIFEST_MAX_BYTES = 4 << 20

# Generous bounds, far past any real model, that keep every loop over them short.
MAX_LAYERS = 1024
MAX_HEADS = 1024
MAX_WIDTH = 1 << 16
MAX_COUNT = 1 << 40
MAX_NPROBE = 1 << 20
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_BUILD_ID = re.compile(r"^[0-9a-f]{32}$")
_SPEC = re.compile(
    r"^(RR,)?(?:IVF([1-9][0-9]{0,6}),(?:PQ([1-9][0-9]{0,3})?x4fs,)?)?(SQ8|SQ6|SQ4|SQfp16|Flat)$"
)


def index_name(kind: str, layer: int) -> str:
    """The path of one index file, relative to the corpus directory."""
    return f"index/{kind}_{layer}.faiss"


def rotation_name(dim: int) -> str:
    """The path of the shared rotation of ``dim`` dimensions, relative to the corpus directory."""
    return f"index/rotation_{dim}.faiss"


def shard_name(number: int) -> str:
    """The directory of shard ``number`` of a sharded corpus, relative to its top directory."""
    return f"{SHARDS}/{number:04d}"


def quantizer_name(kind: str, layer: int) -> str:
    """The path of a sharded corpus's shared trained (empty) index of ``kind`` at ``layer``."""
    return f"quantizer/{kind}_{layer}.faiss"


def indexed(manifest: dict[str, Any]) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The kinds and layers a (validated) manifest's corpus has indexes for: all of them unless
    the build chose some (``layers=``, ``kinds=``)."""
    chosen = manifest.get("indexed")
    if chosen is None:
        return KINDS, tuple(range(manifest["layers"]))
    return tuple(chosen["kinds"]), tuple(chosen["layers"])


def data_files(manifest: dict[str, Any]) -> list[str]:
    """Every file a (validated) manifest's corpus consists of, besides the manifest: the token
    table, one index per indexed kind and layer, and the rotations when the index spec has one.
    A sharded corpus's top directory holds the shared trained quantisers and the rotations;
    its shards are corpora of their own."""
    kinds, layers = indexed(manifest)
    if "sharded" in manifest:
        names = [quantizer_name(k, layer) for k in kinds for layer in layers]
    else:
        names = [TOKENS] + [index_name(k, layer) for k in kinds for layer in layers]
    if manifest["index"].startswith("RR,"):
        dims = {manifest["hidden_size" if k == "embedding" else "context_size"] for k in kinds}
        names += [rotation_name(d) for d in sorted(dims)]
    return names


def checksum(manifest: dict[str, Any]) -> str:
    """SHA-256 of the manifest's canonical JSON, without its own ``checksum`` field."""
    body = {key: value for key, value in manifest.items() if key != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def read(root: Path) -> dict[str, Any]:
    """Read and validate ``root/manifest.json``.

    Raises:
        CorpusError: no manifest (not a corpus, or an unfinished build), one that is not a
            regular file, too large, not JSON, or fails :func:`validate`.
    """
    path = root / MANIFEST
    try:
        # O_NONBLOCK: a FIFO planted as manifest.json must not hang open() (refused below)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise CorpusError(
            f"{str(root)!r} holds no {MANIFEST}: it is not a corpus, or its build did not "
            "finish. Build it again."
        ) from None
    except OSError as exc:
        raise CorpusError(f"{path}: cannot be read ({exc.strerror}).") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise CorpusError(f"{path} is not a regular file; this is not a corpus.")
    with os.fdopen(fd, "rb") as f:
        if info.st_size > MANIFEST_MAX_BYTES:
            raise CorpusError(
                f"{path} is corrupt: {info.st_size} bytes, where a manifest is a few kB."
            )
        raw = f.read(MANIFEST_MAX_BYTES + 1)
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CorpusError(f"{path} is corrupt ({exc}); build the corpus again.") from exc
    return validate(manifest, path)


def validate(manifest: Any, path: Path | str = MANIFEST) -> dict[str, Any]:
    """Check a decoded manifest field by field; return it unchanged.

    Raises:
        CorpusError: naming ``path``, the field and what is wrong with it.
    """
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorpusError(f"{path} is not an exbert-widget corpus manifest.")
    version = manifest.get("format_version")
    if type(version) is not int or version < 1:
        raise CorpusError(
            f"{path}: format_version must be a positive integer, got {version!r}: the manifest "
            "is corrupt; build the corpus again."
        )
    if version > FORMAT_VERSION:
        raise CorpusError(
            f"{path}: corpus format {version} is newer than this exbert-widget reads "
            f"({FORMAT_VERSION}); upgrade exbert-widget."
        )
    if version not in READABLE_VERSIONS:
        raise CorpusError(
            f"{path}: corpus format {version} is no longer read (its quantisers were trained "
            "wrongly); rebuild the corpus with this exbert-widget."
        )
    check = _Checker(manifest, path)
    for name in ("model", "fingerprint"):
        check.field(name, _is_str, "a string")
    check.field("kind", lambda v: v in MODEL_KINDS, f"one of {', '.join(MODEL_KINDS)}")
    check.field("layers", _int_in(1, MAX_LAYERS), f"an integer from 1 to {MAX_LAYERS}")
    check.field("heads", _int_in(1, MAX_HEADS), f"an integer from 1 to {MAX_HEADS}")
    for name in ("hidden_size", "context_size"):
        check.field(name, _int_in(1, MAX_WIDTH), f"an integer from 1 to {MAX_WIDTH}")
    if manifest["context_size"] % manifest["heads"]:
        check.fail("context_size", f"is not a multiple of heads ({manifest['heads']})")
    check.field("index", lambda v: _is_str(v) and _SPEC.match(v), "an index spec such as 'RR,SQ6'")
    check.field("nprobe", _int_in(1, MAX_NPROBE), f"an integer from 1 to {MAX_NPROBE}")
    check.field("spacy", _is_dict_of(_is_str), "an object of strings")
    check.field("vectors", _is_dict_of(_is_str), "an object of strings")
    check.field("build_seconds", _is_number, "a non-negative number", required=False)
    _check_counts(check, manifest.get("counts"))
    _check_indexed(check, manifest)
    if "sharded" in manifest:
        _check_sharded(check, manifest)
    if version >= 3:
        _check_version_3(check, manifest)
    return manifest


def _check_counts(check: _Checker, counts: Any) -> None:
    if not isinstance(counts, dict):
        check.fail("counts", f"must be an object, got {counts!r}")
    counts_check = _Checker(counts, check.path, prefix="counts.")
    counts_check.field("sentences", _int_in(1, MAX_COUNT), "a positive integer")
    counts_check.field("tokens", _int_in(1, MAX_COUNT), "a positive integer")
    for name in ("dropped", "truncated", "cut"):
        counts_check.field(name, _int_in(0, MAX_COUNT), "a non-negative integer", required=False)
    if counts["tokens"] < counts["sentences"]:
        counts_check.fail("tokens", f"({counts['tokens']}) is less than counts.sentences")


def _check_indexed(check: _Checker, manifest: dict[str, Any]) -> None:
    chosen = manifest.get("indexed")
    if chosen is None:
        return
    layers = chosen.get("layers") if isinstance(chosen, dict) else None
    kinds = chosen.get("kinds") if isinstance(chosen, dict) else None
    if not (
        isinstance(layers, list)
        and isinstance(kinds, list)
        and set(chosen) == {"layers", "kinds"}
        and layers
        and kinds
        and all(_int_in(0, manifest["layers"] - 1)(v) for v in layers)
        and layers == sorted(set(layers))
        and kinds == [k for k in KINDS if k in kinds]
    ):
        check.fail("indexed", f"must be {{layers, kinds}} within the model, got {chosen!r:.200}")


def _check_sharded(check: _Checker, manifest: dict[str, Any]) -> None:
    if manifest["format_version"] < 3:
        check.fail("sharded", "needs format 3 or newer")
    sharded = manifest["sharded"]
    shards = sharded.get("shards") if isinstance(sharded, dict) else None
    if not (
        isinstance(shards, list)
        and 1 <= len(shards) <= MAX_SHARDS
        and isinstance(sharded.get("plan"), str)
        and _SHA256.match(sharded["plan"])
    ):
        check.fail("sharded", f"must be {{plan, shards: [...]}}, got {sharded!r:.200}")
    for i, shard in enumerate(shards):
        if not (
            isinstance(shard, dict)
            and set(shard) == {"checksum", "sentences", "tokens"}
            and _is_str(shard["checksum"])
            and _SHA256.match(shard["checksum"])
            and _int_in(1, MAX_COUNT)(shard["sentences"])
            and _int_in(1, MAX_COUNT)(shard["tokens"])
        ):
            check.fail(f"sharded.shards[{i}]", "must be {checksum, sentences, tokens}")
    for name in ("sentences", "tokens"):
        if sum(shard[name] for shard in shards) != manifest["counts"][name]:
            check.fail(f"counts.{name}", "is not the sum of the shards'")


def _check_version_3(check: _Checker, manifest: dict[str, Any]) -> None:
    check.field("build_id", lambda v: _is_str(v) and _BUILD_ID.match(v), "32 hex digits")
    check.field("checksum", lambda v: _is_str(v) and _SHA256.match(v), "64 hex digits")
    files = manifest.get("files")
    expected = data_files(manifest)
    if not isinstance(files, dict) or sorted(files) != sorted(expected):
        listed = sorted(files) if isinstance(files, dict) else files
        check.fail("files", f"must list exactly {expected[:3]}...; got {listed!r:.200}")
    for name, record in files.items():
        if not (
            isinstance(record, dict)
            and set(record) == {"size", "sha256"}
            and _int_in(0, MAX_COUNT << 8)(record["size"])
            and _is_str(record["sha256"])
            and _SHA256.match(record["sha256"])
        ):
            check.fail(f"files[{name!r}]", f"must be {{size, sha256}}, got {record!r:.200}")
    if checksum(manifest) != manifest["checksum"]:
        raise CorpusError(
            f"{check.path} was changed after the build (its checksum does not match its "
            "content); build the corpus again."
        )


class _Checker:
    """Checks fields of one JSON object, naming the manifest and the field when one is wrong."""

    def __init__(self, obj: dict[str, Any], path: Path | str, prefix: str = "") -> None:
        self.obj, self.path, self.prefix = obj, path, prefix

    def field(
        self, name: str, ok: Callable[[Any], Any], expected: str, required: bool = True
    ) -> None:
        if name not in self.obj:
            if required:
                self.fail(name, "is missing")
            return
        if not ok(self.obj[name]):
            self.fail(name, f"must be {expected}, got {self.obj[name]!r:.80}")

    def fail(self, name: str, what: str) -> NoReturn:
        raise CorpusError(
            f"{self.path}: {self.prefix}{name} {what}: the manifest is corrupt; build the corpus "
            "again."
        )


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _is_number(value: Any) -> bool:
    return type(value) in (int, float) and 0 <= value < float("inf")


def _int_in(low: int, high: int) -> Callable[[Any], bool]:
    return lambda value: type(value) is int and low <= value <= high


def _is_dict_of(ok: Callable[[Any], Any]) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, dict) and all(ok(v) for v in value.values())
