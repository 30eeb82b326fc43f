"""Value-weighted norms and rollout (issue 12) against computations by hand from the model's own
weights and the model's own eager attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoModel

import exbert_widget as ew
from tests import tiny_models

SENTENCE = "The keeper of the lighthouse, Mrs. Okafor, didn't sleep in 1998."
# Families with the value and output-projection layouts that differ: BERT (separate value with
# bias, output bias), GPT-2 (fused Conv1D), Llama (grouped-query), Qwen2 (value bias, GQA),
# Phi-3 (fused qkv Linear), GPT-NeoX (fused, interleaved per head), ModernBERT (fused Wqkv),
# DistilBERT, ALBERT (one shared layer).
FAMILIES = (
    "bert",
    "gpt2",
    "llama",
    "distilbert",
    "albert",
    "qwen2",
    "phi3",
    "gpt_neox",
    "modernbert",
)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("measure-models")
    return tiny_models.save_all(FAMILIES, root)


@pytest.fixture(scope="module")
def lms(dirs) -> dict[str, ew.LanguageModel]:
    return {f: ew.load_model(path) for f, path in dirs.items()}


@pytest.fixture(scope="module")
def refs(dirs) -> dict[str, torch.nn.Module]:
    """Each saved model loaded again by transformers itself, eager attention."""
    return {f: tiny_models.reference(path) for f, path in dirs.items()}


def _blocks(model) -> list:
    base = model.base_model
    t = model.config.model_type
    if t == "bert":
        return list(base.encoder.layer)
    if t == "distilbert":
        return list(base.transformer.layer)
    if t == "albert":
        return [
            base.encoder.albert_layer_groups[0].albert_layers[0]
        ] * model.config.num_hidden_layers
    if t == "gpt2":
        return list(base.h)
    return list(base.layers)


def _values_and_output(model, block, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """By hand from the layer's input ``h`` [n, hidden]: value vectors per query head
    ``[heads, n, head_dim]`` (bias included, key/value heads repeated) and the output
    projection's weight as ``[heads, head_dim, hidden]``."""
    c = model.config
    t = c.model_type
    heads = c.num_attention_heads
    kv = getattr(c, "num_key_value_heads", None) or heads
    n = h.shape[0]
    if t == "bert":
        v, w = block.attention.self.value(h), block.attention.output.dense.weight.t()
    elif t == "distilbert":
        v, w = block.attention.v_lin(h), block.attention.out_lin.weight.t()
    elif t == "albert":
        v, w = block.attention.value(h), block.attention.dense.weight.t()
    elif t == "gpt2":
        v = block.attn.c_attn(block.ln_1(h)).split(c.n_embd, dim=-1)[2]
        w = block.attn.c_proj.weight  # Conv1D: [in, out]
    elif t == "phi3":
        dim = c.hidden_size // heads
        v = block.self_attn.qkv_proj(block.input_layernorm(h))[:, (heads + kv) * dim :]
        w = block.self_attn.o_proj.weight.t()
    elif t == "gpt_neox":
        dim = c.hidden_size // heads
        x = block.input_layernorm(h)
        v = block.attention.query_key_value(x).view(n, heads, 3 * dim)[..., 2 * dim :]
        w = block.attention.dense.weight.t()
    elif t == "modernbert":
        dim = c.hidden_size // heads
        v = block.attn.Wqkv(block.attn_norm(h)).view(n, 3, heads, dim)[:, 2]
        w = block.attn.Wo.weight.t()
    else:  # llama, qwen2
        v, w = block.self_attn.v_proj(block.input_layernorm(h)), block.self_attn.o_proj.weight.t()
    dim = w.shape[0] // heads
    v = v.reshape(n, kv, dim).transpose(0, 1).repeat_interleave(heads // kv, dim=0)
    return v, w.reshape(heads, dim, -1)


def _norms_by_hand(weights: torch.Tensor, v: torch.Tensor, w: torch.Tensor) -> np.ndarray:
    """‖α_ij · f_h(x_j)‖ with the vectors α_ij · f_h(x_j) formed explicitly."""
    f = torch.einsum("hjd,hdo->hjo", v, w)  # f_h(x_j): [heads, n, hidden]
    moved = weights[..., None] * f[:, None, :, :]  # [heads, i, j, hidden]
    return torch.linalg.vector_norm(moved, dim=-1).numpy()


@pytest.mark.parametrize("family", FAMILIES)
def test_norms_are_attention_times_projected_value_norms(lms, refs, family):
    lm, model = lms[family], refs[family]
    a = lm.analyze(SENTENCE)
    with torch.no_grad():
        ref = model(
            input_ids=torch.tensor([a.input_ids]), output_attentions=True, output_hidden_states=True
        )
        for layer, block in enumerate(_blocks(model)):
            v, w = _values_and_output(model, block, ref.hidden_states[layer][0])
            expected = _norms_by_hand(ref.attentions[layer][0], v, w)
            got = a.attention(layer, measure="norm")
            assert got.dtype == np.float32 and got.shape == expected.shape
            np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
            assert not got.flags.writeable
    # Norms move some tokens more than their weights say: not a rescaling of the weights.
    ratio = a.attention(0, measure="norm") / np.maximum(a.attention(0), 1e-12)
    ratio = ratio[ratio > 0]
    assert ratio.std() > 0.05 * ratio.mean()


def test_minilm_norms_from_its_own_weights(minilm):
    """The real all-MiniLM-L6-v2: norms from its value and output-projection weights."""
    model = AutoModel.from_pretrained(tiny_models.MINILM, attn_implementation="eager").eval()
    a = minilm.analyze("The girl ran to a local pub to escape the din of her city.")
    n = len(a)
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor([a.input_ids]), output_attentions=True, output_hidden_states=True
        )
        for layer in range(minilm.num_layers):
            block = model.encoder.layer[layer]
            h = out.hidden_states[layer][0]
            v = block.attention.self.value(h).view(n, 12, 32).transpose(0, 1)
            w = block.attention.output.dense.weight.t().reshape(12, 32, 384)
            expected = _norms_by_hand(out.attentions[layer][0], v, w)
            np.testing.assert_allclose(
                a.attention(layer, measure="norm"), expected, rtol=1e-4, atol=1e-6
            )


def test_norms_from_a_batched_forward_equal_those_on_demand(lms):
    lm = lms["qwen2"]
    texts = [SENTENCE, "A shorter one."]
    batched = lm.forward([lm.encode(t) for t in texts])
    for text, b in zip(texts, batched, strict=True):
        single = lm.analyze(text)
        for layer in range(lm.num_layers):
            np.testing.assert_allclose(
                b.attention(layer, measure="norm"),
                single.attention(layer, measure="norm"),
                rtol=1e-4,
                atol=1e-6,
            )


def test_norms_where_the_attention_gives_no_values_are_refused(tmp_path):
    """DeBERTa-v2's disentangled attention is its own code, not transformers' dispatcher."""
    lm = ew.load_model(tiny_models.save("deberta-v2", tmp_path / "deberta"))
    a = lm.analyze(SENTENCE)
    a.attention(0)  # weights work
    with pytest.raises(ew.InputError, match=r"value states.*measure='attention' works"):
        a.attention(0, measure="norm")


def test_bad_measures_and_parts_are_refused(lms):
    a = lms["bert"].analyze(SENTENCE)
    with pytest.raises(ew.InputError, match="measure must be one of 'attention', 'norm'"):
        a.attention(0, measure="rollout")
    with pytest.raises(ew.InputError, match="part='cross' is for encoder–decoder"):
        a.attention(0, part="cross")
    with pytest.raises(ew.InputError, match="out of range"):
        a.attention(5, measure="norm")


def _rollout_by_hand(attentions: np.ndarray, layer: int, heads=None) -> np.ndarray:
    """Abnar & Zuidema's product written out in float64 numpy."""
    n = attentions.shape[-1]
    result = np.eye(n)
    for current in range(layer + 1):
        chosen = attentions[current]
        if heads is not None and current == layer:
            chosen = chosen[list(heads)]
        step = 0.5 * chosen.astype(np.float64).mean(axis=0) + 0.5 * np.eye(n)
        step /= step.sum(axis=1, keepdims=True)
        result = step @ result
    return result


@pytest.mark.parametrize("family", ["bert", "llama", "modernbert"])
def test_rollout_is_the_product_of_the_layers(lms, refs, family):
    lm = lms[family]
    a = lm.analyze(SENTENCE)
    with torch.no_grad():
        ref = refs[family](input_ids=torch.tensor([a.input_ids]), output_attentions=True)
    attentions = torch.cat(ref.attentions).numpy()
    for layer in range(lm.num_layers):
        got = a.rollout(layer)
        assert got.dtype == np.float32 and got.shape == (len(a), len(a))
        np.testing.assert_allclose(got, _rollout_by_hand(attentions, layer), atol=1e-5)
        np.testing.assert_allclose(got.sum(-1), 1.0, atol=1e-5)
    last = lm.num_layers - 1
    chosen = a.rollout(last, heads=[1, 3])
    np.testing.assert_allclose(chosen, _rollout_by_hand(attentions, last, [1, 3]), atol=1e-5)
    assert np.abs(chosen - a.rollout(last)).max() > 1e-6  # the selection matters
    if family == "llama":  # causal all the way: nothing flows from later tokens
        assert np.abs(np.triu(a.rollout(last), k=1)).max() == 0.0


def test_rollout_head_selection_only_changes_the_last_layer(lms):
    a = lms["bert"].analyze(SENTENCE)
    every = a.rollout(0, heads=[0, 1, 2, 3])
    np.testing.assert_allclose(every, a.rollout(0), atol=1e-6)
    with pytest.raises(ew.InputError, match=r"head indices in 0\.\.3"):
        a.rollout(1, heads=[7])
    with pytest.raises(ew.InputError, match="non-empty list"):
        a.rollout(1, heads=[])
    with pytest.raises(ew.InputError, match="for encoder–decoder models"):
        a.rollout(0, part="cross")
