"""FAISS indexes of L2-normalised vectors, one per layer and kind (inner product = cosine).

Choice (measured on all-MiniLM-L6-v2 vectors of a real book, 48-58 k tokens, recall@50 against
exact float32 search; ``notes/corpus-index.md``): a random orthogonal rotation ("RR", block-diagonal
in blocks of up to 128 dimensions) spreads BERT's outlier dimensions over their block, then 6-bit
scalar quantisation with per-dimension quantile ranges stores a vector in 3/16 of float32's bytes.
Search fetches ``RERANK`` x k candidates and re-ranks them by the cosine with each candidate's
*renormalised* decoded vector, which removes the quantiser's norm error: recall@50 0.96-0.99
(without the rotation, context layers lose ~0.006; SQ4: 0.85-0.94, too low). Large corpora add an
inverted file whose lists hold 4-bit fast-scan product-quantiser codes, so that one query scans a
few per cent of the vectors by SIMD table lookups; its candidates are re-ranked on the SQ6 codes
kept beside them (``"auto"``: ``RR,IVF<n>,PQx4fs,SQ6``; corpora built with ``RR,IVF<n>,SQ6``,
residuals to the list centroid quantised, still open and search). There FAISS's own
``IndexRefine`` computes the candidates' inner products on the SQ6 codes, and dividing them by
the norms of the decoded codes (computed once per index, :func:`code_norms`) gives the same
renormalised cosine without decoding the candidates in Python.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np
from tqdm.auto import tqdm

# the spec lives apart (no FAISS to parse it); its names stay reachable here, where they are used
from .index_spec import IVF_FROM as IVF_FROM
from .index_spec import TRAIN_MAX as TRAIN_MAX
from .index_spec import IndexSpec as IndexSpec

SEARCH_SPLIT = 2  # parts one inverted-file query's lists are scanned in, each on its own thread
RERANK = 4  # candidates per wanted hit, re-ranked by renormalised decoded cosine
RERANK_FASTSCAN = 20  # the same for candidates from 4-bit fast-scan codes (coarser)
FASTSCAN_TRAIN_MIN = 16  # a 4-bit sub-quantizer's 16 centroids need as many training vectors


def make_index(
    spec: IndexSpec, dim: int, n_train: int | None = None, rotate: bool | None = None
) -> faiss.Index:
    """``spec.make``: an empty, untrained index for vectors of ``dim`` dimensions (``n_train``,
    when given, caps the number of inverted lists at one per 8 training vectors). ``rotate=False``
    leaves out the spec's rotation, for callers that rotate the vectors themselves.

    Raises:
        InputError: a fast-scan code whose sub-quantizer count does not divide ``dim``.
    """
    parts = []
    if spec.nlist:
        nlist = spec.nlist if n_train is None else max(1, min(spec.nlist, n_train // 8))
        parts.append(f"IVF{nlist}")
    if spec.fastscan:
        parts.append(f"PQ{spec.subquantizers(dim)}x4fs,Refine({spec.quantizer})")
    else:
        parts.append(spec.quantizer)
    index = faiss.index_factory(dim, ",".join(parts), faiss.METRIC_INNER_PRODUCT)
    ivf = _ivf(index)
    if ivf is not None:
        ivf.nprobe = min(spec.nprobe, ivf.nlist)
        if spec.fastscan:
            ivf.by_residual = False  # the inner product of the whole vector is what we rank by
    sq = _sq(index)
    if sq is not None and spec.quantizer != "SQfp16":
        sq.rangestat = faiss.ScalarQuantizer.RS_quantiles
        sq.rangestat_arg = 0.0005
    # one shared rotation, made once per dimension
    if spec.rotate if rotate is None else rotate:
        index = faiss.IndexPreTransform(rotation(dim), index)
    return index


ROTATION_BLOCK = 128  # most dimensions one block of the rotation mixes
_ROTATIONS: dict[int, faiss.LinearTransform] = {}
_ROTATION_SEED = 1234


def rotation_blocks(dim: int) -> np.ndarray:
    """The rotation's diagonal blocks, [dim / b, b, b] float32, each a random orthogonal matrix
    (fixed seed). Blocks of up to ``ROTATION_BLOCK`` dimensions spread BERT's outlier dimensions
    as well as one dense rotation does (recall@50 within 0.003 on real MiniLM vectors) at a
    third of the build's matmul cost; a dimension with no divisor of at least 32 up to 128
    gets one dense block."""
    b = next((b for b in range(min(ROTATION_BLOCK, dim), 31, -1) if dim % b == 0), dim)
    rng = np.random.default_rng(_ROTATION_SEED)
    q, r = np.linalg.qr(rng.standard_normal((dim // b, b, b)))
    # sign fix: Haar-distributed, and the same matrix whatever the LAPACK build
    q *= np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    return q.astype(np.float32)


def rotation(dim: int) -> faiss.LinearTransform:
    """The block-diagonal random orthogonal rotation of ``dim`` dimensions, made once."""
    if dim not in _ROTATIONS:
        blocks = rotation_blocks(dim)
        a = np.zeros((dim, dim), np.float32)
        b = blocks.shape[-1]
        for i, block in enumerate(blocks):
            a[i * b : (i + 1) * b, i * b : (i + 1) * b] = block
        lt = faiss.LinearTransform(dim, dim, False)
        faiss.copy_array_to_vector(a.ravel(), lt.A)
        lt.is_trained = True
        lt.set_is_orthonormal()
        _ROTATIONS[dim] = lt
    return _ROTATIONS[dim]


def rotation_matrix(dim: int) -> np.ndarray:
    """The rotation as a [dim, dim] float32 matrix A (rotated = A @ x)."""
    return faiss.vector_to_array(rotation(dim).A).reshape(dim, dim)


def _rotation_path(index_file: Path, dim: int) -> Path:
    return index_file.parent / f"rotation_{dim}.faiss"


def _ivf(index: faiss.Index):
    if hasattr(index, "parts"):  # a sharded corpus's indexes, made alike from one template
        return _ivf(index.parts[0])
    try:
        return faiss.extract_index_ivf(index)
    except RuntimeError:
        return None


def _rotated(index: faiss.Index) -> tuple[faiss.VectorTransform, faiss.Index] | None:
    """(the transform, the index behind it) of an index with one transform in front, else None."""
    outer = faiss.downcast_index(index)
    if not isinstance(outer, faiss.IndexPreTransform):
        return None
    chain: Any = outer.chain  # a SWIG vector; FAISS's stubs call it a list
    if chain.size() == 1:
        return faiss.downcast_VectorTransform(chain.at(0)), faiss.downcast_index(outer.index)
    return None


def _inner(index: faiss.Index) -> faiss.Index:
    """The index behind a rotation (or the index itself)."""
    rotated = _rotated(index)
    return rotated[1] if rotated else faiss.downcast_index(index)


def _refined(index: faiss.Index) -> tuple[faiss.Index, faiss.Index] | None:
    """(candidate index, re-ranking index) of a fast-scan spec's ``IndexRefine`` (through a
    rotation), else None."""
    inner = _inner(index)
    if isinstance(inner, faiss.IndexRefine):
        return faiss.downcast_index(inner.base_index), faiss.downcast_index(inner.refine_index)
    return None


def _flat_codes(index: faiss.Index) -> faiss.IndexScalarQuantizer | None:
    """The flat scalar-quantizer codes (by id) an index decodes from: the index itself, or a
    fast-scan spec's re-ranking codes (through its rotation); None for others (inverted
    files)."""
    refined = _refined(index)
    flat = refined[1] if refined else faiss.downcast_index(index)
    return flat if isinstance(flat, faiss.IndexScalarQuantizer) else None


def _sq(index: faiss.Index):
    """The ScalarQuantizer inside an index (through a rotation, an IVF and/or the re-ranking
    codes of a fast-scan spec), or None."""
    refined = _refined(index)
    inner = refined[1] if refined else _inner(index)
    return getattr(inner, "sq", None)


def train(index: faiss.Index, data: np.ndarray) -> None:
    """Train ``index`` on ``data`` with one OpenMP thread.

    FAISS (1.15) trains per-dimension scalar-quantiser ranges in an OpenMP loop that shares one
    scratch vector between threads: with more than one thread, dimensions get each other's
    ranges (a different result on every run, and worse recall). One thread is exact.
    """
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        index.train(np.ascontiguousarray(data, dtype=np.float32))
    finally:
        faiss.omp_set_num_threads(threads)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32 (a zero row stays zero)."""
    x = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12))


def finalize(index: faiss.Index) -> None:
    """Give an inverted file a direct map, so vectors decode by id (saved with the index). A
    fast-scan spec's vectors decode from its re-ranking codes, which are kept by id."""
    ivf = _ivf(index)
    if ivf is not None and not ivf.direct_map.type and _refined(index) is None:
        ivf.make_direct_map()


def save(index: faiss.Index, path: Path) -> None:
    """Write an index (with its direct map) to ``path``. A rotation in front of it is written
    once per directory and dimension (``rotation_<d>.faiss``), not into every index file."""
    finalize(index)
    rotated = _rotated(index)
    if rotated:
        vt, inner = rotated
        rot = _rotation_path(Path(path), index.d)
        if not rot.exists():
            faiss.write_VectorTransform(vt, str(rot))
        faiss.write_index(inner, str(path))
        return
    faiss.write_index(index, str(path))


def prepare(index: faiss.Index, nprobe: int) -> None:
    """Set a loaded index up for search: ``nprobe`` lists visited per query, and one query's
    lists spread over the threads (FAISS's default splits queries, leaving all but one thread
    idle: 8.4 -> 5.6 ms for nprobe 128 of 2048 at 1 M on 2 cores)."""
    ivf = _ivf(index)
    if ivf is not None:
        ivf.nprobe = min(int(nprobe), ivf.nlist)
        ivf.parallel_mode = 1


def reconstruct(index: faiss.Index, ids: np.ndarray) -> np.ndarray:
    """Decoded vectors of the given ids (for exact re-ranking)."""
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    if ids.size == 0:
        return np.zeros((0, index.d), np.float32)
    if hasattr(index, "parts"):  # a sharded corpus's indexes (:class:`.sharded.ShardedIndex`)
        return cast(Any, index).reconstruct(ids)
    rotated = _rotated(index)
    if rotated:
        # rotate back with one small matmul: FAISS's own reverse transform is ~10x slower
        vt, inner = rotated
        if isinstance(vt, faiss.LinearTransform) and vt.is_orthonormal and not vt.have_bias:
            a = faiss.vector_to_array(vt.A).reshape(vt.d_out, vt.d_in)
            return reconstruct(inner, ids) @ a
    flat = _flat_codes(index)
    if flat is not None:
        return _decode_rows(flat, ids)
    finalize(index)  # an inverted file decodes by id through its direct map
    return index.reconstruct_batch(ids)


def _decode_rows(
    index: faiss.IndexScalarQuantizer, ids: np.ndarray, out: np.ndarray | None = None
) -> np.ndarray:
    """Rows ``ids`` of a flat scalar-quantizer index decoded in one batch (FAISS's own
    ``reconstruct_batch`` sets a decoder up for every row: ~1.5x the time for 200 rows), into
    ``out`` when given ([len(ids), d] float32, C-contiguous)."""
    if ids.min() < 0 or ids.max() >= index.ntotal:
        raise IndexError(f"ids outside 0..{index.ntotal - 1}")
    size = index.code_size
    codes = faiss.rev_swig_ptr(index.codes.data(), index.ntotal * size).reshape(-1, size)
    if out is None:
        return index.sa_decode(np.ascontiguousarray(codes[ids]))
    picked = np.take(codes, ids, axis=0, out=_scratch("codes", len(ids), size, np.uint8))
    # the raw-pointer form, missing from FAISS's stubs: it decodes into ``out``, no new array
    index.sa_decode_c(len(ids), faiss.swig_ptr(picked), faiss.swig_ptr(out))  # type: ignore[attr-defined]
    return out


# Re-ranking decodes its candidates into arrays kept per thread: a fresh megabyte-sized array per
# search (and numpy's temporaries for the norms) cost page faults worth several times the
# decoding itself. Above SCRATCH_ROWS candidates (a filtered search that had to widen), fresh
# arrays are used, so that no thread keeps a large buffer.
SCRATCH_ROWS = 4096
_scratch_arrays = threading.local()


def _scratch(name: str, rows: int, width: int, dtype: Any) -> np.ndarray:
    """This thread's scratch array ``name`` of shape [rows, width] (reused, contents undefined);
    a fresh one above :data:`SCRATCH_ROWS` rows."""
    if rows > SCRATCH_ROWS:
        return np.empty((rows, width), dtype)
    buf = getattr(_scratch_arrays, name, None)
    if buf is None or buf.shape[1] != width or buf.dtype != dtype:
        buf = np.empty((SCRATCH_ROWS, width), dtype)
        setattr(_scratch_arrays, name, buf)
    return buf[:rows]


def search(
    index: faiss.Index,
    query: np.ndarray,
    k: int,
    *,
    mask: np.ndarray | None = None,
    candidates: int | None = None,
    accept: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest ids to one query and their cosines, best first.

    Candidates (``candidates``, default :func:`rerank_factor` x ``k``) come from the index
    with the query (restricted to ``mask``'s dimensions when given); they are re-ranked by the
    cosine between the (restricted, renormalised) query and each candidate's (restricted,
    renormalised) decoded vector. ``accept`` (ids best first -> a boolean mask) drops
    candidates; while fewer than ``k`` remain, more candidates are fetched (and, for an inverted
    file, more lists visited) until the index has no more.
    """
    q = np.asarray(query, dtype=np.float32).reshape(-1)
    if mask is not None:
        q = np.where(mask, q, 0.0).astype(np.float32)
    q = normalise(q)
    n = min(index.ntotal, candidates or rerank_factor(index) * k)
    if n <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    nprobe = None
    while True:
        ids, scores, fetched = _ranked(index, q, n, nprobe, mask)
        if accept is not None:
            keep = accept(ids)
            ids, scores = ids[keep], scores[keep]
        if len(ids) >= k:
            break
        if fetched < n:  # an inverted file's visited lists hold no more
            nprobe = wider_nprobe(index, nprobe)
            if nprobe is None:
                break
        elif n >= index.ntotal:
            break
        else:
            n = more_candidates(n, len(ids), k, index.ntotal)
    return ids[:k], scores[:k]


def _ranked(
    index: faiss.Index, q: np.ndarray, n: int, nprobe: int | None, mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """``n`` candidates for the normalised query ``q`` re-ranked: (ids, cosines) best first,
    and how many candidates the index had."""
    norms = None if mask is not None else code_norms(index)
    if norms is None:
        cand = _candidates(index, q, n, nprobe)
        return (*rerank(index, q, cand, None, mask), len(cand))
    ids, products = _refine_search(index, q, n, nprobe)
    scores = products / norms[ids]
    order = np.argsort(-scores, kind="stable")
    return ids[order], scores[order], len(ids)


def _refine_search(
    index: faiss.Index, q: np.ndarray, n: int, nprobe: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """A fast-scan spec's ``n`` candidates and their inner products with ``q`` on the finer
    codes, by FAISS's own ``IndexRefine`` (no vector decoded in Python)."""
    params = faiss.IndexRefineSearchParameters()
    params.k_factor = 1.0  # the n candidates asked for are the ones re-ranked
    base_params = _params(None, nprobe)
    if base_params is not None:
        params.base_index_params = base_params
        params.referenced = base_params  # type: ignore[attr-defined]  # kept alive with params
    products, ids = _inner(index).search(_rotate_query(index, q[None]), n, params=params)
    keep = ids[0] >= 0
    return ids[0][keep], products[0][keep]


_NORMS_LOCK = threading.Lock()
# per index object, for as long as it lives (FAISS's wrappers refuse attributes of our own)
_NORMS: weakref.WeakKeyDictionary[Any, np.ndarray] = weakref.WeakKeyDictionary()


def code_norms(index: faiss.Index) -> np.ndarray | None:
    """The norms of a fast-scan spec's decoded re-ranking vectors, by id (None for other
    indexes, sharded ones included: their candidates are merged across shards before
    re-ranking). Computed on first use, by decoding every code once (about a second a million
    vectors on one core), and kept on ``index`` for as long as it holds as many vectors: with
    them, a search divides FAISS's own re-ranked inner products by the norms, which gives the
    renormalised cosine without decoding its candidates in Python (half its CPU time)."""
    if hasattr(index, "parts"):
        return None
    held = _NORMS.get(index)
    if held is not None and len(held) == index.ntotal:
        return held
    flat = _flat_codes(index) if _refined(index) else None
    if flat is None:
        return None
    with _NORMS_LOCK:
        held = _NORMS.get(index)
        if held is None or len(held) != index.ntotal:
            held = _NORMS[index] = _decoded_norms(flat)
    return held


NORMS_PROGRESS_FROM = 2_000_000  # vectors from which computing the norms shows a progress bar


def _decoded_norms(flat: faiss.IndexScalarQuantizer, chunk: int = 32_768) -> np.ndarray:
    """The norm of every decoded vector of a flat scalar-quantizer index, chunk by chunk."""
    norms = np.empty(flat.ntotal, np.float32)
    starts = tqdm(
        range(0, flat.ntotal, chunk),
        desc="norms of the re-ranking codes (once per index)",
        disable=flat.ntotal < NORMS_PROGRESS_FROM,
    )
    for start in starts:
        ids = np.arange(start, min(start + chunk, flat.ntotal))
        decoded = _decode_rows(flat, ids)
        norms[start : start + len(ids)] = _row_norms(decoded)
    return norms


def rerank_factor(index: faiss.Index) -> int:
    """Candidates per wanted hit for ``index``: 20 for fast-scan codes, 4 for the others.

    Measured on 706 k real all-MiniLM-L6-v2 vectors (a book's 6 layers x 2 kinds pooled), 4-bit
    codes of 96 sub-vectors, nprobe 128 of 2048, recall@50 against exact float32: 0.912 / 0.956 /
    0.971 / 0.976 with 4 / 10 / 20 / 40 x k candidates (SQ6 lists scanned: 0.980); at 40 x k
    the search took three times as long as at 20 x k. (Synthetic vectors gave the same recall
    from 4 x k on: near-duplicate tokens are what the coarse code cannot order.)"""
    if hasattr(index, "parts"):  # a sharded corpus's indexes, made alike from one template
        return rerank_factor(index.parts[0])
    return RERANK_FASTSCAN if _refined(index) else RERANK


def more_candidates(n: int, kept: int, k: int, most: int) -> int:
    """How many candidates to fetch next when ``n`` gave ``kept`` of the ``k`` wanted: enough
    at the rate seen so far, with a margin, at least twice as many, at most ``most``."""
    return min(most, max(2 * n, math.ceil(1.5 * n * k / max(kept, 1))))


def wider_nprobe(index: faiss.Index, nprobe: int | None) -> int | None:
    """Four times as many inverted lists to visit as ``nprobe`` (None: the index's own); None
    when the index is no inverted file or already visits every list."""
    ivf = _ivf(index)
    if ivf is None:
        return None
    current = ivf.nprobe if nprobe is None else nprobe
    return None if current >= ivf.nlist else min(ivf.nlist, 4 * current)


def _params(index: faiss.Index | None, nprobe: int | None):
    """Search parameters visiting ``nprobe`` lists (None: the index's own setting), without
    changing the shared index (``index`` None: for the inverted file itself)."""
    if nprobe is None:
        return None
    ivf = faiss.SearchParametersIVF()
    ivf.nprobe = nprobe
    if index is not None and _rotated(index):
        outer = faiss.SearchParametersPreTransform()
        outer.index_params = ivf
        # keep the inner parameters alive as long as the outer ones (an attribute of our own)
        outer.referenced = ivf  # type: ignore[attr-defined]
        return outer
    return ivf


def _one_openmp_thread() -> None:
    faiss.omp_set_num_threads(1)  # this pool thread's own OpenMP setting, nobody else's


# Search runs with one OpenMP thread: FAISS's OpenMP teams spin at their barriers, and on a
# machine whose cores are busy elsewhere a two-thread team waits for a descheduled member (a
# search 50x slower). Python threads that block instead of spinning lose only their share of the
# cores. OpenMP's thread count is a per-thread setting: the caller's is set for the search and
# restored after it (handing the search to a pool thread instead cost two thread wake-ups, a few
# ms each on a loaded machine). Nothing else in the process is touched.
_PROBE = ThreadPoolExecutor(
    SEARCH_SPLIT, thread_name_prefix="exbert-probe", initializer=_one_openmp_thread
)
_on_search_thread = threading.local()


def on_search_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` in the calling thread with one OpenMP thread, the caller's own setting restored
    afterwards (at once when already inside such a call)."""
    if getattr(_on_search_thread, "yes", False):
        return fn()
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    _on_search_thread.yes = True
    try:
        return fn()
    finally:
        _on_search_thread.yes = False
        faiss.omp_set_num_threads(threads)


def _candidates(index: faiss.Index, q: np.ndarray, n: int, nprobe: int | None) -> np.ndarray:
    if hasattr(index, "parts"):  # a sharded corpus's indexes, searched in parallel, merged
        return cast(Any, index).candidates(q, n, nprobe)
    ivf = _ivf(index)
    # a fast scan is too short to be worth splitting over threads
    if ivf is not None and SEARCH_SPLIT > 1 and _refined(index) is None:
        return _split_candidates(index, ivf, q, n, nprobe)
    _, cand = candidate_search(index, q, n, nprobe)
    return cand[0][cand[0] >= 0]


def candidate_search(
    index: faiss.Index, q: np.ndarray, n: int, nprobe: int | None
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids), each [1, n], of one (unsharded) index's ``n`` best for the normalised
    query ``q`` by its own codes (a fast-scan spec's candidate codes), ``nprobe`` lists visited
    (None: the index's own setting); ids -1 past the end."""
    refined = _refined(index)
    if refined:
        return refined[0].search(_rotate_query(index, q[None]), n, params=_params(None, nprobe))
    return index.search(q[None], n, params=_params(index, nprobe))


def _rotate_query(index: faiss.Index, x: np.ndarray) -> np.ndarray:
    """Queries [n, d] as the index behind the rotation sees them."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    rotated = _rotated(index)
    return np.ascontiguousarray(rotated[0].apply(x)) if rotated else x


def _split_candidates(index, ivf, q: np.ndarray, n: int, nprobe: int | None) -> np.ndarray:
    """An inverted file's ``n`` best for one query, its lists scanned in ``SEARCH_SPLIT`` parts
    on threads of one OpenMP thread each, merged: the same as one scan of all the lists."""
    x = _rotate_query(index, q[None])
    probes = min(ivf.nlist, nprobe or ivf.nprobe)
    coarse_d, coarse_i = ivf.quantizer.search(x, probes)
    parts = [
        (coarse_i[:, i::SEARCH_SPLIT], coarse_d[:, i::SEARCH_SPLIT])
        for i in range(min(SEARCH_SPLIT, probes))  # FAISS refuses a part of no lists
    ]

    def scan(part):
        lists = np.ascontiguousarray(part[0], dtype=np.int64)
        dists = np.ascontiguousarray(part[1], dtype=np.float32)
        params = faiss.SearchParametersIVF()
        params.nprobe = lists.shape[1]  # this part's lists; the shared index is not changed
        d = np.empty((1, n), np.float32)
        i = np.empty((1, n), np.int64)
        ivf.search_preassigned_c(
            1, faiss.swig_ptr(x), n, faiss.swig_ptr(lists), faiss.swig_ptr(dists),
            faiss.swig_ptr(d), faiss.swig_ptr(i), False, params,
        )  # fmt: skip
        return d, i

    futures = [_PROBE.submit(scan, part) for part in parts[1:]]
    found = [scan(parts[0])] + [f.result() for f in futures]
    scores = np.concatenate([d[0] for d, _ in found])
    ids = np.concatenate([i[0] for _, i in found])
    keep = ids >= 0
    scores, ids = scores[keep], ids[keep]
    return ids[np.lexsort((ids, -scores))[:n]]


def rerank(
    index: faiss.Index,
    query: np.ndarray,
    ids: np.ndarray,
    k: int | None,
    mask: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` (None: all) of the candidates ``ids`` by the cosine of the (normalised,
    masked) query with each candidate's masked, renormalised decoded vector; (ids, scores) best
    first."""
    q = normalise(np.where(mask, query, 0.0) if mask is not None else query).reshape(-1)
    if mask is None:
        decoded, q = _decoded_as_stored(index, np.asarray(ids, dtype=np.int64), q)
    else:  # the heads' dimensions are the model's: decode back through the rotation
        decoded = np.where(mask, reconstruct(index, ids), 0.0)
    scores = (decoded @ q) / _row_norms(decoded)
    order = np.argsort(-scores, kind="stable")[:k]
    return np.asarray(ids)[order], scores[order].astype(np.float32)


def _row_norms(x: np.ndarray) -> np.ndarray:
    """Each row's norm, at least 1e-12, without a temporary the size of ``x``."""
    return np.maximum(np.sqrt(np.einsum("ij,ij->i", x, x)), 1e-12)


def _decoded_as_stored(
    index: faiss.Index, ids: np.ndarray, q: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The decoded vectors of ``ids`` and the query ``q``, both in the space the codes live in
    (behind the rotation): the rotation keeps cosines, and rotating one query costs a
    matrix-vector product where rotating every candidate back cost a matrix product (~10 ms of
    a 1 M search on a loaded 2-core machine). Flat scalar-quantizer codes (plain, or a fast-scan
    spec's re-ranking codes) decode into this thread's scratch array."""
    rotated = None if hasattr(index, "parts") else _rotated(index)
    if rotated:
        vt, inner = rotated
        if isinstance(vt, faiss.LinearTransform) and vt.is_orthonormal and not vt.have_bias:
            a = faiss.vector_to_array(vt.A).reshape(vt.d_out, vt.d_in)
            return _decode_stored(inner, ids), a @ q
    return _decode_stored(index, ids), q


def _decode_stored(index: faiss.Index, ids: np.ndarray) -> np.ndarray:
    """:func:`reconstruct` of an index behind its rotation; flat scalar-quantizer codes decode
    into this thread's scratch array (valid until its next search)."""
    flat = None if hasattr(index, "parts") else _flat_codes(index)
    if flat is not None and len(ids):
        return _decode_rows(flat, ids, _scratch("decoded", len(ids), flat.d, np.float32))
    return reconstruct(index, ids)  # sharded indexes decode shard by shard


def scan(
    index: faiss.Index, query: np.ndarray, nprobe: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Inner products of a normalised query with every vector the index visits (all of a flat
    index; the ``nprobe`` nearest lists of an inverted file, default the index's own setting):
    (ids, scores), in no set order."""
    q = normalise(query).reshape(1, -1)
    if hasattr(index, "parts"):  # a sharded corpus's indexes, scanned in parallel
        return cast(Any, index).scan(q[0], nprobe)
    if _ivf(index) is None:  # a k-NN search over everything is ~3x faster than a range search
        scores, ids = index.search(q, index.ntotal)
        return ids[0].astype(np.int64), scores[0]
    refined = _refined(index)
    if refined:  # scored by the fast-scan codes; the caller re-ranks on the finer ones
        x = _rotate_query(index, q)
        _, scores, ids = refined[0].range_search(x, -3.0e38, params=_params(None, nprobe))
        return ids.astype(np.int64), scores
    _, scores, ids = index.range_search(q, -3.0e38, params=_params(index, nprobe))
    return ids.astype(np.int64), scores
