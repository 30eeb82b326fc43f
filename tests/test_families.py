"""Today's families (Llama 3, Qwen2, Qwen3, Mistral, Gemma 2, Phi-3, GPT-NeoX, OLMo 2, ModernBERT)
against transformers' own eager numbers, one layer at a time."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

import exbert_widget as ew
from exbert_widget.models import contexts, generation
from exbert_widget.models import layers as layers_module
from tests import tiny_models

SENTENCE = "The keeper of the lighthouse, Mrs. Okafor, didn't sleep in 1998."
ATOL = 1e-5
FAMILIES = tiny_models.MODERN_FAMILIES
DECODERS = tuple(f for f in FAMILIES if f != "modernbert")
WINDOWED = ("mistral", "gemma2", "modernbert")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("modern-models")
    return tiny_models.save_all(FAMILIES, root)


@pytest.fixture(scope="module")
def lms(dirs) -> dict[str, ew.LanguageModel]:
    return {family: ew.load_model(path) for family, path in dirs.items()}


@pytest.fixture(scope="module")
def refs(dirs) -> dict[str, torch.nn.Module]:
    """Each saved model loaded again by transformers itself, eager attention."""
    return {f: tiny_models.reference(path) for f, path in dirs.items()}


def _reference(model, ids: list[int]):
    with torch.no_grad():
        return model(
            input_ids=torch.tensor([ids]), output_attentions=True, output_hidden_states=True
        )


def _blocks(family: str, model) -> list:
    base = model.base_model
    return list(base.layers)


def _attention_input(family: str, block, h: torch.Tensor) -> torch.Tensor:
    """What a layer's attention reads, from the layer's input, by each family's own layout."""
    if family == "olmo2":  # norms come after attention
        return h
    if family == "modernbert":
        return block.attn_norm(h)  # an identity in the first layer
    return block.input_layernorm(h)


def _values(family: str, model, block, x: torch.Tensor) -> torch.Tensor:
    """Value vectors [n, heads, head_dim], key/value heads repeated for their query heads."""
    config = model.config
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    n = x.shape[0]
    if family == "phi3":
        v = block.self_attn.qkv_proj(x)[:, (heads + kv) * dim :]
    elif family == "gpt_neox":
        v = block.attention.query_key_value(x).view(n, heads, 3 * dim)[..., 2 * dim :]
    elif family == "modernbert":
        v = block.attn.Wqkv(x).view(n, 3, heads, dim)[:, 2]
    else:
        v = block.self_attn.v_proj(x)
    return v.reshape(n, kv, dim).repeat_interleave(heads // kv, dim=1)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_layer_equals_the_models_eager_attention(lms, refs, family):
    lm = lms[family]
    a = lm.analyze(SENTENCE)
    n = len(a)
    assert n > 2 * tiny_models.WINDOW  # windows really cut
    ref = _reference(refs[family], a.input_ids)
    assert len(ref.attentions) == lm.num_layers == a.num_layers
    for layer in range(lm.num_layers):
        got = a.attention(layer)
        assert got.dtype == np.float32 and got.shape == (lm.num_heads, n, n)
        np.testing.assert_allclose(got, ref.attentions[layer][0].numpy(), atol=ATOL)
        np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)
        # A few heads at a time (one key/value head per chunk) gives the same weights.
        split = a._layers.compute(layer, chunk_bytes=1).numpy()
        np.testing.assert_allclose(split, ref.attentions[layer][0].numpy(), atol=ATOL)
    np.testing.assert_allclose(
        a.hidden_states, torch.cat(ref.hidden_states).numpy(), atol=ATOL, rtol=1e-5
    )
    # All layers at once, the old API, are the same weights.
    np.testing.assert_allclose(a.attentions, torch.cat(ref.attentions).numpy(), atol=ATOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_contexts_are_attention_times_repeated_values(lms, refs, family):
    lm, model = lms[family], refs[family]
    a = lm.analyze(SENTENCE)
    n = len(a)
    ref = _reference(model, a.input_ids)
    with torch.no_grad():
        for layer, block in enumerate(_blocks(family, model)):
            x = _attention_input(family, block, ref.hidden_states[layer][0])
            v = _values(family, model, block, x)  # [n, heads, dim]
            expected = torch.einsum("hij,jhd->ihd", ref.attentions[layer][0], v).reshape(n, -1)
            assert a.context(layer).shape == (n, lm.context_size)
            np.testing.assert_allclose(a.context(layer), expected.numpy(), atol=ATOL)
            np.testing.assert_allclose(a.contexts[layer], expected.numpy(), atol=ATOL)


@pytest.mark.parametrize("family", ["llama3", "gemma2", "modernbert"])
def test_recomputation_runs_in_blocks_of_heads_and_rows(lms, refs, monkeypatch, family):
    """With a tiny block budget every eager call holds one key/value head's query heads and one
    query row; the weights are still the model's own."""
    lm = lms[family]
    a = lm.analyze(SENTENCE)
    module = sys.modules[type(lm._attention_modules[0][0]).forward.__module__]
    real, shapes = module.eager_attention_forward, []

    def counting(*args, **kwargs):
        shapes.append(tuple(args[1].shape))  # the query block
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "eager_attention_forward", counting)
    split = a._layers.compute(1, chunk_bytes=1).numpy()
    kv_heads = getattr(lm.config, "num_key_value_heads", None) or lm.num_heads
    groups = lm.num_heads // kv_heads
    assert shapes == [(1, groups, 1, lm.head_dim)] * (kv_heads * len(a))
    ref = _reference(refs[family], a.input_ids)
    np.testing.assert_allclose(split, ref.attentions[1][0].numpy(), atol=ATOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_projection_table_and_fallback_agree(lms, family):
    lm = lms[family]
    assert lm.config.model_type in contexts.PROJECTION_PATTERNS
    table = contexts.find_projections(
        lm.model, lm.config.model_type, lm.context_size, lm.hidden_size
    )
    assert len(table) == lm.num_layers
    found = contexts.find_projections(
        lm.model, "not-a-known-family", lm.context_size, lm.hidden_size, probe=lm._probe_pass
    )
    assert len(found) == len(table) and all(f is t for f, t in zip(found, table, strict=True))


def test_grouped_query_heads_are_per_query_head(lms):
    lm = lms["llama3"]
    assert lm.model.config.num_key_value_heads == 2 and lm.num_heads == 4
    a = lm.analyze(SENTENCE)
    att = a.attention(1)
    # Query heads sharing a key/value head still attend differently ...
    assert np.abs(att[0] - att[1]).max() > 1e-3
    # ... and each has its own slice of the context.
    ctx = a.context(1).reshape(len(a), 4, -1)
    assert np.abs(ctx[:, 0] - ctx[:, 1]).max() > 1e-4


@pytest.mark.parametrize("family", WINDOWED)
def test_sliding_windows_cut_where_the_model_says(lms, family):
    """Sliding layers see only the last few tokens (ModernBERT: a few on each side); full layers
    see further. The values are checked against the model above; this shows the windows act."""
    lm = lms[family]
    a = lm.analyze(SENTENCE)
    n = len(a)
    far = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) > tiny_models.WINDOW
    types = getattr(lm.config, "layer_types", None) or ["sliding_attention"] * lm.num_layers
    assert "sliding_attention" in types
    for layer, kind in enumerate(types):
        reach = a.attention(layer)[:, far].max()
        if kind == "sliding_attention":
            assert reach == 0.0
        else:
            assert reach > 1e-3


def test_gemma2_soft_capping_changes_the_weights(dirs, lms):
    """The cap is exercised: the same weights without it attend differently."""
    a = lms["gemma2"].analyze(SENTENCE)
    uncapped = AutoModelForCausalLM.from_pretrained(
        dirs["gemma2"], attn_implementation="eager", attn_logit_softcapping=None
    ).eval()
    ref = _reference(uncapped, a.input_ids)
    assert np.abs(a.attention(0) - ref.attentions[0][0].numpy()).max() > 1e-2


@pytest.mark.parametrize("family", FAMILIES)
def test_the_pass_computes_no_attention_weights(lms, family):
    """Fused families run their one pass with SDPA: no layer produces [heads, n, n] weights.
    Gemma 2's soft-capping has no SDPA form, so its pass runs eager and drops them."""
    lm = lms[family]
    modules, index = lm._attention_modules
    produced = []
    handles = [
        m.register_forward_hook(lambda _m, _a, out: produced.append(out[index] is not None))
        for m in set(modules)
    ]
    try:
        lm.analyze(SENTENCE)
    finally:
        for handle in handles:
            handle.remove()
    assert len(produced) == lm.num_layers
    assert not any(produced) if family != "gemma2" else all(produced)


@pytest.mark.parametrize("family", DECODERS)
def test_top_k_is_the_next_token_distribution(lms, refs, family):
    lm = lms[family]
    a = lm.analyze(SENTENCE, top_k=3)
    logits = _reference(refs[family], a.input_ids).logits[0]
    probs = torch.softmax(logits.double(), -1)
    for position in (0, 5, len(a) - 1):
        values, ids = probs[position].topk(3)
        assert [t for t, _ in a.top_k[position]] == lm.tokenizer.convert_ids_to_tokens(ids)
        np.testing.assert_allclose([p for _, p in a.top_k[position]], values.numpy(), rtol=1e-5)


def test_modernbert_fills_a_masked_token(lms, refs):
    lm = lms["modernbert"]
    assert lm.kind == "bidirectional"
    a = lm.analyze(SENTENCE, masked=[4], top_k=5)
    assert a.tokens[4] == "[MASK]" and a.tokens[0] == "[CLS]" and a.special[-1]
    logits = _reference(refs["modernbert"], a.input_ids).logits[0, 4]
    values, ids = torch.softmax(logits.double(), -1).topk(5)
    assert [t for t, _ in a.top_k[4]] == lm.tokenizer.convert_ids_to_tokens(ids)
    np.testing.assert_allclose([p for _, p in a.top_k[4]], values.numpy(), rtol=1e-5)


@pytest.mark.parametrize("family", DECODERS)
def test_generate_is_the_models_greedy_generate(dirs, lms, family):
    lm = lms[family]
    prompt = "The keeper of the lighthouse"
    result = lm.greedy_continuation(prompt, max_new_tokens=12)
    # transformers' default load (SDPA), as a user would call it, on the same ids
    model = AutoModelForCausalLM.from_pretrained(dirs[family]).eval()
    ids = torch.tensor([lm.encode(prompt).input_ids])
    tok = lm.tokenizer
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    with torch.no_grad():
        expected = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),  # else a BOS equal to the pad id is masked
            do_sample=False,
            max_new_tokens=12,
            pad_token_id=pad,
        )
    assert result.prompt_ids == ids[0].tolist()
    assert result.new_ids == expected[0, ids.shape[1] :].tolist()
    assert lm.generate(prompt, max_new_tokens=12) == result.new_text
    whole = lm.tokenizer.decode(expected[0], skip_special_tokens=True)
    assert result.text == prompt + result.new_text
    # the model's own decoding, but for the U+FFFD of a character the last ids only began
    # (the tiny random models write stray byte tokens)
    assert whole.endswith(result.new_text) or whole[:-1].endswith(result.new_text)


def test_generated_tokens_are_marked_by_offsets(lms):
    lm = lms["qwen2"]
    prompt = "The keeper of the lighthouse"
    result = lm.greedy_continuation(prompt, max_new_tokens=8)
    a = lm.analyze(result.text)
    marks = result.generated(a)
    prompt_tokens = len(lm.encode(prompt))
    assert not any(marks[: prompt_tokens - 1]) and any(marks)
    for (_start, stop), mark, special in zip(a.offsets, marks, a.special, strict=True):
        if not special:
            assert mark == (stop > len(prompt))


@pytest.mark.parametrize("char", ["é", "€", "🙂"])  # two, three and four UTF-8 bytes
def test_a_character_cut_by_max_new_tokens_is_left_out_of_the_text(lms, char):
    """A byte-level model writes a character outside ASCII as byte tokens; when max_new_tokens
    stops inside one, decoding ends in U+FFFD. The continuation leaves that character out (so a
    second generate() does not continue from a character the model never wrote); the ids stay
    as the model's own generate() gave them. Bytes that never form a character stay U+FFFD."""
    lm = lms["qwen2"]  # byte-level BPE, as Qwen's
    prompt = "The keeper of the lighthouse"
    byte_ids = [lm.tokenizer.convert_tokens_to_ids(t) for t in _byte_tokens(char)]
    config = lm.model.generation_config
    saved = config.suppress_tokens
    # the model's own generation config leaves greedy one token: the character's first byte
    config.suppress_tokens = [i for i in range(lm.model.config.vocab_size) if i != byte_ids[0]]
    try:
        cut = lm.greedy_continuation(prompt, 1)
    finally:
        config.suppress_tokens = saved
    assert cut.new_ids == byte_ids[:1] and cut.new_text == "" and cut.text == prompt
    assert lm.tokenizer.decode(cut.prompt_ids + cut.new_ids).endswith("\ufffd")

    # every way the character's bytes can end a continuation after an "x"
    x = lm.tokenizer.convert_tokens_to_ids("x")
    for n in range(len(byte_ids) + 1):
        text = generation._continuation_text(lm.tokenizer, cut.prompt_ids, [x, *byte_ids[:n]])
        assert text == ("x" + char if n == len(byte_ids) else "x")
    invalid = [byte_ids[0]] * 3  # a lead byte thrice: two invalid, the last one unfinished
    text = generation._continuation_text(lm.tokenizer, cut.prompt_ids, invalid)
    assert text == "\ufffd\ufffd"


def _byte_tokens(char: str) -> list[str]:
    """The byte-level BPE's one-byte tokens (GPT-2's byte-to-unicode alphabet) of ``char``."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    table = bytes_to_unicode()
    return [table[b] for b in char.encode("utf-8")]


def test_masked_lms_cannot_generate(lms, tiny_dirs):
    for lm in (lms["modernbert"], ew.load_model(tiny_dirs["bert"])):
        with pytest.raises(ew.InputError, match=r"masked .*bidirectional.* no next-token") as info:
            lm.generate("The keeper of the lighthouse")
        assert lm.name in str(info.value) and "load a decoder" in str(info.value)


def test_generation_past_the_limit_is_refused(lms):
    lm = lms["qwen2"]  # 128 positions
    with pytest.raises(ew.InputError, match="limit of 128 tokens"):
        lm.generate("lighthouse " * 200, max_new_tokens=5)
    prompt = "The keeper of the lighthouse"
    room = lm.max_length - len(lm.encode(prompt))
    with pytest.raises(ew.InputError, match=f"at most {room} new tokens"):
        lm.generate(prompt, max_new_tokens=room + 1)
    with pytest.raises(ew.InputError, match="at least 1"):
        lm.generate(prompt, max_new_tokens=0)


def test_2048_tokens_are_accepted_where_the_model_allows(lms, refs):
    """Llama 3's position table is huge and its tokenizer has no limit of its own."""
    lm = lms["llama3"]
    assert lm.tokenizer.model_max_length > 10**20  # transformers' no-limit sentinel
    assert lm.max_length == 131072
    words = tiny_models.SAMPLE_TEXT.read_text(encoding="utf-8").split()
    text = " ".join(words[:1200])
    a = lm.analyze(text)
    assert len(a) > 2048 and not a.truncated
    ref = _reference(refs["llama3"], a.input_ids[:2048])
    b = lm.analyze(lm.tokenizer.decode(a.input_ids[1:2048]))
    assert b.input_ids == a.input_ids[:2048]
    np.testing.assert_allclose(b.attention(1), ref.attentions[1][0].numpy(), atol=ATOL)


def test_truncation_names_the_model_its_limit_and_what_to_do(lms):
    lm = lms["modernbert"]
    with pytest.warns(UserWarning, match="truncated") as caught:
        a = lm.analyze("lighthouse " * 300)
    message = str(caught[0].message)
    assert lm.name in message and "(128" in message and "shorter text" in message
    assert a.truncated and len(a) == 128 and a.tokens[-1] == "[SEP]"


def test_a_layer_change_back_and_forth_does_not_recompute(lms):
    lm = lms["gemma2"]
    a = lm.analyze(SENTENCE)
    modules, _ = lm._attention_modules
    calls = []
    handles = [m.register_forward_hook(lambda *_: calls.append(1)) for m in modules]
    try:
        first = a.attention(0)
        a.attention(1)
        again = a.attention(0)
        a.attention(1)
    finally:
        for handle in handles:
            handle.remove()
    assert len(calls) == 2 and again is first
    assert not first.flags.writeable


def test_the_cache_keeps_at_least_two_layers_within_its_budget(lms):
    lm = lms["gemma2"]
    _, index = lm._attention_modules
    enc = lm.encode(SENTENCE)
    with torch.no_grad(), layers_module.record_attention_calls(lm._entries) as calls:
        lm.model(**lm._batch_inputs([enc]))  # with its key/value cache, which is not kept
    tight = layers_module.LayerAttention(calls, index, cache_bytes=1)
    for layer in (0, 1, 2, 0):
        tight.numpy(layer)
    assert tight.cached_layers() == [2, 0]
    roomy = layers_module.LayerAttention(calls, index)
    for layer in (0, 1, 2):
        roomy.numpy(layer)
    assert roomy.cached_layers() == [0, 1, 2]


def test_dropping_the_analysis_frees_what_the_pass_kept(lms):
    import gc
    import weakref

    a = lms["llama3"].analyze(SENTENCE)
    a.attention(0)
    call = a._layers._calls[1]
    kept = [
        weakref.ref(call.args[0] if call.args else call.kwargs["hidden_states"]),
        weakref.ref(call.kwargs["position_embeddings"][0]),
        weakref.ref(a._hidden_tensors[2]),
        weakref.ref(a._context_tensors[1]),
        weakref.ref(a._layers.tensor(0)),
    ]
    assert all(r() is not None for r in kept)
    del a, call
    gc.collect()
    assert all(r() is None for r in kept)


@pytest.mark.parametrize("family", ["llama3", "qwen3", "gemma2", "modernbert"])
def test_bfloat16_agrees_with_float32(dirs, lms, family):
    """bfloat16 keeps about three significant digits: weights within 0.02 of float32 (attention
    probabilities are in [0, 1]); each layer's hidden states within 2 % (relative Frobenius
    norm); the top prediction's probability within 5 %."""
    full = lms[family]
    half = ew.load_model(dirs[family], dtype="bfloat16")
    assert half.dtype == torch.bfloat16 and {p.dtype for p in half.model.parameters()} == {
        torch.bfloat16
    }
    masked = [4] if family == "modernbert" else []
    a, b = full.analyze(SENTENCE, masked=masked), half.analyze(SENTENCE, masked=masked)
    assert a.tokens == b.tokens
    for layer in range(full.num_layers):
        got = b.attention(layer)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, a.attention(layer), atol=0.02)
    for got, want in zip(b.hidden_states, a.hidden_states, strict=True):
        assert np.linalg.norm(got - want) <= 0.02 * np.linalg.norm(want)
    position = 4 if masked else 5
    np.testing.assert_allclose(b.top_k[position][0][1], a.top_k[position][0][1], rtol=0.05)


def test_dtype_names_and_bad_dtypes(dirs):
    lm = ew.load_model(dirs["qwen2"], dtype=torch.float16)
    assert lm.dtype == torch.float16 and "float16" in repr(lm)
    assert ew.load_model(dirs["qwen2"]).dtype == torch.float32
    with pytest.raises(ew.ModelLoadError, match="'float32', 'bfloat16', 'float16'"):
        ew.load_model(dirs["qwen2"], dtype="int8")
    with pytest.raises(ew.ModelLoadError, match="dtype="):
        ew.load_model(dirs["qwen2"], dtype=torch.float64)


@pytest.mark.parametrize("device", ["tpu", "gpu:0", 3.5])
def test_a_device_torch_does_not_know_is_refused_clearly(dirs, device):
    """Once a raw RuntimeError (or TypeError) from torch.device."""
    with pytest.raises(ew.ModelLoadError, match=r"is not a torch device: use 'cpu' or 'cuda'"):
        ew.load_model(dirs["qwen2"], device=device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the message for a machine without CUDA")
def test_cuda_without_a_cuda_device_is_refused(dirs):
    with pytest.raises(ew.ModelLoadError, match="torch sees no CUDA device"):
        ew.load_model(dirs["qwen2"], device="cuda:1")


def test_float16_overflow_is_refused_at_load():
    """Half precision overflows past 65,504: a model whose activations get there cannot run in
    float16, and the probe pass says so instead of returning NaN later."""
    model, tok = tiny_models.build("qwen2")
    mlp = model.model.layers[0].mlp
    with torch.no_grad():  # weights well within float16's range; the activations are not
        for projection in (mlp.up_proj, mlp.gate_proj, mlp.down_proj):
            projection.weight.mul_(300)
    assert max(float(p.detach().abs().max()) for p in model.parameters()) < 100
    with pytest.raises(ew.ModelLoadError, match=r"cannot run in float16 on cpu.*dtype='float32'"):
        ew.load_model(model=model, tokenizer=tok, dtype="float16")
    lm = ew.load_model(model=model.float(), tokenizer=tok, dtype="float32")
    assert np.abs(lm.analyze(SENTENCE).hidden_states).max() > 65504  # past float16's largest


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("family", FAMILIES)
def test_cuda_agrees_with_cpu(dirs, lms, monkeypatch, family, dtype):
    """CUDA against CPU float32. float32 (TF32 off): weights within 1e-4, hidden states within
    1e-4 + 1e-3 relative. bfloat16: weights within 0.02, hidden states within 2 % per layer."""
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    cpu = lms[family]
    gpu = ew.load_model(dirs[family], device="cuda", dtype=dtype)
    assert {p.device.type for p in gpu.model.parameters()} == {"cuda"}
    masked = [4] if family == "modernbert" else []
    a, b = cpu.analyze(SENTENCE, masked=masked), gpu.analyze(SENTENCE, masked=masked)
    assert a.input_ids == b.input_ids
    assert all(t.device.type == "cuda" for t in b._hidden_tensors)  # on the device until read
    assert b.attention_tensor(0).device.type == "cuda"
    atol = 1e-4 if dtype == "float32" else 0.02
    for layer in range(cpu.num_layers):
        np.testing.assert_allclose(b.attention(layer), a.attention(layer), atol=atol)
    for got, want in zip(b.hidden_states, a.hidden_states, strict=True):
        if dtype == "float32":
            np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)
        else:
            assert np.linalg.norm(got - want) <= 0.02 * np.linalg.norm(want)
    if family in DECODERS and dtype == "float32":
        prompt = "The keeper of the lighthouse"
        assert (
            gpu.greedy_continuation(prompt, 8).new_ids == cpu.greedy_continuation(prompt, 8).new_ids
        )
