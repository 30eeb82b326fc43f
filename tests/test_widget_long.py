"""Long inputs: above ``all_heads_max_tokens`` the kernel sends what the view draws (the lines
after heads are combined, hidden tokens removed and the threshold cut; the heads grids'
summaries), checked against a direct numpy implementation of the view's rules on transformers'
own eager attention."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ipywidgets.widgets.widget import _remove_buffers
from transformers import AutoModel

import exbert_widget as ew
from exbert_widget.widget import lines as drawing
from exbert_widget.widget.arrays import array_from_json
from tests import tiny_models

TEXT = "The keeper of the lighthouse watched the storm roll in across the bay."
LAYER = 3


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    """float64 [layers, heads, n, n]: transformers' eager attention of TEXT for MiniLM."""
    model = AutoModel.from_pretrained(tiny_models.MINILM, attn_implementation="eager").eval()
    enc = tiny_models.minilm_tokenizer()(TEXT, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_attentions=True)
    return np.stack([a[0].double().numpy() for a in out.attentions])


@pytest.fixture()
def long_view(minilm, monkeypatch) -> ew.ExBertView:
    """A view that treats anything over 8 tokens as long (the rules do not depend on n)."""
    monkeypatch.setattr(ew.ExBertView, "all_heads_max_tokens", 8)
    return ew.ExBertView(minilm, sentence=TEXT, layer=LAYER)


# -- the view's rules, written out directly (float64, loops where the rule is per row) ----------


def shown(matrix: np.ndarray, visible: np.ndarray) -> np.ndarray:
    out = np.where(visible[:, None] & visible[None, :], matrix, 0.0)
    sums = out.sum(1, keepdims=True)
    return np.divide(out, sums, out=np.zeros_like(out), where=sums > 0)


def combined(att: np.ndarray, heads, weights) -> np.ndarray:
    if weights:
        out = sum(w * att[h] for h, w in enumerate(weights))
    else:
        out = att[sorted(set(heads))].mean(0)
    return np.maximum(out, 0.0)


def cut(matrix: np.ndarray, threshold: float) -> dict[tuple[int, int], float]:
    kept = {}
    for i, row in enumerate(matrix):
        order = sorted((j for j in range(len(row)) if row[j] > 0), key=lambda j: (-row[j], j))
        total, running = row[order].sum() if order else 0.0, 0.0
        for j in order:
            kept[(i, j)] = row[j]
            running += row[j]
            if threshold < 1 and running >= threshold * total * (1 - 1e-6):
                break
    return kept


def received(view: ew.ExBertView) -> dict[tuple[int, int], float]:
    rows, lines, scale = view.lines_rows, view.lines, view.lines_scale
    out = {}
    for i in range(len(rows) - 1):
        for column, level in lines[rows[i] : rows[i + 1]]:
            out[(i, int(column))] = level / drawing.WEIGHT_LEVELS * scale
    return out


def assert_same_lines(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    scale = max(expected.values())
    for key, value in expected.items():
        assert abs(got[key] - value) <= scale / drawing.WEIGHT_LEVELS + 1e-6, key


@pytest.mark.parametrize(
    ("heads", "weights", "threshold", "hide_special"),
    [
        (list(range(12)), None, 0.7, True),
        ([1, 4, 7], None, 0.5, True),
        ([2], None, 1.0, False),
        ([], [0.5, -1.0, 2.0] + [0.0] * 9, 0.8, True),  # a negative weight: clamped at 0
    ],
    ids=["all-heads", "three-heads", "one-head-everything", "weights"],
)
def test_long_inputs_get_the_lines_the_view_would_draw(
    long_view, reference, heads, weights, threshold, hide_special
):
    view = long_view
    settings = {"heads": heads, "head_weights": weights, "threshold": threshold}
    view.apply({**settings, "hide_special": hide_special})
    assert view.attention_mode == "combined" and view.attention is None
    visible = ~np.asarray(view.special) if hide_special else np.ones(len(view.tokens), bool)
    expected = cut(shown(combined(reference[LAYER], heads, weights), visible), threshold)
    assert_same_lines(received(view), expected)
    rows = view.lines_rows
    assert rows.dtype == np.int32 and rows[0] == 0 and rows[-1] == len(view.lines)
    assert np.all(np.diff(rows) >= 0) and view.lines.dtype == np.uint16


def test_heads_grids_get_each_heads_strongest_and_mean_attention(long_view, reference):
    view = long_view
    for hide in (True, False):
        view.hide_special = hide
        visible = ~np.asarray(view.special) if hide else np.ones(len(view.tokens), bool)
        summary = view.head_summary.astype(np.float64)
        assert summary.shape == (2, len(view.tokens), 12)
        for h in range(12):
            a = shown(reference[LAYER, h], visible)
            close = {"rtol": 2e-3, "atol": 1e-5}  # float16 on the wire
            np.testing.assert_allclose(summary[0, :, h], a.max(1), **close)
            np.testing.assert_allclose(summary[1, :, h], a.sum(0) / visible.sum(), **close)


def test_a_change_is_a_kernel_round_trip_without_a_forward_pass(long_view, minilm, monkeypatch):
    from tests.test_widget import _count_forward

    view = long_view
    calls = _count_forward(minilm, monkeypatch)
    sent: list[tuple[dict, list]] = []
    monkeypatch.setattr(view, "_send", lambda msg, buffers=None: sent.append((msg, buffers)))
    view.threshold = 0.4
    keys = set().union(*(msg["state"] for msg, _ in sent))
    assert {"lines", "lines_rows"} <= keys and not {"head_summary", "attention"} & keys
    sent.clear()
    view.layer = 1  # a new layer: its summary and lines, never every head
    keys = set().union(*(msg["state"] for msg, _ in sent))
    assert {"head_summary", "lines", "lines_rows"} <= keys and "attention" not in keys
    assert calls == []
    sent.clear()
    view.heads = list(view.heads)  # the same heads: nothing to compute or send
    assert all("lines" not in msg["state"] for msg, _ in sent)


def test_the_mode_follows_the_length_of_the_sentence(long_view):
    view = long_view
    view.sentence = "A cat sat."  # 6 tokens: every head again
    assert view.attention_mode == "all_heads" and view.lines is None
    assert view.head_summary is None and view.attention.shape == (12, 6, 6)
    view.sentence = TEXT
    assert view.attention_mode == "combined" and view.attention is None
    assert view.lines is not None and view.head_summary.shape[1] == len(view.tokens)


def _command(view, monkeypatch, name, args) -> tuple[dict, list]:
    sent: list = []
    monkeypatch.setattr(view, "send", lambda content, buffers=None: sent.append((content, buffers)))
    view._on_message(view, {"kind": "exbert-command", "id": "c1", "name": name, "args": args}, [])
    assert len(sent) == 1
    return sent[0]


def test_a_hovered_heads_lines_come_by_command_as_bytes(long_view, reference, monkeypatch):
    view = long_view
    view.apply({"threshold": 0.6, "hide_special": True})
    reply, buffers = _command(view, monkeypatch, "head_lines", {"head": 5})
    assert reply["ok"] and reply["result"]["head"] == 5 and reply["result"]["layer"] == LAYER
    assert reply["result"]["threshold"] == 0.6 and reply["result"]["hide_special"] is True
    assert len(buffers) == 2 and len(reply["buffer_paths"]) == 2
    full = {"kind": reply["kind"], "result": dict(reply["result"])}
    for path, buffer in zip(reply["buffer_paths"], buffers, strict=True):
        full[path[0]][path[1]][path[2]] = buffer
    lines = array_from_json(full["result"]["lines"])
    rows = array_from_json(full["result"]["rows"])
    got = {}
    for i in range(len(rows) - 1):
        for column, level in lines[rows[i] : rows[i + 1]]:
            got[(i, int(column))] = level / drawing.WEIGHT_LEVELS * reply["result"]["scale"]
    visible = ~np.asarray(view.special)
    assert_same_lines(got, cut(shown(reference[LAYER, 5], visible), 0.6))
    bad, _ = _command(view, monkeypatch, "head_lines", {"head": 12})
    assert not bad["ok"] and "between 0 and 11" in bad["error"]["message"]


def test_one_layer_change_sends_a_small_part_of_the_float16_heads(minilm, monkeypatch):
    """What a layer change sends at long inputs, against every head in float16 (a ratio of
    bytes, not of time): at this length and 12 heads the lines are a fraction of it."""
    monkeypatch.setattr(ew.ExBertView, "all_heads_max_tokens", 64)
    text = " ".join(tiny_models.SAMPLE_TEXT.read_text(encoding="utf-8").split()[:200])
    view = ew.ExBertView(minilm, sentence=text)
    n = len(view.tokens)
    assert view.attention_mode == "combined" and n > 200
    sent: list[int] = []
    monkeypatch.setattr(
        view,
        "_send",
        lambda msg, buffers=None: sent.append(sum(memoryview(b).nbytes for b in buffers or [])),
    )
    view.layer = 4
    assert 0 < sum(sent) < 12 * n * n * 2 / 5
    state = {k: v for k, v in view.get_state().items() if k in ("lines", "lines_rows")}
    assert _remove_buffers(state)[2]  # bytes, never JSON lists


def test_lines_refuse_more_tokens_than_a_column_can_name():
    with pytest.raises(ew.StateError, match="at most 65,536 tokens"):
        drawing.threshold_lines(torch.zeros((1, 65537)), 0.5)
