"""Fuzzing a corpus: random byte flips in each of its files give a CorpusError or the very same
hits (with checksums), never another exception, a signal, or different hits. Runs in one child
process capped in memory and CPU time, with a fixed seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import exbert_widget as ew
from tests import corpus_craft as craft
from tests.test_corpus_index import TEXT
from tests.test_corpus_verify import downgrade_to_format_2

TRIALS = 16  # per file and corpus


def test_byte_flips_are_refused_or_harmless(tiny_dirs, tmp_path):
    """With checksums (format 3): a CorpusError or identical hits. Without (a format-2 copy of
    the same corpus): only the structural checks stand between a flipped byte and FAISS or
    HDF5; hits may differ, but nothing else may happen."""
    lm = ew.load_model(tiny_dirs["bert"])
    checked = ew.build_corpus(TEXT[:6], lm, tmp_path / "c", progress=False).root
    unchecked = craft.copy(checked, tmp_path / "old")
    downgrade_to_format_2(unchecked)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    jobs = [f"{checked}=identical", f"{unchecked}=any"]
    proc = subprocess.run(
        [sys.executable, "-m", "tests.corpus_fuzz_child", "13", str(TRIALS), *jobs],
        capture_output=True,
        text=True,
        preexec_fn=craft.limits(3 << 30, 300),
        env=env,
        timeout=900,
    )
    last = (proc.stderr.strip().splitlines() or [""])[-1]
    assert proc.returncode == 0, f"child ended with {proc.returncode} during {last}"
    reports = json.loads(proc.stdout.strip().splitlines()[-1])

    report = reports[str(checked)]
    assert report["failures"] == []
    assert set(report["files"]) >= {"manifest.json", "tokens.h5", "index/rotation_32.faiss"}
    outcomes = report["outcomes"]
    assert outcomes["different"] == 0
    assert outcomes["refused"] + outcomes["identical"] == TRIALS * len(report["files"])

    report = reports[str(unchecked)]
    assert report["failures"] == []
    assert report["outcomes"]["refused"] > 0
