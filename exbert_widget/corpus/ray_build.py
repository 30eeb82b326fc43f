"""Shards built by Ray actors: Ray Data ``map_batches`` over the shards with an actor pool.

Each actor loads spaCy and the model once (by the driver's model name or path, on its GPU when
it has one; its weights must be the driver's: the fingerprint is checked) while the driver
trains the quantisers, waits for their files in the build directory, then builds whole shards,
one per call and one at a time, each written atomically into the build directory
(:func:`.sharded_build.build_shard`): on a real cluster that directory must be on a filesystem
every node sees. Ray restarts an actor that dies and runs its shard again (Ray Data's actor
pools retry by default); the driver shows one progress bar over the shards' characters.

Ray is optional (``pip install exbert-widget[ray]``): it is imported only here.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ..errors import CorpusError
from .text import Source

__all__ = ["preflight", "run_on_ray"]


MISSING = "engine='ray' needs Ray Data: pip install 'exbert-widget[ray]' (or 'ray[data]')."
# a local node that missed Ray's start-up deadline is started again this many times
LOCAL_START_RETRIES = 2


def _ray():
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise CorpusError(MISSING) from exc
    return ray


def connect(address: str | None) -> bool:
    """Join the Ray ``address`` (None: the Ray this process already runs, else a new local
    one); return whether this call started it (and so should end it).

    Raises:
        CorpusError: Ray missing, or no Ray cluster reachable at ``address``.
    """
    ray = _ray()
    if ray.is_initialized():
        return False
    if address not in (None, "auto", "local"):
        _check_reachable(address)
    failed = 0
    while True:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ray.init(address=address, include_dashboard=False, log_to_driver=False)
            return address is None
        except Exception as exc:  # Ray raises bare Exceptions too (a local node that timed out)
            ray.shutdown()  # what the failed start left running
            failed += 1
            if address is None and failed <= LOCAL_START_RETRIES and _timed_out(exc):
                continue
            raise _start_error(address, exc) from exc


def _timed_out(exc: Exception) -> bool:
    """Whether a local start failed only because its node missed Ray's fixed 30 s (a busy
    machine): then a second start usually succeeds."""
    return "timed out during startup" in str(exc)


def _start_error(address: str | None, exc: Exception) -> CorpusError:
    reason = " ".join(str(exc).split())[:200]
    if address is None:
        return CorpusError(
            f"Ray could not start a local node ({reason}). Ray gives a node 30 s to start; "
            "a machine whose cores are all busy can need more: try again when it is "
            "quieter, or start Ray yourself (ray start --head) and pass address='auto'."
        )
    return CorpusError(
        f"No Ray cluster reachable at {address!r} ({reason}). "
        "Start one (ray start --head), pass its address, or address=None for a local one."
    )


def preflight(address: str | None) -> None:
    """Before any work: Ray installed, and something listening at an explicit ``address``.
    Ray is not imported here: its import (seconds of CPU) runs beside the quantisers'
    training, in :func:`connect`.

    Raises:
        CorpusError: Ray missing, or nothing listening at ``address``.
    """
    if importlib.util.find_spec("ray") is None:
        raise CorpusError(MISSING)
    ray = sys.modules.get("ray")
    if (ray is None or not ray.is_initialized()) and address not in (None, "auto", "local"):
        _check_reachable(address)


def _check_reachable(address: str, seconds: float = 10.0) -> None:
    """Refuse at once an address where nothing listens: Ray itself retries for minutes."""
    where = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise CorpusError(f"A Ray address is host:port (or 'auto'), got {address!r}.")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
    except OSError as exc:
        raise CorpusError(
            f"No Ray cluster reachable at {address!r} ({exc.strerror or exc}). Start one (ray "
            "start --head), pass its address, or address=None for a local one."
        ) from exc


class ShardBuilder:
    """A Ray Data actor: spaCy and the model loaded once, then one whole shard per call."""

    def __init__(self, job, model: str, dtype: str, spacy_model, fingerprint: str) -> None:
        import ray

        from ..models import load_model
        from .annotate import load_spacy
        from .sharded_build import training_failed

        training_failed(Path(job.partial))  # raises at once: no model to load for nothing
        device = "cuda" if ray.get_gpu_ids() else "cpu"
        lm = load_model(model, dtype=dtype, device=device)
        if lm.fingerprint != fingerprint:
            raise CorpusError(
                f"A Ray actor loaded {model!r} with other weights (fingerprint "
                f"{lm.fingerprint[:12]}) than the driver's ({fingerprint[:12]}): every node "
                "must have the same checkpoint."
            )
        self.job, self.lm = job, lm
        self.nlp = load_spacy(spacy_model)
        # the driver may still be training them: read at the first shard
        self.templates: dict | None = None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from .sharded_build import build_shard, wait_for_templates

        if self.templates is None:
            self.templates = wait_for_templates(Path(self.job.partial), self.job.chosen)
        numbers, chars = [], []
        for number, paragraphs in zip(batch["number"], batch["paragraphs"], strict=True):
            text = Source(paragraphs=[str(p) for p in paragraphs])
            build_shard(self.job, int(number), text, self.lm, self.nlp, False, self.templates)
            numbers.append(int(number))
            chars.append(text.chars)
        return {
            "number": np.array(numbers),
            "chars": np.array(chars),
            "pid": np.array([os.getpid()] * len(numbers)),
        }


def run_on_ray(job, todo: list[int], parts: list[Source], lm, spacy_model, address, actors) -> None:
    """Build shards ``todo`` (their texts in ``parts``) on Ray; return when all are written.

    Raises:
        CorpusError: Ray missing or not reachable; what a shard's build raised (after Ray's
            retries).
    """
    if not todo:
        return
    ray = _ray()
    started = connect(address)
    context = ray.data.DataContext.get_current()
    saved = (context.enable_progress_bars, context.print_on_execution_start)
    try:
        # Ray Data's own bars and logs would bury ours; restored below
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        pool, per_actor = _pool(ray, actors, len(todo))
        dtype = str(lm.dtype).removeprefix("torch.")
        rows = [{"number": i, "paragraphs": parts[i].paragraphs} for i in todo]
        dataset = ray.data.from_items(rows, override_num_blocks=len(rows))
        built = dataset.map_batches(
            ShardBuilder,
            fn_constructor_args=(job, lm.name, dtype, spacy_model, lm.fingerprint),
            batch_size=1,
            # one shard at a time per actor: by default Ray Data queues up to four blocks on
            # the first actor that is ready, and the shards then ran one after another there
            # while the other actors were still loading
            compute=ray.data.ActorPoolStrategy(size=pool, max_tasks_in_flight_per_actor=1),
            **per_actor,
        )
        total = sum(parts[i].chars for i in todo)
        with tqdm(
            total=total, unit="char", unit_scale=True, desc="Building shards on Ray",
            disable=not job.options.progress,
        ) as bar:  # fmt: skip
            for batch in built.iter_batches(batch_size=1, prefetch_batches=0):
                bar.update(int(batch["chars"].sum()))
    finally:
        context.enable_progress_bars, context.print_on_execution_start = saved
        if started:
            ray.shutdown()


def _pool(ray, actors: int | None, shards: int) -> tuple[int, dict[str, Any]]:
    """How many actors, and what each reserves: a GPU each when the cluster has them, else
    an equal share of the CPUs."""
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    if gpus:
        count = min(actors or gpus, shards)
        return count, {"num_gpus": 1, "num_cpus": 1}
    count = min(actors or cpus, shards)
    return count, {"num_cpus": max(1, cpus // max(count, 1))}
