"""The fuzz test's child process: flips random bytes in each file of a corpus, then opens and
searches it. Run as ``python -m tests.corpus_fuzz_child SEED TRIALS ROOT=EXPECT ...`` with
EXPECT ``identical`` (a corpus with checksums: CorpusError or the very same hits) or ``any`` (a
corpus without checksums: CorpusError or some hits). Prints each trial to stderr before running
it (so that a signal names it) and a JSON summary per corpus on stdout; any other exception is a
failure."""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import numpy as np

import exbert_widget as ew


def hits_of(root: Path) -> list:
    """Open the corpus (fast verification) and search every layer and kind, plus one
    head-restricted search."""
    with ew.Corpus.open(root) as corpus:
        m = corpus.manifest
        rng = np.random.default_rng(3)
        out = []
        for by, width in (("embedding", m["hidden_size"]), ("context", m["context_size"])):
            for layer in range(m["layers"]):
                hits = corpus.search(rng.normal(size=width), layer, by=by, k=5)
                out.append(
                    [hits.sentence_id.tolist(), hits.token_index.tolist(), hits.score.tolist()]
                )
        hits = corpus.search(rng.normal(size=m["context_size"]), 0, by="context", k=5, heads=[1])
        out.append([hits.sentence_id.tolist(), hits.token_index.tolist(), hits.score.tolist()])
        out.append(corpus.sentences[: len(corpus.sentences)])
        return out


def flip(data: bytes, rng: np.random.Generator) -> tuple[bytes, list[int]]:
    """1 to 3 bytes changed; half the time all within the first 512 bytes, where a file's
    structure is (uniform flips mostly land in vector codes)."""
    raw = bytearray(data)
    span = min(len(raw), 512) if rng.random() < 0.5 else len(raw)
    positions = sorted(int(p) for p in rng.integers(0, span, size=int(rng.integers(1, 4))))
    for p in positions:
        raw[p] ^= int(rng.integers(1, 256))
    return bytes(raw), positions


def fuzz(root: str, rng: np.random.Generator, trials: int, expect: str) -> dict:
    scratch = Path(tempfile.mkdtemp()) / "c"
    shutil.copytree(root, scratch)
    reference = hits_of(scratch)
    files = sorted(p.relative_to(scratch).as_posix() for p in scratch.rglob("*") if p.is_file())
    outcomes = {"refused": 0, "identical": 0, "different": 0}
    failures = []
    for name in files:
        path = scratch / name
        original = path.read_bytes()
        for trial in range(trials):
            damaged, positions = flip(original, rng)
            path.write_bytes(damaged)
            print(f"{name} trial {trial} bytes {positions}", file=sys.stderr, flush=True)
            try:
                got = hits_of(scratch)
            except ew.CorpusError:
                outcomes["refused"] += 1
            except Exception:
                failures.append(f"{name} {positions}: {traceback.format_exc(limit=4)}")
            else:
                same = got == reference
                outcomes["identical" if same else "different"] += 1
                if not same and expect == "identical":
                    failures.append(f"{name} {positions}: different hits, no error")
        path.write_bytes(original)
    return {"outcomes": outcomes, "failures": failures, "files": files}


def main(seed: int, trials: int, jobs: list[str]) -> int:
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(seed)
    reports = {}
    for job in jobs:
        root, expect = job.rsplit("=", 1)
        reports[root] = fuzz(root, rng, trials, expect)
    print(json.dumps(reports))
    return 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]))
