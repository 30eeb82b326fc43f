"""Sentence pairs and encoder–decoder models in the view (issue 11, items 2 and 3): what the view
is sent and draws, against the engine's arrays, the model's own outputs through transformers and
a direct numpy implementation of the drawing rules."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

import exbert_widget as ew
from exbert_widget.errors import InputError, StateError
from tests import tiny_models
from tests.test_view_search import SENTENCES

A = "The keeper of the lighthouse slept."
B = "Mrs. Okafor kept the lamp burning all night."
SOURCE = "The keeper of the lighthouse slept in 1998."
TARGET = "Die Wärterin schlief."
FILTERS = {"all": None, "A->A": (0, 0), "A->B": (0, 1), "B->A": (1, 0), "B->B": (1, 1)}


# -- the drawing rules, restated in numpy (js/src/panels/attention/attention.ts) ----------------


def reference_lines(
    attention: np.ndarray,
    special: list[bool],
    heads: list[int],
    threshold: float,
    segments: list[int] | None = None,
    pair: tuple[int, int] | None = None,
) -> set[tuple[int, int]]:
    """The (row, column) pairs drawn: heads averaged, special tokens' rows and columns removed
    and rows renormalised, each row's strongest lines kept until they reach ``threshold`` of
    it, then the pair filter."""
    combined = attention[heads].astype(np.float64).mean(0)
    keep = ~np.asarray(special)
    combined = combined * keep[:, None] * keep[None, :]
    sums = combined.sum(1, keepdims=True)
    combined = np.divide(combined, sums, out=np.zeros_like(combined), where=sums > 0)
    drawn = set()
    for i, row in enumerate(combined):
        order = sorted((j for j in range(len(row)) if row[j] > 0), key=lambda j: (-row[j], j))
        total, target = 0.0, threshold * row.sum() * (1 - 1e-6)
        for j in order:
            drawn.add((i, j))
            total += row[j]
            if total >= target:
                break
    if pair is not None:
        assert segments is not None
        drawn = {(i, j) for i, j in drawn if (segments[i], segments[j]) == pair}
    return drawn


def first_b_word(view) -> int:
    """The first token of the second sentence that is not special."""
    pairs = zip(view.segments, view.special, strict=True)
    return next(j for j, (segment, special) in enumerate(pairs) if segment == 1 and not special)


def drawn(view) -> set[tuple[int, int]]:
    frame = view.drawn_lines()
    return set(zip(frame["from"].tolist(), frame["to"].tolist(), strict=True))


# -- sentence pairs -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pair_lms(tiny_dirs) -> dict[str, ew.LanguageModel]:
    return {f: ew.load_model(tiny_dirs[f]) for f in ("bert", "gpt2")}


def test_the_pair_reaches_the_analysis_and_its_segments_the_view(pair_lms, tiny_dirs):
    lm = pair_lms["bert"]
    view = ew.ExBertView(lm, sentence=A, sentence_b=B)
    expected = AutoTokenizer.from_pretrained(tiny_dirs["bert"])(A, B)
    assert view.analysis.input_ids == expected["input_ids"]
    assert view.segments == expected["token_type_ids"] and 1 in view.segments
    assert view.tokens == view.analysis.tokens and view.analysis.sentence_b == B
    own = lm.analyze(A, sentence_b=B)
    np.testing.assert_allclose(
        view.attention.astype(np.float32), own.attention(0), atol=1e-3
    )  # float16 on the wire
    # setting sentence_b alone starts over: no mask, no selection
    view.apply({"masked": [2], "selected": 3})
    view.sentence_b = "Another one."
    assert view.masked == [] and view.selected is None
    assert view.tokens == lm.analyze(A, sentence_b="Another one.").tokens
    view.sentence_b = ""
    assert view.segments == [0] * len(view.tokens) and view.tokens == lm.analyze(A).tokens


@pytest.mark.parametrize("name", list(FILTERS))
def test_lines_under_each_filter_are_a_direct_filter_of_the_attention(pair_lms, name):
    view = ew.ExBertView(pair_lms["bert"], sentence=A, sentence_b=B, layer=1)
    view.apply({"heads": [0, 2], "threshold": 0.8, "pair_filter": name})
    a = view.analysis
    sent = a.attention(1).astype(np.float16).astype(np.float32)  # what the view receives
    want = reference_lines(sent, a.special, [0, 2], 0.8, a.segments, FILTERS[name])
    assert drawn(view) == want
    everything = reference_lines(sent, a.special, [0, 2], 0.8)
    assert want <= everything and (name == "all") == (want == everything)
    assert want, f"{name}: nothing to compare"


def test_long_input_mode_filters_the_kernels_lines_too(pair_lms):
    view = ew.ExBertView(pair_lms["bert"], sentence=A, sentence_b=B)
    view.all_heads_max_tokens = 8  # this view only: the kernel sends lines
    view.apply({"sentence_b": B + " Still burning.", "pair_filter": "B->A", "layer": 1})
    assert view.attention_mode == "combined" and view.attention is None
    a = view.analysis
    heads = list(range(view.num_heads))
    want = reference_lines(a.attention(1), a.special, heads, view.threshold, a.segments, (1, 0))
    assert drawn(view) == want and want
    # the lines sent are those of "all"; the filter keeps the B -> A ones
    rows = np.repeat(np.arange(len(a.tokens)), np.diff(view.lines_rows))
    sent = set(zip(rows.tolist(), view.lines[:, 0].tolist(), strict=True))
    assert sent == reference_lines(a.attention(1), a.special, heads, view.threshold)


def test_masking_a_token_of_the_second_sentence(pair_lms):
    lm = pair_lms["bert"]
    view = ew.ExBertView(lm, sentence=A, sentence_b=B)
    i = first_b_word(view)
    view.set_state({"masked": [i]})  # as the view sends a double-click
    assert view.error == "" and view.masked == [i]
    assert view.tokens[i] == lm.tokenizer.mask_token
    own = lm.analyze(A, [i], top_k=5, sentence_b=B)
    assert view.analysis.input_ids == own.input_ids
    assert [row[0][0] for row in view.top_k] == [row[0][0] for row in own.top_k]
    np.testing.assert_allclose(view.attention.astype(np.float32), own.attention(0), atol=1e-3)


def test_a_decoder_without_a_pair_convention_is_refused_and_keeps_its_state(pair_lms):
    view = ew.ExBertView(pair_lms["gpt2"], sentence=A)
    before = (list(view.tokens), view.attention.copy())
    view.set_state({"sentence_b": B})  # from the browser: shown, nothing changes
    assert "no convention for a pair" in view.error
    assert view.sentence_b == "" and view.tokens == before[0]
    np.testing.assert_array_equal(view.attention, before[1])
    with pytest.raises(StateError, match="no convention for a pair"):
        view.sentence_b = B
    with pytest.raises(StateError, match="encoder–decoder"):
        view.part = "cross"
    with pytest.raises(StateError, match="encoder–decoder"):
        view.target = "Hallo."
    with pytest.raises(StateError, match="pair_filter"):
        view.pair_filter = "A→B"


def test_takes_pair_says_which_models_accept_a_second_sentence(pair_lms, s2s):
    """The flag the view hides its second-sentence row by: true exactly where the tokenizer puts
    a separator between two texts (checked on its own encodings) and a pair is accepted."""
    for name, lm in {**pair_lms, **s2s}.items():
        view = ew.ExBertView(lm, sentence=A)
        tok = lm.tokenizer
        pieces = len(tok(A, add_special_tokens=False).input_ids) + len(
            tok(B, add_special_tokens=False).input_ids
        )
        separated = (
            len(tok(A, B).input_ids)
            > len(tok(A).input_ids) - len(tok(A, add_special_tokens=False).input_ids) + pieces
        )
        assert view.takes_pair is (separated and lm.kind != "seq2seq"), name
        view.set_state({"sentence_b": B})
        assert (view.sentence_b == B) is view.takes_pair, name
        assert (view.error == "") is view.takes_pair, name


@pytest.fixture(scope="module")
def minilm_corpus(minilm, tmp_path_factory) -> ew.Corpus:
    out = tmp_path_factory.mktemp("minilm-pair-corpus") / "c"
    return ew.build_corpus([s + "." for s in SENTENCES[:20]], minilm, out)


def test_search_from_a_token_of_the_second_sentence(minilm, minilm_corpus):
    view = ew.ExBertView(minilm, corpus=minilm_corpus, sentence=A, sentence_b=B, layer=2)
    i = first_b_word(view)
    view.selected = i
    hits = view.search(by="embedding", k=8, skip_own_sentence=False, max_per_sentence=None)
    # the query: that token's output of layer 2, from the model itself with the pair's types
    tok = tiny_models.minilm_tokenizer()
    model = AutoModel.from_pretrained(tiny_models.MINILM).eval()
    with torch.no_grad():
        out = model(**tok(A, B, return_tensors="pt"), output_hidden_states=True)
    query = out.hidden_states[3][0, i].numpy()
    own = minilm_corpus.search(query, layer=2, by="embedding", k=8)
    assert hits.sentence_id.tolist() == own.sentence_id.tolist()
    assert hits.token_index.tolist() == own.token_index.tolist()
    np.testing.assert_allclose(hits.score, own.score, atol=1e-4)


# -- encoder–decoder models -------------------------------------------------------------------


@pytest.fixture(scope="module")
def s2s_dirs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("view-seq2seq")
    return tiny_models.save_all(("t5", "bart"), root)


@pytest.fixture(scope="module")
def s2s(s2s_dirs) -> dict[str, ew.LanguageModel]:
    return {f: ew.load_model(d) for f, d in s2s_dirs.items()}


def _model_attentions(directory: str, a) -> dict[str, tuple]:
    model = AutoModelForSeq2SeqLM.from_pretrained(directory, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor([a.input_ids]),
            decoder_input_ids=torch.tensor([a.target.input_ids]),
            output_attentions=True,
            use_cache=False,
        )
    return {
        "encoder": out.encoder_attentions,
        "decoder": out.decoder_attentions,
        "cross": out.cross_attentions,
    }


@pytest.mark.parametrize("family", ["t5", "bart"])
def test_each_part_sends_its_block_of_the_models_own_attention(s2s, s2s_dirs, family):
    lm = s2s[family]
    view = ew.ExBertView(lm, sentence=SOURCE, target=TARGET)
    a = view.analysis
    ns, nt = len(a.tokens), len(a.target_tokens)
    assert view.tokens == a.tokens + a.target_tokens and view.parts == list(a.parts)
    own = _model_attentions(s2s_dirs[family], a)
    blocks = {"encoder": ((0, ns), (0, ns)), "decoder": ((ns, ns + nt),) * 2}
    blocks["cross"] = ((ns, ns + nt), (0, ns))
    for part, (rows, cols) in blocks.items():
        view.part = part
        assert (view.row_span, view.column_span) == (list(rows), list(cols))
        assert view.num_layers == a.layer_count(part) == len(own[part])
        for layer in range(view.num_layers):
            view.layer = layer
            sent = view.attention.astype(np.float32)
            block = sent[:, rows[0] : rows[1], cols[0] : cols[1]]
            np.testing.assert_allclose(block, a.attention(layer, part=part), atol=1e-3)
            np.testing.assert_allclose(block, own[part][layer][0].numpy(), atol=1e-3)
            outside = sent.copy()
            outside[:, rows[0] : rows[1], cols[0] : cols[1]] = 0
            assert not outside.any()


def test_cross_lines_run_from_target_tokens_to_source_tokens(s2s):
    view = ew.ExBertView(s2s["t5"], sentence=SOURCE, target=TARGET, part="cross", layer=1)
    a = view.analysis
    ns = len(a.tokens)
    frame = view.drawn_lines()
    assert len(frame) and (frame["from"] >= ns).all() and (frame["to"] < ns).all()
    assert frame["from_token"].tolist() == [a.target_tokens[i - ns] for i in frame["from"]]
    assert frame["to_token"].tolist() == [a.tokens[j] for j in frame["to"]]
    heads = list(range(view.num_heads))
    sent = view.attention.astype(np.float32)
    assert drawn(view) == reference_lines(sent, view.special, heads, view.threshold)
    # long-input mode: the kernel's lines of the same block
    view.all_heads_max_tokens = 8
    view.layer = 0
    view.layer = 1
    assert view.attention_mode == "combined"
    block = a.attention(1, part="cross")
    full = np.zeros((block.shape[0], len(view.tokens), len(view.tokens)), dtype=np.float32)
    full[:, ns:, :ns] = block
    assert drawn(view) == reference_lines(full, view.special, heads, view.threshold)


def test_long_input_heads_grids_of_a_part_are_over_its_block(s2s):
    view = ew.ExBertView(s2s["bart"], sentence=SOURCE, target=TARGET, part="cross", layer=2)
    view.all_heads_max_tokens = 8
    view.layer = 1
    assert view.attention_mode == "combined"
    a = view.analysis
    ns = len(a.tokens)
    block = a.attention(1, part="cross").astype(np.float64)  # [H, target, source]
    rows_shown = ~np.asarray(a.target.special)
    cols_shown = ~np.asarray(a.special)
    kept = block * rows_shown[None, :, None] * cols_shown[None, None, :]
    sums = kept.sum(-1, keepdims=True)
    kept = np.divide(kept, sums, out=np.zeros_like(kept), where=sums > 0)
    summary = view.head_summary.astype(np.float64)
    # [0, i, h]: the strongest share of target row i; [1, j, h]: source column j's mean over
    # the shown target rows
    np.testing.assert_allclose(summary[0, ns:], kept.max(-1).T, atol=2e-3)
    means = kept.sum(1) / rows_shown.sum()
    np.testing.assert_allclose(summary[1, :ns], means.T, atol=2e-3)
    assert not summary[0, :ns].any() and not summary[1, ns:].any()


def test_the_layer_range_follows_the_part(s2s):
    lm = s2s["bart"]  # two encoder layers, three decoder layers
    view = ew.ExBertView(lm, sentence=SOURCE, target=TARGET)
    assert (lm.num_layers, lm.num_decoder_layers) == (2, 3)
    assert view.num_layers == 2
    with pytest.raises(StateError, match=r"0\.\.1 in its encoder"):
        view.layer = 2
    view.part = "decoder"
    assert view.num_layers == 3
    view.layer = 2
    view.part = "cross"
    assert view.layer == 2 and view.num_layers == 3
    view.part = "encoder"  # back to two layers: the last one
    assert view.num_layers == 2 and view.layer == 1
    view.set_state({"layer": 2})
    assert "out of range" in view.error and view.layer == 1
    # both at once, in either order
    view.apply({"layer": 2, "part": "decoder"})
    assert (view.part, view.layer) == ("decoder", 2)


def test_top_k_are_the_decoders_predictions_at_target_tokens(s2s):
    view = ew.ExBertView(s2s["t5"], sentence=SOURCE, target=TARGET)
    a = view.analysis
    ns = len(a.tokens)
    assert view.top_k[:ns] == [[]] * ns
    for i, row in enumerate(a.top_k):
        assert [tok for tok, _ in view.top_k[ns + i]] == [tok for tok, _ in row]
        np.testing.assert_allclose(
            [p for _, p in view.top_k[ns + i]], [p for _, p in row], atol=1e-6
        )


def test_an_empty_target_is_generated_and_shown_back(s2s):
    lm = s2s["t5"]
    view = ew.ExBertView(lm, sentence=SOURCE)
    own = lm.analyze(SOURCE)
    assert view.target == "" and view.target_generated
    assert view.target_text == own.target.text and view.analysis.target_tokens == own.target_tokens
    ns = len(own.tokens)
    flags = [not s for s in own.target.special]
    assert view.generated == [False] * ns + flags and any(flags)
    view.target = TARGET
    assert view.target_text == TARGET and not view.target_generated and not any(view.generated)
    view.selected = len(view.tokens) - 1  # a target token can be selected
    view.target = ""
    assert view.target_generated and view.target_text == own.target.text


def test_masking_source_tokens_where_the_tokenizer_has_a_mask_token(s2s):
    bart = ew.ExBertView(s2s["bart"], sentence=SOURCE, target=TARGET)
    bart.set_state({"masked": [2]})
    assert bart.error == "" and bart.tokens[2] == "<mask>"
    assert bart.analysis.input_ids == s2s["bart"].analyze(SOURCE, [2], target=TARGET).input_ids
    ns = len(bart.analysis.tokens)
    bart.set_state({"masked": [2, ns + 1]})
    assert "target tokens" in bart.error and bart.masked == [2]
    with pytest.raises(ew.StateError, match=rf"\[1000000\] are not source tokens.*0\.\.{ns - 1}"):
        bart.masked = [10**6]  # no token at all: not called a target token
    assert bart.masked == [2] and bart.tokens[2] == "<mask>"
    t5 = ew.ExBertView(s2s["t5"], sentence=SOURCE, target=TARGET)
    before = list(t5.tokens)
    t5.set_state({"masked": [1]})
    assert "no mask token" in t5.error and t5.masked == [] and t5.tokens == before


def test_corpus_search_is_refused_for_encoder_decoder_models(s2s):
    view = ew.ExBertView(s2s["t5"], sentence=SOURCE, target=TARGET, selected=1)
    with pytest.raises(InputError, match="not available for encoder–decoder"):
        view.search()
    with pytest.raises(StateError, match="encoder–decoder"):
        view.sentence_b = "A second sentence."


# -- exports and the logit lens of pairs and parts ----------------------------------------------


def _svg_lines(path) -> set[tuple[int, int]]:
    root = ET.parse(path).getroot()
    paths = root.iter("{http://www.w3.org/2000/svg}path")
    return {(int(p.get("data-from")), int(p.get("data-to"))) for p in paths if p.get("data-from")}


@pytest.mark.parametrize("name", ["A->B", "B->B"])
def test_svg_export_draws_the_pair_filters_lines(pair_lms, tmp_path, name):
    view = ew.ExBertView(pair_lms["bert"], sentence=A, sentence_b=B, layer=1)
    view.pair_filter = name
    expected = reference_lines(
        view.attention.astype(np.float32),
        view.special,
        list(view.heads),
        view.threshold,
        view.segments,
        FILTERS[name],
    )
    assert expected and _svg_lines(view.save(tmp_path / "pair.svg")) == expected


def test_svg_export_of_the_cross_part_draws_target_rows_to_source_columns(s2s, tmp_path):
    view = ew.ExBertView(s2s["bart"], sentence=SOURCE, target=TARGET, part="cross", layer=1)
    ns = len(view.analysis.tokens)
    path = view.save(tmp_path / "cross.svg")
    lines = _svg_lines(path)
    assert lines == drawn(view) and all(i >= ns > j for i, j in lines)
    # the columns hold the part's tokens: target rows on the left, source columns on the right
    texts = list(ET.parse(path).getroot().iter("{http://www.w3.org/2000/svg}text"))
    side = {
        s: [int(t.get("data-index")) for t in texts if t.get("data-side") == s]
        for s in ("left", "right")
    }
    shown = [i for i, special in enumerate(view.special) if not special]
    assert side["left"] == [i for i in shown if i >= ns]
    assert side["right"] == [i for i in shown if i < ns]


def test_logit_lens_of_an_encoder_decoder_view_reads_the_selected_target_token(s2s):
    lm = s2s["bart"]
    view = ew.ExBertView(lm, sentence=SOURCE, target=TARGET, part="decoder")
    ns = len(view.analysis.tokens)
    view.selected = ns + 2
    expected = lm.logit_lens(view.analysis, 2)
    pd.testing.assert_frame_equal(view.logit_lens(), expected)
    view.selected = 1  # a source token: the decoder's layers have nothing to say there
    with pytest.raises(ew.InputError, match="select a target token"):
        view.logit_lens()
