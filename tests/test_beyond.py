"""The view beyond attention weights (issue 12): measures, Δ views, a compare model and the head
report heatmap, each against an independent computation (the engine's arrays or the model's
own outputs, combined here with plain numpy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers

import exbert_widget as ew
from exbert_widget.widget import compare
from exbert_widget.widget.lines import WEIGHT_LEVELS
from exbert_widget.widget.report import report_view, top_heads
from tests import tiny_models

SENTENCE = "The girl ran to a local pub to escape the din of her city."


@pytest.fixture(scope="module")
def tiny_bert() -> ew.LanguageModel:
    model, tok = tiny_models.build("bert")
    return ew.load_model(model=model, tokenizer=tok)


@pytest.fixture(scope="module")
def tiny_bert_other() -> ew.LanguageModel:
    """A second checkpoint of the same tiny BERT: same tokenizer and shape, another seed."""
    model, tok = tiny_models.build("bert")
    torch.manual_seed(1)
    other = transformers.BertForMaskedLM(model.config).eval()
    return ew.load_model(model=other, tokenizer=tok)


# -- independent computations (numpy) ---------------------------------------------------------


def _rows(m: np.ndarray) -> np.ndarray:
    s = m.sum(-1, keepdims=True)
    return np.divide(m, s, out=np.zeros_like(m, dtype=np.float64), where=s > 0)


def _drawn(per_head: np.ndarray, heads, special, hide_special=True) -> np.ndarray:
    """The attention panel's rules: mean of the heads, hidden tokens dropped, rows renormalised."""
    m = per_head[list(heads)].astype(np.float64).mean(0)
    keep = ~np.array(special) if hide_special else np.ones(len(special), bool)
    return _rows(m * keep[None, :] * keep[:, None])


def _rollout(attentions: np.ndarray, layer: int, heads) -> np.ndarray:
    """Abnar & Zuidema's product, directly."""
    n = attentions.shape[-1]
    out = np.eye(n)
    for current in range(layer + 1):
        chosen = heads if current == layer else range(attentions.shape[1])
        step = 0.5 * attentions[current, list(chosen)].astype(np.float64).mean(0) + 0.5 * np.eye(n)
        out = _rows(step) @ out
    return out


def _cut(matrix: np.ndarray, threshold: float) -> dict[tuple[int, int], float]:
    """Per row, the largest |values| until they reach threshold of the row's Σ|value|."""
    kept = {}
    for i, row in enumerate(matrix):
        order = sorted(range(len(row)), key=lambda j: (-abs(row[j]), j))
        total, run = np.abs(row).sum(), 0.0
        for j in order:
            if abs(row[j]) == 0 or run >= threshold * total * (1 - 1e-6):
                break
            kept[(i, j)] = row[j]
            run += abs(row[j])
    return kept


def _sent(lines: np.ndarray) -> dict[tuple[int, int], float]:
    return {(int(f), int(t)): float(v) for f, t, v in lines}


def _assert_same_lines(sent, expected, atol):
    # Lines at the cut's edge may differ by a float rounding of near-equal values: compare the
    # values where both have a line, and require almost all lines to be shared.
    shared = set(sent) & set(expected)
    assert len(shared) >= 0.95 * max(len(expected), 1), (len(sent), len(expected))
    for key in shared:
        assert sent[key] == pytest.approx(expected[key], abs=atol)


# -- measures ---------------------------------------------------------------------------------


def test_norm_is_sent_as_the_engines_norms_row_normalised(minilm):
    view = ew.ExBertView(minilm, layer=2, measure="norm")
    raw = view.analysis.attention(2, measure="norm")
    np.testing.assert_allclose(view.attention, _rows(raw), atol=2e-3)
    assert not np.allclose(view.attention, view.analysis.attention(2), atol=1e-2)
    view.measure = "attention"
    np.testing.assert_allclose(view.attention, view.analysis.attention(2), atol=1e-3)


def test_rollout_heads_combine_to_the_engines_rollout(minilm):
    view = ew.ExBertView(minilm, measure="rollout", layer=3)
    a = view.analysis
    atts = np.stack([a.attention(layer) for layer in range(4)])
    for heads in ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [2, 7]):
        view.heads = heads
        combined = view.attention[heads].astype(np.float64).mean(0)
        np.testing.assert_allclose(combined, a.rollout(3, heads=heads), atol=3e-3)
        np.testing.assert_allclose(combined, _rollout(atts, 3, heads), atol=3e-3)
    view.layer = 0
    np.testing.assert_allclose(
        view.attention[[2, 7]].astype(np.float64).mean(0), _rollout(atts, 0, [2, 7]), atol=3e-3
    )


@pytest.mark.parametrize("measure", ["norm", "rollout"])
def test_long_inputs_send_the_measures_lines(minilm, monkeypatch, measure):
    monkeypatch.setattr(ew.ExBertView, "all_heads_max_tokens", 8)
    view = ew.ExBertView(minilm, layer=1, heads=[0, 4], threshold=0.6, measure=measure)
    a = view.analysis
    assert view.attention_mode == "combined" and view.attention is None
    per_head = (
        _rows(a.attention(1, measure="norm"))
        if measure == "norm"
        else np.stack(
            [_rollout(np.stack([a.attention(0), a.attention(1)]), 1, [h]) for h in range(12)]
        )
    )
    expected = _cut(_drawn(per_head, [0, 4], a.special), 0.6)
    n = len(a.tokens)
    dense = np.zeros((n, n))
    counts = np.diff(view.lines_rows)
    rows = np.repeat(np.arange(n), counts)
    dense[rows, view.lines[:, 0]] = view.lines[:, 1] / WEIGHT_LEVELS * view.lines_scale
    sent = {(int(i), int(j)): dense[i, j] for i, j in zip(*np.nonzero(dense), strict=True)}
    _assert_same_lines(sent, expected, atol=2e-3)
    one = view.head_lines(4).dense(n)
    alone = _cut(_drawn(per_head, [4], a.special), 0.6)
    _assert_same_lines(
        {(int(i), int(j)): one[i, j] for i, j in zip(*np.nonzero(one), strict=True)}, alone, 2e-3
    )


def test_a_bad_measure_is_refused_and_kept(minilm):
    view = ew.ExBertView(minilm)
    before = view.attention.copy()
    with pytest.raises(ew.ExbertError, match="measure must be one of"):
        view.measure = "weights"
    assert view.measure == "attention"
    np.testing.assert_array_equal(view.attention, before)


# -- the Δ view ---------------------------------------------------------------------------------


def test_delta_unmasked_against_two_separate_analyses(tiny_bert):
    view = ew.ExBertView(tiny_bert, sentence=SENTENCE, layer=1, heads=[0, 2], threshold=0.8)
    assert view.compare == "" and view.compare_lines is None
    view.compare = "unmasked"
    assert view.compare_lines is None and "Mask a token" in view.compare_note
    view.masked = [3]
    masked = tiny_bert.analyze(SENTENCE, [3], top_k=5)
    plain = tiny_bert.analyze(SENTENCE, (), top_k=5)
    delta = _drawn(masked.attention(1), [0, 2], masked.special) - _drawn(
        plain.attention(1), [0, 2], plain.special
    )
    sent = _sent(view.compare_lines)
    _assert_same_lines(sent, _cut(delta, 0.8), atol=1e-4)
    assert any(v > 0 for v in sent.values()) and any(v < 0 for v in sent.values())
    # probabilities: the masked analysis' top k, with the unmasked probability of each token
    everything = tiny_bert.analyze(SENTENCE, (), top_k=len(tiny_bert.tokenizer))
    for position, row in enumerate(view.compare_top_k):
        assert [tok for tok, _, _ in row] == [tok for tok, _ in masked.top_k[position]]
        probs = dict(everything.top_k[position])
        for tok, p, q in row:
            assert p == pytest.approx(dict(masked.top_k[position])[tok], abs=1e-5)
            assert q == pytest.approx(probs[tok], abs=1e-5)


def test_delta_follows_layer_heads_and_measure(tiny_bert):
    view = ew.ExBertView(tiny_bert, sentence=SENTENCE, masked=[5], compare="unmasked")
    before = view.compare_lines.copy()
    view.apply({"layer": 1, "measure": "norm", "heads": [1]})
    masked = tiny_bert.analyze(SENTENCE, [5])
    plain = tiny_bert.analyze(SENTENCE)
    delta = _drawn(_rows(masked.attention(1, measure="norm")), [1], masked.special) - _drawn(
        _rows(plain.attention(1, measure="norm")), [1], plain.special
    )
    _assert_same_lines(_sent(view.compare_lines), _cut(delta, view.threshold), atol=1e-3)
    assert not np.array_equal(before, view.compare_lines)
    view.compare = None
    assert view.compare == "" and view.compare_lines is None


# -- a compare model -------------------------------------------------------------------------------


def test_compare_model_side_by_side_and_as_delta(tiny_bert, tiny_bert_other):
    view = ew.ExBertView(tiny_bert, compare_model=tiny_bert_other, sentence=SENTENCE, layer=1)
    assert view.compare == "side" and view.compare_model_name
    own = tiny_bert.analyze(SENTENCE)
    other = tiny_bert_other.analyze(SENTENCE)
    heads = view.heads
    theirs = _drawn(other.attention(1), heads, other.special)
    _assert_same_lines(_sent(view.compare_lines), _cut(theirs, view.threshold), atol=1e-4)
    # the other model's predictions, with this model's probability of the same tokens
    assert [t for t, _, _ in view.compare_top_k[4]] == [t for t, _ in other.top_k[4]]
    view.apply({"compare": "model", "heads": [1, 3], "threshold": 0.9})
    delta = _drawn(own.attention(1), [1, 3], own.special) - _drawn(
        other.attention(1), [1, 3], other.special
    )
    _assert_same_lines(_sent(view.compare_lines), _cut(delta, 0.9), atol=1e-4)
    assert (view.compare_lines[:, 2] < 0).any() and (view.compare_lines[:, 2] > 0).any()
    # the same selection drives both: masking reaches the compare model too
    view.masked = [2]
    other_masked = tiny_bert_other.analyze(SENTENCE, [2])
    assert view.reference().analysis.tokens == other_masked.tokens


def test_a_compare_model_without_the_selected_heads_says_so(tiny_bert):
    """A 2-head model beside a 4-head one: head 3 has no counterpart, so the Δ would compare
    head 3 with nothing; the panel says why it is empty instead."""
    model, tok = tiny_models.build("bert")
    config = transformers.BertConfig(**{**model.config.to_dict(), "num_attention_heads": 2})
    torch.manual_seed(3)
    two = ew.load_model(model=transformers.BertForMaskedLM(config).eval(), tokenizer=tok)
    view = ew.ExBertView(tiny_bert, compare_model=two, sentence=SENTENCE, layer=1)
    view.compare = "model"
    view.heads = [1, 3]
    assert view.compare_lines is None and "has heads 0..1 only" in view.compare_note
    view.apply({"heads": [0, 1], "head_weights": [1.0, 0.5, 0.0, 0.0]})
    assert view.compare_lines is None and "has heads 0..1 only" in view.compare_note
    view.head_weights = None
    own, theirs = tiny_bert.analyze(SENTENCE), two.analyze(SENTENCE)
    delta = _drawn(own.attention(1), [0, 1], own.special) - _drawn(
        theirs.attention(1), [0, 1], theirs.special
    )
    assert view.compare_note == ""
    _assert_same_lines(_sent(view.compare_lines), _cut(delta, view.threshold), atol=1e-4)


@pytest.mark.parametrize("mode", ["side", "model"])
def test_a_compare_model_with_a_shorter_limit_says_so_and_keeps_the_sentence(tiny_bert, mode):
    """A compare model that cuts the sentence shorter: once a raw RuntimeError (Δ of a 102- and
    a 64-token matrix) after the sentence had changed, or side lines on the wrong tokens."""
    model, tok = tiny_models.build("bert")
    config = transformers.BertConfig(**{**model.config.to_dict(), "max_position_embeddings": 64})
    torch.manual_seed(4)
    short = ew.load_model(model=transformers.BertForMaskedLM(config).eval(), tokenizer=tok)
    view = ew.ExBertView(tiny_bert, compare_model=short, compare=mode, sentence=SENTENCE)
    assert view.compare_lines is not None and view.compare_note == ""
    long = "word " * 100
    view.sentence = long
    assert view.analysis.text == long and len(view.tokens) == 102
    assert view.compare_lines is None and view.compare_top_k == []
    assert "reads the sentence as 64 tokens, not 102 (its limit is 64)" in view.compare_note
    view.set_state({"sentence": SENTENCE})
    assert view.error == "" and view.compare_note == "" and view.compare_lines is not None


def test_compare_probabilities_come_from_a_pairs_own_inputs(tiny_bert):
    """The reference's probabilities of a pair are the model's own on the pair's inputs (token
    types included): a model compared with itself gives every top-k token its probability back."""
    a = tiny_bert.analyze(SENTENCE, [3], sentence_b="the cat sat on the mat")
    assert 1 in a.segments
    wanted = [[t for t, _ in row] for row in a.top_k]
    theirs = compare.token_probabilities(compare.Side(a, tiny_bert), wanted)
    for position, row in enumerate(a.top_k):
        np.testing.assert_allclose(theirs[position], [p for _, p in row], rtol=1e-3)
    view = ew.ExBertView(tiny_bert, compare_model=tiny_bert, sentence=SENTENCE)
    view.apply({"sentence_b": "the cat sat on the mat", "masked": [3], "compare": "model"})
    assert [[t for t, _, _ in row] for row in view.compare_top_k] == wanted


def test_logits_are_the_models_own_on_the_pairs_inputs(tiny_bert):
    a = tiny_bert.analyze(SENTENCE, [3], sentence_b="the cat sat on the mat")
    enc = tiny_bert.tokenizer(SENTENCE, "the cat sat on the mat", return_tensors="pt")
    ids = enc["input_ids"].clone()
    ids[0, 3] = tiny_bert.tokenizer.mask_token_id
    with torch.no_grad():
        expected = tiny_bert.model(input_ids=ids, token_type_ids=enc["token_type_ids"]).logits[0]
    assert ids[0].tolist() == a.input_ids
    torch.testing.assert_close(tiny_bert.logits(a), expected, atol=1e-4, rtol=1e-4)


def test_models_with_other_tokenizers_are_refused_naming_both(tiny_bert, tiny_dirs):
    roberta = ew.load_model(tiny_dirs["roberta"])
    with pytest.raises(ew.InputError) as info:
        ew.ExBertView(tiny_bert, compare_model=roberta)
    message = str(info.value)
    assert tiny_bert.name in message and roberta.name in message and "vocabularies" in message


def test_compare_model_modes_need_a_compare_model(tiny_bert):
    view = ew.ExBertView(tiny_bert)
    for mode in ("model", "side"):
        with pytest.raises(ew.ExbertError, match="compare_model"):
            view.compare = mode
    assert view.compare == ""


# -- the head report heatmap ------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_corpus(minilm, tmp_path_factory) -> ew.Corpus:
    texts = [
        "The girl ran to a local pub to escape the din of her city.",
        "Dorothy lived in the midst of the great Kansas prairies with her uncle.",
        "The old farmer built a small house and painted it grey.",
    ]
    return ew.build_corpus(texts, minilm, tmp_path_factory.mktemp("beyond") / "c", progress=False)


def test_head_report_reaches_the_heatmap(minilm, small_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    view = ew.ExBertView(minilm, corpus=small_corpus)
    assert view.report == {}
    frame = view.head_report()
    report = view.report
    assert (report["num_layers"], report["num_heads"]) == (6, 12)
    rel = frame["relation"].iloc[0]
    for direction in ("dependent→head", "head→dependent"):
        rows = frame[(frame["relation"] == rel) & (frame["direction"] == direction)]
        grid = rows.pivot(index="layer", columns="head", values="accuracy").to_numpy()
        np.testing.assert_allclose(
            np.array(report["accuracy"][rel][direction]).reshape(6, 12), grid, atol=1e-6
        )
        assert report["baseline"][rel][direction][1] == pytest.approx(
            rows["baseline_accuracy"].iloc[0], abs=1e-6
        )
    counts = [r["count"] for r in report["relations"]]
    assert counts == sorted(counts, reverse=True)
    assert all(r["few"] for r in report["relations"])  # three sentences: every relation is few
    top = top_heads(frame, [rel], top=2)
    assert (
        len(top) == 4
        and top["accuracy"].iloc[0]
        == frame[(frame["relation"] == rel) & (frame["direction"] == top["direction"].iloc[0])][
            "accuracy"
        ].max()
    )
    assert report == report_view(frame, 6, 12)


def test_head_report_without_a_corpus_is_refused(minilm):
    view = ew.ExBertView(minilm)
    with pytest.raises(ew.InputError, match="corpus"):
        view.head_report()


def test_head_report_command_replies(minilm, small_corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    view = ew.ExBertView(minilm, corpus=small_corpus)
    replies = []
    view._commands.send = lambda reply, buffers: replies.append(reply)
    view._commands.handle(
        {"kind": "exbert-command", "id": 1, "name": "head_report", "args": {"refresh": False}}
    )
    assert replies[0]["ok"] and replies[0]["result"]["rows"] == len(
        small_corpus.head_report(minilm)
    )
    assert view.report["relations"]


def test_a_model_without_norms_refuses_norm_and_keeps_its_measure(tmp_path):
    lm = ew.load_model(tiny_models.save("deberta-v2", tmp_path / "deberta"))
    view = ew.ExBertView(lm, measure="rollout")
    with pytest.raises(ew.ExbertError, match="measure='attention' works"):
        view.measure = "norm"
    assert view.measure == "rollout"
    a = view.analysis
    np.testing.assert_allclose(
        view.attention[view.heads].astype(np.float64).mean(0), a.rollout(0), atol=3e-3
    )


def test_a_measure_the_compare_model_refuses_empties_only_the_second_panel(tiny_bert):
    """DeBERTa gives no value states for norms: with it as the compare model, measure='norm'
    once raised from the compare panel after the measure had changed, leaving the first panel
    drawing attention weights under measure='norm'."""
    model, tok = tiny_models.build("deberta-v2")
    deberta = ew.load_model(model=model, tokenizer=tok)
    view = ew.ExBertView(tiny_bert, compare_model=deberta, compare="model", sentence=SENTENCE)
    view.measure = "norm"
    norms = view.analysis.attention(view.layer, measure="norm")
    np.testing.assert_allclose(view.attention, _rows(norms), atol=2e-3)
    assert view.compare_lines is None and "measure='attention' works" in view.compare_note
    view.set_state({"measure": "attention"})
    assert view.error == "" and view.compare_note == "" and view.compare_lines is not None


def test_a_decoder_draws_measures_and_compares_models(tiny_dirs):
    gpt2 = ew.load_model(tiny_dirs["gpt2"])
    model, tok = tiny_models.build("gpt2")
    torch.manual_seed(2)
    other = ew.load_model(model=type(model)(model.config).eval(), tokenizer=tok)
    view = ew.ExBertView(gpt2, compare_model=other, sentence="the cat sat on the mat", layer=1)
    view.measure = "norm"
    np.testing.assert_allclose(
        view.attention, _rows(view.analysis.attention(1, measure="norm")), atol=2e-3
    )
    view.compare = "model"
    mine, theirs = gpt2.analyze(view.sentence), other.analyze(view.sentence)
    delta = _drawn(_rows(mine.attention(1, measure="norm")), view.heads, mine.special) - _drawn(
        _rows(theirs.attention(1, measure="norm")), view.heads, theirs.special
    )
    _assert_same_lines(_sent(view.compare_lines), _cut(delta, view.threshold), atol=1e-3)
    # next-token predictions, with the compare model's probability of the same next token
    everything = other.analyze(view.sentence, top_k=len(tok))
    for position, row in enumerate(view.compare_top_k):
        probs = dict(everything.top_k[position])
        for token, _, q in row:
            assert q == pytest.approx(probs[token], abs=1e-5)


def test_delta_is_the_same_for_long_inputs(tiny_bert, monkeypatch):
    """The second panel is cut in the kernel in both modes: kernel-combined lines change nothing."""
    short = ew.ExBertView(tiny_bert, sentence=SENTENCE, masked=[4], compare="unmasked", layer=1)
    monkeypatch.setattr(ew.ExBertView, "all_heads_max_tokens", 8)
    long = ew.ExBertView(tiny_bert, sentence=SENTENCE, masked=[4], compare="unmasked", layer=1)
    assert long.attention_mode == "combined" and short.attention_mode == "all_heads"
    np.testing.assert_array_equal(long.compare_lines, short.compare_lines)
    assert long.compare_top_k == short.compare_top_k


def test_measures_of_an_encoder_decoders_parts(tmp_path):
    lm = ew.load_model(tiny_models.save("bart", tmp_path / "bart"))
    source, target = "The keeper of the lighthouse slept in 1998.", "Die Wärterin schlief."
    view = ew.ExBertView(lm, sentence=source, target=target, part="decoder", layer=1)
    view.measure = "norm"
    a = view.analysis
    ns, nt = len(a.tokens), len(a.target_tokens)
    block = view.attention[:, ns:, ns:]  # the decoder's block of the view's token list
    np.testing.assert_allclose(
        block, _rows(a.attention(1, measure="norm", part="decoder")), atol=2e-3
    )
    assert not view.attention[:, :ns].any() and not view.attention[:, ns:, :ns].any()
    view.measure = "rollout"
    heads = [0, 1]
    view.heads = heads
    np.testing.assert_allclose(
        view.attention[heads, ns:, ns:].astype(np.float64).mean(0),
        a.rollout(1, heads=heads, part="decoder"),
        atol=3e-3,
    )
    with pytest.raises(ew.ExbertError, match="Rollout has no cross part"):
        view.part = "cross"
    view.measure = "norm"
    view.part = "cross"
    np.testing.assert_allclose(
        view.attention[:, ns:, :ns], _rows(a.attention(1, measure="norm", part="cross")), atol=2e-3
    )
    assert view.attention.shape[-1] == ns + nt
    with pytest.raises(ew.ExbertError, match="one stack"):
        view.compare = "unmasked"


def test_drawn_lines_and_the_svg_export_follow_the_measure(minilm, tmp_path):
    view = ew.ExBertView(minilm, layer=3, heads=[1, 5], threshold=0.6, measure="norm")
    a = view.analysis
    expected = _cut(_drawn(_rows(a.attention(3, measure="norm")), [1, 5], a.special), 0.6)
    frame = view.drawn_lines()
    sent = {(int(r["from"]), int(r["to"])): float(r["weight"]) for _, r in frame.iterrows()}
    _assert_same_lines(sent, expected, atol=2e-3)
    weights = _cut(_drawn(a.attention(3), [1, 5], a.special), 0.6)
    assert set(sent) != set(weights)  # not the weights' lines
    svg = view.save(tmp_path / "norm.svg").read_text()
    view.measure = "attention"
    assert svg != view.save(tmp_path / "weights.svg").read_text()


def test_delta_of_a_sentence_pair(tiny_bert):
    b = "She ordered a cup of tea."
    view = ew.ExBertView(tiny_bert, sentence=SENTENCE, sentence_b=b, layer=1, compare="unmasked")
    view.masked = [3]
    masked = tiny_bert.analyze(SENTENCE, [3], sentence_b=b)
    plain = tiny_bert.analyze(SENTENCE, sentence_b=b)
    assert view.reference().analysis.tokens == plain.tokens
    delta = _drawn(masked.attention(1), view.heads, masked.special) - _drawn(
        plain.attention(1), view.heads, plain.special
    )
    _assert_same_lines(_sent(view.compare_lines), _cut(delta, view.threshold), atol=1e-4)
