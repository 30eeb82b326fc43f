"""The inference engine against independent computations with transformers itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoTokenizer

import exbert_widget as ew
from tests import tiny_models

SENTENCE = "The keeper of the lighthouse, Mrs. Okafor, didn't sleep in 1998."
ATOL = 1e-5


def _layers(model):
    """The transformer blocks of a model, one per layer (ALBERT: the shared block, repeated)."""
    base = model.base_model
    t = model.config.model_type
    if t in ("bert", "roberta", "electra"):
        return list(base.encoder.layer)
    if t == "distilbert":
        return list(base.transformer.layer)
    if t == "albert":
        shared = base.encoder.albert_layer_groups[0].albert_layers[0]
        return [shared] * model.config.num_hidden_layers
    if t == "gpt2":
        return list(base.h)
    if t == "llama":
        return list(base.layers)
    raise AssertionError(t)


def _values(model, layer, h: torch.Tensor) -> torch.Tensor:
    """Value vectors [heads, n, head_dim] from the layer input, computed by hand."""
    t = model.config.model_type
    heads = model.config.num_attention_heads
    if t in ("bert", "roberta", "electra"):
        v = layer.attention.self.value(h)
    elif t == "distilbert":
        v = layer.attention.v_lin(h)
    elif t == "albert":
        v = layer.attention.value(h)
    elif t == "gpt2":
        v = layer.attn.c_attn(layer.ln_1(h)).split(model.config.n_embd, dim=-1)[2]
    elif t == "llama":
        kv = model.config.num_key_value_heads
        v = layer.self_attn.v_proj(layer.input_layernorm(h))
        v = v.view(h.shape[0], kv, -1).transpose(0, 1)
        return v.repeat_interleave(heads // kv, dim=0)
    else:
        raise AssertionError(t)
    return v.view(h.shape[0], heads, -1).transpose(0, 1)


def _reference(lm: ew.LanguageModel, ids: list[int]):
    """The model's own outputs for these ids, called directly."""
    inputs = {"input_ids": torch.tensor([ids])}
    with torch.no_grad():
        return lm.model(**inputs, output_attentions=True, output_hidden_states=True)


@pytest.fixture(scope="module")
def lms(tiny_dirs) -> dict[str, ew.LanguageModel]:
    return {family: ew.load_model(path) for family, path in tiny_dirs.items()}


@pytest.mark.parametrize("family", tiny_models.FAMILIES)
def test_attentions_hidden_states_and_contexts_match_the_model(lms, family):
    lm = lms[family]
    a = lm.analyze(SENTENCE, top_k=3)
    n = len(a.tokens)
    assert a.attentions.shape == (lm.num_layers, lm.num_heads, n, n)
    assert a.hidden_states.shape == (lm.num_layers + 1, n, lm.hidden_size)
    assert a.contexts.shape == (lm.num_layers, n, lm.context_size)
    np.testing.assert_allclose(a.attentions.sum(-1), 1.0, atol=1e-5)

    ref = _reference(lm, a.input_ids)
    for layer in range(lm.num_layers):
        np.testing.assert_allclose(a.attentions[layer], ref.attentions[layer][0].numpy(), atol=ATOL)
    for layer in range(lm.num_layers + 1):
        np.testing.assert_allclose(
            a.hidden_states[layer], ref.hidden_states[layer][0].numpy(), atol=ATOL
        )

    # Contexts = A · V per head, with V from the layer's input through its value projection.
    with torch.no_grad():
        for index, block in enumerate(_layers(lm.model)):
            h = torch.from_numpy(a.hidden_states[index])
            v = _values(lm.model, block, h)
            att = torch.from_numpy(a.attentions[index])
            expected = torch.einsum("hij,hjd->ihd", att, v).reshape(n, -1).numpy()
            np.testing.assert_allclose(a.contexts[index], expected, atol=1e-4)


@pytest.mark.parametrize("family", ["bert", "roberta", "distilbert", "albert", "electra"])
def test_masked_top_k_is_softmax_of_the_logits_at_the_mask(lms, family):
    lm = lms[family]
    plain = lm.encode(SENTENCE)
    target = next(i for i, s in enumerate(plain.special) if not s) + 2
    a = lm.analyze(SENTENCE, masked=[target], top_k=5)
    assert a.tokens[target] == lm.tokenizer.mask_token
    assert a.input_ids[target] == lm.tokenizer.mask_token_id
    assert a.masked == (target,)
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([a.input_ids])).logits[0, target]
    probs = torch.softmax(logits, -1)
    values, ids = probs.topk(5)
    assert [t for t, _ in a.top_k[target]] == lm.tokenizer.convert_ids_to_tokens(ids.tolist())
    np.testing.assert_allclose([p for _, p in a.top_k[target]], values.numpy(), rtol=1e-5)
    # The masked input really changes what the model computes.
    unmasked = lm.analyze(SENTENCE)
    assert not np.allclose(unmasked.hidden_states[-1], a.hidden_states[-1])


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_autoregressive_top_k_predicts_the_next_token(lms, family):
    lm = lms[family]
    assert lm.kind == "autoregressive"
    a = lm.analyze(SENTENCE, top_k=4)
    assert a.special[0] and a.input_ids[0] == (lm.tokenizer.bos_token_id)
    assert a.input_ids.count(lm.tokenizer.bos_token_id) == 1  # prepended once, or added once
    with torch.no_grad():
        logits = lm.model(input_ids=torch.tensor([a.input_ids])).logits[0]
    probs = torch.softmax(logits, -1)
    for position in (0, 3, len(a.tokens) - 1):
        values, ids = probs[position].topk(4)
        got = a.top_k[position]
        assert [t for t, _ in got] == lm.tokenizer.convert_ids_to_tokens(ids.tolist())
        np.testing.assert_allclose([p for _, p in got], values.numpy(), rtol=1e-5)
    # Causal: nothing attends to a later token.
    assert np.allclose(np.triu(a.attentions, k=1), 0.0)


def test_gpt2_gets_a_bos_prepended_but_llama_keeps_its_own(lms):
    gpt2 = lms["gpt2"].encode("Hello there")
    raw = lms["gpt2"].tokenizer("Hello there")["input_ids"]
    assert gpt2.input_ids == [lms["gpt2"].tokenizer.bos_token_id, *raw]
    assert gpt2.special[0] and gpt2.offsets[0] == (0, 0)
    llama = lms["llama"].encode("Hello there")
    assert llama.input_ids == lms["llama"].tokenizer("Hello there")["input_ids"]


def test_offsets_point_into_the_sentence(lms):
    for lm in lms.values():
        enc = lm.encode(SENTENCE)
        for (start, end), special in zip(enc.offsets, enc.special, strict=True):
            if not special:
                assert 0 <= start < end <= len(SENTENCE)


def test_minilm_real_model_loads_without_a_head(minilm):
    assert minilm.kind == "bidirectional"
    assert not minilm.has_lm_head
    assert (minilm.num_layers, minilm.num_heads, minilm.hidden_size) == (6, 12, 384)
    a = minilm.analyze("The girl ran to a local pub to escape the din of her city.", masked=[9])
    assert a.tokens[9] == "[MASK]" and a.tokens[0] == "[CLS]" and a.special[0] and a.special[-1]
    assert all(p == [] for p in a.top_k)
    # Independent: transformers' own bare model from the same checkpoint.
    path = tiny_models.MINILM
    model = AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok("The girl ran to a local pub to escape the din of her city.")["input_ids"]
    ids[9] = tok.mask_token_id
    assert ids == a.input_ids
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor([ids]), output_attentions=True, output_hidden_states=True
        )
    np.testing.assert_allclose(a.attentions, torch.stack(out.attentions)[:, 0].numpy(), atol=ATOL)
    np.testing.assert_allclose(
        a.hidden_states, torch.stack(out.hidden_states)[:, 0].numpy(), atol=1e-4
    )
    with torch.no_grad():
        for layer in range(6):
            v = model.encoder.layer[layer].attention.self.value(
                torch.from_numpy(a.hidden_states[layer])
            )
            v = v.view(len(ids), 12, 32).transpose(0, 1)
            expected = torch.einsum("hij,hjd->ihd", torch.from_numpy(a.attentions[layer]), v)
            np.testing.assert_allclose(a.contexts[layer], expected.reshape(len(ids), -1), atol=1e-4)


def test_loaded_objects_and_forced_kind(tiny_dirs):
    model, tok = tiny_models.build("bert")
    lm = ew.load_model(model=model, tokenizer=tok)
    assert lm.kind == "bidirectional" and lm.has_lm_head
    forced = ew.load_model(tiny_dirs["gpt2"], kind="bidirectional")
    assert forced.kind == "bidirectional"
    with pytest.raises(ew.ModelLoadError, match="kind must be one of"):
        ew.load_model(tiny_dirs["bert"], kind="sideways")


def test_batched_forward_equals_single_passes(lms):
    lm = lms["bert"]
    texts = ["A short one.", SENTENCE, "Another sentence of middling length here."]
    batched = lm.forward([lm.encode(t) for t in texts], attentions=False)
    for text, got in zip(texts, batched, strict=True):
        single = lm.analyze(text)
        assert got.tokens == single.tokens and got.attentions is None
        np.testing.assert_allclose(got.hidden_states, single.hidden_states, atol=1e-4)
        np.testing.assert_allclose(got.contexts, single.contexts, atol=1e-4)


def test_truncation_is_flagged_and_warned(lms):
    lm = lms["bert"]
    long_text = " ".join(["lighthouse"] * 400)
    with pytest.warns(UserWarning, match="truncated"):
        a = lm.analyze(long_text)
    assert a.truncated and len(a.tokens) == lm.max_length
    assert a.tokens[-1] == "[SEP]"
    assert not lm.analyze("short").truncated
    gpt2 = lms["gpt2"]
    with pytest.warns(UserWarning):
        g = gpt2.analyze(long_text)
    assert g.truncated and len(g.tokens) == gpt2.max_length


def test_bad_input_is_refused_clearly(lms):
    bert, gpt2 = lms["bert"], lms["gpt2"]
    with pytest.raises(ew.InputError, match="empty"):
        bert.analyze("   ")
    with pytest.raises(ew.InputError, match="out of range"):
        bert.analyze("Two words", masked=[7])
    with pytest.raises(ew.InputError, match="special"):
        bert.analyze("Two words", masked=[0])
    with pytest.raises(ew.InputError, match="autoregressive"):
        gpt2.analyze("Two words", masked=[1])


def test_unknown_models_raise_one_clear_error(tmp_path):
    with pytest.raises(ew.ModelLoadError, match="not a local directory") as info:
        ew.load_model("no-such-org/no-such-model-xyz")
    assert "bert-base-cased" in str(info.value)  # says what to do
    with pytest.raises(ew.ModelLoadError, match="local directory"):
        ew.load_model(tmp_path)  # exists, holds no model
    with pytest.raises(ew.ModelLoadError, match="both"):
        ew.load_model(model=object())


def test_a_model_without_attention_is_refused():
    import transformers

    config = transformers.MambaConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=2, state_size=4
    )
    model = transformers.MambaForCausalLM(config)
    with pytest.raises(ew.ModelLoadError, match="attention"):
        ew.load_model(model=model, tokenizer=tiny_models.gpt2_tokenizer())


@pytest.mark.parametrize("family", tiny_models.FAMILIES)
def test_one_layer_attention_pass_equals_the_full_pass(lms, family):
    lm = lms[family]
    texts = ["A short one.", SENTENCE, "Another sentence, of middling length, here."]
    encodings = [lm.encode(t) for t in texts]
    full = lm.forward(encodings, hidden_states=False, contexts=False)
    assert lm._attention_modules[0], "the one-layer pass must not fall back here"
    for layer in range(lm.num_layers):
        got = lm.layer_attentions(encodings, layer, batch_size=2)
        for g, f in zip(got, full, strict=True):
            np.testing.assert_allclose(g, f.attentions[layer], atol=1e-5)
