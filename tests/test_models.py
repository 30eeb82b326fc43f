"""The inference engine against independent computations with transformers itself."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import torch
import transformers
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoTokenizer,
)

import exbert_widget as ew
from exbert_widget.models import attention, contexts, loading
from tests import tiny_models

SENTENCE = "The keeper of the lighthouse, Mrs. Okafor, didn't sleep in 1998."
ATOL = 1e-5
ALL_FAMILIES = tiny_models.FAMILIES + tiny_models.EXTRA_FAMILIES
CAUSAL_FAMILIES = ("gpt2", "llama")
# The class transformers itself maps each family's config to, for the head it was saved with.
EXPECTED_HEAD = {
    "bert": "BertForMaskedLM",
    "roberta": "RobertaForMaskedLM",
    "distilbert": "DistilBertForMaskedLM",
    "albert": "AlbertForMaskedLM",
    "electra": "ElectraForMaskedLM",
    "gpt2": "GPT2LMHeadModel",
    "llama": "LlamaForCausalLM",
    "data2vec-text": "Data2VecTextForMaskedLM",
    "megatron-bert": "MegatronBertForMaskedLM",
    "deberta-v2": "DebertaV2ForMaskedLM",
}


def _layers(model):
    """The transformer blocks of a model, one per layer (ALBERT: the shared block, repeated)."""
    base = model.base_model
    t = model.config.model_type
    if t in ("bert", "roberta", "electra", "data2vec-text", "megatron-bert", "deberta-v2"):
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
    if t in ("bert", "roberta", "electra", "data2vec-text"):
        v = layer.attention.self.value(h)
    elif t == "megatron-bert":  # pre-LayerNorm
        v = layer.attention.self.value(layer.attention.ln(h))
    elif t == "deberta-v2":
        v = layer.attention.self.value_proj(h)
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


def _reference(model, ids: list[int]):
    """A reference model's outputs for these ids, called directly."""
    inputs = {"input_ids": torch.tensor([ids])}
    with torch.no_grad():
        return model(**inputs, output_attentions=True, output_hidden_states=True)


@pytest.fixture(scope="module")
def dirs(tiny_dirs, tmp_path_factory) -> dict[str, str]:
    """Saved tiny models of every family, the table's and those only the fallback finds."""
    root = tmp_path_factory.mktemp("extra-models")
    extra = {f: str(tiny_models.save(f, root / f)) for f in tiny_models.EXTRA_FAMILIES}
    return {**tiny_dirs, **extra}


@pytest.fixture(scope="module")
def lms(dirs) -> dict[str, ew.LanguageModel]:
    return {family: ew.load_model(path) for family, path in dirs.items()}


@pytest.fixture(scope="module")
def refs(dirs) -> dict[str, nn.Module]:
    """Each saved model loaded again by transformers itself, independently of the engine."""
    out = {}
    for family, path in dirs.items():
        auto = AutoModelForCausalLM if family in CAUSAL_FAMILIES else AutoModelForMaskedLM
        out[family] = auto.from_pretrained(path, attn_implementation="eager").eval()
    return out


def _top_k_of(probs: torch.Tensor, k: int, tokenizer) -> tuple[list[str], np.ndarray]:
    values, ids = probs.topk(k)
    return tokenizer.convert_ids_to_tokens(ids.tolist()), values.numpy()


@pytest.mark.parametrize("family", ALL_FAMILIES)
def test_attentions_hidden_states_and_contexts_match_the_model(lms, refs, family):
    lm, ref_model = lms[family], refs[family]
    # The head transformers picks for the saved model, loaded here by both, separately.
    assert type(lm.model).__name__ == EXPECTED_HEAD[family] == type(ref_model).__name__
    assert lm.model is not ref_model and lm.has_lm_head
    assert lm.model.config._attn_implementation in ("eager", attention.IMPLEMENTATION)
    if family in tiny_models.EXTRA_FAMILIES:  # found by the generic fallback, not the table
        assert lm.config.model_type not in contexts.PROJECTION_PATTERNS
    a = lm.analyze(SENTENCE, top_k=3)
    n = len(a.tokens)
    assert a.attentions.shape == (lm.num_layers, lm.num_heads, n, n)
    assert a.hidden_states.shape == (lm.num_layers + 1, n, lm.hidden_size)
    assert a.contexts.shape == (lm.num_layers, n, lm.context_size)
    np.testing.assert_allclose(a.attentions.sum(-1), 1.0, atol=1e-5)

    ref = _reference(ref_model, a.input_ids)
    for layer in range(lm.num_layers):
        np.testing.assert_allclose(a.attentions[layer], ref.attentions[layer][0].numpy(), atol=ATOL)
    for layer in range(lm.num_layers + 1):
        np.testing.assert_allclose(
            a.hidden_states[layer], ref.hidden_states[layer][0].numpy(), atol=ATOL
        )

    # Contexts = A · V per head, with V from the layer's input through its value projection.
    with torch.no_grad():
        for index, block in enumerate(_layers(ref_model)):
            h = torch.from_numpy(a.hidden_states[index])
            v = _values(ref_model, block, h)
            att = torch.from_numpy(a.attentions[index])
            expected = torch.einsum("hij,hjd->ihd", att, v).reshape(n, -1).numpy()
            np.testing.assert_allclose(a.contexts[index], expected, atol=1e-4)


@pytest.mark.parametrize("family", [f for f in ALL_FAMILIES if f not in CAUSAL_FAMILIES])
def test_masked_top_k_is_softmax_of_the_logits_at_the_mask(lms, refs, family):
    lm = lms[family]
    plain = lm.encode(SENTENCE)
    target = next(i for i, s in enumerate(plain.special) if not s) + 2
    a = lm.analyze(SENTENCE, masked=[target], top_k=5)
    assert a.tokens[target] == lm.tokenizer.mask_token
    assert a.input_ids[target] == lm.tokenizer.mask_token_id
    assert a.masked == (target,)
    with torch.no_grad():
        logits = refs[family](input_ids=torch.tensor([a.input_ids])).logits[0, target]
    probs = torch.softmax(logits, -1)
    values, ids = probs.topk(5)
    assert [t for t, _ in a.top_k[target]] == lm.tokenizer.convert_ids_to_tokens(ids.tolist())
    np.testing.assert_allclose([p for _, p in a.top_k[target]], values.numpy(), rtol=1e-5)
    # The masked input really changes what the model computes.
    unmasked = lm.analyze(SENTENCE)
    assert not np.allclose(unmasked.hidden_states[-1], a.hidden_states[-1])


@pytest.mark.parametrize("family", CAUSAL_FAMILIES)
def test_autoregressive_top_k_predicts_the_next_token(lms, refs, family):
    lm = lms[family]
    assert lm.kind == "autoregressive"
    a = lm.analyze(SENTENCE, top_k=4)
    assert a.special[0] and a.input_ids[0] == (lm.tokenizer.bos_token_id)
    assert a.input_ids.count(lm.tokenizer.bos_token_id) == 1  # prepended once, or added once
    with torch.no_grad():
        logits = refs[family](input_ids=torch.tensor([a.input_ids])).logits[0]
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


def test_loaded_objects(tiny_dirs):
    model, tok = tiny_models.build("bert")
    lm = ew.load_model(model=model, tokenizer=tok)
    assert lm.kind == "bidirectional" and lm.has_lm_head and lm.model is model
    with pytest.raises(ew.ModelLoadError, match="kind must be one of"):
        ew.load_model(tiny_dirs["bert"], kind="sideways")


def _causal_reference(path: str, is_decoder: bool):
    """transformers' own causal-LM / masked-LM class for the saved encoder, with is_decoder set."""
    config = AutoConfig.from_pretrained(path)
    config.is_decoder = is_decoder
    auto = AutoModelForCausalLM if is_decoder else AutoModelForMaskedLM
    return auto.from_pretrained(path, config=config, attn_implementation="eager").eval()


@pytest.mark.parametrize(
    ("family", "head"), [("bert", "BertLMHeadModel"), ("roberta", "RobertaForCausalLM")]
)
def test_forcing_autoregressive_makes_an_encoder_causal(tiny_dirs, lms, family, head):
    lm = ew.load_model(tiny_dirs[family], kind="autoregressive")
    assert lm.kind == "autoregressive" and lm.has_lm_head
    assert type(lm.model).__name__ == head and lm.model.config.is_decoder
    a = lm.analyze(SENTENCE, top_k=4)
    assert np.abs(np.triu(a.attentions, k=1)).max() <= 1e-7  # no token sees a later one
    # Causal for real: a prefix's hidden states do not depend on what follows it ...
    prefix = lm.analyze("The keeper of the lighthouse")
    shared = len(prefix.tokens) - 1  # all but the final separator
    assert prefix.input_ids[:shared] == a.input_ids[:shared]
    np.testing.assert_allclose(
        prefix.hidden_states[:, :shared], a.hidden_states[:, :shared], atol=1e-5
    )
    # ... which is not so for the same weights loaded as the encoder they are.
    bidi_full, bidi_prefix = (
        lms[family].analyze(SENTENCE),
        lms[family].analyze("The keeper of the lighthouse"),
    )
    assert not np.allclose(
        bidi_prefix.hidden_states[-1, :shared], bidi_full.hidden_states[-1, :shared], atol=1e-3
    )
    # top_k is the causal-LM class's next-token distribution, computed independently.
    ref = _causal_reference(tiny_dirs[family], is_decoder=True)
    out = _reference(ref, a.input_ids)
    np.testing.assert_allclose(a.attentions, torch.stack(out.attentions)[:, 0].numpy(), atol=ATOL)
    probs = torch.softmax(out.logits[0], -1)
    for position in (0, 2, len(a.tokens) - 1):
        tokens, values = _top_k_of(probs[position], 4, lm.tokenizer)
        assert [t for t, _ in a.top_k[position]] == tokens
        np.testing.assert_allclose([p for _, p in a.top_k[position]], values, rtol=1e-5)
    with pytest.raises(ew.InputError, match="autoregressive"):
        lm.analyze(SENTENCE, masked=[2])


def test_forcing_bidirectional_clears_is_decoder(tmp_path):
    path = str(tiny_models.save("bert-decoder", tmp_path / "bert-decoder"))
    detected = ew.load_model(path)
    assert detected.kind == "autoregressive"
    assert np.abs(np.triu(detected.analyze(SENTENCE).attentions, k=1)).max() <= 1e-7
    lm = ew.load_model(path, kind="bidirectional")
    assert lm.kind == "bidirectional" and type(lm.model).__name__ == "BertForMaskedLM"
    a = lm.analyze(SENTENCE, masked=[3], top_k=5)
    assert np.triu(a.attentions, k=1).max() > 1e-3  # tokens now see later ones
    ref = _causal_reference(path, is_decoder=False)
    out = _reference(ref, a.input_ids)
    np.testing.assert_allclose(a.attentions, torch.stack(out.attentions)[:, 0].numpy(), atol=ATOL)
    tokens, values = _top_k_of(torch.softmax(out.logits[0, 3], -1), 5, lm.tokenizer)
    assert [t for t, _ in a.top_k[3]] == tokens
    np.testing.assert_allclose([p for _, p in a.top_k[3]], values, rtol=1e-5)


def test_a_kind_the_architecture_cannot_run_is_refused(tiny_dirs):
    for family in ("gpt2", "llama"):  # causal by construction, no masked-LM head
        with pytest.raises(ew.ModelLoadError, match="causal by construction"):
            ew.load_model(tiny_dirs[family], kind="bidirectional")
    for family in ("distilbert", "albert"):  # no causal-LM class in transformers
        with pytest.raises(ew.ModelLoadError, match="no causal-LM class"):
            ew.load_model(tiny_dirs[family], kind="autoregressive")
    # Loaded objects cannot be re-classed: the probe pass checks the attention agrees.
    model, tok = tiny_models.build("bert")
    with pytest.raises(ew.ModelLoadError, match="attend to later tokens"):
        ew.load_model(model=model, tokenizer=tok, kind="autoregressive")
    model, tok = tiny_models.build("gpt2")
    with pytest.raises(ew.ModelLoadError, match="only to earlier tokens"):
        ew.load_model(model=model, tokenizer=tok, kind="bidirectional")


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
    long_text = " ".join(["lighthouse"] * 600)
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


@pytest.mark.parametrize(
    ("masked", "message"),
    [
        (["a"], r"masked must hold token indices \(ints\), got 'a'"),
        ([1.5], r"masked must hold token indices \(ints\), got 1\.5"),  # not silently token 1
        ([True], r"masked must hold token indices \(ints\), got True"),
        (None, r"masked must be a list of token indices, got NoneType"),
        (3, r"masked must be a list of token indices, got int 3"),
        ("12", r"masked must be a list of token indices, got str"),
    ],
)
def test_a_mask_of_the_wrong_type_is_refused_not_coerced(lms, masked, message):
    with pytest.raises(ew.InputError, match=message):
        lms["bert"].analyze("Two words", masked=masked)


@pytest.mark.parametrize("top_k", [1.5, True, None, "3"])
def test_a_top_k_of_the_wrong_type_is_refused(lms, top_k):
    for family in ("bert", "gpt2"):
        with pytest.raises(
            ew.InputError, match=rf"top_k must be an int of at least 0, got {top_k!r}"
        ):
            lms[family].analyze("Two words", top_k=top_k)


@pytest.mark.parametrize("encodings", [["Two words"], "Two words", [None]])
def test_forward_takes_encodings_not_sentences(lms, encodings):
    with pytest.raises(ew.InputError, match=r"forward takes encodings, lm\.forward\(\[lm\.encode"):
        lms["bert"].forward(encodings)


def test_numpy_mask_indices_and_top_k_are_ints(lms):
    bert = lms["bert"]
    plain = bert.analyze("Two words", masked=[1], top_k=3)
    numpy = bert.analyze("Two words", masked=np.array([1]), top_k=np.int64(3))
    assert numpy.masked == (1,) and numpy.tokens[1] == "[MASK]"
    assert numpy.top_k == plain.top_k


def test_unknown_models_raise_one_clear_error(tmp_path):
    with pytest.raises(ew.ModelLoadError, match="not a local directory") as info:
        ew.load_model("no-such-org/no-such-model-xyz")
    assert "bert-base-cased" in str(info.value)  # says what to do
    with pytest.raises(ew.ModelLoadError, match="local directory"):
        ew.load_model(tmp_path)  # exists, holds no model
    with pytest.raises(ew.ModelLoadError, match="both"):
        ew.load_model(model=object())


def test_a_model_without_attention_is_refused():
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


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_truncation_warns_once_ours_not_transformers(tiny_dirs):
    lm = ew.load_model(tiny_dirs["bert"])  # fresh tokenizer: transformers logs once per tokenizer
    long_text = " ".join(["lighthouse"] * 600)
    fresh = AutoTokenizer.from_pretrained(tiny_dirs["bert"])
    assert len(fresh(long_text, verbose=False)["input_ids"]) > fresh.model_max_length
    records = _Records()
    logger = logging.getLogger("transformers")
    logger.addHandler(records)
    try:
        with pytest.warns(UserWarning, match="truncated") as caught:
            lm.analyze(long_text)
        assert not [m for m in records.messages if "longer than the specified maximum" in m]
        # The handler does see transformers' log when a tokenizer call is left verbose.
        fresh(long_text)
    finally:
        logger.removeHandler(records)
    assert [m for m in records.messages if "longer than the specified maximum" in m]
    assert len([w for w in caught if "truncated" in str(w.message)]) == 1


def test_a_directory_without_tokenizer_files_is_refused(tmp_path):
    model, tok = tiny_models.build("bert")
    path = tmp_path / "weights-only"
    model.save_pretrained(path)
    assert sorted(os.listdir(path)) == ["config.json", "model.safetensors"]
    # What transformers does on its own: a near-empty tokenizer, every word unknown.
    assert len(AutoTokenizer.from_pretrained(path)) < 10
    with pytest.raises(ew.ModelLoadError, match="no tokenizer files") as info:
        ew.load_model(path)
    assert "tokenizer=" in str(info.value) and str(path) in str(info.value)
    # The remedy the message gives works: the model's own tokenizer, passed in.
    lm = ew.load_model(path, tokenizer=tok)
    assert lm.tokenizer is tok
    a = lm.analyze(SENTENCE)
    assert a.input_ids == tok(SENTENCE)["input_ids"]
    assert tok.unk_token_id not in a.input_ids
    # A tokenizer far smaller than the embedding matrix is not the model's, given or saved.
    with pytest.raises(ew.ModelLoadError, match="not this model's tokenizer"):
        ew.load_model(path, tokenizer=tiny_models.gpt2_tokenizer())
    tiny_models.gpt2_tokenizer().save_pretrained(path)
    with pytest.raises(ew.ModelLoadError, match="800 tokens"):
        ew.load_model(path)


@pytest.mark.parametrize("family", tiny_models.FAMILIES)
def test_generic_fallback_finds_the_table_modules(lms, family):
    lm = lms[family]
    assert lm.config.model_type in contexts.PROJECTION_PATTERNS
    table = contexts.find_projections(
        lm.model, lm.config.model_type, lm.context_size, lm.hidden_size
    )
    assert len(table) == (1 if family == "albert" else lm.num_layers)
    for probe in (lm._probe_pass, None):  # the call order observed, or registration order
        found = contexts.find_projections(
            lm.model, "not-a-known-family", lm.context_size, lm.hidden_size, probe=probe
        )
        assert len(found) == len(table) and all(f is t for f, t in zip(found, table, strict=True))


class _OddAttention(nn.Module):
    """An attention block that registers its output projection before Q, K and V."""

    def __init__(self, width: int = 8, heads: int = 2) -> None:
        super().__init__()
        self.heads = heads
        self.out = nn.Linear(width, width)
        self.query, self.key, self.value = (nn.Linear(width, width) for _ in range(3))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n, width = h.shape
        q, k, v = (
            p(h).view(n, self.heads, -1).transpose(0, 1) for p in (self.query, self.key, self.value)
        )
        weights = torch.softmax(q @ k.transpose(1, 2) / (width // self.heads) ** 0.5, -1)
        return self.out((weights @ v).transpose(0, 1).reshape(n, width))


def test_fallback_prefers_the_projection_that_runs_last():
    torch.manual_seed(0)
    model = nn.ModuleDict({"attention": _OddAttention()})
    h = torch.randn(5, 8)
    found = contexts.find_projections(model, "odd", 8, 8, probe=lambda: model["attention"](h))
    assert found == [model["attention"].out]
    with contexts.capture_contexts(found) as captured:
        model["attention"](h)
    block = model["attention"]
    q, k, v = (p(h).view(5, 2, 4).transpose(0, 1) for p in (block.query, block.key, block.value))
    expected = (torch.softmax(q @ k.transpose(1, 2) / 2.0, -1) @ v).transpose(0, 1).reshape(5, 8)
    torch.testing.assert_close(captured[0], expected)


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_top_k_larger_than_the_vocabulary_gives_all_of_it(lms, refs, family):
    lm = lms[family]
    masked = [2] if family == "bert" else []
    a = lm.analyze("Two words here", masked=masked, top_k=10**7)
    with torch.no_grad():
        logits = refs[family](input_ids=torch.tensor([a.input_ids])).logits[0]
    vocab = logits.shape[-1]
    assert vocab < 10**7
    for position in (0, 2):
        got = a.top_k[position]
        assert len(got) == vocab
        expected = torch.softmax(logits[position], -1).sort(descending=True).values.numpy()
        np.testing.assert_allclose([p for _, p in got], expected, atol=1e-6)
    np.testing.assert_allclose(sum(p for _, p in a.top_k[1]), 1.0, atol=1e-4)


@pytest.mark.parametrize("family", ["bert", "gpt2", "deberta-v2"])
def test_one_analyze_is_one_forward_pass(lms, family):
    lm = lms[family]
    calls = {"model": 0, "embeddings": 0}

    def count(key):
        def hook(*_):
            calls[key] += 1

        return hook

    handles = [
        lm.model.register_forward_hook(count("model")),
        lm.model.get_input_embeddings().register_forward_hook(count("embeddings")),
    ]
    try:
        lm.analyze(SENTENCE, masked=[2] if lm.kind == "bidirectional" else [], top_k=5)
    finally:
        for handle in handles:
            handle.remove()
    assert calls == {"model": 1, "embeddings": 1}


class _Spy:
    """Stands in for a transformers Auto class and records the trust_remote_code it is given."""

    def __init__(self, real, calls: list) -> None:
        self.real, self.calls = real, calls

    def from_pretrained(self, *args, **kwargs):
        self.calls.append((self.real.__name__, kwargs.get("trust_remote_code", "not passed")))
        return self.real.from_pretrained(*args, **kwargs)


@pytest.mark.parametrize("family", ["bert", "gpt2"])
def test_trust_remote_code_is_off_unless_asked(tiny_dirs, monkeypatch, family):
    calls: list = []
    for name in ("AutoConfig", "AutoTokenizer", "AutoModel", "AutoModelForMaskedLM"):
        monkeypatch.setattr(loading, name, _Spy(getattr(loading, name), calls))
    monkeypatch.setattr(loading, "AutoModelForCausalLM", _Spy(AutoModelForCausalLM, calls))
    ew.load_model(tiny_dirs[family])
    head = "AutoModelForMaskedLM" if family == "bert" else "AutoModelForCausalLM"
    assert calls == [("AutoConfig", False), ("AutoTokenizer", False), (head, False)]
    calls.clear()
    ew.load_model(tiny_dirs[family], trust_remote_code=True)
    assert calls == [("AutoConfig", True), ("AutoTokenizer", True), (head, True)]


def _agree(cpu: ew.Analysis, gpu: ew.Analysis, atol: float = 1e-4) -> None:
    assert cpu.tokens == gpu.tokens and cpu.input_ids == gpu.input_ids
    for name in ("attentions", "hidden_states", "contexts"):
        np.testing.assert_allclose(getattr(gpu, name), getattr(cpu, name), atol=atol, rtol=1e-3)
    for c_row, g_row in zip(cpu.top_k, gpu.top_k, strict=True):
        assert len(c_row) == len(g_row)
        if not c_row:
            continue
        np.testing.assert_allclose([p for _, p in g_row], [p for _, p in c_row], rtol=1e-3)
        # The same tokens with the same probabilities, except near-ties at the k-th place,
        # which float noise may swap with the (k+1)-th.
        kth = c_row[-1][1]
        g_tokens = dict(g_row)
        for token, p in c_row:
            if p - kth > 1e-3 * kth:
                assert token in g_tokens
                np.testing.assert_allclose(g_tokens[token], p, rtol=1e-3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_agrees_with_cpu(tiny_dirs, monkeypatch):
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)  # float32 both sides
    for path in (str(tiny_models.MINILM), tiny_dirs["llama"]):
        cpu, gpu = ew.load_model(path), ew.load_model(path, device="cuda")
        assert next(gpu.model.parameters()).device.type == "cuda"
        assert gpu.has_lm_head == cpu.has_lm_head
        masked = [3] if cpu.kind == "bidirectional" else []
        a_cpu = cpu.analyze(SENTENCE, masked=masked, top_k=5)
        a_gpu = gpu.analyze(SENTENCE, masked=masked, top_k=5)
        assert a_gpu.attentions.dtype == np.float32
        _agree(a_cpu, a_gpu)


def test_a_half_precision_checkpoint_runs_in_float32(tmp_path):
    """A checkpoint saved in float16 (as many hub models are, or bfloat16) loads as float32:
    transformers 5 would keep the saved dtype, slow and imprecise on CPU."""
    model, tok = tiny_models.build("bert")
    model.half().save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    lm = ew.load_model(tmp_path)
    assert {p.dtype for p in lm.model.parameters()} == {torch.float32}
    ref = AutoModelForMaskedLM.from_pretrained(tmp_path, attn_implementation="eager").float()
    a = lm.analyze(SENTENCE)
    out = _reference(ref, a.input_ids)
    np.testing.assert_allclose(a.attentions, torch.cat(out.attentions).numpy(), atol=ATOL)
    np.testing.assert_allclose(a.hidden_states[-1], out.hidden_states[-1][0].numpy(), atol=1e-4)
