"""FAISS files of a corpus read as untrusted input: walked here before FAISS sees a byte.

FAISS's reader trusts the sizes a file claims: a size field saying 4 GiB in a 681 kB file makes
it allocate 4 GiB (it accepts claims up to 1 TiB) before failing, and an index with on-disk
inverted lists names another file, which a memory-mapped read never maps (the first search then
crashes the process). So each index file is first walked field by field from its held handle:
its type must be the one the corpus's index spec builds, its dimension and vector count the
manifest's, every size must match both what the spec implies and the bytes that really follow,
and the walk must end exactly at the end of the file. Only then is the file streamed to FAISS
(ordinary flags, no memory map: a file changed in place under a map can kill the process), its
checksum compared, and what FAISS built checked once more (ids, direct map, finite ranges)
before the first search.

Accepted: IndexScalarQuantizer (``IxSQ``), IndexFlatIP (``IxFI``), IndexIVFScalarQuantizer
(``IwSq``) and IndexIVFFlat (``IwFl``) over a flat inner-product coarse quantizer, with
in-memory inverted lists (``ilar``); for fast-scan specs an IndexRefine (``IxRF``) of an
IndexIVFPQFastScan (``IwPf``, 4-bit codes in block inverted lists, ``ilbl``, no direct map) and
an ``IxSQ`` / ``IxFI`` of the same vectors; and a plain LinearTransform (``LTra``) for the
rotation: what a corpus build writes (FAISS 1.15's layout, little-endian).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import faiss
import numpy as np

from .files import CHUNK, HeldFile

# ScalarQuantizer qtype, bytes per code, number of trained floats per dimension
_SQ = {
    "SQ8": (0, lambda d: d, 2),
    "SQ4": (1, lambda d: (d + 1) // 2, 2),
    "SQfp16": (4, lambda d: 2 * d, 0),
    "SQ6": (6, lambda d: (6 * d + 7) // 8, 2),
}
_METRIC_INNER_PRODUCT = 0
_DIRECT_MAP_NONE, _DIRECT_MAP_ARRAY = 0, 1
_FASTSCAN_BLOCK = 32  # vectors per block of a fast-scan inverted list (FAISS's bbs)
_FASTSCAN_KSUB = 16  # centroids per sub-quantizer of a 4-bit code


@dataclass(frozen=True)
class IndexShape:
    """What one index file must hold: ``d``-dimensional vectors, ``ntotal`` of them, coded by
    ``quantizer`` (``"SQ6"``, ``"SQ8"``, ``"SQ4"``, ``"SQfp16"`` or ``"Flat"``), in an inverted
    file of at most ``nlist`` lists (0: none); with ``fastscan`` sub-quantizers, the inverted
    file holds 4-bit fast-scan codes and ``quantizer``'s codes sit beside it (IndexRefine)."""

    d: int
    ntotal: int
    quantizer: str
    nlist: int = 0
    fastscan: int = 0

    @property
    def fourcc(self) -> str:
        if self.fastscan:
            return "IxRF"
        if self.nlist:
            return "IwFl" if self.quantizer == "Flat" else "IwSq"
        return "IxFI" if self.quantizer == "Flat" else "IxSQ"

    @property
    def code_size(self) -> int:
        if self.quantizer == "Flat":
            return 4 * self.d
        return _SQ[self.quantizer][1](self.d)


class _Cursor:
    """Reads a held file field by field; every size is checked against the bytes left."""

    def __init__(self, held: HeldFile) -> None:
        self.held = held
        self.pos = 0

    def fail(self, what: str) -> Exception:
        return self.held.error(f"{what}; build the corpus again")

    def take(self, n: int, what: str) -> bytes:
        self.skip(n, what)
        data = self.held.read_at(self.pos - n, n)
        if len(data) != n:
            raise self.fail(f"is truncated at {what}")
        return data

    def skip(self, n: int, what: str) -> None:
        left = self.held.size - self.pos
        if n > left:
            raise self.fail(
                f"is truncated or corrupt: {what} claims {n} bytes at byte {self.pos}, where "
                f"{left} remain"
            )
        self.pos += n

    def unpack(self, fmt: str, what: str):
        size = struct.calcsize("<" + fmt)
        values = struct.unpack("<" + fmt, self.take(size, what))
        return values[0] if len(values) == 1 else values

    def fourcc(self, what: str) -> str:
        return self.take(4, what).decode("latin-1")

    def vector(self, itemsize: int, what: str, expected: int) -> None:
        """A FAISS vector (a uint64 count, then the items) of exactly ``expected`` items."""
        count = self.unpack("Q", f"the size of {what}")
        if count != expected:
            raise self.fail(f"{what} has {count} items where {expected} are expected")
        self.skip(count * itemsize, what)

    def array(self, dtype: str, what: str, most: int) -> np.ndarray:
        """A FAISS vector of at most ``most`` items, read."""
        count = self.unpack("Q", f"the size of {what}")
        if count > most:
            raise self.fail(f"{what} has {count} items, more than {most}")
        item = np.dtype(dtype)
        return np.frombuffer(self.take(count * item.itemsize, what), dtype=item)


def check_index_file(held: HeldFile, shape: IndexShape) -> None:
    """Walk an index file without FAISS: the structure ``shape`` implies, to the last byte.

    Raises:
        CorpusError: naming the file and the first field that is not what it must be.
    """
    c = _Cursor(held)
    if shape.fastscan:
        _refine_index(c, shape)
    else:
        _codes_index(c, shape)
    _at_end(c)


def _codes_index(c: _Cursor, shape: IndexShape) -> None:
    """One of the four plain index types, from its fourcc to its last code."""
    fourcc = c.fourcc("the index type")
    if fourcc != shape.fourcc:
        raise c.fail(f"is a FAISS {fourcc!r} index where this corpus's spec needs {shape.fourcc!r}")
    _index_header(c, shape.d, shape.ntotal, "the index")
    nlist = 0
    if shape.nlist:
        nlist = c.unpack("Q", "nlist")
        if not 1 <= nlist <= shape.nlist:
            raise c.fail(f"has {nlist} inverted lists where the spec allows 1 to {shape.nlist}")
        c.unpack("Q", "nprobe")
        _coarse_quantizer(c, shape.d, nlist)
        _direct_map(c, shape.ntotal)
    if shape.quantizer != "Flat":
        _scalar_quantizer(c, shape)
    if fourcc == "IwSq":
        if c.unpack("Q", "code_size") != shape.code_size:
            raise c.fail("has an inverted-file code size other than its quantizer's")
        if c.unpack("B", "by_residual") not in (0, 1):
            raise c.fail("has an invalid by_residual flag")
    if nlist:
        _inverted_lists(c, nlist, shape)
    elif fourcc == "IxSQ":
        c.vector(1, "the codes", shape.ntotal * shape.code_size)
    else:  # IndexFlat writes its codes' size in floats
        c.vector(4, "the vectors", shape.ntotal * shape.d)


def _refine_index(c: _Cursor, shape: IndexShape) -> None:
    """An IndexRefine: the fast-scan inverted file, then the re-ranking codes, then k_factor."""
    fourcc = c.fourcc("the index type")
    if fourcc != "IxRF":
        raise c.fail(f"is a FAISS {fourcc!r} index where this corpus's spec needs 'IxRF'")
    _index_header(c, shape.d, shape.ntotal, "the index")
    _fastscan_ivf(c, shape)
    _codes_index(c, IndexShape(shape.d, shape.ntotal, shape.quantizer))
    k_factor = c.unpack("f", "k_factor")
    if not 1.0 <= k_factor <= 1e6:  # NaN fails too
        raise c.fail(f"has a re-ranking factor of {k_factor}")


def _fastscan_ivf(c: _Cursor, shape: IndexShape) -> None:
    """An IndexIVFPQFastScan of 4-bit codes, ``shape.fastscan`` sub-quantizers, no direct map."""
    if c.fourcc("the candidate index type") != "IwPf":
        raise c.fail("has a candidate index other than a fast-scan inverted file")
    _index_header(c, shape.d, shape.ntotal, "the candidate index")
    nlist = c.unpack("Q", "nlist")
    if not 1 <= nlist <= shape.nlist:
        raise c.fail(f"has {nlist} inverted lists where the spec allows 1 to {shape.nlist}")
    c.unpack("Q", "nprobe")
    _coarse_quantizer(c, shape.d, nlist)
    if c.unpack("b", "the direct map type") != _DIRECT_MAP_NONE:
        raise c.fail("has a direct map, which a fast-scan index of a corpus has not")
    c.vector(8, "the direct map", 0)
    m = shape.fastscan
    m2 = m + m % 2
    by_residual, code_size, bbs, got_m2, _, _ = c.unpack("BQiQiQ", "the fast-scan settings")
    if by_residual not in (0, 1):
        raise c.fail("has an invalid by_residual flag")
    if (code_size, bbs, got_m2) != ((m + 1) // 2, _FASTSCAN_BLOCK, m2):
        raise c.fail("has fast-scan code sizes other than its spec's")
    if c.unpack("QQQ", "the product quantizer") != (shape.d, m, 4):
        raise c.fail(f"has a product quantizer other than {m} sub-quantizers of 4 bits")
    c.vector(4, "the product quantizer centroids", shape.d * _FASTSCAN_KSUB)
    _block_lists(c, nlist, shape, m2 * _FASTSCAN_BLOCK // 2)


def _block_lists(c: _Cursor, nlist: int, shape: IndexShape, block_size: int) -> None:
    """Fast-scan block inverted lists: per list its ids, then its codes in whole blocks."""
    if c.fourcc("the inverted lists type") != "ilbl":
        raise c.fail("holds inverted lists other than fast-scan blocks in the index file")
    # code_size: FAISS writes "not a per-vector size" ((size_t)-1) for block lists
    if c.unpack("QQQQ", "the inverted lists header") != (
        nlist,
        2**64 - 1,
        _FASTSCAN_BLOCK,
        block_size,
    ):
        raise c.fail("has block inverted lists of another shape than its index")
    total = 0
    for _ in range(nlist):
        count = c.unpack("Q", "the size of a list's ids")
        c.skip(8 * count, "a list's ids")
        blocks = (count + _FASTSCAN_BLOCK - 1) // _FASTSCAN_BLOCK
        c.vector(1, "a list's codes", blocks * block_size)
        total += count
    if total != shape.ntotal:
        raise c.fail(f"has {total} vectors in its lists where the index says {shape.ntotal}")


def check_rotation_file(held: HeldFile, d: int) -> None:
    """Walk a rotation file (a ``d`` x ``d`` LinearTransform, no bias) without FAISS.

    Raises:
        CorpusError: naming the file and what is wrong.
    """
    c = _Cursor(held)
    if c.fourcc("the transform type") != "LTra":
        raise c.fail("is not a plain FAISS LinearTransform")
    if c.unpack("B", "have_bias") != 0:
        raise c.fail("has a bias, which a rotation has not")
    c.vector(4, "the matrix", d * d)
    c.vector(4, "the bias", 0)
    if c.unpack("ii", "its dimensions") != (d, d):
        raise c.fail(f"is not a {d} x {d} transform")
    if c.unpack("B", "is_trained") != 1:
        raise c.fail("is not trained")
    _at_end(c)


def _index_header(c: _Cursor, d: int, ntotal: int, what: str) -> None:
    got_d, got_n, _, _, trained, metric = c.unpack("iqqqBi", f"the header of {what}")
    if got_d != d:
        raise c.fail(f"{what} holds {got_d}-dimensional vectors where {d} are expected")
    if got_n != ntotal:
        raise c.fail(f"{what} holds {got_n} vectors where the token table has {ntotal}")
    if trained != 1:
        raise c.fail(f"{what} is not trained")
    if metric != _METRIC_INNER_PRODUCT:
        raise c.fail(f"{what} does not use the inner product")


def _coarse_quantizer(c: _Cursor, d: int, nlist: int) -> None:
    if c.fourcc("the coarse quantizer type") != "IxFI":
        raise c.fail("has a coarse quantizer other than a flat inner-product index")
    _index_header(c, d, nlist, "the coarse quantizer")
    c.vector(4, "the list centroids", nlist * d)


def _direct_map(c: _Cursor, ntotal: int) -> None:
    kind = c.unpack("b", "the direct map type")
    if kind not in (_DIRECT_MAP_NONE, _DIRECT_MAP_ARRAY):
        raise c.fail(f"has a direct map of type {kind}, not an array")
    c.vector(8, "the direct map", ntotal if kind == _DIRECT_MAP_ARRAY else 0)


def _scalar_quantizer(c: _Cursor, shape: IndexShape) -> None:
    qtype, code_size, per_dim = _SQ[shape.quantizer][0], shape.code_size, _SQ[shape.quantizer][2]
    got_qtype, _, _, got_d, got_code_size = c.unpack("iifQQ", "the scalar quantizer")
    if got_qtype != qtype:
        raise c.fail(f"has scalar quantizer type {got_qtype}, not {shape.quantizer}'s {qtype}")
    if (got_d, got_code_size) != (shape.d, code_size):
        raise c.fail(f"has a scalar quantizer for {got_d} dimensions, {got_code_size} bytes a code")
    c.vector(4, "the quantizer ranges", per_dim * shape.d)


def _inverted_lists(c: _Cursor, nlist: int, shape: IndexShape) -> None:
    kind = c.fourcc("the inverted lists type")
    if kind != "ilar":
        what = "on-disk inverted lists (another file)" if kind == "ilod" else f"{kind!r} lists"
        raise c.fail(f"holds {what}; a corpus keeps its lists in the index file")
    if c.unpack("QQ", "the inverted lists header") != (nlist, shape.code_size):
        raise c.fail("has inverted lists of another number or code size than its index")
    layout = c.fourcc("the inverted lists layout")
    if layout == "full":
        sizes = c.array("<u8", "the list sizes", nlist)
        if len(sizes) != nlist:
            raise c.fail(f"has {len(sizes)} list sizes for {nlist} lists")
    elif layout == "sprs":
        pairs = c.array("<u8", "the list sizes", 2 * nlist)
        if len(pairs) % 2 or (len(pairs) and pairs[::2].max() >= nlist):
            raise c.fail("has invalid sparse list sizes")
        sizes = pairs[1::2]
    else:
        raise c.fail(f"has an unknown inverted lists layout {layout!r}")
    # Python integers: a crafted size cannot overflow the sum
    total = sum(int(n) for n in sizes)
    if total != shape.ntotal:
        raise c.fail(f"has {total} vectors in its lists where the index says {shape.ntotal}")
    c.skip(total * (shape.code_size + 8), "the inverted lists")


def _at_end(c: _Cursor) -> None:
    if c.pos != c.held.size:
        raise c.fail(f"has {c.held.size - c.pos} unexpected bytes after its end")


# -- reading through FAISS, then checking what it built ---------------------------------------


def read_index(held: HeldFile, shape: IndexShape) -> faiss.Index:
    """Check, then read an index file with FAISS from its held handle, verifying its checksum
    as it streams, then check the loaded index.

    Raises:
        CorpusError: naming the file and what is wrong.
    """
    check_index_file(held, shape)
    index = _stream(held, faiss.read_index)
    _check_loaded_index(held, faiss.downcast_index(index), shape)
    return index


def read_rotation(held: HeldFile, d: int) -> faiss.LinearTransform:
    """Check and read a rotation file; it must be orthonormal.

    Raises:
        CorpusError: naming the file and what is wrong.
    """
    check_rotation_file(held, d)
    vt = _stream(held, faiss.read_VectorTransform)  # the owning object: a downcast view is not
    a = faiss.vector_to_array(faiss.downcast_VectorTransform(vt).A).reshape(d, d)  # type: ignore[attr-defined]
    a = a.astype(np.float64)
    if not np.isfinite(a).all() or np.abs(a @ a.T - np.eye(d)).max() > 1e-4:
        raise held.error(
            "is not a rotation (its matrix is not orthonormal); build the corpus again"
        )
    return vt


def _stream(held: HeldFile, reader_function):
    read, finish = held.streaming_reader()
    reader = faiss.PyCallbackIOReader(read, CHUNK)  # type: ignore[attr-defined]
    try:
        loaded = reader_function(reader)
    except RuntimeError as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise held.error(f"FAISS cannot read it ({message}); build the corpus again") from exc
    finish()
    return loaded


def _check_loaded_index(held: HeldFile, index: faiss.Index, shape: IndexShape) -> None:
    """What FAISS built: the ids a search can return, the direct map a decode follows, and
    finite quantizer ranges and vectors."""
    if index.d != shape.d or index.ntotal != shape.ntotal or not index.is_trained:
        raise held.error("was read as another index than its header says")
    if shape.fastscan:
        _check_loaded_refine(held, index, shape)
        return
    ivf = index if shape.nlist else None
    if ivf is not None:
        _check_inverted_lists(held, ivf, shape)
    sq = getattr(index, "sq", None)
    if sq is not None and not np.isfinite(faiss.vector_to_array(sq.trained)).all():
        raise held.error("has non-finite quantizer ranges; build the corpus again")
    if shape.quantizer == "Flat" and ivf is None:
        if not np.isfinite(faiss.vector_to_array(index.codes).view(np.float32)).all():  # type: ignore[attr-defined]
            raise held.error("holds non-finite vectors; build the corpus again")


def _check_loaded_refine(held: HeldFile, index, shape: IndexShape) -> None:
    """A fast-scan spec's IndexRefine: its inverted file's ids and centroids, then its
    re-ranking codes as an index of their own."""
    base = faiss.downcast_index(index.base_index)
    refine = faiss.downcast_index(index.refine_index)
    if base.d != shape.d or base.ntotal != shape.ntotal or not base.is_trained:
        raise held.error("has a candidate index other than its header says")
    _check_inverted_lists(held, base, shape)
    if not np.isfinite(faiss.vector_to_array(base.pq.centroids)).all():  # type: ignore[attr-defined]
        raise held.error("has non-finite product quantizer centroids; build the corpus again")
    _check_loaded_index(held, refine, IndexShape(shape.d, shape.ntotal, shape.quantizer))


def _check_inverted_lists(held: HeldFile, ivf, shape: IndexShape) -> None:
    quantizer = faiss.downcast_index(ivf.quantizer)
    centroids = faiss.vector_to_array(quantizer.codes).view(np.float32)  # type: ignore[attr-defined]
    if not np.isfinite(centroids).all():
        raise held.error("has non-finite list centroids; build the corpus again")
    lists = faiss.downcast_InvertedLists(ivf.invlists)
    kind = faiss.BlockInvertedLists if shape.fastscan else faiss.ArrayInvertedLists  # type: ignore[attr-defined]
    if not isinstance(lists, kind):
        raise held.error("does not keep its inverted lists in memory")
    sizes = np.array([lists.list_size(i) for i in range(ivf.nlist)], dtype=np.int64)
    ids = np.concatenate(
        [faiss.rev_swig_ptr(lists.get_ids(i), int(n)).copy() for i, n in enumerate(sizes) if n]
        or [np.zeros(0, np.int64)]
    )
    if len(ids) != shape.ntotal or not _is_permutation(ids, shape.ntotal):
        raise held.error("has inverted lists whose ids are not 0..ntotal-1, each once")
    if shape.quantizer == "Flat" and not shape.fastscan:
        for i, n in enumerate(sizes):
            codes = faiss.rev_swig_ptr(lists.get_codes(i), int(n) * shape.code_size)
            if n and not np.isfinite(codes.view(np.float32)).all():
                raise held.error("holds non-finite vectors; build the corpus again")
    if ivf.direct_map.type == _DIRECT_MAP_ARRAY:
        entries = faiss.vector_to_array(ivf.direct_map.array)
        list_no, offset = entries >> 32, entries & 0xFFFFFFFF
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        valid = (list_no >= 0) & (list_no < ivf.nlist)
        valid[valid] &= offset[valid] < sizes[list_no[valid]]
        if not valid.all() or not np.array_equal(
            ids[starts[list_no] + offset], np.arange(shape.ntotal)
        ):
            raise held.error("has a direct map that does not match its inverted lists")


def _is_permutation(ids: np.ndarray, n: int) -> bool:
    if len(ids) != n or (n and (ids.min() < 0 or ids.max() >= n)):
        return False
    return bool((np.bincount(ids, minlength=n) == 1).all())
