"""view.logit_lens() and the logit-lens panel's command, against the model's own predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import exbert_widget as ew
from exbert_widget.errors import InputError


@pytest.fixture(scope="module")
def demo() -> ew.LanguageModel:
    return ew.load_model("demo")


def _command(view, name, args):
    sent = []
    view._commands.send = lambda reply, buffers: sent.append(reply)
    view._commands.handle({"kind": "exbert-command", "id": "1", "name": name, "args": args})
    return sent[0]


def test_view_logit_lens_is_the_engines_lens_at_the_selected_token(demo):
    view = ew.ExBertView(demo, sentence="The wizard lived in the Emerald City.", masked=[7])
    view.selected = 7
    frame = view.logit_lens()
    assert list(frame.columns) == ["layer", "rank", "token", "prob"]
    assert sorted(frame.layer.unique()) == list(range(demo.num_layers + 1))
    # the last layer is the model's own prediction: its logits through transformers
    enc = demo.tokenizer(view.analysis.text.replace("City", demo.tokenizer.mask_token))
    with torch.no_grad():
        logits = demo.model(**{k: torch.tensor([v]) for k, v in enc.items()}).logits[0, 7]
    probs = torch.softmax(logits.float(), -1)
    top = torch.topk(probs, 5)
    last = frame[frame.layer == demo.num_layers].sort_values("rank")
    assert list(last.token) == demo.tokenizer.convert_ids_to_tokens(top.indices.tolist())
    np.testing.assert_allclose(last.prob, top.values.numpy(), rtol=1e-4, atol=1e-6)


def test_lens_command_sends_each_layers_top_k(demo):
    view = ew.ExBertView(demo, sentence="The wizard lived in the Emerald City.")
    view.selected = 3
    frame = view.logit_lens(top_k=3)
    reply = _command(view, "logit_lens", {"position": 3, "top_k": 3})
    assert reply["ok"], reply
    result = reply["result"]
    assert result["position"] == 3 and result["sentence"] == view.sentence
    assert len(result["layers"]) == demo.num_layers + 1
    for layer, row in enumerate(result["layers"]):
        expected = frame[frame.layer == layer].sort_values("rank")
        assert [tok for tok, _ in row] == list(expected.token)
        np.testing.assert_allclose([p for _, p in row], expected.prob, atol=1e-6)


def test_lens_refusals(demo, minilm):
    view = ew.ExBertView(demo)
    with pytest.raises(InputError, match="Select a token"):
        view.logit_lens()
    reply = _command(view, "logit_lens", {"position": 999})
    assert not reply["ok"] and "No token 999" in reply["error"]["message"]
    no_head = ew.ExBertView(minilm, selected=2)
    with pytest.raises(InputError, match="no language-model head"):
        no_head.logit_lens()
    reply = _command(no_head, "logit_lens", {"position": 2})
    assert not reply["ok"] and reply["error"]["type"] == "InputError"


def test_the_lens_command_caps_top_k_as_search_caps_k(demo):
    """A request from the browser cannot ask for the whole vocabulary at every layer (JSON)."""
    view = ew.ExBertView(demo, selected=3)
    for top_k in (10**9, 101, 0, True):
        reply = _command(view, "logit_lens", {"position": 3, "top_k": top_k})
        assert not reply["ok"] and reply["error"]["type"] == "InputError"
        assert "top_k must be" in reply["error"]["message"], reply
    reply = _command(view, "logit_lens", {"position": 3, "top_k": 100})
    assert reply["ok"] and all(len(row) == 100 for row in reply["result"]["layers"])
    frame = view.logit_lens(top_k=100)
    last = frame[frame.layer == demo.num_layers].sort_values("rank")
    assert [tok for tok, _ in reply["result"]["layers"][-1]] == list(last.token)
