"""Encoder–decoder models (issue 11): T5, BART and Marian against the model's own eager
``output_attentions=True`` (encoder, decoder and cross attention), its own label shifting and its
own greedy generation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

import exbert_widget as ew
from tests import tiny_models

SOURCE = "The keeper of the lighthouse, Mrs. Okafor, didn't sleep in 1998."
TARGET = "Die Wärterin des Leuchtturms schlief nicht."
FAMILIES = tiny_models.SEQ2SEQ_FAMILIES
ATOL = 1e-5


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("seq2seq-models")
    return tiny_models.save_all(FAMILIES, root)


@pytest.fixture(scope="module")
def lms(dirs) -> dict[str, ew.LanguageModel]:
    return {f: ew.load_model(path) for f, path in dirs.items()}


@pytest.fixture(scope="module")
def refs(dirs) -> dict[str, torch.nn.Module]:
    """Each saved model loaded again by transformers itself, eager attention."""
    return {f: tiny_models.reference(path) for f, path in dirs.items()}


def _shifted(model, tok, target: str) -> list[int]:
    """The decoder input the model is trained on: its own shift of the labels."""
    labels = torch.tensor([tok(text_target=target)["input_ids"]])
    return model.prepare_decoder_input_ids_from_labels(labels=labels)[0].tolist()


def _reference(model, source_ids, decoder_ids):
    with torch.no_grad():
        return model(
            input_ids=torch.tensor([source_ids]),
            decoder_input_ids=torch.tensor([decoder_ids]),
            output_attentions=True,
            output_hidden_states=True,
            use_cache=False,
        )


@pytest.mark.parametrize("family", FAMILIES)
def test_three_parts_equal_the_models_own_attentions(lms, refs, dirs, family):
    lm, model = lms[family], refs[family]
    assert lm.kind == "seq2seq" and lm.has_lm_head
    a = lm.analyze(SOURCE, target=TARGET, top_k=3)
    tok = AutoTokenizer.from_pretrained(dirs[family])
    assert a.input_ids == tok(SOURCE)["input_ids"]
    assert a.target.input_ids == _shifted(model, tok, TARGET)
    assert a.target.input_ids[0] == model.config.decoder_start_token_id
    assert a.target_tokens == tok.convert_ids_to_tokens(a.target.input_ids)
    assert a.parts == ("encoder", "decoder", "cross") and not a.target.generated
    ref = _reference(model, a.input_ids, a.target.input_ids)
    n, m = len(a), len(a.target_tokens)
    expected = {
        "encoder": ref.encoder_attentions,
        "decoder": ref.decoder_attentions,
        "cross": ref.cross_attentions,
    }
    shapes = {"encoder": (n, n), "decoder": (m, m), "cross": (m, n)}
    for part, weights in expected.items():
        assert a.layer_count(part) == len(weights)
        for layer, w in enumerate(weights):
            got = a.attention(layer, part=part)
            assert got.dtype == np.float32 and got.shape == (w.shape[1], *shapes[part])
            np.testing.assert_allclose(got, w[0].numpy(), atol=ATOL)
    np.testing.assert_allclose(a.attention(0), ref.encoder_attentions[0][0].numpy(), atol=ATOL)
    assert np.abs(np.triu(a.attention(0, part="decoder"), k=1)).max() == 0.0  # causal
    np.testing.assert_allclose(
        a.hidden_states, torch.cat(ref.encoder_hidden_states).numpy(), atol=ATOL, rtol=1e-5
    )
    np.testing.assert_allclose(
        a.target_hidden_states, torch.cat(ref.decoder_hidden_states).numpy(), atol=ATOL, rtol=1e-5
    )
    # top-k: the decoder's next-token predictions, one list per target token
    assert len(a.top_k) == m
    probs = torch.softmax(ref.logits[0].double(), -1)
    for position in (0, m // 2, m - 1):
        values, ids = probs[position].topk(3)
        assert [t for t, _ in a.top_k[position]] == tok.convert_ids_to_tokens(ids)
        np.testing.assert_allclose([p for _, p in a.top_k[position]], values.numpy(), rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_without_a_target_the_models_greedy_output_is_used(lms, refs, family):
    lm, model = lms[family], refs[family]
    a = lm.analyze(SOURCE, max_new_tokens=8)
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor([a.input_ids]), do_sample=False, num_beams=1, max_new_tokens=8
        )[0].tolist()
    body = out[1:]
    while body and body[-1] in (lm.tokenizer.eos_token_id, lm.tokenizer.pad_token_id):
        body = body[:-1]
    assert a.target.generated and a.target.input_ids == [out[0], *body]
    assert a.target.text == lm.tokenizer.decode(body, skip_special_tokens=True)
    for (start, end), special, token_id in zip(
        a.target.offsets, a.target.special, a.target.input_ids, strict=True
    ):
        if not special:
            piece = lm.tokenizer.decode([token_id], skip_special_tokens=True).strip()
            assert a.target.text[start:end].strip() == piece
    ref = _reference(model, a.input_ids, a.target.input_ids)
    np.testing.assert_allclose(
        a.attention(0, part="cross"), ref.cross_attentions[0][0].numpy(), atol=ATOL
    )


def _value_and_output(family: str, module, x: torch.Tensor, heads: int):
    """Values ``[heads, n, dim]`` of ``x`` by the attention module's own value projection,
    and its output projection's weight as ``[heads, dim, hidden]``."""
    if family == "t5":
        v, w = module.v(x), module.o.weight.t()
    else:
        v, w = module.v_proj(x), module.out_proj.weight.t()
    n = x.shape[0]
    dim = w.shape[0] // heads
    return v.view(n, heads, dim).transpose(0, 1), w.reshape(heads, dim, -1)


def _modules(family: str, model, layer: int) -> dict:
    if family == "t5":
        enc, dec = model.encoder.block[layer], model.decoder.block[layer]
        return {
            "encoder": (enc.layer[0].SelfAttention, enc.layer[0].layer_norm),
            "decoder": (dec.layer[0].SelfAttention, dec.layer[0].layer_norm),
            "cross": (dec.layer[1].EncDecAttention, None),
        }
    base = model.model
    enc, dec = base.encoder.layers[layer], base.decoder.layers[layer]
    return {
        "encoder": (enc.self_attn, None),
        "decoder": (dec.self_attn, None),
        "cross": (dec.encoder_attn, None),
    }


@pytest.mark.parametrize("family", FAMILIES)
def test_norms_of_each_part_from_the_models_weights(lms, refs, family):
    lm, model = lms[family], refs[family]
    a = lm.analyze(SOURCE, target=TARGET)
    ref = _reference(model, a.input_ids, a.target.input_ids)
    encoder_out = ref.encoder_last_hidden_state[0]
    heads = lm.num_heads
    with torch.no_grad():
        for layer in range(min(lm.num_layers, lm.num_decoder_layers)):
            inputs = {
                "encoder": ref.encoder_hidden_states[layer][0],
                "decoder": ref.decoder_hidden_states[layer][0],
                "cross": encoder_out,  # cross-attention's values come from the encoder's output
            }
            weights = {
                "encoder": ref.encoder_attentions[layer][0],
                "decoder": ref.decoder_attentions[layer][0],
                "cross": ref.cross_attentions[layer][0],
            }
            for part, (module, norm) in _modules(family, model, layer).items():
                x = inputs[part] if norm is None else norm(inputs[part])
                v, w = _value_and_output(family, module, x, heads)
                f = torch.einsum("hjd,hdo->hjo", v, w)
                expected = torch.linalg.vector_norm(
                    weights[part][..., None] * f[:, None], dim=-1
                ).numpy()
                got = a.attention(layer, measure="norm", part=part)
                np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_rollout_of_encoder_and_decoder(lms):
    a = lms["bart"].analyze(SOURCE, target=TARGET)
    for part in ("encoder", "decoder"):
        n = a.attention(0, part=part).shape[-1]
        result = np.eye(n)
        for layer in range(a.layer_count(part)):
            step = 0.5 * a.attention(layer, part=part).astype(np.float64).mean(0) + 0.5 * np.eye(n)
            result = (step / step.sum(1, keepdims=True)) @ result
            np.testing.assert_allclose(a.rollout(layer, part=part), result, atol=1e-5)
    with pytest.raises(ew.InputError, match="cross-attention has none"):
        a.rollout(0, part="cross")


def test_bart_has_more_decoder_layers_than_encoder_layers(lms):
    lm = lms["bart"]
    assert (lm.num_layers, lm.num_decoder_layers) == (2, 3)
    a = lm.analyze(SOURCE, target=TARGET)
    a.attention(2, part="decoder")
    with pytest.raises(ew.InputError, match="out of range"):
        a.attention(2, part="encoder")


def test_masking_a_source_token_where_the_tokenizer_has_a_mask(lms, refs):
    lm = lms["bart"]  # BART's tokenizer has <mask>; T5's has none
    a = lm.analyze(SOURCE, masked=[3], target=TARGET)
    assert a.tokens[3] == "<mask>"
    ref = _reference(refs["bart"], a.input_ids, a.target.input_ids)
    np.testing.assert_allclose(
        a.attention(1, part="cross"), ref.cross_attentions[1][0].numpy(), atol=ATOL
    )
    with pytest.raises(ew.InputError, match="has no mask token"):
        lms["t5"].analyze(SOURCE, masked=[3], target=TARGET)


def test_what_an_encoder_decoder_model_refuses(lms):
    lm = lms["t5"]
    with pytest.raises(ew.InputError, match="give the second text as the target"):
        lm.analyze(SOURCE, sentence_b=TARGET)
    with pytest.raises(ew.InputError, match="The target is empty"):
        lm.analyze(SOURCE, target=" ")
    with pytest.raises(ew.InputError, match="encoder–decoder model"):
        lm.generate(SOURCE)
    with pytest.raises(ew.InputError, match="encoder–decoder model"):
        lm.token_vectors([lm.encode(SOURCE)])
    a = lm.analyze(SOURCE, target=TARGET)
    with pytest.raises(ew.InputError, match="part must be one of"):
        a.attention(0, part="self")
    with pytest.raises(ew.ModelLoadError, match="cannot be forced"):
        ew.load_model(
            model=tiny_models.build("t5")[0], tokenizer=lm.tokenizer, kind="bidirectional"
        )


@pytest.mark.parametrize("family", FAMILIES)
def test_a_greedy_target_past_the_models_limit_is_refused_before_generating(lms, family):
    """A random model never says </s>: without the limit, max_new_tokens=10**6 generated for as
    long as memory lasted."""
    lm = lms[family]
    with pytest.raises(
        ew.InputError, match=rf"max_new_tokens={10**6} passes .*limit of {lm.max_length} tokens"
    ):
        lm.analyze(SOURCE, max_new_tokens=10**6)
    with pytest.raises(ew.InputError, match=rf"at most {lm.max_length}"):
        lm.analyze(SOURCE, max_new_tokens=lm.max_length + 1)
