"""The corpus head report (issue 12) against a slow, direct implementation of Clark et al.'s
conventions on a few sentences, and its cache."""

from __future__ import annotations

import unicodedata
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
import torch

import exbert_widget as ew
from exbert_widget.corpus import head_report as hr
from exbert_widget.corpus import report_cache
from tests import tiny_models

TEXTS = [
    "The girl ran to a local pub to escape the din of her city. She ordered a cup of tea, and "
    "the barman smiled at her.",
    "Dorothy lived in the midst of the great Kansas prairies, with Uncle Henry, who was a "
    "farmer, and Aunt Em, who was the farmer's wife.",
    "It's five o'clock -- time for tea! The keeper of the lighthouse didn't sleep in 1998.",
]
DIRECTIONS = ("dependent→head", "head→dependent")


@pytest.fixture(scope="module")
def corpus(minilm, tmp_path_factory) -> ew.Corpus:
    return ew.build_corpus(TEXTS, minilm, tmp_path_factory.mktemp("hr") / "c", progress=False)


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """The user cache directory of each test is its own."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))


def _slow_report(corpus, lm) -> pd.DataFrame:
    """Clark et al.'s head accuracy, word by word and head by head, with plain loops over the
    model's own attention (``lm.forward``, all layers at once) and the corpus's token table."""
    table = corpus.tokens
    layers, heads = lm.num_layers, lm.num_heads
    hits = defaultdict(lambda: np.zeros((2, layers, heads), dtype=np.int64))
    count: dict[str, int] = defaultdict(int)
    offsets = defaultdict(lambda: np.zeros((2, 6), dtype=np.int64))
    stats, rows = np.zeros((4, layers, heads)), np.zeros(4)
    for sid, text in enumerate(corpus.sentences[:]):
        tokens = table[table["sentence_id"] == sid].sort_values("token_index")
        att = lm.forward([lm.encode(text)])[0].attentions  # [layers, heads, n, n]
        n = att.shape[-1]
        members: dict[int, list[int]] = defaultdict(list)
        for t, w in enumerate(tokens["word"]):
            if w >= 0:
                members[int(w)].append(t)
        first = {w: ts[0] for w, ts in members.items()}
        word_text = {
            w: text[tokens["word_start"].iloc[t] : tokens["word_end"].iloc[t]]
            for w, t in first.items()
        }
        punct = {
            w: all(unicodedata.category(c).startswith("P") for c in s if not c.isspace())
            for w, s in word_text.items()
        }
        candidates = sorted(w for w in members if not punct[w])
        relation = {w: tokens["dep"].iloc[t] for w, t in first.items()}
        head_of = {}
        for w, t in first.items():
            h = int(tokens["head"].iloc[t])
            head_of[w] = int(tokens["word"].iloc[h]) if h >= 0 else -1
        instances = [
            (w, head_of[w], relation[w])
            for w in sorted(members)
            if relation[w] not in ("", "ROOT")
            and head_of[w] != w
            and w in candidates
            and head_of[w] in candidates
        ]
        for w, g, r in instances:
            count[r] += 1
            for k, o in enumerate(hr.OFFSETS):
                offsets[r][0, k] += g - w == o
                offsets[r][1, k] += w - g == o
        special = tokens["special"].to_numpy()
        for layer in range(layers):
            for head in range(heads):
                a = att[layer, head].astype(np.float64)
                predicted = {}
                for x in members:
                    best, best_score = None, -np.inf
                    for y in candidates:
                        if y == x:
                            continue
                        score = np.mean([sum(a[i, j] for j in members[y]) for i in members[x]])
                        if score > best_score:
                            best, best_score = y, score
                    predicted[x] = best
                for w, g, r in instances:
                    hits[r][0, layer, head] += predicted[w] == g
                    hits[r][1, layer, head] += predicted[g] == w
                for i in range(n):
                    p = a[i][a[i] > 0]
                    stats[0, layer, head] += -(p * np.log(p)).sum()
                    stats[1, layer, head] += a[i, special].sum()
                    if i >= 1:
                        stats[2, layer, head] += a[i, i - 1]
                    if i + 1 < n:
                        stats[3, layer, head] += a[i, i + 1]
        rows += [n, n, n - 1, n - 1]
    out = []
    for r, c in count.items():
        for d, direction in enumerate(DIRECTIONS):
            best = int(np.argmax(offsets[r][d]))
            for layer in range(layers):
                for head in range(heads):
                    out.append(
                        {
                            "relation": r,
                            "layer": layer,
                            "head": head,
                            "direction": direction,
                            "accuracy": hits[r][d, layer, head] / c,
                            "count": c,
                            "baseline_offset": hr.OFFSETS[best],
                            "baseline_accuracy": offsets[r][d, best] / c,
                            "few": c < 100,
                            **{
                                name: stats[k, layer, head] / rows[k]
                                for k, name in enumerate(hr.STAT_COLUMNS)
                            },
                        }
                    )
    return pd.DataFrame(out)


def _by_key(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["relation", "direction", "layer", "head"]).reset_index(drop=True)


def _assert_same(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got, want = _by_key(got), _by_key(want)
    assert len(got) == len(want)
    for column in ("relation", "direction", "layer", "head", "count", "baseline_offset", "few"):
        assert got[column].tolist() == want[column].tolist(), column
    np.testing.assert_allclose(got["accuracy"], want["accuracy"], atol=1e-12)
    np.testing.assert_allclose(got["baseline_accuracy"], want["baseline_accuracy"], atol=1e-12)
    for column in hr.STAT_COLUMNS:
        np.testing.assert_allclose(got[column], want[column], rtol=1e-5, atol=1e-7)


def test_equals_a_slow_direct_implementation(corpus, minilm):
    """One sentence a pass (no padding): exactly the slow implementation's numbers."""
    got = hr.compute(corpus, minilm, batch_size=1, progress=False)
    want = _slow_report(corpus, minilm)
    _assert_same(got, want)
    assert list(got.columns) == hr.COLUMNS
    assert got["accuracy"].between(0, 1).all() and got["few"].all()  # a few sentences only
    assert set(got["direction"]) == set(DIRECTIONS)
    assert {"nsubj", "det", "prep", "pobj"} <= set(got["relation"])
    assert not {"punct", "ROOT", ""} & set(got["relation"])
    # every layer and head of every relation and direction
    sizes = got.groupby(["relation", "direction"]).size()
    assert (sizes == minilm.num_layers * minilm.num_heads).all()
    # relations by count, most first
    counts = got.drop_duplicates("relation")["count"].to_numpy()
    assert (np.diff(counts) <= 0).all()


def test_batched_passes_give_the_same_report(corpus, minilm):
    """Padded batches: the same predictions (the weights agree to float precision)."""
    one = hr.compute(corpus, minilm, batch_size=1, progress=False)
    batched = hr.compute(corpus, minilm, batch_size=32, progress=False)
    _assert_same(batched, one)


def test_a_decoder_with_ties_at_zero(tmp_path):
    """A causal model attends to no later word: a word with no earlier candidate sees only
    zeros, and the first candidate wins, in both implementations."""
    lm = ew.load_model(tiny_models.save("gpt2", tmp_path / "gpt2"))
    corpus = ew.build_corpus(TEXTS[:2], lm, tmp_path / "c", progress=False)
    _assert_same(hr.compute(corpus, lm, batch_size=1, progress=False), _slow_report(corpus, lm))


def test_the_report_is_cached_next_to_the_corpus(corpus, minilm, monkeypatch):
    first = corpus.head_report(minilm, progress=False)
    files = list((corpus.root / "head_reports").glob("head_report-*.npz"))
    assert len(files) == 1

    def no_pass(*_args, **_kwargs):
        raise AssertionError("the model ran although the report was cached")

    monkeypatch.setattr(minilm, "attention_batches", no_pass)
    again = corpus.head_report(minilm, progress=False)
    pd.testing.assert_frame_equal(again, first)
    with pytest.raises(AssertionError, match="model ran"):
        corpus.head_report(minilm, refresh=True, progress=False)


def test_a_damaged_cache_is_recomputed(corpus, minilm):
    first = corpus.head_report(minilm, progress=False)
    path = report_cache.cache_paths(hr.SCHEMA, corpus, minilm)[0]
    path.write_bytes(b"PK\x03\x04 not an archive")
    pd.testing.assert_frame_equal(corpus.head_report(minilm, progress=False), first)
    # a file that is an archive but says 2 for an accuracy is not read either
    wanted = report_cache.meta(hr.SCHEMA, corpus, minilm)
    bad = first.copy()
    bad.loc[0, "accuracy"] = 2.0
    report_cache.save(hr.SCHEMA, bad, [path], wanted)
    assert report_cache.load(hr.SCHEMA, path, wanted) is None
    pd.testing.assert_frame_equal(corpus.head_report(minilm, progress=False), first)


def test_another_checkpoint_or_build_computes_afresh(minilm, tmp_path):
    """Same architecture and vocabulary (same fingerprint), other weights: not the cached
    report. A rebuilt corpus (new build id): not the cached report either."""
    corpus = ew.build_corpus(TEXTS[:1], minilm, tmp_path / "c", progress=False)
    first = corpus.head_report(minilm, progress=False)
    model = ew.load_model(tiny_models.MINILM).model
    with torch.no_grad():
        for layer in model.encoder.layer:
            layer.attention.self.query.weight.mul_(3.0)
    other = ew.load_model(model=model, tokenizer=minilm.tokenizer)
    assert other.fingerprint == minilm.fingerprint
    assert other.weights_digest != minilm.weights_digest
    changed = corpus.head_report(other, progress=False)
    assert not np.allclose(changed["entropy"], first["entropy"])
    corpus.close()
    rebuilt = ew.build_corpus(TEXTS[:2], minilm, tmp_path / "c", progress=False)
    report = rebuilt.head_report(minilm, progress=False)
    assert report["count"].sum() > first["count"].sum()


def test_an_unwritable_corpus_directory_falls_back_to_the_user_cache(corpus, minilm, tmp_path):
    blocked = report_cache.cache_paths(hr.SCHEMA, corpus, minilm)
    folder = blocked[0].parent
    if folder.exists():
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    folder.write_text("a file where the report folder would go")  # mkdir fails, even as root
    try:
        report = corpus.head_report(minilm, progress=False)
        assert blocked[1].is_file() and str(tmp_path) in str(blocked[1])
        pd.testing.assert_frame_equal(
            report_cache.load(hr.SCHEMA, blocked[1], report_cache.meta(hr.SCHEMA, corpus, minilm)),
            report,
        )
    finally:
        folder.unlink()


def test_another_models_corpus_is_refused(corpus, tiny_dirs):
    other = ew.load_model(tiny_dirs["gpt2"])
    with pytest.raises(ew.CorpusError, match="not comparable"):
        corpus.head_report(other, progress=False)


def test_words_candidates_and_instances_of_one_sentence():
    """A hand-made token table: [CLS] The cat 's toy , rolled . [SEP] with spaCy-like words."""
    sentence = "The cat's toy, rolled."
    rows = {
        "word": np.array([-1, 0, 1, 2, 3, 4, 5, 6, -1]),
        # token index of each word's head's first token
        "head": np.array([-1, 2, 4, 2, 6, 6, 6, 6, -1]),
        "dep": np.array(["", "det", "poss", "case", "nsubj", "punct", "ROOT", "punct", ""]),
        "pos": np.array(["", "DET", "NOUN", "PART", "NOUN", "PUNCT", "VERB", "PUNCT", ""]),
        "word_start": np.array([-1, 0, 4, 7, 10, 13, 15, 21, -1]),
        "word_end": np.array([-1, 3, 7, 9, 13, 14, 21, 22, -1]),
    }
    relations: dict[str, int] = {}
    words = hr.sentence_words(rows, sentence, relations)
    assert words.candidate.tolist() == [True, True, True, True, False, True, False]
    found = {
        (int(d), int(h), r)
        for d, h, r in zip(words.dependent, words.head, words.relation, strict=True)
    }
    names = {i: name for name, i in relations.items()}
    assert {(d, h, names[r]) for d, h, r in found} == {
        (0, 1, "det"),
        (1, 3, "poss"),
        (2, 1, "case"),
        (3, 5, "nsubj"),
    }
