"""The logit lens (issue 11) against heads written out by hand for each family: final norm (where
the model has one and the recorded state lacks it), the MLM transform, tied embeddings, scaling and
soft-capping, on the model's own hidden states."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import exbert_widget as ew
from tests import tiny_models

SENTENCE = "The keeper of the lighthouse, Mrs. Okafor, didn't sleep in 1998."
FAMILIES = ("gpt2", "llama3", "qwen3", "gemma2", "gpt_neox", "bert", "modernbert", "t5", "bart")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("lens-models")
    return tiny_models.save_all(FAMILIES, root)


@pytest.fixture(scope="module")
def lms(dirs) -> dict[str, ew.LanguageModel]:
    return {f: ew.load_model(path) for f, path in dirs.items()}


@pytest.fixture(scope="module")
def refs(dirs) -> dict[str, torch.nn.Module]:
    """Each saved model loaded again by transformers itself, eager attention."""
    return {f: tiny_models.reference(path) for f, path in dirs.items()}


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float, offset: float = 0.0) -> torch.Tensor:
    return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * (offset + weight)


def _layer_norm(x: torch.Tensor, module) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), module.weight, module.bias, module.eps)


def _final_norm(family: str, model, x: torch.Tensor) -> torch.Tensor:
    """Each family's final norm, written out."""
    c = model.config
    if family == "gpt2":
        return _layer_norm(x, model.transformer.ln_f)
    if family == "gpt_neox":
        return _layer_norm(x, model.gpt_neox.final_layer_norm)
    if family == "gemma2":  # Gemma's RMSNorm scales by (1 + weight), in float32
        return _rms(x, model.model.norm.weight, c.rms_norm_eps, offset=1.0)
    if family == "modernbert":
        return _layer_norm(x, model.model.final_norm)
    if family == "t5":  # T5's RMS norm has no mean subtraction and no bias
        norm = model.decoder.final_layer_norm
        return _rms(x, norm.weight, norm.variance_epsilon)
    if family in ("bert", "bart"):
        return x  # post-norm layers: no final norm
    return _rms(x, model.model.norm.weight, c.rms_norm_eps)  # llama3, qwen3


def _head(family: str, model, x: torch.Tensor) -> torch.Tensor:
    """Each family's head from the final hidden state to logits, written out."""
    c = model.config
    if family == "bert":
        t = model.cls.predictions.transform
        h = _layer_norm(F.gelu(t.dense(x)), t.LayerNorm)
        return h @ model.bert.embeddings.word_embeddings.weight.t() + model.cls.predictions.bias
    if family == "modernbert":
        h = _layer_norm(F.gelu(model.head.dense(x)), model.head.norm)
        return h @ model.model.embeddings.tok_embeddings.weight.t() + model.decoder.bias
    if family == "t5":  # tied embeddings: rescaled by d_model ** -0.5 first
        return (x * c.d_model**-0.5) @ model.shared.weight.t()
    if family == "bart":
        return x @ model.model.shared.weight.t() + model.final_logits_bias[0]
    logits = x @ model.get_output_embeddings().weight.t()
    if family == "gemma2":
        cap = c.final_logit_softcapping
        logits = torch.tanh(logits / cap) * cap
    return logits


def _hidden(family: str, model, a: ew.Analysis) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """The model's own hidden states (decoder's for encoder–decoder) and its logits."""
    with torch.no_grad():
        if family in tiny_models.SEQ2SEQ_FAMILIES:
            out = model(
                input_ids=torch.tensor([a.input_ids]),
                decoder_input_ids=torch.tensor([a.target.input_ids]),
                output_hidden_states=True,
            )
            return out.decoder_hidden_states, out.logits[0]
        out = model(input_ids=torch.tensor([a.input_ids]), output_hidden_states=True)
        return out.hidden_states, out.logits[0]


@pytest.mark.parametrize("family", FAMILIES)
def test_each_layer_through_a_head_written_by_hand(lms, refs, family):
    lm, model = lms[family], refs[family]
    seq2seq = family in tiny_models.SEQ2SEQ_FAMILIES
    a = lm.analyze(SENTENCE, top_k=4, target="Die Wärterin schlief." if seq2seq else None)
    hidden, logits = _hidden(family, model, a)
    position = 5
    lens = lm.logit_lens(a, position, top_k=4)
    assert list(lens.columns) == ["layer", "rank", "token", "prob"]
    layers = len(hidden) - 1
    assert lens["layer"].tolist() == [layer for layer in range(layers + 1) for _ in range(4)]
    assert lens["rank"].tolist() == list(range(4)) * (layers + 1)
    for layer in range(layers + 1):
        if layer < layers:
            with torch.no_grad():
                expected = _head(family, model, _final_norm(family, model, hidden[layer][0]))
        else:  # the model's own logits: its last recorded state may be normed already
            expected = logits
        probs = torch.softmax(expected[position].double(), -1)
        values, ids = probs.topk(4)
        rows = lens[lens["layer"] == layer]
        assert rows["token"].tolist() == lm.tokenizer.convert_ids_to_tokens(ids)
        np.testing.assert_allclose(rows["prob"].to_numpy(), values.numpy(), rtol=1e-4)
    last = lens[lens["layer"] == layers]
    assert last["token"].tolist() == [t for t, _ in a.top_k[position]]
    np.testing.assert_allclose(last["prob"], [p for _, p in a.top_k[position]], rtol=1e-5)


def test_the_last_layer_is_not_normed_twice():
    """GPT-2 records hidden_states[-1] after ln_f; norming it again would change the lens (with
    a trained-looking ln_f: a norm with unit weight and no bias is idempotent)."""
    model, tok = tiny_models.build("gpt2")
    with torch.no_grad():
        model.transformer.ln_f.weight.uniform_(0.5, 3.0)
        model.transformer.ln_f.bias.normal_(0.0, 0.5)
    lm = ew.load_model(model=model, tokenizer=tok)
    head = lm._lens_head
    assert head.last_normed and head.norm is lm.model.transformer.ln_f
    a = lm.analyze(SENTENCE, top_k=1)
    once = lm.logit_lens(a, 3, top_k=1)
    assert once["prob"].iloc[-1] == pytest.approx(a.top_k[3][0][1], rel=1e-5)
    with torch.no_grad():
        final = torch.from_numpy(a.hidden_states[-1][3])
        twice = _head("gpt2", lm.model, _final_norm("gpt2", lm.model, final))
    wrong = float(torch.softmax(twice, -1).max())
    assert abs(wrong - once["prob"].iloc[-1]) > 0.05 * once["prob"].iloc[-1]


def test_demo_model_lens_reads_through_the_mlm_head():
    """The real MiniLM with the project's MLM head: the lens's last layer is its prediction,
    the other layers BERT's head on each hidden state."""
    lm = ew.load_model("demo")
    a = lm.analyze("The girl ran to a local pub to escape the din of her city.", masked=[9])
    lens = lm.logit_lens(a, 9, top_k=5)
    assert lens["layer"].max() == 6
    model = lm.model
    with torch.no_grad():
        h = torch.from_numpy(a.hidden_states[3])
        expected = torch.softmax(_head("bert", model, h)[9].double(), -1).topk(5)
    rows = lens[lens["layer"] == 3]
    assert rows["token"].tolist() == lm.tokenizer.convert_ids_to_tokens(expected.indices)
    np.testing.assert_allclose(rows["prob"], expected.values.numpy(), rtol=1e-4)
    last = lens[lens["layer"] == 6]
    assert last["token"].tolist() == [t for t, _ in a.top_k[9]]


def test_no_lm_head_is_a_clear_error(minilm):
    a = minilm.analyze("A sentence.")
    with pytest.raises(ew.InputError, match="without a language-model head"):
        minilm.logit_lens(a, 1)


def test_bad_positions_and_analyses_are_refused(lms):
    lm = lms["llama3"]
    a = lm.analyze(SENTENCE)
    with pytest.raises(ew.InputError, match=r"position must be a token index in 0\.\."):
        lm.logit_lens(a, len(a))
    with pytest.raises(ew.InputError, match="top_k must be an int of at least 1"):
        lm.logit_lens(a, 1, top_k=0)
    other = lms["gemma2"].analyze(SENTENCE)  # 3 layers, not llama3's 2
    with pytest.raises(ew.InputError, match=r"made by .*gemma2.*, not by .*llama3"):
        lm.logit_lens(other, 1)
    assert isinstance(lm.logit_lens(a, -1), pd.DataFrame)


@pytest.mark.parametrize(
    ("made_by", "read_by"),
    [
        ("gpt2", "llama3"),  # the same shape (2 layers, hidden 32): once silently wrong
        ("bert", "gpt2"),  # ids past gpt2's vocabulary: once a raw IndexError from torch
        ("gpt2", "t5"),  # once a raw ValueError from T5's forward
        ("t5", "bart"),
    ],
)
def test_another_models_analysis_is_refused(lms, made_by, read_by):
    other = lms[made_by].analyze(SENTENCE)
    with pytest.raises(ew.InputError, match=f"made by .*{made_by}.*, not by .*{read_by}"):
        lms[read_by].logit_lens(other, 0)
    # an analysis whose maker is unknown is checked by its tokens and hidden size
    other._source = None
    with pytest.raises(ew.InputError, match=f"does not fit .*{read_by}"):
        lms[read_by].logit_lens(other, 0)


@pytest.mark.parametrize("analysis", [None, SENTENCE, 3])
def test_what_is_no_analysis_is_refused(lms, analysis):
    with pytest.raises(ew.InputError, match="The logit lens reads an analysis"):
        lms["gpt2"].logit_lens(analysis, 0)


def test_an_analysis_from_forward_or_a_hand_built_one_of_the_same_model_is_read(lms):
    lm = lms["gpt2"]
    a = lm.analyze(SENTENCE)
    batched = lm.forward([lm.encode(SENTENCE)])[0]
    expected = lm.logit_lens(a, 3)
    pd.testing.assert_frame_equal(lm.logit_lens(batched, 3), expected, atol=1e-6)
    a._source = None  # passes the token and size checks
    pd.testing.assert_frame_equal(lm.logit_lens(a, 3), expected)


def test_the_same_model_loaded_twice_reads_its_twins_analysis(lms):
    """Two loads of one model (same vocabulary, shape and weights): either reads the other's
    analysis, with the same table."""
    lm = lms["gpt2"]
    twin = ew.load_model(model=lm.model, tokenizer=lm.tokenizer)
    assert twin is not lm and twin.fingerprint == lm.fingerprint
    a = lm.analyze(SENTENCE)
    pd.testing.assert_frame_equal(twin.logit_lens(a, 3), lm.logit_lens(a, 3))


def test_lens_probabilities_are_a_distribution(lms):
    lm = lms["qwen3"]
    a = lm.analyze(SENTENCE)
    lens = lm.logit_lens(a, 2, top_k=len(lm.tokenizer))
    sums = lens.groupby("layer")["prob"].sum().to_numpy()
    np.testing.assert_allclose(sums, 1.0, atol=1e-4)
    assert not math.isnan(lens["prob"].min())
