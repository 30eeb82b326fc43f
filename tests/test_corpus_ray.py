"""Sharded builds on a local Ray (issue 14): equal to the same build in this process, a killed
Ray worker retried, a killed driver resumed, and the refusals (Ray missing, no cluster at the
address). One local Ray of two CPUs for the module; a few minutes in all."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import exbert_widget as ew
from exbert_widget.corpus import manifest as mf
from exbert_widget.errors import CorpusError
from tests.test_corpus_shards import SHARDS, SOURCE, _queries

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is an optional extra ([ray])"
)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray of two CPUs for the module.

    Why a start can fail, and why a second attempt is the remedy: Ray gives a new node a fixed
    30 s to register (``raylet_start_wait_time_s`` in ``ray/_private/node.py``, not
    configurable), and the raylet registers only once its two Python agents run. Those, the
    dashboard head and the autoscaler monitor start one after another or side by side, each
    paying ``import ray`` (~3.5 s of CPU, ~2.6 s of it jsonschema's ``rfc3987_syntax``
    compiling its grammars, installed beside Jupyter). With both cores busy in other jobs
    (load 5-10 on 2 cores) ``ray.init`` took 25-40 s here, and twice at load 8-10 the node
    missed its 30 s ("The current node timed out during startup"). It is not ports or
    sockets: every start picks free ports and a session directory of its own."""
    import ray

    for attempt in range(3):
        try:
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            break
        except Exception as exc:  # Ray raises a bare Exception for the timed-out node
            ray.shutdown()
            if attempt == 2 or "timed out during startup" not in str(exc):
                raise
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def here(minilm, tmp_path_factory) -> ew.Corpus:
    out = tmp_path_factory.mktemp("here") / "c"
    return ew.build_corpus(SOURCE, minilm, out, shards=SHARDS, progress=False)


@pytest.fixture(scope="module")
def on_ray(ray_local, minilm, tmp_path_factory) -> ew.Corpus:
    out = tmp_path_factory.mktemp("ray") / "c"
    return ew.build_corpus(SOURCE, minilm, out, engine="ray", shards=SHARDS, progress=False)


def _same_hits(minilm, a: ew.Corpus, b: ew.Corpus, atol: float = 2e-3) -> None:
    """The same hits: builds in different processes batch sentences as spaCy's pace allows, so
    vectors differ in their last bits and a rare code flips; never more."""
    embedding, contexts = _queries(minilm)
    for layer in (0, 3, 5):
        for by, source in (("embedding", embedding), ("context", contexts)):
            x = a.search(source[layer, 2], layer, by=by, k=50)
            y = b.search(source[layer, 2], layer, by=by, k=50)
            if atol:
                overlap = len(set(zip(x.sentence_id, x.token_index, strict=True)) & set(
                    zip(y.sentence_id, y.token_index, strict=True)
                ))  # fmt: skip
                assert overlap >= 48
                np.testing.assert_allclose(x.score[:40], y.score[:40], atol=atol)
            else:
                pd.testing.assert_frame_equal(x, y)


def _same_corpus(a: ew.Corpus, b: ew.Corpus) -> None:
    assert a.sentences[:] == b.sentences[:]
    pd.testing.assert_frame_equal(a.tokens, b.tokens)


def test_ray_build_equals_the_build_in_this_process(minilm, here, on_ray):
    _same_corpus(on_ray, here)
    _same_hits(minilm, on_ray, here)
    assert on_ray.manifest["sharded"]["plan"] == here.manifest["sharded"]["plan"]


def test_resume_of_a_finished_build_does_nothing(minilm, on_ray):
    before = (on_ray.root / mf.MANIFEST).stat().st_mtime_ns
    again = ew.build_corpus(
        SOURCE, minilm, on_ray.root, engine="ray", shards=SHARDS, resume=True, progress=False
    )
    assert (on_ray.root / mf.MANIFEST).stat().st_mtime_ns == before
    assert again.manifest["build_id"] == on_ray.manifest["build_id"]


def _wait_for(predicate, seconds: float = 300.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out waiting for the build")


def test_a_killed_worker_is_retried(ray_local, minilm, on_ray, tmp_path):
    out = tmp_path / "c"
    shards = tmp_path / ".c.partial" / "shards"
    result: dict = {}

    def build() -> None:
        try:
            result["corpus"] = ew.build_corpus(
                SOURCE, minilm, out, engine="ray", shards=SHARDS, progress=False
            )
        except BaseException as exc:  # reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=build)
    thread.start()
    # a shard being built sits in .NNNN.tmp-<pid of the Ray worker>-...: kill that worker
    busy = _wait_for(lambda: shards.is_dir() and [p for p in shards.iterdir() if ".tmp-" in p.name])
    pid = int(busy[0].name.split(".tmp-")[1].split("-")[0])
    assert pid != os.getpid()
    os.kill(pid, signal.SIGKILL)
    thread.join(timeout=600)
    assert "error" not in result, result.get("error")
    corpus = result["corpus"]
    _same_corpus(corpus, on_ray)
    _same_hits(minilm, corpus, on_ray)
    assert not shards.exists()  # the build directory moved into place whole


def test_a_killed_driver_resumes(ray_local, minilm, on_ray, tmp_path):
    out = tmp_path / "c"
    shards = tmp_path / ".c.partial" / "shards"
    address = ray_local.get_runtime_context().gcs_address
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.corpus_ray_child", str(out), address, str(SHARDS)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        first = _wait_for(lambda: shards.is_dir() and (shards / "0000" / mf.MANIFEST).is_file())
        assert first
        done_before = sorted(p.name for p in shards.iterdir() if p.name.isdigit())
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert len(done_before) < SHARDS, "the build finished before it could be killed"
    with pytest.raises(CorpusError):
        ew.Corpus.open(out)  # nothing at out_dir until the last shard and the top manifest
    kept = {name: (shards / name).stat().st_ino for name in done_before}
    started = time.perf_counter()
    corpus = ew.build_corpus(
        SOURCE, minilm, out, engine="ray", shards=SHARDS, resume=True, progress=False
    )
    resume_seconds = time.perf_counter() - started
    for name, inode in kept.items():  # finished shards kept in place, not copied
        assert (out / mf.SHARDS / name).stat().st_ino == inode
    _same_corpus(corpus, on_ray)
    _same_hits(minilm, corpus, on_ray)
    print(f"resumed {SHARDS - len(done_before)} of {SHARDS} shards in {resume_seconds:.1f} s")


def test_a_failed_training_stops_the_waiting_actors(ray_local, minilm, monkeypatch, tmp_path):
    # the actors start while the driver trains the quantisers, and wait for them: when the
    # training fails they give up, and the build raises the training's own error
    from exbert_widget.corpus import sharded_build

    def fail(*args, **kwargs):
        raise CorpusError("the sample could not be read")

    monkeypatch.setattr(sharded_build, "train_quantizers", fail)
    out = tmp_path / "c"
    with pytest.raises(CorpusError, match="the sample could not be read"):
        ew.build_corpus(SOURCE, minilm, out, engine="ray", shards=SHARDS, progress=False)
    assert not out.exists()
    assert not list((tmp_path / ".c.partial" / "shards").iterdir())


class _FailingStart:
    """``ray.init`` as it fails on a busy machine (Ray's bare Exception for a node that missed
    its 30 s) the first ``fail`` times, then passing through to the module's running Ray; ``ray``
    appears not yet started, and ``ray.shutdown`` leaves the module's Ray running."""

    TIMED_OUT = "The current node timed out during startup. This could happen because ..."

    def __init__(self, ray, monkeypatch, fail: int, message: str = TIMED_OUT) -> None:
        self.calls, self._fail, self._message = 0, fail, message
        self._started = False
        monkeypatch.setattr(ray, "init", self._init)
        monkeypatch.setattr(ray, "is_initialized", lambda: self._started)
        monkeypatch.setattr(ray, "shutdown", lambda: None)

    def _init(self, *args, **kwargs) -> None:
        self.calls += 1
        if self.calls <= self._fail:
            raise Exception(self._message)
        self._started = True


def test_a_local_start_that_timed_out_is_started_again(ray_local, monkeypatch):
    from exbert_widget.corpus import ray_build

    start = _FailingStart(ray_local, monkeypatch, fail=ray_build.LOCAL_START_RETRIES)
    assert ray_build.connect(None) is True  # started here: the build ends it
    assert start.calls == 1 + ray_build.LOCAL_START_RETRIES


def test_only_a_timed_out_local_start_is_retried(ray_local, monkeypatch):
    from exbert_widget.corpus import ray_build

    start = _FailingStart(ray_local, monkeypatch, fail=1, message="no such session")
    with pytest.raises(CorpusError, match=r"Ray could not start a local node \(no such"):
        ray_build.connect(None)
    assert start.calls == 1
    start = _FailingStart(ray_local, monkeypatch, fail=1)
    with pytest.raises(CorpusError, match=r"No Ray cluster reachable at 'auto'"):
        ray_build.connect("auto")  # a cluster that is not there: nothing to start again
    assert start.calls == 1


def test_a_start_that_keeps_failing_stops_the_training(ray_local, minilm, monkeypatch, tmp_path):
    # the quantisers train while Ray starts: a start that fails every time is the error
    # (not the training's), the training is stopped, and nothing is left at out_dir
    from exbert_widget.corpus import ray_build, sharded_build

    trained = threading.Event()
    train = sharded_build.train_quantizers

    def training(*args, **kwargs):
        try:
            return train(*args, **kwargs)
        finally:
            trained.set()

    monkeypatch.setattr(sharded_build, "train_quantizers", training)
    attempts = 1 + ray_build.LOCAL_START_RETRIES
    start = _FailingStart(ray_local, monkeypatch, fail=attempts)
    out = tmp_path / "c"
    with pytest.raises(CorpusError, match="Ray could not start a local node"):
        ew.build_corpus(SOURCE, minilm, out, engine="ray", shards=SHARDS, progress=False)
    assert start.calls == attempts
    assert trained.is_set()  # it ran beside the start, and was over when the build returned
    assert not out.exists()
    assert not list((tmp_path / ".c.partial" / "shards").iterdir())


def test_ray_missing_is_a_clear_error(minilm, monkeypatch, tmp_path):
    from exbert_widget.corpus import ray_build

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(CorpusError, match=r"pip install 'exbert-widget\[ray\]'"):
        ray_build.connect(None)


def test_an_unreachable_cluster_is_a_clear_error(tiny_dirs, tmp_path):
    # the command line, in a process of its own (this one already runs a Ray)
    book = tmp_path / "book.txt"
    book.write_text("\n\n".join(SOURCE), encoding="utf-8")
    out = tmp_path / "c"
    command = ["corpus", "build", str(book), "--model", tiny_dirs["bert"], "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-m", "exbert_widget.cli", *command, "--engine", "ray", "--address",
         "127.0.0.1:9"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 2, run.stderr
    assert "No Ray cluster reachable at '127.0.0.1:9'" in run.stderr
    assert not out.exists() and not (tmp_path / ".c.partial").exists()
