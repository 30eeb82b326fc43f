"""The engine leaves process-wide state alone, keeps threads apart, refuses what it cannot show."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
import transformers
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

import exbert_widget as ew
from exbert_widget.models import attention, scopes
from tests import tiny_models

SENTENCE = "The keeper of the lighthouse, Mrs. Okafor, didn't sleep in 1998."


@pytest.fixture(scope="module")
def qwen(tmp_path_factory) -> ew.LanguageModel:
    path = tiny_models.save("qwen2", tmp_path_factory.mktemp("qwen2") / "qwen2")
    return ew.load_model(path)


def test_scoped_settings_are_restored_when_scopes_overlap_across_threads():
    values = {"x": 1}
    setting = scopes.ScopedSetting(lambda: values["x"], lambda v: values.__setitem__("x", v))
    inside, release = threading.Barrier(3), threading.Event()

    def hold(value: int) -> None:
        with setting(value):
            inside.wait()
            release.wait()

    threads = [threading.Thread(target=hold, args=(v,)) for v in (5, 7)]
    for t in threads:
        t.start()
    inside.wait()  # both scopes are open now
    assert values["x"] in (5, 7)
    release.set()
    for t in threads:
        t.join()
    assert values["x"] == 1  # a naive save/restore per scope could leave 5 or 7 here


def test_the_engine_leaves_torch_threads_and_log_level_as_they_were(qwen, tiny_dirs):
    threads = torch.get_num_threads()
    level = transformers.logging.get_verbosity()
    lm = ew.load_model(tiny_dirs["gpt2"])
    encodings = [lm.encode(t) for t in ("A short one.", SENTENCE, "Another one here.")] * 6
    lm.layer_attentions(encodings, 1, batch_size=2)
    a = qwen.analyze(SENTENCE)
    a.attention(1)
    qwen.generate("The keeper", max_new_tokens=3)
    qwen.token_vectors([qwen.encode(SENTENCE)])
    assert torch.get_num_threads() == threads
    assert transformers.logging.get_verbosity() == level


def test_concurrent_one_layer_passes_restore_the_thread_count(tiny_dirs):
    lm = ew.load_model(tiny_dirs["bert"])
    threads = torch.get_num_threads()
    encodings = [lm.encode(t) for t in ("A short one.", SENTENCE, "Another one here.")] * 8
    expected = lm.layer_attentions(encodings, 1, batch_size=2)
    results: list = [None, None]

    def run(slot: int) -> None:
        results[slot] = lm.layer_attentions(encodings, 1, batch_size=2)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert torch.get_num_threads() == threads
    for got in results:
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, atol=1e-6)


def test_a_fused_pass_in_one_thread_leaves_another_threads_weights(qwen):
    """The attention mode is per thread: a fused pass open elsewhere does not take the weights
    away from a model(..., output_attentions=True) call here."""
    ids = torch.tensor([qwen.encode(SENTENCE).input_ids])
    with torch.no_grad():
        expected = qwen.model(input_ids=ids, output_attentions=True).attentions
    opened, done = threading.Event(), threading.Event()

    def hold_fused() -> None:
        with attention.fused_attention():
            opened.set()
            done.wait()

    other = threading.Thread(target=hold_fused)
    other.start()
    opened.wait()
    try:
        with torch.no_grad():
            got = qwen.model(input_ids=ids, output_attentions=True).attentions
    finally:
        done.set()
        other.join()
    assert all(g is not None for g in got)
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e)


# -- a model whose attention is fused only ----------------------------------------------------


class FusedOnlyConfig(PretrainedConfig):
    model_type = "fused-only-test"

    def __init__(self, vocab_size=900, hidden_size=16, num_hidden_layers=2,
                 num_attention_heads=2, max_position_embeddings=64, **kwargs):  # fmt: skip
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.max_position_embeddings = max_position_embeddings
        super().__init__(**kwargs)


class FusedOnlyAttention(nn.Module):
    """Like much checkpoint-shipped code: torch's fused kernel, which returns no weights."""

    def __init__(self, config: FusedOnlyConfig) -> None:
        super().__init__()
        self.heads = config.num_attention_heads
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor, **_kwargs):
        b, n, width = hidden_states.shape
        q, k, v = (
            t.view(b, n, self.heads, -1).transpose(1, 2)
            for t in self.qkv(hidden_states).chunk(3, dim=-1)
        )
        out = nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out_proj(out.transpose(1, 2).reshape(b, n, width)), None


class FusedOnlyModel(PreTrainedModel):
    config_class = FusedOnlyConfig
    base_model_prefix = "model"

    def __init__(self, config: FusedOnlyConfig, recordable: bool = True) -> None:
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(
            nn.ModuleDict({"attn": FusedOnlyAttention(config)})
            for _ in range(config.num_hidden_layers)
        )
        if recordable:  # transformers' own table says where the weights would be
            self._can_record_outputs = {"attentions": FusedOnlyAttention}
        self.post_init()

    def forward(self, input_ids, output_hidden_states=False, **_kwargs):
        h = self.embed(input_ids)
        states = [h]
        for layer in self.layers:
            h = h + layer["attn"](h)[0]
            states.append(h)
        return BaseModelOutput(
            last_hidden_state=h,
            hidden_states=tuple(states) if output_hidden_states else None,
            attentions=None,
        )


@pytest.mark.parametrize("recordable", [True, False])
def test_fused_only_attention_is_refused_clearly(recordable):
    torch.manual_seed(0)
    model = FusedOnlyModel(FusedOnlyConfig(is_decoder=True), recordable=recordable).eval()
    with pytest.raises(ew.ModelLoadError, match="only in fused kernels") as info:
        ew.load_model(model=model, tokenizer=tiny_models.gpt2_tokenizer())
    assert "FusedOnlyModel" in str(info.value) and "trust_remote_code=False" in str(info.value)


def test_bad_layers_are_refused(qwen):
    a = qwen.analyze(SENTENCE)
    for bad in (qwen.num_layers, -qwen.num_layers - 1):
        with pytest.raises(ew.InputError, match=r"out of range: the model has layers 0\.\.1"):
            a.attention(bad)
        with pytest.raises(ew.InputError, match="out of range"):
            a.context(bad)
    with pytest.raises(ew.InputError, match="must be an int"):
        a.attention("1")
    np.testing.assert_array_equal(a.attention(-1), a.attention(qwen.num_layers - 1))
    # lm.forward(..., attentions=False) keeps no weights: asking is an error, not a None
    plain = qwen.forward([qwen.encode(SENTENCE)], attentions=False)[0]
    assert plain.attentions is None
    with pytest.raises(ew.InputError, match="without attentions"):
        plain.attention(0)


def test_a_decoder_without_its_head_cannot_generate(qwen):
    bare = ew.load_model(model=qwen.model.base_model, tokenizer=qwen.tokenizer)
    assert bare.kind == "autoregressive" and not bare.has_lm_head
    with pytest.raises(ew.InputError, match="without its language-model head"):
        bare.generate("The keeper")
