"""Search with sentence options (exclude_sentences, max_per_sentence) against a brute-force
reference over the stored vectors: k hits whenever the corpus has them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import exbert_widget as ew
from exbert_widget.corpus import index as ix
from tests import tiny_models

TEXT = [p for p in tiny_models.SAMPLE_TEXT.read_text(encoding="utf-8").split("\n\n") if p.strip()]


@pytest.fixture(scope="module")
def tiny_bert(tiny_dirs):
    return ew.load_model(tiny_dirs["bert"])


@pytest.fixture(scope="module")
def flat(tiny_bert, tmp_path_factory):
    """An exact index: search and brute force must agree hit for hit."""
    root = tmp_path_factory.mktemp("s") / "flat"
    return ew.build_corpus(TEXT[:12], tiny_bert, root, index="Flat", progress=False)


@pytest.fixture(scope="module")
def ivf(tiny_bert, tmp_path_factory):
    """An inverted file (64 lists)."""
    root = tmp_path_factory.mktemp("s") / "ivf"
    return ew.build_corpus(TEXT[:40], tiny_bert, root, index="RR,IVF64,SQ6", progress=False)


def brute_force(corpus, query, layer, by, k, exclude=(), most=None, heads=None):
    """(sentence_id, token_index, score) of the best k by cosine over every decoded stored
    vector, best first, skipping excluded sentences and keeping at most ``most`` a sentence."""
    index = corpus._index(by, layer)
    n = corpus.manifest["counts"]["tokens"]
    x = ix.reconstruct(index, np.arange(n)).astype(np.float64)
    q = np.asarray(query, dtype=np.float64)
    if heads is not None:
        width = corpus.manifest["context_size"] // corpus.manifest["heads"]
        mask = np.zeros(len(q), bool)
        for h in heads:
            mask[h * width : (h + 1) * width] = True
        x, q = np.where(mask, x, 0), np.where(mask, q, 0)
    scores = x @ (q / np.linalg.norm(q)) / np.maximum(np.linalg.norm(x, axis=1), 1e-12)
    rows = corpus._index_rows
    sentence = np.searchsorted(corpus._offsets, rows, side="right") - 1
    token = rows - corpus._offsets[sentence]
    out, per = [], {}
    for pos in np.argsort(-scores, kind="stable"):
        s = int(sentence[pos])
        if s in exclude or (most is not None and per.get(s, 0) >= most):
            continue
        per[s] = per.get(s, 0) + 1
        out.append((s, int(token[pos]), float(scores[pos])))
        if len(out) == k:
            break
    return out


def _triples(hits):
    return list(
        zip(hits.sentence_id.tolist(), hits.token_index.tolist(), hits.score.tolist(), strict=True)
    )


def _assert_same(hits, reference):
    got = _triples(hits)
    assert [(s, t) for s, t, _ in got] == [(s, t) for s, t, _ in reference]
    np.testing.assert_allclose([g[2] for g in got], [r[2] for r in reference], atol=1e-5)


@pytest.mark.parametrize("by", ["embedding", "context"])
def test_sentence_options_equal_brute_force_on_an_exact_index(flat, by):
    rng = np.random.default_rng(0)
    n = len(flat.sentences)
    for trial in range(6):
        q = rng.normal(size=32)
        plain = flat.search(q, 1, by=by, k=30)
        _assert_same(plain, brute_force(flat, q, 1, by, 30))
        exclude = {int(s) for s in plain.sentence_id[:3]} | {int(s) for s in rng.integers(0, n, 5)}
        most = [None, 1, 2][trial % 3]
        hits = flat.search(
            q, 1, by=by, k=30, exclude_sentences=sorted(exclude), max_per_sentence=most
        )
        _assert_same(hits, brute_force(flat, q, 1, by, 30, exclude, most))
        assert len(hits) == 30 and not set(hits.sentence_id) & exclude
        if most is not None:
            assert hits.sentence_id.value_counts().max() <= most


def test_head_restricted_search_with_sentence_options(flat):
    rng = np.random.default_rng(1)
    q = rng.normal(size=32)
    heads = [1, 3]
    plain = flat.search(q, 0, by="context", k=20, heads=heads)
    _assert_same(plain, brute_force(flat, q, 0, "context", 20, heads=heads))
    exclude = set(plain.sentence_id[:4].tolist())
    hits = flat.search(
        q, 0, by="context", k=20, heads=heads, exclude_sentences=exclude, max_per_sentence=1
    )
    _assert_same(hits, brute_force(flat, q, 0, "context", 20, exclude, 1, heads=heads))


def test_k_hits_when_the_corpus_has_them_and_all_there_are_when_not(flat):
    n = len(flat.sentences)
    keep = [2, 7]
    exclude = [s for s in range(n) if s not in keep]
    lengths = np.diff(flat._offsets)[keep]
    q = np.ones(32)
    hits = flat.search(q, 0, k=500, exclude_sentences=exclude)
    assert len(hits) == lengths.sum() and set(hits.sentence_id) == set(keep)
    hits = flat.search(q, 0, k=500, exclude_sentences=exclude, max_per_sentence=3)
    assert len(hits) == 6
    hits = flat.search(q, 0, k=5, max_per_sentence=1)
    assert len(hits) == 5 and hits.sentence_id.is_unique


def test_an_inverted_file_visits_more_lists_until_k_hits(ivf):
    """Only the three sentences farthest from the query are allowed: the lists the query visits
    hold fewer than k of their tokens, so the search must visit more. As approximate as a plain
    inverted-file search (the nearest lists first), never short of hits."""
    index = ivf._index("embedding", 1)
    inner, (rotation, _) = ix._ivf(index), ix._rotated(index)
    inner.nprobe = 2  # as on a large corpus: a few lists of many
    overlaps = []
    for seed in range(5):
        q = np.random.default_rng(seed).normal(size=32)
        reference = brute_force(ivf, q, 1, "embedding", ivf.manifest["counts"]["tokens"])
        far = list(dict.fromkeys(s for s, _, _ in reversed(reference)))[:3]
        exclude = [s for s in range(len(ivf.sentences)) if s not in far]
        _, lists = inner.quantizer.search(rotation.apply(ix.normalise(q)[None]), inner.nprobe)
        visited = np.concatenate([_list_ids(inner, int(i)) for i in lists[0]])
        allowed = np.isin(ivf._sentence_of_position(visited), far)
        assert allowed.sum() < 25  # the premise: the first lists cannot give 25 hits
        hits = ivf.search(q, 1, k=25, exclude_sentences=exclude)
        expected = brute_force(ivf, q, 1, "embedding", 25, set(exclude))
        assert len(hits) == 25 and set(hits.sentence_id) <= set(far)
        exact = {(s, t): score for s, t, score in reference}
        np.testing.assert_allclose(
            hits.score,
            [exact[s, t] for s, t in zip(hits.sentence_id, hits.token_index, strict=True)],
            atol=1e-5,
        )
        got = set(zip(hits.sentence_id, hits.token_index, strict=True))
        overlaps.append(len(got & {(s, t) for s, t, _ in expected}) / 25)
    assert np.mean(overlaps) >= 0.7, overlaps


def _list_ids(ivf_index, i: int) -> np.ndarray:
    import faiss

    lists = ivf_index.invlists
    return faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()


def test_sentence_options_on_a_quantised_index_match_brute_force_closely(ivf):
    rng = np.random.default_rng(3)
    overlaps = []
    for _ in range(10):
        q = rng.normal(size=32)
        hits = ivf.search(q, 0, by="context", k=20, max_per_sentence=2)
        reference = brute_force(ivf, q, 0, "context", 20, most=2)
        overlaps.append(
            len(
                set(zip(hits.sentence_id, hits.token_index, strict=True))
                & {(s, t) for s, t, _ in reference}
            )
            / 20
        )
        assert len(hits) == 20 and hits.sentence_id.value_counts().max() <= 2
    assert np.mean(overlaps) >= 0.9, overlaps


def test_sentence_option_refusals(flat):
    with pytest.raises(ew.InputError, match="exclude_sentences must hold sentence ids"):
        flat.search(np.ones(32), 0, exclude_sentences=[len(flat.sentences)])
    with pytest.raises(ew.InputError, match="max_per_sentence must be None or at least 1"):
        flat.search(np.ones(32), 0, max_per_sentence=0)
    with pytest.raises(ew.InputError, match="k must be at least 1"):
        flat.search(np.ones(32), 0, k=0)


def test_whole_words_of_hits_are_the_sentence_words(flat):
    hits = flat.search(np.ones(32), 1, k=40)
    for hit in hits.itertuples():
        words = flat.sentence_words(hit.sentence_id).iloc[hit.token_index]
        assert (hit.whole_word, hit.word_start, hit.token_start) == (
            words.whole_word,
            words.word_start,
            words.token_start,
        )
        if hit.word_start >= 0:
            assert hit.sentence[hit.word_start : hit.word_end] == hit.whole_word
            assert hit.word_start <= hit.token_start < hit.token_end <= hit.word_end


def test_hits_are_the_token_table_rows_with_the_dtypes_pandas_infers(flat):
    """Hits are built from string arrays taken row by row (not converted per search): the
    values are the token table's and the sentences', and each column's dtype is the one pandas
    itself infers for those values."""
    hits = flat.search(np.ones(32), 1, k=40)
    table = flat.tokens.set_index(["sentence_id", "token_index"])
    rows = table.loc[list(zip(hits.sentence_id, hits.token_index, strict=True))]
    for name in ("token", "pos", "dep", "ent"):
        assert hits[name].tolist() == rows[name].astype(object).tolist()
    assert hits.sentence.tolist() == [flat.sentences[s] for s in hits.sentence_id]
    strings = ["token", "pos", "dep", "ent", "sentence", "whole_word"]
    inferred = pd.DataFrame({name: hits[name].tolist() for name in strings})
    for name in strings:
        assert hits[name].dtype == inferred[name].dtype, name


BAD_ARGUMENTS = [
    ({"k": 2.5}, "k must be an integer"),
    ({"k": 3.0}, "k must be an integer"),
    ({"k": "5"}, "k must be an integer"),
    ({"k": None}, "k must be an integer"),
    ({"k": True}, "k must be an integer"),
    ({"layer": 0.5}, "layer must be an integer"),
    ({"layer": "0"}, "layer must be an integer"),
    ({"layer": None}, "layer must be an integer"),
    ({"vector": "hello"}, "must be a vector of 32 numbers"),
    ({"vector": np.full(32, np.nan)}, "NaN or infinite"),
    ({"vector": np.r_[np.inf, np.ones(31)]}, "NaN or infinite"),
    ({"vector": np.zeros(32)}, "all zeros"),
    ({"by": "context", "heads": [0.5]}, "heads must be a non-empty list"),
    ({"by": "context", "heads": 1}, "heads must be a non-empty list"),
    ({"by": "context", "heads": "01"}, "heads must be a non-empty list"),
    ({"by": "context", "heads": [*range(4), 99]}, "heads must be a non-empty list"),
    ({"by": "context", "heads": [-1]}, "heads must be a non-empty list"),
    ({"by": "context", "heads": [0], "vector": np.r_[np.zeros(8), np.ones(24)]}, "all zeros in"),
    ({"exclude_sentences": 3}, "exclude_sentences must hold sentence ids"),
    ({"exclude_sentences": ["a"]}, "exclude_sentences must hold sentence ids"),
    ({"exclude_sentences": [1.5]}, "exclude_sentences must hold sentence ids"),
    ({"exclude_sentences": [-1]}, "exclude_sentences must hold sentence ids"),
    ({"max_per_sentence": True}, "max_per_sentence must be an integer"),
    ({"max_per_sentence": 1.0}, "max_per_sentence must be an integer"),
]


@pytest.mark.parametrize(("change", "message"), BAD_ARGUMENTS)
def test_odd_search_arguments_raise_input_errors_naming_them(flat, change, message):
    """Not-integers, non-finite or zero queries, heads out of range (even among all heads):
    an InputError naming the argument, never a TypeError, IndexError or FAISS error."""
    assert flat.manifest["heads"] == 4 and flat.manifest["context_size"] == 32
    args = {"vector": np.ones(32), "layer": 0, "k": 5, **change}
    with pytest.raises(ew.InputError, match=message):
        flat.search(args.pop("vector"), args.pop("layer"), **args)


def test_numpy_integers_are_integers(flat):
    """k, layer, heads, ids and max_per_sentence taken from numpy arrays give the same hits as
    Python ints, equal to brute force."""
    q = np.random.default_rng(2).normal(size=32)
    hits = flat.search(
        q,
        np.int64(1),
        by="context",
        k=np.int32(7),
        heads=np.array([1, 2]),
        exclude_sentences=np.array([0, 3]),
        max_per_sentence=np.int64(2),
    )
    _assert_same(hits, brute_force(flat, q, 1, "context", 7, {0, 3}, 2, heads=[1, 2]))


def test_a_head_named_twice_counts_once(flat):
    """Duplicates restrict to the distinct heads, also when there are as many names as heads
    (which used to search all heads)."""
    q = np.random.default_rng(3).normal(size=32)
    _assert_same(
        flat.search(q, 0, by="context", k=10, heads=[3, 1, 3]),
        brute_force(flat, q, 0, "context", 10, heads=[1, 3]),
    )
    _assert_same(
        flat.search(q, 0, by="context", k=10, heads=[2, 2, 2, 2]),
        brute_force(flat, q, 0, "context", 10, heads=[2]),
    )


def test_sentence_ids_out_of_range_or_not_integers(flat):
    """An InputError (also an IndexError, so iteration over the sentences still ends)."""
    n = len(flat.sentences)
    assert list(flat.sentences) == [flat.sentences[i] for i in range(n)] == flat.sentences[:]
    assert flat.sentences[-1] == flat.sentences[n - 1]
    assert flat.sentences[np.int64(2)] == flat.sentences[2]
    for bad in (n, -n - 1, 1.5, "1", None):
        with pytest.raises(ew.InputError, match="sentence_id") as info:
            flat.sentences[bad]
        assert isinstance(info.value, IndexError)
    for method in (flat.sentence_tokens, flat.sentence_labels, flat.sentence_words):
        for bad in (n, -1, 1.5, "1"):
            with pytest.raises(ew.InputError, match="sentence_id"):
                method(bad)
    assert flat.sentence_tokens(np.int64(2)).equals(flat.sentence_tokens(2))


def test_sentences_slice_like_a_list(flat):
    """A negative step used to fail as a damaged token table ('build the corpus again')."""
    every = [flat.sentences[i] for i in range(len(flat.sentences))]
    for cut in (
        slice(None, None, -1),
        slice(None, None, -3),
        slice(8, 2, -2),
        slice(2, 8, -1),
        slice(None, None, 2),
        slice(-3, None),
        slice(1, 10_000),
        slice(5, 2),
    ):
        assert flat.sentences[cut] == every[cut], cut
    with pytest.raises(ew.InputError, match="slice step cannot be zero"):
        flat.sentences[::0]


def test_torch_queries_of_any_dtype_or_with_grad(flat):
    """A tensor that requires grad failed with torch's RuntimeError, a bfloat16 one was refused."""
    import torch

    q = np.random.default_rng(4).normal(size=32).astype(np.float32)
    reference = flat.search(q, 0, k=8)
    for tensor in (
        torch.tensor(q, requires_grad=True),
        torch.tensor(q)[None],
        torch.tensor(q, dtype=torch.float64),
    ):
        pd.testing.assert_frame_equal(flat.search(tensor, 0, k=8), reference)
    half = torch.tensor(q, dtype=torch.bfloat16)
    _assert_same(
        flat.search(half, 0, k=8), brute_force(flat, half.float().numpy(), 0, "embedding", 8)
    )


def test_an_inverted_file_of_one_list_searches(tiny_bert, tmp_path):
    """A corpus too small for two lists gets one, visited by one probe: its search failed in
    FAISS ('cur_nprobe > 0') when the probe was split over two threads."""
    one = ["The cat sat on the mat near the door."]  # 12 vectors: fewer than 8 per list
    corpus = ew.build_corpus(one, tiny_bert, tmp_path / "c", index="IVF2,SQfp16", progress=False)
    assert ix._ivf(corpus._index("embedding", 0)).nlist == 1
    q = np.random.default_rng(5).normal(size=32)
    _assert_same(corpus.search(q, 0, k=10), brute_force(corpus, q, 0, "embedding", 10))


def test_a_fast_scan_spec_on_too_few_vectors_is_a_corpus_error(tiny_bert, tmp_path):
    """FAISS's RuntimeError ('Number of training points (12) should be at least as large as
    number of clusters (16)') before."""
    with pytest.raises(ew.CorpusError, match="needs at least 16 vectors to train; the corpus has"):
        ew.build_corpus(
            ["The cat sat on the mat near the door."],
            tiny_bert,
            tmp_path / "c",
            index="IVF4,PQ8x4fs,SQ6",
            progress=False,
        )
    assert not (tmp_path / "c").exists()
