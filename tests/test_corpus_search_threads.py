"""Search threads (issue 14): an inverted file's lists scanned in parts on threads of one OpenMP
thread each give what one scan gives, and the caller's OpenMP setting is never changed."""

from __future__ import annotations

import faiss
import numpy as np

from exbert_widget.corpus import index as ix


def _index(n: int = 20_000, dim: int = 96) -> tuple[faiss.Index, np.ndarray]:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((50, dim))
    x = ix.normalise(centers[rng.integers(0, 50, n)] + 0.5 * rng.standard_normal((n, dim)))
    spec = ix.IndexSpec.parse("RR,IVF64,SQ6")
    index = spec.make(dim)
    ix.train(index, x[:5000])
    index.add(x)
    ix.prepare(index, 16)
    return index, x


def test_split_scan_equals_one_scan():
    index, x = _index()
    for row in (0, 17, 4242):
        q = x[row]
        for nprobe in (None, 40):
            split = ix.on_search_thread(lambda q=q, p=nprobe: ix._candidates(index, q, 200, p))
            params = ix._params(index, nprobe)
            scores, ids = index.search(q[None], 200, params=params)
            # same candidates; the order may differ only among equal scores
            assert set(split.tolist()) == set(ids[0].tolist())
            order = {int(i): s for i, s in zip(ids[0], scores[0], strict=True)}
            np.testing.assert_allclose([order[int(i)] for i in split], scores[0], atol=1e-6)
        found, _ = ix.on_search_thread(lambda q=q: ix.search(index, q, 10))
        assert found[0] == row


def test_search_leaves_the_callers_openmp_setting_alone():
    index, x = _index(5000)
    before = faiss.omp_get_max_threads()
    ix.on_search_thread(lambda: ix.search(index, x[0], 10))
    assert faiss.omp_get_max_threads() == before
    assert ix.on_search_thread(faiss.omp_get_max_threads) == 1
