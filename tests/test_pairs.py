"""Sentence pairs (issue 11): the tokenizer's pair encoding, token types reaching the model,
segments, masking in either segment, and decoders refused unless their tokenizer joins pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

import exbert_widget as ew
from tests import tiny_models

A = "The keeper of the lighthouse slept."
B = "Mrs. Okafor kept the lamp burning all night."
ATOL = 1e-5


@pytest.fixture(scope="module")
def dirs(tiny_dirs, tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("pair-models")
    extra = {f: str(tiny_models.save(f, root / f)) for f in ("llama3", "qwen2", "modernbert")}
    return {**tiny_dirs, **extra}


@pytest.fixture(scope="module")
def lms(dirs) -> dict[str, ew.LanguageModel]:
    wanted = ("bert", "roberta", "gpt2", "llama3", "qwen2", "modernbert", "llama")
    return {f: ew.load_model(dirs[f]) for f in wanted}


def _reference(model, ids, types=None):
    inputs = {"input_ids": torch.tensor([ids])}
    if types is not None:
        inputs["token_type_ids"] = torch.tensor([types])
    with torch.no_grad():
        return model(**inputs, output_attentions=True, output_hidden_states=True)


def test_bert_pair_is_the_tokenizers_pair_and_its_types_reach_the_model(lms, dirs):
    lm = lms["bert"]
    a = lm.analyze(A, sentence_b=B, top_k=3)
    tok = AutoTokenizer.from_pretrained(dirs["bert"])
    expected = tok(A, B)
    assert a.input_ids == expected["input_ids"]
    assert a.segments == expected["token_type_ids"] and 1 in a.segments
    assert a.sentence_b == B
    sep = a.tokens.index("[SEP]")
    assert a.segments[: sep + 1] == [0] * (sep + 1) and a.tokens[-1] == "[SEP]"
    model = AutoModelForMaskedLM.from_pretrained(dirs["bert"], attn_implementation="eager").eval()
    ref = _reference(model, a.input_ids, expected["token_type_ids"])
    for layer in range(lm.num_layers):
        np.testing.assert_allclose(a.attention(layer), ref.attentions[layer][0].numpy(), atol=ATOL)
    np.testing.assert_allclose(
        a.hidden_states, torch.cat(ref.hidden_states).numpy(), atol=ATOL, rtol=1e-5
    )
    # The types matter: all-zero types give other hidden states.
    zeros = _reference(model, a.input_ids, [0] * len(a))
    assert np.abs(zeros.hidden_states[0][0].numpy() - a.hidden_states[0]).max() > 1e-3


def test_offsets_of_the_second_sentence_point_into_it(lms):
    for family in ("bert", "roberta", "llama3"):
        a = lms[family].analyze(A, sentence_b=B)
        for (start, end), special, segment, token in zip(
            a.offsets, a.special, a.segments, a.tokens, strict=True
        ):
            if special:
                continue
            text = B if segment else A
            piece = text[start:end]
            shown = token.replace("Ġ", " ").replace("##", "").lower()
            assert piece.strip() and piece.strip().lower() in shown


@pytest.mark.parametrize("segment", [0, 1])
def test_masking_works_in_either_segment(lms, dirs, segment):
    lm = lms["bert"]
    plain = lm.encode(A, sentence_b=B)
    position = (
        next(
            i
            for i, (s, g) in enumerate(zip(plain.special, plain.segments, strict=True))
            if not s and g == segment
        )
        + 1
    )
    a = lm.analyze(A, masked=[position], top_k=5, sentence_b=B)
    assert a.tokens[position] == "[MASK]" and a.segments == plain.segments
    model = AutoModelForMaskedLM.from_pretrained(dirs["bert"], attn_implementation="eager").eval()
    logits = _reference(model, a.input_ids, plain.token_type_ids).logits[0, position]
    values, ids = torch.softmax(logits.double(), -1).topk(5)
    assert [t for t, _ in a.top_k[position]] == lm.tokenizer.convert_ids_to_tokens(ids)
    np.testing.assert_allclose([p for _, p in a.top_k[position]], values.numpy(), rtol=1e-5)


def test_roberta_segments_follow_the_sequence_ids(lms, dirs):
    """RoBERTa's tokenizer gives no token types (all 0) but joins the pair with </s></s>."""
    lm = lms["roberta"]
    a = lm.analyze(A, sentence_b=B)
    tok = AutoTokenizer.from_pretrained(dirs["roberta"])
    enc = tok(A, B)
    assert a.input_ids == enc["input_ids"]
    ids = enc.sequence_ids()
    first_b = ids.index(1)
    assert a.segments == [0] * first_b + [1] * (len(a) - first_b)
    assert a.tokens[first_b - 2 : first_b] == ["</s>", "</s>"]
    model = AutoModelForMaskedLM.from_pretrained(dirs["roberta"], attn_implementation="eager")
    ref = _reference(model.eval(), a.input_ids)
    np.testing.assert_allclose(a.attention(1), ref.attentions[1][0].numpy(), atol=ATOL)


def test_minilm_takes_a_pair(minilm):
    a = minilm.analyze(A, sentence_b=B)
    tok = AutoTokenizer.from_pretrained(tiny_models.MINILM)
    enc = tok(A, B)
    assert a.input_ids == enc["input_ids"] and a.segments == enc["token_type_ids"]
    model = AutoModel.from_pretrained(tiny_models.MINILM, attn_implementation="eager").eval()
    ref = _reference(model, a.input_ids, enc["token_type_ids"])
    np.testing.assert_allclose(a.attention(5), ref.attentions[5][0].numpy(), atol=ATOL)


def test_a_decoder_takes_the_pair_as_its_tokenizer_joins_it(lms, dirs):
    """Llama 3's tokenizer joins a pair with a second <|begin_of_text|> (type 1)."""
    lm = lms["llama3"]
    a = lm.analyze(A, sentence_b=B, top_k=3)
    enc = AutoTokenizer.from_pretrained(dirs["llama3"])(A, B)
    assert a.input_ids == enc["input_ids"]
    assert a.tokens.count("<|begin_of_text|>") == 2
    second = a.tokens.index("<|begin_of_text|>", 1)
    assert a.segments == [0] * second + [1] * (len(a) - second)
    model = AutoModelForCausalLM.from_pretrained(dirs["llama3"], attn_implementation="eager")
    ref = _reference(model.eval(), a.input_ids)
    np.testing.assert_allclose(a.attention(1), ref.attentions[1][0].numpy(), atol=ATOL)
    probs = torch.softmax(ref.logits[0, -1].double(), -1)
    np.testing.assert_allclose(a.top_k[-1][0][1], float(probs.max()), rtol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "qwen2", "llama"])
def test_a_tokenizer_without_a_pair_convention_is_refused(lms, family):
    lm = lms[family]
    with pytest.raises(ew.InputError, match="no convention for a pair") as info:
        lm.analyze(A, sentence_b=B)
    assert lm.name in str(info.value) and "text + ' ' + text_b" in str(info.value)


def test_modernbert_pair_without_token_types(lms, dirs):
    lm = lms["modernbert"]
    a = lm.analyze(A, sentence_b=B)
    enc = AutoTokenizer.from_pretrained(dirs["modernbert"])(A, B)
    assert (
        a.input_ids == enc["input_ids"] and "token_type_ids" not in lm.tokenizer.model_input_names
    )
    assert a.segments[-1] == 1 and a.segments[0] == 0
    model = AutoModelForMaskedLM.from_pretrained(dirs["modernbert"], attn_implementation="eager")
    ref = _reference(model.eval(), a.input_ids)
    np.testing.assert_allclose(a.attention(2), ref.attentions[2][0].numpy(), atol=ATOL)


def test_bad_second_sentences_are_refused(lms):
    lm = lms["bert"]
    with pytest.raises(ew.InputError, match="sentence_b is empty"):
        lm.analyze(A, sentence_b="   ")
    with pytest.raises(ew.InputError, match="must be a str or None"):
        lm.analyze(A, sentence_b=3)
    with pytest.raises(ew.InputError, match="invalid character"):
        lm.analyze(A, sentence_b="broken \ud800 text")
    with pytest.raises(ew.InputError, match="target= is for encoder–decoder"):
        lm.analyze(A, target=B)


def test_a_long_pair_is_cut_longest_first_with_a_warning(lms):
    lm = lms["bert"]  # 128 positions
    with pytest.warns(UserWarning, match="truncated"):
        a = lm.analyze(A, sentence_b="lighthouse " * 300)
    assert a.truncated and len(a) == lm.max_length
    assert a.tokens.count("[SEP]") == 2 and a.segments[-1] == 1
    short = lm.encode(A)
    assert a.tokens[: len(short)] == short.tokens  # the short sentence kept whole


def test_single_sentences_are_segment_zero(lms):
    a = lms["bert"].analyze(A)
    assert a.segments == [0] * len(a) and a.sentence_b is None
