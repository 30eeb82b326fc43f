"""Alignment of model tokens to spaCy words by character offsets, for every tokenizer family."""

from __future__ import annotations

import numpy as np
import pytest

import exbert_widget as ew
from exbert_widget.corpus.annotate import (
    LABELS,
    align_tokens,
    annotate_paragraphs,
    keep_sentence,
    load_spacy,
)
from tests import tiny_models

TRICKY = (
    "Mrs. O'Neill didn't re-enter the well-known café at 9:30, did she? "
    "\"No,\" said the twenty-two-year-old clerk -- it's John's shop, isn't it?"
)


@pytest.fixture(scope="module")
def nlp():
    return load_spacy()


@pytest.fixture(scope="module")
def sentences(nlp):
    return list(annotate_paragraphs([TRICKY], nlp, min_chars=1))


def _check_alignment(enc, sentence, word):
    assert len(word) == len(enc.tokens)
    for i, (w, sp, (s, e)) in enumerate(zip(word, enc.special, enc.offsets, strict=True)):
        if sp:
            assert w == -1, f"special token {enc.tokens[i]!r} got word {w}"
            continue
        if not sentence.text[s:e].strip():
            continue  # a pure-space piece (byte-level BPE): nothing to align
        assert w >= 0, f"token {enc.tokens[i]!r} at {s}:{e} found no word"
        first = s + (len(sentence.text[s:e]) - len(sentence.text[s:e].lstrip()))
        assert sentence.word_start[w] <= first < sentence.word_end[w]
    covered = {w for w in word.tolist() if w >= 0}
    if not enc.truncated:  # every word is reached by a token, or lies inside a token that
        # started in an earlier word (a BPE merge across spaCy's split, e.g. '",')
        spans = [(s, e) for (s, e), sp in zip(enc.offsets, enc.special, strict=True) if not sp]
        for w in set(range(len(sentence.words))) - covered:
            start = int(sentence.word_start[w])
            assert any(s < start < e for s, e in spans), sentence.words[w]


@pytest.mark.parametrize("family", tiny_models.FAMILIES)
def test_every_family_aligns_by_offsets(family, tiny_dirs, sentences):
    lm = ew.load_model(tiny_dirs[family])
    for sentence in sentences:
        enc = lm.encode(sentence.text)
        _check_alignment(enc, sentence, align_tokens(enc.offsets, enc.special, sentence))


def test_contractions_and_hyphens_take_their_words_labels(minilm, sentences):
    sentence = sentences[0]
    enc = minilm.encode(sentence.text)
    word = align_tokens(enc.offsets, enc.special, sentence)
    _check_alignment(enc, sentence, word)
    pieces = {}
    for tok, w in zip(enc.tokens, word.tolist(), strict=True):
        if w >= 0:
            pieces.setdefault(sentence.words[w], []).append(tok)
    assert pieces["n't"] == ["'", "t"]  # "didn't": spaCy did + n't, WordPiece didn + ' + t
    assert "didn" in pieces["did"]
    assert pieces["-"] and pieces["well"] == ["well"]
    # labels follow the word: the pieces of n't are all PART / neg
    negs = [i for i, w in enumerate(word.tolist()) if w >= 0 and sentence.words[w] == "n't"]
    assert {sentence.labels["dep"][word[i]] for i in negs} == {"neg"}


def test_a_corpus_built_with_a_bpe_model_stores_aligned_labels(tiny_dirs, nlp, tmp_path):
    lm = ew.load_model(tiny_dirs["roberta"])
    corpus = ew.build_corpus([TRICKY], lm, tmp_path / "c", progress=False, spacy_model=nlp)
    table = corpus.tokens
    for sid, sentence in enumerate(annotate_paragraphs([TRICKY], nlp)):
        assert corpus.sentences[sid] == sentence.text
        rows = corpus.sentence_tokens(sid)
        enc = lm.encode(sentence.text)
        assert rows.token.tolist() == enc.tokens
        word = align_tokens(enc.offsets, enc.special, sentence)
        assert rows.word.tolist() == word.tolist()
        for name in LABELS:
            want = [sentence.labels[name][w] if w >= 0 else "" for w in word.tolist()]
            assert rows[name].tolist() == want, name
        assert not rows[rows.special.to_numpy()][list(LABELS)].to_numpy().any()
    assert len(table) == corpus.manifest["counts"]["tokens"]


def test_short_fragments_are_dropped():
    assert not keep_sentence("Oh!")
    assert not keep_sentence("12345 67890 !!")
    assert keep_sentence("She ran home.")
    assert np.all([keep_sentence(s.text) for s in []])
