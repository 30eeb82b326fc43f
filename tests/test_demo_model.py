"""The offline demo model: all-MiniLM-L6-v2 with the project's masked-LM head."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoTokenizer

import exbert_widget as ew
from exbert_widget.models import demo
from tests import tiny_models


@pytest.fixture(scope="module")
def demo_lm() -> ew.LanguageModel:
    return ew.load_model("demo")


def _by_hand(text: str, masked: int) -> tuple[list[str], np.ndarray]:
    """MiniLM loaded on its own, then BERT's head applied by hand from the shipped weights."""
    tok = AutoTokenizer.from_pretrained(tiny_models.MINILM)
    encoder = AutoModel.from_pretrained(tiny_models.MINILM, attn_implementation="eager").eval()
    ids = tok(text, return_tensors="pt")["input_ids"]
    ids[0, masked] = tok.mask_token_id
    head = load_file(str(demo.head_path()))
    with torch.no_grad():
        h = encoder(input_ids=ids).last_hidden_state[0, masked]
        h = h @ head["cls.predictions.transform.dense.weight"].T
        h = torch.nn.functional.gelu(h + head["cls.predictions.transform.dense.bias"])
        h = torch.nn.functional.layer_norm(
            h,
            (h.shape[-1],),
            head["cls.predictions.transform.LayerNorm.weight"],
            head["cls.predictions.transform.LayerNorm.bias"],
            eps=encoder.config.layer_norm_eps,
        )
        logits = h @ encoder.embeddings.word_embeddings.weight.T + head["cls.predictions.bias"]
        probs = torch.softmax(logits, -1)
    top = probs.topk(5)
    return tok.convert_ids_to_tokens(top.indices.tolist()), top.values.numpy()


def test_demo_predicts_what_the_head_computes_by_hand(demo_lm):
    text = "The girl ran to a local pub to escape the din of her city."
    a = demo_lm.analyze(text, masked=[2], top_k=5)
    assert demo_lm.has_lm_head and demo_lm.kind == "bidirectional"
    assert a.tokens[2] == "[MASK]"
    tokens, probs = _by_hand(text, 2)
    assert [t for t, _ in a.top_k[2]] == tokens
    np.testing.assert_allclose([p for _, p in a.top_k[2]], probs, atol=1e-5)


def test_demo_attention_is_minilms_own(demo_lm, minilm):
    text = "Dorothy lived in the middle of the great Kansas prairies."
    np.testing.assert_allclose(
        demo_lm.analyze(text).attentions, minilm.analyze(text).attentions, atol=1e-6
    )


def test_demo_label_says_it_is_a_demo_head(demo_lm):
    assert "demo" in demo_lm.name
    info = demo.head_info()
    assert 0 < float(info["held_out_top5"]) < 1
    assert "public domain" in info["trained_on"]
