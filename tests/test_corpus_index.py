"""Index specs, the inverted-file path, re-ranked and head-restricted search, atomic replacement."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import faiss
import numpy as np
import pytest

import exbert_widget as ew
from exbert_widget.corpus import index as ix
from exbert_widget.corpus.out_dir import exchange, move_into_place

TEXT = [
    "The lighthouse keeper counted the ships that passed before the storm.",
    "Every evening she wrote the names of the boats in a green ledger.",
    "A fisherman who had lost his nets asked her for a cup of tea.",
    "The storm broke the old window, and rain ran across the ledger.",
    "In the morning the harbour was calm and the gulls were loud again.",
    "She dried the pages by the stove and copied the names once more.",
] * 3


def test_spec_parsing_and_auto_choice():
    assert str(ix.IndexSpec.parse("auto", expected_vectors=50_000)) == "RR,SQ6"
    big = ix.IndexSpec.parse("auto", expected_vectors=2_000_000)
    assert big.nlist >= 1024 and big.nprobe >= 32 and str(big).startswith("RR,IVF")
    assert str(big) == f"RR,IVF{big.nlist},PQx4fs,SQ6"  # fast-scan candidates, SQ6 re-ranking
    assert big.subquantizers(384) == 96 and big.subquantizers(4096) == 1024
    assert big.subquantizers(30) == 6  # no multiple of 4: the largest divisor up to a quarter
    texts = ("SQ8", "RR,SQ6", "IVF256,SQ4", "RR,IVF64,SQ6", "Flat", "RR,IVF64,PQ96x4fs,SQ6")
    for text in (*texts, "RR,IVF64,PQx4fs,SQ8"):
        assert str(ix.IndexSpec.parse(text)) == text
    assert ix.IndexSpec.parse("RR,IVF64,PQ96x4fs,SQ8").subquantizers(384) == 96
    with pytest.raises(ValueError, match="Unknown index spec"):
        ix.IndexSpec.parse("HNSW32")
    with pytest.raises(ValueError, match="needs an inverted file"):
        ix.IndexSpec.parse("RR,PQ96x4fs,SQ6")
    with pytest.raises(ValueError, match="do not divide"):
        ix.IndexSpec.parse("RR,IVF64,PQ7x4fs,SQ6").make(64)


def _clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    """Vectors like a transformer layer's: clusters of near-duplicates plus outlier dimensions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n // 50, d)).astype(np.float32)
    x = centres[rng.integers(0, len(centres), n)] + 0.3 * rng.normal(size=(n, d))
    x[:, :3] *= 8  # outlier dimensions
    return ix.normalise(x)


@pytest.mark.parametrize("spec", ["RR,SQ6", "RR,IVF64,SQ6", "RR,SQ8", "RR,IVF64,PQ32x4fs,SQ6"])
def test_reranked_search_recall_against_exact(spec):
    x = _clustered(20_000, 64)
    index = ix.IndexSpec.parse(spec).make(64, n_train=len(x))
    ix.train(index, x)
    index.add(x)
    queries = x[::400]
    exact = np.argsort(-(queries @ x.T), axis=1)[:, :50]
    recall = np.mean(
        [
            len(set(ix.search(index, q, 50)[0]) & set(t)) / 50
            for q, t in zip(queries, exact, strict=True)
        ]
    )
    assert recall >= 0.95, recall
    ids, scores = ix.search(index, queries[0], 50)
    assert ids[0] == 0 and np.all(np.diff(scores) <= 1e-7)
    np.testing.assert_allclose(scores, (x[ids] @ queries[0]), atol=0.02)


def test_fastscan_candidates_are_reranked_on_the_finer_codes():
    """A fast-scan spec: search = the fast-scan candidates (RERANK_FASTSCAN x k of them, as the
    inverted file itself returns them) re-ranked by a slow direct re-rank, one decoded vector at
    a time (FAISS's own reverse rotation), on the SQ6 codes kept beside them."""
    x = _clustered(8_000, 64, seed=2)
    index = ix.IndexSpec.parse("RR,IVF32,PQ8x4fs,SQ6").make(64, n_train=len(x))
    ix.train(index, x)
    index.add(x)
    inner = faiss.downcast_index(index.index)
    base, refine = faiss.downcast_index(inner.base_index), faiss.downcast_index(inner.refine_index)
    assert isinstance(base, faiss.IndexIVFPQFastScan) and isinstance(
        refine, faiss.IndexScalarQuantizer
    )
    rotation = faiss.downcast_VectorTransform(index.chain.at(0))
    for q in x[::1000]:
        ids, scores = ix.search(index, q, 20)
        assert ix.rerank_factor(index) == ix.RERANK_FASTSCAN
        _, cand = base.search(rotation.apply(q[None]), ix.RERANK_FASTSCAN * 20)
        decoded = np.stack(
            [rotation.reverse_transform(refine.reconstruct(int(i))[None])[0] for i in cand[0]]
        )
        cosine = decoded @ q / np.linalg.norm(decoded, axis=1)
        order = np.argsort(-cosine, kind="stable")[:20]
        np.testing.assert_array_equal(ids, cand[0][order])
        np.testing.assert_allclose(scores, cosine[order], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spec", ["RR,SQ6", "RR,IVF16,PQ8x4fs,SQ6"])
def test_reranking_in_reused_scratch_matches_fresh_decoding_across_threads(spec):
    """Re-ranking decodes into per-thread scratch arrays: two threads re-ranking different
    candidates at once, and candidate sets above the scratch size, give exactly what decoding
    every candidate afresh (FAISS's own sa_decode of all codes) gives."""
    x = _clustered(6_000, 64, seed=3)
    index = ix.IndexSpec.parse(spec).make(64, n_train=len(x))
    ix.train(index, x)
    index.add(x)
    inner = faiss.downcast_index(index.index)
    flat = faiss.downcast_index(inner.refine_index) if ix._refined(index) else inner
    rotation = faiss.downcast_VectorTransform(index.chain.at(0))
    every = flat.sa_decode(faiss.vector_to_array(flat.codes).reshape(flat.ntotal, -1))

    def expected(q, ids):
        decoded = every[ids]
        cosine = decoded @ rotation.apply(q[None])[0] / np.linalg.norm(decoded, axis=1)
        order = np.argsort(-cosine, kind="stable")
        return ids[order], cosine[order]

    rng = np.random.default_rng(0)
    cases = [(x[i], rng.choice(len(x), n, replace=False)) for i, n in
             [(1, 300), (2, 50), (3, ix.SCRATCH_ROWS + 100), (4, 1000)] * 3]  # fmt: skip

    def run(case):
        q, ids = case
        return ix.on_search_thread(lambda: ix.rerank(index, ix.normalise(q), ids, None))

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, cases))
    for (q, ids), (got_ids, got_scores) in zip(cases, results, strict=True):
        want_ids, want_scores = expected(ix.normalise(q), ids)
        np.testing.assert_array_equal(got_ids, want_ids)
        np.testing.assert_allclose(got_scores, want_scores, rtol=1e-5, atol=1e-6)


def test_fastscan_search_with_held_norms_equals_decoding_the_candidates(monkeypatch):
    """Unsharded fast-scan specs re-rank by FAISS's own IndexRefine divided by the norms of
    every decoded code (computed once): the same hits and cosines as decoding the candidates in
    Python (the path sharded corpora take), plain and filtered (where more candidates and
    lists are fetched); the norms are those of FAISS's own decoding, computed again once the
    index holds more vectors."""
    x = _clustered(8_000, 64, seed=4)
    index = ix.IndexSpec.parse("RR,IVF32,PQ8x4fs,SQ6").make(64, n_train=len(x))
    ix.train(index, x)
    index.add(x[:6_000])
    ix.prepare(index, 2)
    flat = faiss.downcast_index(faiss.downcast_index(index.index).refine_index)

    def searches():
        plain = [ix.search(index, q, 20) for q in x[::700]]
        sparse = [ix.search(index, q, 20, accept=lambda ids: ids % 9 == 0) for q in x[1::1500]]
        return plain + sparse

    held = searches()
    norms = ix.code_norms(index)
    assert norms is not None
    decoded = flat.sa_decode(faiss.vector_to_array(flat.codes).reshape(flat.ntotal, -1))
    np.testing.assert_allclose(norms, np.linalg.norm(decoded, axis=1), rtol=1e-6)
    with monkeypatch.context() as patch:
        patch.setattr(ix, "code_norms", lambda index: None)
        decoding = searches()
    for (ids, scores), (want_ids, want_scores) in zip(held, decoding, strict=True):
        assert len(ids) == 20 and set(ids.tolist()) == set(want_ids.tolist())
        np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-6)
    index.add(x[6_000:])
    again = ix.code_norms(index)
    assert again is not None and len(again) == 8_000
    np.testing.assert_array_equal(again[:6_000], norms)


def test_masked_search_is_brute_force_restricted_cosine_on_decoded_vectors():
    x = _clustered(5_000, 48, seed=1)
    index = ix.IndexSpec.parse("RR,SQ8").make(48)
    ix.train(index, x)
    index.add(x)
    mask = np.zeros(48, bool)
    mask[8:16] = mask[32:40] = True
    ids, scores = ix.search(index, x[7], 10, mask=mask, candidates=5_000)
    decoded = np.where(mask, ix.reconstruct(index, np.arange(5_000)), 0)
    q = np.where(mask, x[7], 0)
    brute = decoded @ q / np.linalg.norm(decoded, axis=1) / np.linalg.norm(q)
    np.testing.assert_array_equal(ids, np.argsort(-brute, kind="stable")[:10])
    np.testing.assert_allclose(scores, brute[ids], rtol=1e-5)
    full_ids, _ = ix.search(index, x[7], 10)
    assert list(full_ids) != list(ids)


def test_ivf_corpus_builds_opens_and_searches(tiny_dirs, tmp_path):
    lm = ew.load_model(tiny_dirs["bert"])
    corpus = ew.build_corpus(TEXT, lm, tmp_path / "ivf", index="RR,IVF8,SQ6", progress=False)
    assert corpus.manifest["index"] == "RR,IVF8,SQ6"
    encs = [lm.encode(s) for s in corpus.sentences[:]]
    results = lm.forward(encs, attentions=False)
    stored = {
        "embedding": ix.normalise(np.concatenate([r.hidden_states[2] for r in results])),
        "context": ix.normalise(np.concatenate([r.contexts[1] for r in results])),
    }
    rows_of = corpus._offsets
    for row in (3, 40, len(corpus.tokens) - 2):
        for by, x in stored.items():
            hits = corpus.search(x[row], layer=1, by=by, k=5)
            got = rows_of[hits.sentence_id.to_numpy()] + hits.token_index.to_numpy()
            exact = x @ x[row]
            # the best hit is (one of) the exactly nearest, and its score is its cosine
            assert exact[got[0]] >= exact.max() - 0.01
            np.testing.assert_allclose(hits.score, exact[got], atol=0.02)
    # one query at a time: its lists are scanned on all threads, not one
    assert faiss.extract_index_ivf(corpus._index("embedding", 1)).parallel_mode == 1


def test_search_with_another_model_is_refused(tiny_dirs, minilm, tmp_path):
    lm = ew.load_model(tiny_dirs["bert"])
    corpus = ew.build_corpus(TEXT[:6], lm, tmp_path / "c", progress=False)
    vec = np.ones(lm.hidden_size, np.float32)
    assert len(corpus.search(vec, 0, k=3, lm=lm)) == 3
    with pytest.raises(ew.CorpusError) as info:
        corpus.search(vec, 0, k=3, lm=minilm)
    assert lm.name in str(info.value) and minilm.name in str(info.value)


def test_replacement_is_one_atomicexchange(tmp_path):
    new, out = tmp_path / ".out.building-1", tmp_path / "out"
    new.mkdir()
    (new / "manifest.json").write_text("new")
    out.mkdir()
    (out / "manifest.json").write_text("old")
    assert exchange(new, out)  # Linux renameat2(RENAME_EXCHANGE)
    assert (out / "manifest.json").read_text() == "new"
    assert (new / "manifest.json").read_text() == "old"
    move_into_place(new, out)  # swaps back, then removes what was swapped out
    assert (out / "manifest.json").read_text() == "old" and not new.exists()
    stray = tmp_path / "home"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    other = tmp_path / ".x"
    other.mkdir()
    with pytest.raises(ew.CorpusError, match="not a corpus"):
        move_into_place(other, stray)
    assert (stray / "notes.txt").read_text() == "mine"


def test_corrupt_token_table_is_refused(tiny_dirs, tmp_path):
    lm = ew.load_model(tiny_dirs["bert"])
    corpus = ew.build_corpus(TEXT[:6], lm, tmp_path / "c", progress=False)
    corpus.close()
    path = corpus.root / "tokens.h5"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ew.CorpusError, match=r"tokens\.h5: has 100 bytes where the build wrote"):
        ew.Corpus.open(corpus.root)


@pytest.mark.parametrize("spec", ["auto", "RR,IVF16,PQ96x4fs,SQ6"])
def test_head_restricted_search_scans_beyond_the_candidates(minilm, tmp_path, spec):
    """On a corpus several times larger than the re-ranked candidate set, the restricted top hits
    are still those of a brute-force restricted cosine over the exact float32 vectors (with a
    fast-scan spec too: its scan scores by the 4-bit codes, its re-rank by the SQ6 ones)."""
    from tests import tiny_models

    lm = minilm
    text = tiny_models.SAMPLE_TEXT.read_text(encoding="utf-8")[:10_000]
    corpus = ew.build_corpus([text], lm, tmp_path / "c", index=spec, progress=False)
    n = corpus.manifest["counts"]["tokens"]
    assert n > 2_000
    results = lm.forward([lm.encode(s) for s in corpus.sentences[:]], attentions=False)
    x = np.concatenate([r.contexts[1] for r in results])
    heads, hd = [0, 6], lm.context_size // lm.num_heads
    mask = np.zeros(lm.context_size, bool)
    mask[:hd] = mask[6 * hd : 7 * hd] = True
    xs = np.where(mask, x, 0)
    xs = xs / np.maximum(np.linalg.norm(xs, axis=1, keepdims=True), 1e-12)
    overlap = []
    for row in range(0, n, n // 20):
        hits = corpus.search(x[row], layer=1, by="context", k=10, heads=heads)
        got = corpus._offsets[hits.sentence_id.to_numpy()] + hits.token_index.to_numpy()
        brute = xs @ xs[row]
        overlap.append(len(set(got) & set(np.argsort(-brute)[:10])) / 10)
        # SQ6 decoding error over two heads (64 of 384 dimensions): up to ~0.035 at the tail
        np.testing.assert_allclose(hits.score, brute[got], atol=0.035)
        assert brute[got].min() >= np.sort(brute)[-10] - 0.04  # as good as the true top 10
    assert np.mean(overlap) >= 0.8, overlap
    full = corpus.search(x[5], layer=1, by="context", k=10)
    assert list(full.score) != list(corpus.search(x[5], 1, by="context", k=10, heads=heads).score)


def test_fast_paths_agree_with_faiss():
    """reconstruct() rotates back with numpy and scan() uses a k-NN search over a flat index:
    both give what FAISS's own reverse transform and range search give."""
    x = _clustered(3_000, 64)
    index = ix.IndexSpec.parse("RR,SQ6").make(64, n_train=len(x))
    ix.train(index, x)
    index.add(x)
    ids = np.array([5, 17, 2_999, 0])
    np.testing.assert_allclose(ix.reconstruct(index, ids), index.reconstruct_batch(ids), atol=1e-5)
    ids, scores = ix.scan(index, x[3])
    assert sorted(ids.tolist()) == list(range(len(x)))
    _, ref_scores, ref_ids = index.range_search(ix.normalise(x[3])[None], -3.0e38)
    ref = dict(zip(ref_ids.tolist(), ref_scores.tolist(), strict=True))
    np.testing.assert_allclose(scores, [ref[i] for i in ids.tolist()], atol=1e-5)


def test_batches_respect_the_sentence_and_token_budgets():
    from exbert_widget.corpus.build import TOKENS_PER_SENTENCE, _batches

    lengths = [3, 5, 5, 8, 9, 20, 40, 41, 90, 200, 7, 7]
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches = list(_batches(order, lengths, 4))
    assert [i for b in batches for i in b] == order
    for b in batches:
        assert len(b) <= 4
        width = max(lengths[i] for i in b)
        assert len(b) == 1 or len(b) * width <= TOKENS_PER_SENTENCE * 4


def test_training_is_deterministic_and_per_dimension():
    """ix.train gives the same quantiser ranges every time, each dimension its own: FAISS's
    multi-threaded range training mixes dimensions up (see ix.train)."""
    rng = np.random.default_rng(0)
    scale = np.linspace(0.1, 3.0, 96, dtype=np.float32)
    x = rng.standard_normal((600, 96)).astype(np.float32) * scale
    runs = set()
    for _ in range(5):
        index = ix.IndexSpec.parse("SQ6").make(96, rotate=False)
        ix.train(index, x)
        runs.add(faiss.vector_to_array(ix._sq(index).trained).tobytes())
    assert len(runs) == 1
    trained = np.frombuffer(runs.pop(), dtype=np.float32)
    np.testing.assert_allclose(trained[:96], x.min(axis=0))  # 600 vectors: Q(0.0005) = min
    np.testing.assert_allclose(trained[96:], x.max(axis=0) - x.min(axis=0), rtol=1e-6)


@pytest.mark.parametrize(
    ("dim", "block"), [(384, 128), (768, 128), (312, 104), (96, 96), (131, 131)]
)
def test_block_rotation_is_orthogonal_and_the_build_applies_it_as_faiss_does(dim, block):
    """The rotation is block-diagonal (blocks of up to 128 dimensions, one dense block where
    the dimension has no divisor from 32 to 128) and orthogonal; the build's batched-block
    matmul gives what FAISS's transform gives."""
    import torch

    from exbert_widget.corpus.build import _rotate

    blocks = ix.rotation_blocks(dim)
    assert blocks.shape == (dim // block, block, block)
    a = ix.rotation_matrix(dim)
    np.testing.assert_allclose(a @ a.T, np.eye(dim), atol=1e-5)
    mask = np.kron(np.eye(dim // block), np.ones((block, block))) > 0
    assert not a[~mask].any() and np.count_nonzero(a[mask]) == mask.sum()
    x = np.random.default_rng(1).standard_normal((2, 7, dim)).astype(np.float32)
    ours = _rotate(torch.from_numpy(x), torch.from_numpy(blocks.transpose(0, 2, 1).copy()))
    faiss_rotated = ix.rotation(dim).apply(x.reshape(-1, dim)).reshape(x.shape)
    np.testing.assert_allclose(ours.numpy(), faiss_rotated, atol=1e-5)
    np.testing.assert_allclose(faiss_rotated, x @ a.T, atol=1e-5)


def test_rotated_index_saves_and_loads_its_block_rotation(tmp_path):
    """An index saved with its rotation in a separate file reads back (through the checked
    reader) as the same rotation in front of the same codes."""
    from exbert_widget.corpus.faiss_file import IndexShape, read_index, read_rotation
    from exbert_widget.corpus.files import BuildFiles

    x = _clustered(2_000, 64)
    index = ix.IndexSpec.parse("RR,SQ6").make(64)
    ix.train(index, x)
    index.add(x)
    ix.save(index, tmp_path / "embedding_0.faiss")
    files = BuildFiles(tmp_path, dict.fromkeys(["embedding_0.faiss", "rotation_64.faiss"]))
    inner = read_index(files["embedding_0.faiss"], IndexShape(64, 2_000, "SQ6"))
    loaded = faiss.IndexPreTransform(read_rotation(files["rotation_64.faiss"], 64), inner)
    vt, _ = ix._rotated(loaded)
    np.testing.assert_array_equal(
        faiss.vector_to_array(vt.A).reshape(64, 64), ix.rotation_matrix(64)
    )
    assert vt.is_orthonormal
    ids = np.array([0, 9, 1_999])
    np.testing.assert_array_equal(ix.reconstruct(loaded, ids), ix.reconstruct(index, ids))
    np.testing.assert_array_equal(ix.search(loaded, x[9], 5)[0], ix.search(index, x[9], 5)[0])
    files.close()
