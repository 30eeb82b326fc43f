"""Corpus search from the widget: hits, max-attention fields, summaries, refusals."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel

import exbert_widget as ew
from tests import tiny_models

SENTENCES = [
    line.strip()
    for line in tiny_models.SAMPLE_TEXT.read_text(encoding="utf-8").split(". ")
    if 40 < len(line.strip()) < 200
][:40]


@pytest.fixture(scope="module")
def minilm_corpus(minilm, tmp_path_factory) -> ew.Corpus:
    out = tmp_path_factory.mktemp("minilm-corpus") / "c"
    return ew.build_corpus([s + "." for s in SENTENCES], minilm, out)


@pytest.fixture()
def view(minilm, minilm_corpus) -> ew.ExBertView:
    return ew.ExBertView(minilm, corpus=minilm_corpus)


def command(view, name: str, args) -> dict:
    """Send one command as the view does; return the kernel's reply."""
    sent: list[dict] = []
    original = view.send
    view.send = lambda content, buffers=None: sent.append(content)
    try:
        view._on_message(
            view, {"kind": "exbert-command", "id": "r1", "name": name, "args": args}, []
        )
    finally:
        view.send = original
    replies = [m for m in sent if m["kind"] != "exbert-working"]  # heartbeats of a slow search
    assert len(replies) == 1
    return replies[0]


def _first_word(view) -> int:
    return next(i for i, s in enumerate(view.special) if not s) + 1


@pytest.mark.parametrize("by", ["embedding", "context"])
def test_own_sentence_comes_back_first(view, minilm_corpus, by):
    sid = 5
    view.sentence = minilm_corpus.sentences[sid]
    view.layer = 2
    view.selected = _first_word(view)
    hits = view.search(by=by, k=10, skip_own_sentence=False, max_per_sentence=None)
    assert hits is view.hits and len(hits) == 10
    assert (int(hits.sentence_id[0]), int(hits.token_index[0])) == (sid, view.selected)
    assert hits.score.is_monotonic_decreasing
    assert hits.token[0] == view.tokens[view.selected]


def test_max_attention_fields_match_transformers(view, minilm_corpus):
    view.sentence = minilm_corpus.sentences[2]
    view.layer, view.heads = 3, [1, 4, 7]
    view.selected = _first_word(view)
    hits = view.search(by="context", k=8)
    model = AutoModel.from_pretrained(tiny_models.MINILM, attn_implementation="eager").eval()
    tok = tiny_models.minilm_tokenizer()
    for hit in hits.itertuples():
        enc = tok(hit.sentence, return_tensors="pt", return_special_tokens_mask=True)
        special = enc.pop("special_tokens_mask")[0].bool().numpy()
        with torch.no_grad():
            att = model(**enc, output_attentions=True).attentions[3][0]
        row = att[[1, 4, 7]].mean(0)[hit.token_index].numpy()
        row[special] = -1
        expected = int(np.argmax(row))
        assert hit.max_att_index == expected
        assert hit.max_att_offset == expected - hit.token_index
        table = minilm_corpus.sentence_tokens(hit.sentence_id)
        assert hit.max_att_token == table.token.iloc[expected]
        assert hit.max_att_pos == table.pos.iloc[expected]
        assert hit.max_att_dep == table.dep.iloc[expected]


def test_hit_rows_and_attention_for_drawing(view, minilm_corpus):
    view.sentence = minilm_corpus.sentences[7]
    view.selected = _first_word(view)
    hits = view.search(k=6)
    assert len(view.hit_list) == 6
    for row, hit in zip(view.hit_list, hits.itertuples(), strict=True):
        assert row["sentence"] == hit.sentence and row["max_att_index"] == hit.max_att_index
        att = view.hits_attention[row["att_offset"] : row["att_offset"] + row["att_length"]]
        assert row["att_length"] == len(row["tokens"])
        assert att.dtype == np.float16
        assert abs(float(att.astype(np.float32).sum()) - 1.0) < 1e-2  # specials out, renormalised
        assert all(att[np.asarray(row["special"])] == 0)
        assert int(np.argmax(att)) == hit.max_att_index


def test_head_restricted_context_search_differs(view, minilm_corpus):
    view.sentence = minilm_corpus.sentences[11]
    view.layer = 4
    view.selected = _first_word(view) + 1
    everything = view.search(by="context", k=20)
    view.heads = [2]
    one_head = view.search(by="context", k=20)
    pairs = lambda df: list(zip(df.sentence_id, df.token_index, strict=True))  # noqa: E731
    assert pairs(everything) != pairs(one_head)
    assert not np.allclose(everything.score.to_numpy(), one_head.score.to_numpy())


def test_summaries_count_what_the_hits_say(view, minilm_corpus):
    view.sentence = minilm_corpus.sentences[1]
    view.selected = _first_word(view)
    hits = view.search(k=15)
    pos = view.summary("pos", of="match")
    assert pos.sum() == 15 and pos.is_monotonic_decreasing
    assert pos.to_dict() == hits.pos.replace("", "(none)").value_counts().to_dict()
    dep = view.summary("dep", of="max_att")
    assert dep.to_dict() == hits.max_att_dep.replace("", "(none)").value_counts().to_dict()
    offsets = view.summary("offset", of="max_att")
    assert sum(offsets.to_dict().values()) == 15
    assert view.summaries["max_att"]["dep"] == dep.to_dict()
    with pytest.raises(ew.InputError, match="field"):
        view.summary("colour")


def test_load_hit_puts_its_sentence_in_the_view(view, minilm_corpus):
    view.sentence = minilm_corpus.sentences[3]
    view.selected = _first_word(view)
    hits = view.search(k=5)
    view.load_hit(2)
    assert view.sentence == hits.sentence[2]
    assert view.selected == hits.token_index[2]
    reply = command(view, "load_hit", {"index": 1})
    assert reply["ok"] and view.sentence == hits.sentence[1] == reply["result"]["sentence"]
    assert view.selected == reply["result"]["selected"] == hits.token_index[1]
    assert view.masked == [] and view.analysis.text == view.sentence
    for bad in (5, -1):
        reply = command(view, "load_hit", {"index": bad})
        assert not reply["ok"] and reply["error"]["type"] == "InputError"
        assert "between 0 and 4" in reply["error"]["message"]
    assert view.sentence == hits.sentence[1]


def test_search_command_replies_and_a_failure_keeps_the_last_hits(view, minilm_corpus):
    view.sentence = minilm_corpus.sentences[6]
    view.selected = _first_word(view)
    reply = command(view, "search", {"by": "embedding", "k": 7})
    assert reply == {"kind": "exbert-reply", "id": "r1", "ok": True, "result": {"count": 7}}
    rows = view.hit_list
    assert len(rows) == 7 and minilm_corpus.sentences[6] not in [r["sentence"] for r in rows]
    view.heads = []
    reply = command(view, "search", {"by": "context", "k": 7})
    assert not reply["ok"] and "at least one selected head" in reply["error"]["message"]
    assert view.hit_list is rows and len(view.hits) == 7


def test_refusals(view, minilm, minilm_corpus, tiny_dirs):
    with pytest.raises(ew.InputError, match="Select a token"):
        view.search()
    view.selected = 1
    with pytest.raises(ew.InputError, match="by must be"):
        view.search(by="colour")
    with pytest.raises(ew.InputError, match="between 1 and 1000"):
        view.search(k=10**7)
    view.heads = []
    with pytest.raises(ew.InputError, match="at least one selected head"):
        view.search(by="context")
    reply = command(view, "search", {"by": "context", "k": 5})
    assert not reply["ok"] and "head" in reply["error"]["message"]
    other = ew.load_model(tiny_dirs["bert"])
    with pytest.raises(ew.ExbertError) as info:
        ew.ExBertView(other, corpus=minilm_corpus)
    assert "MiniLM" in str(info.value) or "minilm" in str(info.value).lower()


def test_autoregressive_hits_describe_the_next_token(tiny_dirs, tmp_path):
    lm = ew.load_model(tiny_dirs["gpt2"])
    corpus = ew.build_corpus([s + "." for s in SENTENCES[:15]], lm, tmp_path / "gpt2")
    view = ew.ExBertView(lm, corpus=corpus, sentence=corpus.sentences[4])
    view.selected = 2
    hits = view.search(k=6)
    assert hits.describes_next.all() and all(r["describes_next"] for r in view.hit_list)
    for hit in hits.itertuples():
        table = corpus.sentence_tokens(hit.sentence_id)
        nxt = hit.token_index + 1
        expected = table.pos.iloc[nxt] if nxt < len(table) else ""
        assert hit.next_pos == expected
        assert hit.max_att_index <= hit.token_index  # causal: only backwards
    counts = view.summary("pos", of="match")
    assert counts.to_dict() == hits.next_pos.replace("", "(none)").value_counts().to_dict()


# -- a varied first list (issue 15.3) ------------------------------------------------------------


def test_the_first_list_is_varied_by_default(view, minilm_corpus):
    sid = 5
    view.sentence = minilm_corpus.sentences[sid]
    view.selected = 2
    hits = view.search(k=20)
    assert len(hits) == 20  # k hits still, from further down the ranking
    assert sid not in set(hits.sentence_id)
    assert hits.sentence_id.value_counts().max() <= 2
    assert hits.score.is_monotonic_decreasing
    everything = view.search(k=20, skip_own_sentence=False, max_per_sentence=None)
    assert sid in set(everything.sentence_id)
    assert everything.sentence_id.value_counts().max() > 2  # what the defaults avoid
    one_each = view.search(k=20, max_per_sentence=1)
    assert one_each.sentence_id.is_unique and len(one_each) == 20
    # the defaults leave out exactly the own sentence and cap the rest: the same as the corpus
    # asked directly with those options
    expected = minilm_corpus.search(
        view.analysis.hidden_states[view.layer + 1][2],
        layer=view.layer,
        k=20,
        exclude_sentences=[sid],
        max_per_sentence=2,
    )
    assert list(zip(hits.sentence_id, hits.token_index, strict=True)) == list(
        zip(expected.sentence_id, expected.token_index, strict=True)
    )


def test_the_own_sentence_is_every_corpus_sentence_with_its_text(view, minilm_corpus):
    view.sentence = "Not a sentence of this corpus at all, surely."
    view.selected = 1
    assert view._own_sentence_ids() == []
    view.sentence = minilm_corpus.sentences[9]
    assert view._own_sentence_ids() == [9]


def test_hits_carry_whole_words_with_each_pieces_characters(view, minilm_corpus):
    sid = 15  # "When the railway line from Alnwick was extended in 1934, ..."
    view.sentence = minilm_corpus.sentences[sid]
    piece = view.tokens.index("##n")
    view.selected = piece
    view.search(k=10, skip_own_sentence=False)
    row = view.hit_list[0]  # the token itself
    assert (row["sentence_id"], row["token_index"]) == (sid, piece)
    ts, te = row["token_spans"][piece]
    ws, we = row["word_spans"][piece]
    assert row["whole_word"] == row["sentence"][ws:we] == "Alnwick"
    assert row["sentence"][ts:te] == "n" and ws < ts < te < we
    assert view.hits.whole_word[0] == "Alnwick"
    for row in view.hit_list:
        words = minilm_corpus.sentence_words(row["sentence_id"])
        assert row["token_spans"] == words[["token_start", "token_end"]].to_numpy().tolist()
        assert row["word_spans"] == words[["word_start", "word_end"]].to_numpy().tolist()
        special = np.asarray(row["special"])
        assert all(row["token_spans"][j] == [-1, -1] for j in np.flatnonzero(special))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"skip_own_sentence": 1}, "must be true or false"),
        ({"max_per_sentence": 0}, "between 1 and 1000"),
        ({"max_per_sentence": "2"}, "must be an integer or null"),
    ],
)
def test_search_options_from_the_view_are_checked(view, minilm_corpus, args, message):
    view.sentence = minilm_corpus.sentences[6]
    view.selected = _first_word(view)
    reply = command(view, "search", {"by": "embedding", "k": 5, **args})
    assert not reply["ok"] and reply["error"]["type"] == "InputError"
    assert message in reply["error"]["message"]


def test_search_options_from_the_view_reach_the_search(view, minilm_corpus):
    view.sentence = minilm_corpus.sentences[6]
    view.selected = _first_word(view)
    args = {"by": "embedding", "k": 5, "skip_own_sentence": False, "max_per_sentence": None}
    reply = command(view, "search", args)
    assert reply["ok"] and view.hit_list[0]["sentence_id"] == 6
