"""Crafting damaged corpora for the verification tests: copies, byte flips, field edits, and a
manifest resealed to match its files (what a careless tool, or an attacker, would produce)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

from exbert_widget.corpus import manifest as mf
from exbert_widget.corpus.build import _record


def copy(corpus_root: Path, target: Path) -> Path:
    shutil.copytree(corpus_root, target)
    return target


def manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text(encoding="utf-8"))


def write_manifest(root: Path, data) -> None:
    (root / "manifest.json").write_text(json.dumps(data, indent=2), encoding="utf-8")


def reseal(root: Path) -> None:
    """Recompute the manifest's file records and checksum from the files as they are now."""
    m = manifest(root)
    m["files"] = {name: _record(root / name) for name in mf.data_files(m)}
    m["checksum"] = mf.checksum(m)
    write_manifest(root, m)


def patch(path: Path, offset: int, data: bytes) -> None:
    """Overwrite bytes of a file in place."""
    raw = bytearray(path.read_bytes())
    raw[offset : offset + len(data)] = data
    path.write_bytes(bytes(raw))


def sq_codes_size_offset(path: Path, ntotal: int, code_size: int) -> int:
    """Where an IndexScalarQuantizer file keeps the size of its codes vector (the last field
    before the codes, which end the file)."""
    return path.stat().st_size - ntotal * code_size - 8


def set_u64(path: Path, offset: int, value: int) -> None:
    patch(path, offset, struct.pack("<Q", value))


def limits(memory: int, seconds: int):
    """A preexec_fn capping a child's address space and CPU time."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))

    return apply


PROBE = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np
    import exbert_widget as ew
    warnings.simplefilter("ignore")
    out = {}
    for root in sys.argv[1:]:
        try:
            with ew.Corpus.open(root) as corpus:
                m = corpus.manifest
                for by, width in (("embedding", m["hidden_size"]), ("context", m["context_size"])):
                    for layer in range(m["layers"]):
                        corpus.search(np.ones(width, np.float32), layer, by=by, k=5)
            out[root] = "searched"
        except ew.CorpusError as exc:
            out[root] = "CorpusError: " + str(exc)
    print(json.dumps(out))
    """
)


def probe(roots: list[Path], memory: int = 3 << 30, seconds: int = 120) -> dict[str, str]:
    """Open and search each corpus in a child process capped in memory and CPU time; its
    outcome per corpus ("searched" or "CorpusError: ..."). Fails on any other exception, a
    signal, or the limits."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, roots)],
        capture_output=True,
        text=True,
        preexec_fn=limits(memory, seconds),
        env=env,
        timeout=seconds * 3,
    )
    assert proc.returncode == 0, f"child ended with {proc.returncode}: {proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])
