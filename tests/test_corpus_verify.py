"""A corpus directory is untrusted input: every case of issue 13, crafted here, is refused with a
CorpusError naming the file (or is harmless), and an open corpus keeps serving its own build."""

from __future__ import annotations

import json
import os
import shutil
import struct
import warnings

import faiss
import h5py
import numpy as np
import pytest

import exbert_widget as ew
from exbert_widget.cli import main as cli_main
from exbert_widget.corpus import index as ix
from exbert_widget.corpus import manifest as mf
from tests import corpus_craft as craft
from tests.test_corpus_index import TEXT

OTHER_TEXT = [
    "The farmer drove his cart to the market before the sun came up.",
    "A small library stood at the end of the street, beside the old mill.",
    "Snow covered the hills of London for most of that long winter.",
    "The children read every book in the library twice over.",
] * 3


@pytest.fixture(scope="module")
def tiny_bert(tiny_dirs):
    return ew.load_model(tiny_dirs["bert"])


@pytest.fixture(scope="module")
def built(tiny_bert, tmp_path_factory):
    """A small corpus (RR,SQ6: rotation file included), never modified: tests copy it."""
    corpus = ew.build_corpus(TEXT, tiny_bert, tmp_path_factory.mktemp("v") / "c", progress=False)
    corpus.close()
    return corpus.root


@pytest.fixture(scope="module")
def built_ivf(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("v") / "ivf"
    ew.build_corpus(TEXT, tiny_bert, root, index="RR,IVF8,SQ6", progress=False).close()
    return root


@pytest.fixture(scope="module")
def built_fastscan(tiny_bert, tmp_path_factory):
    """A fast-scan corpus: IndexRefine files (4-bit fast-scan inverted file + SQ6 codes)."""
    root = tmp_path_factory.mktemp("v") / "fs"
    ew.build_corpus(TEXT, tiny_bert, root, index=FASTSCAN, progress=False).close()
    return root


FASTSCAN = "RR,IVF8,PQx4fs,SQ6"  # what "auto" picks for large corpora (8 sub-quantizers here)


def _all_hits(corpus: ew.Corpus) -> list[list]:
    """Hits for a few fixed queries at every layer and kind (and one head-restricted search)."""
    m = corpus.manifest
    rng = np.random.default_rng(7)
    out = []
    for by, width in (("embedding", m["hidden_size"]), ("context", m["context_size"])):
        for layer in range(m["layers"]):
            q = rng.normal(size=width)
            hits = corpus.search(q, layer, by=by, k=5)
            out.append(list(zip(hits.sentence_id, hits.token_index, hits.score, strict=True)))
    hits = corpus.search(rng.normal(size=m["context_size"]), 1, by="context", k=5, heads=[1])
    out.append(list(zip(hits.sentence_id, hits.token_index, hits.score, strict=True)))
    return out


# -- the manifest --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("format_version", 0, "format_version must be a positive integer, got 0"),
        ("format_version", -5, "format_version must be a positive integer, got -5"),
        ("format_version", True, "format_version must be a positive integer, got True"),
        ("format_version", "3", "format_version must be a positive integer, got '3'"),
        ("format_version", None, "format_version must be a positive integer, got None"),
        ("format_version", 99, "newer than this exbert-widget reads"),
        ("format_version", 1, "no longer read"),
        ("layers", 10**9, "layers must be an integer from 1 to 1024, got 1000000000"),
        ("layers", "2", "layers must be an integer from 1 to 1024, got '2'"),
        ("heads", 0, "heads must be an integer from 1"),
        ("heads", 3, "context_size is not a multiple of heads"),
        ("index", "HNSW32", "index must be an index spec"),
        ("nprobe", -1, "nprobe must be an integer from 1"),
        ("counts", [], "counts must be an object"),
        ("kind", "bidirectional!", "kind must be one of"),
        ("model", 7, "model must be a string"),
        ("files", {}, "files must list exactly"),
    ],
)
def test_manifest_fields_are_checked_by_type_and_range(built, tmp_path, field, value, message):
    root = craft.copy(built, tmp_path / "c")
    m = craft.manifest(root)
    m[field] = value
    craft.write_manifest(root, m)
    with pytest.raises(ew.CorpusError, match=message) as info:
        ew.Corpus.open(root)
    assert "manifest.json" in str(info.value)


def test_a_missing_format_version_and_missing_fields_are_named(built, tmp_path):
    root = craft.copy(built, tmp_path / "c")
    m = craft.manifest(root)
    del m["format_version"]
    craft.write_manifest(root, m)
    with pytest.raises(ew.CorpusError, match="format_version must be a positive integer, got None"):
        ew.Corpus.open(root)
    m["format_version"] = mf.FORMAT_VERSION
    del m["counts"]["tokens"]
    craft.write_manifest(root, m)
    with pytest.raises(ew.CorpusError, match=r"counts\.tokens is missing"):
        ew.Corpus.open(root)


def test_an_edited_manifest_is_refused(built, tmp_path):
    root = craft.copy(built, tmp_path / "c")
    m = craft.manifest(root)
    m["nprobe"] += 1  # valid on its own: only the manifest's checksum tells
    craft.write_manifest(root, m)
    with pytest.raises(ew.CorpusError, match="changed after the build"):
        ew.Corpus.open(root)


def test_huge_deep_and_odd_manifests_fail_fast(built, tmp_path):
    root = craft.copy(built, tmp_path / "c")
    (root / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ew.CorpusError, match="corrupt"):
        ew.Corpus.open(root)
    (root / "manifest.json").write_bytes(b" " * (mf.MANIFEST_MAX_BYTES + 1))
    with pytest.raises(ew.CorpusError, match="where a manifest is a few kB"):
        ew.Corpus.open(root)
    (root / "manifest.json").unlink()
    (root / "manifest.json").mkdir()
    with pytest.raises(ew.CorpusError, match="not a regular file"):
        ew.Corpus.open(root)


def test_cli_info_answers_with_one_line_on_a_crafted_manifest(built, tmp_path, capsys):
    root = craft.copy(built, tmp_path / "c")
    assert cli_main(["corpus", "info", str(root)]) == 0
    assert json.loads(capsys.readouterr().out)["build_id"] == craft.manifest(root)["build_id"]
    assert cli_main(["corpus", "info", str(root), "--verify", "full"]) == 0
    capsys.readouterr()
    m = craft.manifest(root)
    m["layers"] = 10**9
    craft.write_manifest(root, m)
    assert cli_main(["corpus", "info", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "layers must be an integer" in err
    craft.write_manifest(root, {**m, "layers": 2, "counts": "many"})
    assert cli_main(["corpus", "info", str(root)]) == 2
    assert "counts must be an object" in capsys.readouterr().err


# -- files: presence, size, checksum, links ------------------------------------------------------


def test_an_index_from_another_layer_or_corpus_is_refused_before_use(built, tiny_bert, tmp_path):
    root = craft.copy(built, tmp_path / "c")
    shutil.copy(root / "index/embedding_1.faiss", root / "index/embedding_0.faiss")
    corpus = ew.Corpus.open(root)  # fast: the index's checksum is checked when it is loaded
    corpus.search(np.ones(32), 1)
    with pytest.raises(ew.CorpusError, match=r"embedding_0\.faiss.*does not match its checksum"):
        corpus.search(np.ones(32), 0)
    with pytest.raises(ew.CorpusError, match=r"embedding_0\.faiss.*does not match its checksum"):
        ew.Corpus.open(root, verify="full")
    other = ew.build_corpus(OTHER_TEXT, tiny_bert, tmp_path / "other", progress=False)
    assert other.manifest["counts"]["tokens"] != craft.manifest(root)["counts"]["tokens"]
    shutil.copy(other.root / "index/context_1.faiss", root / "index/embedding_0.faiss")
    with pytest.raises(ew.CorpusError, match=r"embedding_0\.faiss: has \d+ bytes where the build"):
        ew.Corpus.open(root)


def test_deleted_flipped_or_forged_rotation_is_refused(built, tmp_path):
    root = craft.copy(built, tmp_path / "c")
    rotation = root / "index" / "rotation_32.faiss"
    raw = rotation.read_bytes()
    rotation.unlink()
    with pytest.raises(ew.CorpusError, match=r"incomplete: missing index/rotation_32\.faiss"):
        ew.Corpus.open(root)
    flipped = bytearray(raw)
    flipped[200] ^= 0x40  # a matrix entry
    rotation.write_bytes(bytes(flipped))
    with pytest.raises(ew.CorpusError, match=r"rotation_32\.faiss.*checksum"):
        ew.Corpus.open(root).search(np.ones(32), 0)
    craft.reseal(root)  # the manifest agrees: the matrix must still be a rotation
    with pytest.raises(ew.CorpusError, match=r"rotation_32\.faiss: is not a rotation"):
        ew.Corpus.open(root).search(np.ones(32), 0)


def test_truncated_and_header_flipped_indexes_fail_at_open(built, tmp_path):
    root = craft.copy(built, tmp_path / "c")
    path = root / "index" / "context_0.faiss"
    raw = path.read_bytes()
    path.write_bytes(raw[:-100])
    with pytest.raises(ew.CorpusError, match=r"context_0\.faiss: has \d+ bytes where the build"):
        ew.Corpus.open(root)
    craft.reseal(root)
    with pytest.raises(ew.CorpusError, match=r"context_0\.faiss: is truncated or corrupt"):
        ew.Corpus.open(root)
    path.write_bytes(raw)
    craft.patch(path, 4, (33).to_bytes(4, "little"))  # the dimension
    craft.reseal(root)
    with pytest.raises(ew.CorpusError, match="holds 33-dimensional vectors where 32 are expected"):
        ew.Corpus.open(root)
    path.write_bytes(raw)
    craft.patch(path, 0, b"IxF2")
    craft.reseal(root)
    with pytest.raises(ew.CorpusError, match="is a FAISS 'IxF2' index where this corpus's spec"):
        ew.Corpus.open(root)


def test_a_size_claim_is_checked_against_the_file_before_anything_is_allocated(built, tmp_path):
    """A codes size of 4 GiB in a small index file (manifest resealed to agree), opened in a
    child process that could not allocate 4 GiB: refused by name, without trying."""
    root = craft.copy(built, tmp_path / "c")
    path = root / "index" / "embedding_0.faiss"
    tokens = craft.manifest(root)["counts"]["tokens"]
    craft.set_u64(path, craft.sq_codes_size_offset(path, tokens, 24), 4 << 30)
    craft.reseal(root)
    outcome = craft.probe([root], memory=3 << 30)[str(root)]
    assert outcome.startswith("CorpusError") and "embedding_0.faiss" in outcome
    assert f"has {4 << 30} items where {tokens * 24} are expected" in outcome


def test_on_disk_inverted_lists_never_reach_a_search(built_ivf, tmp_path):
    """A valid IVF index whose lists live in another file (FAISS 'ilod'): the old reader mapped
    it with the mmap flag and the first search died of SIGSEGV. Checked in a child process."""
    root = craft.copy(built_ivf, tmp_path / "c")
    path = root / "index" / "embedding_0.faiss"
    index = faiss.read_index(str(path))
    ivf = faiss.extract_index_ivf(index)
    ondisk = faiss.OnDiskInvertedLists(ivf.nlist, ivf.code_size, str(tmp_path / "lists.ivfdata"))
    lists = ivf.invlists
    for i in range(ivf.nlist):
        if lists.list_size(i):
            ondisk.add_entries(i, lists.list_size(i), lists.get_ids(i), lists.get_codes(i))
    ondisk.this.disown()  # the index owns its lists from here
    ivf.replace_invlists(ondisk, True)
    faiss.write_index(index, str(path))
    craft.reseal(root)
    outcome = craft.probe([root])[str(root)]
    assert outcome.startswith("CorpusError")
    assert "embedding_0.faiss: holds on-disk inverted lists" in outcome


def test_an_ivf_direct_map_pointing_outside_its_lists_is_refused(built_ivf, tmp_path):
    root = craft.copy(built_ivf, tmp_path / "c")
    path = root / "index" / "context_1.faiss"
    index = faiss.read_index(str(path))
    ivf = faiss.extract_index_ivf(index)
    entries = faiss.vector_to_array(ivf.direct_map.array)
    entries[0] = (ivf.nlist + 5) << 32  # a list that does not exist
    faiss.copy_array_to_vector(entries, ivf.direct_map.array)
    faiss.write_index(index, str(path))
    craft.reseal(root)
    corpus = ew.Corpus.open(root)
    with pytest.raises(ew.CorpusError, match="direct map that does not match its inverted lists"):
        corpus.search(np.ones(32), 1, by="context")


def test_symlinks_and_special_files_are_refused(built, tmp_path):
    root = craft.copy(built, tmp_path / "c")
    outside = tmp_path / "elsewhere.faiss"
    shutil.move(root / "index" / "context_1.faiss", outside)
    (root / "index" / "context_1.faiss").symlink_to(outside)
    with pytest.raises(ew.CorpusError, match=r"context_1\.faiss is a symbolic link"):
        ew.Corpus.open(root)
    (root / "index" / "context_1.faiss").unlink()
    os.mkfifo(root / "index" / "context_1.faiss")  # would block a plain open() forever
    with pytest.raises(ew.CorpusError, match=r"context_1\.faiss is not a regular file"):
        ew.Corpus.open(root)


# -- the token table -----------------------------------------------------------------------------


def _edit_tokens(root, edit) -> None:
    with h5py.File(root / "tokens.h5", "r+") as f:
        edit(f)
    craft.reseal(root)


def test_byte_flips_in_the_token_table_fail_at_open(built, tmp_path):
    root = craft.copy(built, tmp_path / "c")
    path = root / "tokens.h5"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(ew.CorpusError, match=r"tokens\.h5: does not match its checksum"):
        ew.Corpus.open(root)


def test_an_unwritten_huge_dataset_is_refused_by_its_shape(built, tmp_path):
    """index_rows declared with 2**28 rows but never written: a few kB on disk, 2 GiB to read."""
    root = craft.copy(built, tmp_path / "c")

    def huge(f):
        del f["index_rows"]
        f.create_dataset("index_rows", shape=(1 << 28,), dtype=np.int64, chunks=(1 << 16,))

    _edit_tokens(root, huge)
    assert (root / "tokens.h5").stat().st_size < 2 << 20
    with pytest.raises(
        ew.CorpusError, match=r"has /index_rows of shape \(268435456,\) where \(\d+,\) is expected"
    ):
        ew.Corpus.open(root)


@pytest.mark.parametrize(
    ("what", "edit", "message"),
    [
        ("negative", lambda f: f["index_rows"].__setitem__(0, -1), "not a permutation"),
        ("duplicate", lambda f: f["index_rows"].__setitem__(1, 0), "not a permutation"),
        ("offsets", lambda f: f["sentence_offsets"].__setitem__(2, 0), "do not cut the token"),
        ("build", lambda f: f.attrs.__setitem__("build_id", "0" * 32), "from another build"),
        ("extra", lambda f: f.create_dataset("extra", data=[1]), "unexpected objects /extra"),
        (
            "dtype",
            lambda f: _retype(f, "tokens/word", np.float32),
            "has tokens/word of type float32",
        ),
    ],
)
def test_token_table_structure_and_values(built, tmp_path, what, edit, message):
    root = craft.copy(built, tmp_path / "c")
    _edit_tokens(root, edit)
    with pytest.raises(ew.CorpusError, match=message) as info:
        ew.Corpus.open(root)
    assert "tokens.h5" in str(info.value)


def _retype(f, name, dtype) -> None:
    data = f[name][:]
    del f[name]
    f.create_dataset(name, data=data.astype(dtype))


def test_external_storage_and_external_links_are_refused(built, tmp_path):
    """tokens.h5 reading a file outside the corpus: external raw storage, or an external link."""
    root = craft.copy(built, tmp_path / "c")
    outside = tmp_path / "outside.bin"

    def external(f):
        offsets = f["sentence_offsets"][:]
        outside.write_bytes(offsets.astype("<i8").tobytes())
        del f["sentence_offsets"]
        f.create_dataset(
            "sentence_offsets",
            shape=offsets.shape,
            dtype="<i8",
            external=[(str(outside), 0, 8 * len(offsets))],
        )

    _edit_tokens(root, external)
    with pytest.raises(ew.CorpusError, match="stores /sentence_offsets in external files"):
        ew.Corpus.open(root)
    root = craft.copy(built, tmp_path / "c2")
    other = tmp_path / "other.h5"
    with h5py.File(root / "tokens.h5", "r") as f, h5py.File(other, "w") as g:
        g.create_dataset("sentences", data=f["sentences"][:], dtype=h5py.string_dtype())

    def link(f):
        del f["sentences"]
        f["sentences"] = h5py.ExternalLink(str(other), "/sentences")

    _edit_tokens(root, link)
    with pytest.raises(ew.CorpusError, match="links /sentences elsewhere"):
        ew.Corpus.open(root)


def test_nan_head_norms_are_refused_when_read(built, tmp_path):
    root = craft.copy(built, tmp_path / "c")
    _edit_tokens(root, lambda f: f["context_head_norms"].__setitem__((1, 5, 0), np.nan))
    corpus = ew.Corpus.open(root)
    corpus.search(np.ones(32), 1, by="context")  # not restricted: the norms are not used
    with pytest.raises(ew.CorpusError, match=r"context_head_norms of layer 1 outside 0\.\.1"):
        corpus.search(np.ones(32), 1, by="context", heads=[0])


# -- old corpora ---------------------------------------------------------------------------------


def downgrade_to_format_2(root) -> None:
    """What a format-2 build wrote: no checksums, build id or token offsets."""
    with h5py.File(root / "tokens.h5", "r+") as f:
        for name in ("start", "end", "word_start", "word_end"):
            del f["tokens"][name]
        del f.attrs["build_id"]
    m = craft.manifest(root)
    for key in ("files", "build_id", "checksum"):
        del m[key]
    del m["counts"]["cut"]
    craft.write_manifest(root, {**m, "format_version": 2})


def test_format_2_opens_with_a_warning_and_the_structural_checks(built, tmp_path):
    root = craft.copy(built, tmp_path / "c")
    reference = _all_hits(ew.Corpus.open(built))
    downgrade_to_format_2(root)
    with pytest.warns(UserWarning, match="built before corpora carried checksums"):
        corpus = ew.Corpus.open(root)
    assert _all_hits(corpus) == reference
    hits = corpus.search(np.ones(32), 0, k=3)
    assert (hits.whole_word == hits.token).all() and (hits.word_start == -1).all()
    with h5py.File(root / "tokens.h5", "r+") as f:
        f["index_rows"][0] = -1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ew.CorpusError, match="not a permutation"):
            ew.Corpus.open(root)


# -- one build per open --------------------------------------------------------------------------


def test_an_open_corpus_keeps_serving_its_build_while_the_directory_is_rebuilt(
    built, tiny_bert, tmp_path
):
    """Open, search one layer, rebuild the same directory from another text, then search the
    layers not loaded yet: the hits, sentences and tokens are those of the first build, never
    new indexes read through the old token table. A fresh open sees the new build."""
    root = craft.copy(built, tmp_path / "c")
    pristine = ew.Corpus.open(craft.copy(built, tmp_path / "pristine"))
    corpus = ew.Corpus.open(root)
    corpus.search(np.ones(32), 0)  # embedding 0 loaded before the rebuild, the rest after
    first_sentence = corpus.sentences[0]
    rebuilt = ew.build_corpus(OTHER_TEXT, tiny_bert, root, progress=False)
    assert rebuilt.sentences[0] != first_sentence
    assert not (set(rebuilt.sentences[:]) & set(pristine.sentences[:]))
    assert _all_hits(corpus) == _all_hits(pristine)
    assert corpus.sentences[:] == pristine.sentences[:]
    assert corpus.tokens.equals(pristine.tokens)
    again = ew.Corpus.open(root)
    assert again.manifest["build_id"] == rebuilt.manifest["build_id"] != corpus.manifest["build_id"]
    assert again.sentences[:] == rebuilt.sentences[:]


def test_a_closed_corpus_says_so(built):
    corpus = ew.Corpus.open(built)
    corpus.close()
    with pytest.raises(ew.CorpusError, match="is closed; open it again"):
        corpus.search(np.ones(32), 0)
    # reads of the token table said so too, not KeyError or "build the corpus again"
    for read in (
        lambda: corpus.tokens,
        lambda: corpus.sentences[0],
        lambda: corpus.sentence_tokens(0),
        lambda: corpus.sentence_labels(0),
    ):
        with pytest.raises(ew.CorpusError, match="is closed; open it again"):
            read()


def test_something_that_is_not_a_model_is_an_input_error(built):
    """An AttributeError ('str' object has no attribute 'fingerprint') before."""
    corpus = ew.Corpus.open(built)
    for lm in (None, "prajjwal1/bert-tiny", 3):
        if lm is not None:  # search's default: no model to check
            with pytest.raises(
                ew.InputError, match=r"lm must be a model loaded with ew\.load_model"
            ):
                corpus.search(np.ones(32), 0, lm=lm)
        with pytest.raises(ew.InputError, match=r"lm must be a model loaded with ew\.load_model"):
            corpus.head_report(lm, progress=False)
        with pytest.raises(ew.InputError, match=r"lm must be a model loaded with ew\.load_model"):
            ew.demo_corpus(lm, progress=False)


def test_verify_modes(built):
    with pytest.raises(ew.InputError, match="verify must be 'fast' or 'full'"):
        ew.Corpus.open(built, verify="none")
    corpus = ew.Corpus.open(built, verify="full")
    assert all(held.verified for held in corpus._files.files.values())
    fast = ew.Corpus.open(built)
    assert [n for n, held in fast._files.files.items() if held.verified] == ["tokens.h5"]
    assert _all_hits(fast) == _all_hits(corpus)


# -- fast-scan indexes (IndexRefine of a fast-scan inverted file and SQ6 codes) ------------------


def _first_list_ids(path) -> tuple[int, int]:
    """(offset of the first non-empty block list's ids, their count) in a fast-scan index file."""
    raw = path.read_bytes()
    pos = raw.index(b"ilbl") + 4 + 4 * 8
    while True:
        (count,) = struct.unpack_from("<Q", raw, pos)
        if count:
            return pos + 8, count
        pos += 8 + 8  # an empty list: its ids' count, then its codes' count (0)


def test_a_fastscan_corpus_opens_verified_and_searches_like_its_own_files(built_fastscan):
    corpus = ew.Corpus.open(built_fastscan, verify="full")
    assert corpus.manifest["index"] == FASTSCAN
    hits = _all_hits(corpus)
    # the same hits from FAISS's own unverified read of the same files
    raw = faiss.read_index(str(built_fastscan / "index" / "embedding_1.faiss"))
    rot = faiss.read_VectorTransform(str(built_fastscan / "index" / "rotation_32.faiss"))
    loaded = corpus._index("embedding", 1)
    q = np.random.default_rng(3).normal(size=32).astype(np.float32)
    own = faiss.IndexPreTransform(rot, raw)
    np.testing.assert_array_equal(ix.search(loaded, q, 5)[0], ix.search(own, q, 5)[0])
    corpus.close()
    assert _all_hits(ew.Corpus.open(built_fastscan)) == hits


def test_fastscan_index_structure_is_checked_at_open(built_fastscan, built_ivf, tmp_path):
    root = craft.copy(built_fastscan, tmp_path / "c")
    path = root / "index" / "context_0.faiss"
    raw = path.read_bytes()
    at = raw.index(b"ilbl") + 4
    craft.set_u64(path, at + 16, 64)  # vectors per block: FAISS's fast-scan kernels need 32
    craft.reseal(root)
    with pytest.raises(ew.CorpusError, match="block inverted lists of another shape"):
        ew.Corpus.open(root)
    path.write_bytes(raw)
    ids_at, count = _first_list_ids(path)
    craft.set_u64(path, ids_at - 8, count + 10**9)  # a list claiming a billion ids
    craft.reseal(root)
    with pytest.raises(ew.CorpusError, match=r"context_0\.faiss: is truncated or corrupt"):
        ew.Corpus.open(root)
    path.write_bytes(raw)
    craft.patch(path, len(raw) - 4, struct.pack("<f", float("nan")))  # k_factor, the last field
    craft.reseal(root)
    with pytest.raises(ew.CorpusError, match="re-ranking factor of nan"):
        ew.Corpus.open(root)
    path.write_bytes(raw)
    craft.patch(path, raw.index(b"IwPf"), b"IwSq")
    craft.reseal(root)
    with pytest.raises(ew.CorpusError, match="candidate index other than a fast-scan"):
        ew.Corpus.open(root)
    # an index of a plain IVF corpus, sealed into the fast-scan corpus
    shutil.copy(built_ivf / "index" / "context_0.faiss", path)
    craft.reseal(root)
    with pytest.raises(ew.CorpusError, match=r"is a FAISS 'IwSq' index where .* needs 'IxRF'"):
        ew.Corpus.open(root)


def test_fastscan_ids_that_are_not_a_permutation_are_refused_before_a_search(
    built_fastscan, tmp_path
):
    root = craft.copy(built_fastscan, tmp_path / "c")
    path = root / "index" / "embedding_1.faiss"
    ids_at, count = _first_list_ids(path)
    assert count >= 2
    first = path.read_bytes()[ids_at : ids_at + 8]
    craft.patch(path, ids_at + 8, first)  # the list's second id = its first
    craft.reseal(root)
    corpus = ew.Corpus.open(root)  # structure intact: found when the index is loaded
    with pytest.raises(ew.CorpusError, match=r"ids are not 0\.\.ntotal-1, each once"):
        corpus.search(np.ones(32), 1)
