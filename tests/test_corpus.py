"""Corpus build, storage and search, checked against spaCy, the model and exact search."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import faiss
import numpy as np
import pytest

import exbert_widget as ew
from exbert_widget.cli import main as cli_main
from exbert_widget.corpus.annotate import load_spacy
from exbert_widget.corpus.text import read_paragraphs
from tests import tiny_models

PARAGRAPHS = [
    p.strip()
    for p in tiny_models.SAMPLE_TEXT.read_text(encoding="utf-8").split("\n\n")
    if p.strip() and not p.strip().isupper()
]


def _book(paragraphs: list[str]) -> str:
    """A book as found in the wild: BOM, CRLF, title page, markers, chapter headings."""
    parts = ["THE KESTREL PAPERS", "BY A. N. AUTHOR", "[Illustration: a harbour]", "CHAPTER I"]
    for i, p in enumerate(paragraphs):
        parts.append(p)
        if i == 2:
            parts += ["[Illustration]", "CHAPTER II.  THE WRECK"]
    return "\ufeff" + "\r\n\r\n".join(parts) + "\r\n"


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    path = tmp_path_factory.mktemp("book") / "book.txt"
    path.write_bytes(_book(PARAGRAPHS[:5]).encode("utf-8"))
    return path


@pytest.fixture(scope="module")
def corpus(minilm, book, tmp_path_factory) -> ew.Corpus:
    return ew.build_corpus(book, minilm, tmp_path_factory.mktemp("c") / "corpus", progress=False)


@pytest.fixture(scope="module")
def exact(minilm, corpus):
    """Float32 vectors of every stored token, recomputed with the model: [(kind, layer)] -> X."""
    encs = [minilm.encode(s) for s in corpus.sentences[:]]
    results = minilm.forward(encs, attentions=False)
    out = {}
    for layer in range(minilm.num_layers):
        out["embedding", layer] = np.concatenate([r.hidden_states[layer + 1] for r in results])
        out["context", layer] = np.concatenate([r.contexts[layer] for r in results])
    return out


def test_front_matter_bom_and_crlf_are_handled(corpus):
    text = " ".join(corpus.sentences[:])
    for junk in ("\ufeff", "\r", "[Illustration", "CHAPTER", "KESTREL PAPERS"):
        assert junk not in text
    assert corpus.manifest["counts"]["sentences"] == len(corpus.sentences) > 20
    first = corpus.sentences[0]
    assert PARAGRAPHS[0].startswith(first)


def test_every_stored_token_is_the_models_token(minilm, corpus):
    table = corpus.tokens
    assert len(table) == corpus.manifest["counts"]["tokens"]
    for sid in range(len(corpus.sentences)):
        enc = minilm.encode(corpus.sentences[sid])
        rows = corpus.sentence_tokens(sid)
        assert rows.token.tolist() == enc.tokens
        assert rows.special.tolist() == enc.special
        assert rows.token_index.tolist() == list(range(len(enc)))
        assert (rows.word[rows.special] == -1).all() and (rows.pos[rows.special] == "").all()


def test_metadata_equals_spacy_run_directly(minilm, corpus, book):
    nlp = load_spacy()
    spans = [s for doc in nlp.pipe(read_paragraphs(book)) for s in doc.sents if len(s.text) >= 12]
    assert [s.text for s in spans] == corpus.sentences[:]
    for sid, span in enumerate(spans):
        rows = corpus.sentence_tokens(sid)
        enc = minilm.encode(span.text)
        for i, row in rows.iterrows():
            if row.special:
                continue
            start = enc.offsets[i][0]
            word = span[int(row.word)]
            # the token lies in its word, by character offsets
            assert word.idx - span.start_char <= start < word.idx - span.start_char + len(word)
            assert (row.pos, row.tag, row.dep, row.lemma) == (
                word.pos_,
                word.tag_,
                word.dep_,
                word.lemma_,
            )
            assert (row.ent, row.ent_iob, bool(row.is_stop)) == (
                word.ent_type_,
                word.ent_iob_,
                word.is_stop,
            )
            head_word = int(rows.word[row["head"]])
            assert head_word == word.head.i - span.start


@pytest.mark.parametrize(("by", "layer"), [("embedding", 0), ("embedding", 5), ("context", 3)])
def test_self_retrieval(corpus, exact, by, layer):
    table = corpus.tokens
    rng = np.random.default_rng(layer)
    rows = rng.choice(np.flatnonzero(~table.special.to_numpy()), 25, replace=False)
    for row in rows:
        hits = corpus.search(exact[by, layer][row], layer=layer, by=by, k=5)
        assert (hits.sentence_id[0], hits.token_index[0]) == (
            table.sentence_id[row],
            table.token_index[row],
        )
        assert hits.score[0] > 0.98


def test_recall_at_50_against_exact_float32(corpus, exact):
    recalls = []
    for (by, layer), x in exact.items():
        x = x / np.linalg.norm(x, axis=1, keepdims=True)
        flat = faiss.IndexFlatIP(x.shape[1])
        flat.add(x.astype(np.float32))
        queries = x[:: max(1, len(x) // 20)][:20]
        _, truth = flat.search(queries, 50)
        for q, t in zip(queries, truth, strict=True):
            hits = corpus.search(q, layer=layer, by=by, k=50)
            rows = corpus._offsets[hits.sentence_id.to_numpy()] + hits.token_index.to_numpy()
            recalls.append(len(set(rows) & set(t)) / 50)
    assert np.mean(recalls) >= 0.95


def test_head_restricted_context_search(minilm, corpus, exact):
    heads = [2, 7]
    dim = minilm.head_dim
    mask = np.zeros(minilm.context_size, bool)
    for h in heads:
        mask[h * dim : (h + 1) * dim] = True
    x = exact["context", 4]
    q = x[40]
    restricted = corpus.search(q, layer=4, by="context", k=10, heads=heads)
    full = corpus.search(q, layer=4, by="context", k=10)
    assert list(restricted.score) != list(full.score)
    xs, qs = np.where(mask, x, 0), np.where(mask, q, 0)
    brute = xs @ qs / np.linalg.norm(xs, axis=1) / np.linalg.norm(qs)
    rows = corpus._offsets[restricted.sentence_id.to_numpy()] + restricted.token_index.to_numpy()
    np.testing.assert_allclose(restricted.score, brute[rows], atol=0.02)
    best = np.argsort(-brute)[:10]
    assert len(set(rows) & set(best)) >= 9
    with pytest.raises(ValueError, match="heads"):
        corpus.search(q, layer=4, by="context", heads=[99])


def test_search_refusals(corpus):
    with pytest.raises(ValueError, match="dimensions"):
        corpus.search(np.ones(10), layer=0)
    with pytest.raises(ValueError, match="out of range"):
        corpus.search(np.ones(384), layer=6)
    with pytest.raises(ValueError, match="by must be"):
        corpus.search(np.ones(384), layer=0, by="colour")


def test_mismatched_model_is_refused(corpus, tiny_dirs):
    other = ew.load_model(tiny_dirs["bert"])
    with pytest.raises(ew.CorpusError) as info:
        corpus.check_model(other)
    assert corpus.manifest["model"] in str(info.value) and other.name in str(info.value)


def _copy(corpus, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(corpus.root, target)
    return target


def test_missing_partial_corrupt_and_newer_corpora_are_refused(corpus, tmp_path):
    with pytest.raises(ew.CorpusError, match="not a directory"):
        ew.Corpus.open(tmp_path / "nothing")
    broken = _copy(corpus, tmp_path)
    (broken / "index" / "context_3.faiss").unlink()
    with pytest.raises(ew.CorpusError, match="incomplete"):
        ew.Corpus.open(broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(ew.CorpusError, match="newer"):
        ew.Corpus.open(broken)
    (broken / "manifest.json").write_text("{not json")
    with pytest.raises(ew.CorpusError, match="corrupt"):
        ew.Corpus.open(broken)
    (broken / "manifest.json").unlink()
    with pytest.raises(ew.CorpusError, match="did not finish"):
        ew.Corpus.open(broken)


def test_a_build_killed_midway_leaves_nothing_and_keeps_the_previous_corpus(tiny_dirs, tmp_path):
    out = tmp_path / "out"
    lm = ew.load_model(tiny_dirs["bert"])
    previous = ew.build_corpus(PARAGRAPHS[:2], lm, out, progress=False)
    before = previous.manifest["counts"]
    previous.close()
    script = (
        "import exbert_widget as ew, sys\n"
        f"lm = ew.load_model({tiny_dirs['bert']!r})\n"
        f"ew.build_corpus({str(tiny_models.SAMPLE_TEXT)!r}, lm, {str(out)!r}, batch_size=2)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.time() + 120
    while not list(tmp_path.glob(".out.building-*/index")) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)
    assert proc.poll() is None, "the build finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    leftovers = list(tmp_path.glob(".out.building-*"))
    assert leftovers  # the half-written build is there, but it is not a corpus
    for partial in leftovers:
        with pytest.raises(ew.CorpusError):
            ew.Corpus.open(partial)
    again = ew.Corpus.open(out)
    assert again.manifest["counts"] == before
    # A fresh out_dir killed mid-way holds nothing that opens.
    fresh = tmp_path / "fresh"
    script = script.replace(str(out), str(fresh))
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    while not list(tmp_path.glob(".fresh.building-*/index")) and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with pytest.raises(ew.CorpusError):
        ew.Corpus.open(fresh)
    # The next build cleans up after the killed ones.
    ew.build_corpus(PARAGRAPHS[:1], lm, fresh, progress=False)
    assert not list(tmp_path.glob(".fresh.building-*"))


def test_a_directory_that_is_not_a_corpus_is_never_replaced(tiny_dirs, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    lm = ew.load_model(tiny_dirs["bert"])
    with pytest.raises(ew.CorpusError, match="not a corpus"):
        ew.build_corpus(PARAGRAPHS[:1], lm, precious, progress=False)
    assert (precious / "notes.txt").read_text() == "keep me"


def test_cli_builds_and_describes_a_corpus(tiny_dirs, book, tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        cli_main(
            [
                "corpus",
                "build",
                str(book),
                "--model",
                tiny_dirs["roberta"],
                "--out",
                str(out),
                "--index",
                "SQ8",
            ]
        )
        == 0
    )
    assert "sentences" in capsys.readouterr().out
    assert cli_main(["corpus", "info", str(out)]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["index"] == "SQ8" and manifest["kind"] == "bidirectional"
    assert (
        cli_main(
            [
                "corpus",
                "build",
                str(tmp_path / "missing.txt"),
                "--model",
                tiny_dirs["roberta"],
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert "not a file" in capsys.readouterr().err


def test_index_positions_map_to_token_rows(minilm, corpus, exact):
    """The model ran on length-sorted batches: index position i holds the vectors of token-table
    row index_rows[i], and the stored per-head norms follow the index order too."""
    n = corpus.manifest["counts"]["tokens"]
    rows = corpus._index_rows
    assert sorted(rows.tolist()) == list(range(n))
    assert rows.tolist() != list(range(n))  # really reordered, so the mapping is exercised
    layer = 2
    x = exact["context", layer]
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    per_head = np.linalg.norm(unit.reshape(n, minilm.num_heads, -1), axis=2)
    np.testing.assert_allclose(corpus._head_norms(layer), per_head[rows], atol=2e-3)
    index = corpus._index("embedding", layer)
    decoded = index.reconstruct_batch(np.arange(n))
    exact_unit = exact["embedding", layer][rows]
    exact_unit /= np.linalg.norm(exact_unit, axis=1, keepdims=True)
    cosines = np.einsum("ij,ij->i", decoded, exact_unit)  # 6-bit codes: near 1, never ~0
    assert cosines.min() > 0.95 and np.median(cosines) > 0.99


def test_spacy_in_two_processes_gives_the_same_corpus(minilm, corpus, book, tmp_path):
    two = ew.build_corpus(book, minilm, tmp_path / "two", progress=False, spacy_processes=2)
    assert two.sentences[:] == corpus.sentences[:]
    assert two.tokens.equals(corpus.tokens)
    q = corpus.search(np.ones(minilm.hidden_size), layer=1, k=5)
    np.testing.assert_array_equal(
        two.search(np.ones(minilm.hidden_size), layer=1, k=5).token_index, q.token_index
    )


def test_sentence_labels_are_the_token_tables_rows(corpus):
    for sid in (0, len(corpus.sentences) // 2, len(corpus.sentences) - 1):
        table = corpus.sentence_tokens(sid)
        labels = corpus.sentence_labels(sid)
        assert labels == {name: table[name].tolist() for name in ("token", "pos", "dep", "ent")}


def test_batches_run_side_by_side_keep_every_token_at_its_row(minilm, corpus, book, monkeypatch):
    """With two model threads (forced here: spaCy reported done from the start) and batches of
    two sentences, every index position still holds its own token's vectors and norms."""
    from exbert_widget.corpus import build, spacy_feed

    monkeypatch.setattr(spacy_feed.SpacyFeed, "producing", property(lambda self: False))
    runners = []

    class Runner(build._BatchRunner):
        def __init__(self, most):
            super().__init__(most)
            runners.append(self)

    monkeypatch.setattr(build, "_BatchRunner", Runner)
    out = corpus.root.parent / "side-by-side"
    two = ew.build_corpus(book, minilm, out, batch_size=2, progress=False)
    assert runners[0].peak == 2
    assert two.tokens.equals(corpus.tokens)
    encs = [minilm.encode(s) for s in two.sentences[:]]
    results = minilm.forward(encs, attentions=False)
    layer, rows = 3, two._index_rows
    for kind, vectors in (
        ("embedding", np.concatenate([r.hidden_states[layer + 1] for r in results])),
        ("context", np.concatenate([r.contexts[layer] for r in results])),
    ):
        x = vectors[rows] / np.linalg.norm(vectors[rows], axis=1, keepdims=True)
        decoded = two._index(kind, layer).reconstruct_batch(np.arange(len(rows)))
        cosines = np.einsum("ij,ij->i", decoded, x)
        assert cosines.min() > 0.95 and np.median(cosines) > 0.99, kind
    x = np.concatenate([r.contexts[layer] for r in results])[rows]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    per_head = np.linalg.norm(x.reshape(len(x), minilm.num_heads, -1), axis=2)
    np.testing.assert_allclose(two._head_norms(layer), per_head, atol=2e-3)


def test_a_failing_batch_fails_the_build_and_leaves_the_previous_corpus(minilm, corpus, book):
    """An error in a background model batch reaches the caller; the threads end, no temporary
    directory stays behind and the corpus already at out_dir is untouched."""
    import threading

    out = corpus.root.parent / "failing"
    shutil.copytree(corpus.root, out)
    before = sorted(p.name for p in out.parent.iterdir())
    calls = 0
    real = minilm.token_vectors

    def flaky(encodings):
        nonlocal calls
        calls += 1
        if calls == 3:
            raise RuntimeError("batch 3 broke")
        return real(encodings)

    minilm.token_vectors = flaky
    try:
        with pytest.raises(RuntimeError, match="batch 3 broke"):
            ew.build_corpus(book, minilm, out, batch_size=2, progress=False)
    finally:
        del minilm.token_vectors
    assert sorted(p.name for p in out.parent.iterdir()) == before
    assert ew.Corpus.open(out).tokens.equals(corpus.tokens)
    # the build's threads end (the search pool's idle threads live as long as the process)
    search = ("exbert-search", "exbert-probe", "exbert-shard-search")
    left = [t for t in threading.enumerate() if t.name.startswith("exbert-")]
    assert not [t for t in left if not t.name.startswith(search)]


def test_hits_show_the_whole_word_around_a_word_piece(minilm, corpus):
    """For a WordPiece continuation ("##n"), the whole word is the spaCy word it lies in, joined
    with its other pieces; the piece's own characters are kept to highlight it."""
    table = corpus.tokens
    pieces = table[table.token.str.startswith("##")]
    assert len(pieces) > 20
    nlp = load_spacy()
    checked = 0
    for row in pieces.itertuples():
        sentence = corpus.sentences[row.sentence_id]
        w = corpus.sentence_words(row.sentence_id).iloc[row.token_index]
        if not sentence[w.word_start : w.word_end].isascii():
            continue  # the uncased tokenizer strips accents: pieces do not spell such words
        assert w.whole_word == sentence[w.word_start : w.word_end]
        assert w.word_start <= w.token_start < w.token_end <= w.word_end
        assert sentence[w.token_start : w.token_end].lower() == row.token[2:]
        same = table[(table.sentence_id == row.sentence_id) & (table.word == row.word)]
        assert "".join(t.removeprefix("##") for t in same.token) == w.whole_word.lower()
        spacy_words = [t.text for t in nlp(sentence) if t.idx <= w.token_start < t.idx + len(t)]
        assert spacy_words and spacy_words[0] in w.whole_word
        checked += 1
    assert checked > 20
    row = pieces.iloc[0]
    sid, index = int(row.sentence_id), int(row.token_index)
    vector = minilm.forward([minilm.encode(corpus.sentences[sid])], attentions=False)[0]
    hits = corpus.search(vector.hidden_states[3][index], layer=2, k=3)
    assert (int(hits.sentence_id[0]), int(hits.token_index[0])) == (sid, index)
    assert hits.whole_word[0] == corpus.sentence_words(sid).whole_word[index] != hits.token[0]
