"""The model view's thumbnails (kernel side), against a direct numpy block-mean of
``a.attention(layer)[head]`` with the same quantisation."""

from __future__ import annotations

import numpy as np
import pytest

import exbert_widget as ew
from exbert_widget.widget.thumbnails import THUMB_MAX, thumbnail_size
from tests import tiny_models


def block_mean(matrix: np.ndarray, size: int) -> np.ndarray:
    """adaptive_avg_pool2d's bins, written out: bin i spans floor(i n / s) .. ceil((i+1) n / s)."""

    def edges(n: int) -> list[tuple[int, int]]:
        return [(i * n // size, -(-(i + 1) * n // size)) for i in range(size)]

    out = np.empty((size, size))
    for i, (r0, r1) in enumerate(edges(matrix.shape[0])):
        for j, (c0, c1) in enumerate(edges(matrix.shape[1])):
            out[i, j] = matrix[r0:r1, c0:c1].mean()
    return out


def reference(a: ew.Analysis, layer: int, head: int, hide_special: bool) -> np.ndarray:
    att = a.attention(layer)[head].astype(np.float64)
    keep = ~np.array(a.special) if hide_special else np.ones(len(a.tokens), bool)
    att = att[keep][:, keep]
    att = att / att.sum(1, keepdims=True)
    pooled = block_mean(att, min(THUMB_MAX, int(keep.sum())))
    return np.round(pooled / pooled.max() * 255)


def assert_thumbnails(thumbs: np.ndarray, a: ew.Analysis, hide_special: bool) -> None:
    layers, heads = thumbs.shape[:2]
    for layer in range(layers):
        for head in range(heads):
            expected = reference(a, layer, head, hide_special)
            got = thumbs[layer, head].astype(np.int64)
            assert got.shape == expected.shape
            # float32 on the device vs float64 here: a cell on a rounding edge may differ by 1
            diff = np.abs(got - expected)
            assert diff.max() <= 1 and (diff == 0).mean() > 0.97, (layer, head)


def test_thumbnails_equal_a_direct_block_mean(minilm):
    view = ew.ExBertView(minilm)
    thumbs = view.thumbnails()
    assert thumbs.dtype == np.uint8
    n = sum(not s for s in view.special)
    assert thumbs.shape == (6, 12, n, n)  # fewer than 64 visible tokens: no downsampling
    assert_thumbnails(thumbs, view.analysis, hide_special=True)
    view.hide_special = False
    assert_thumbnails(view.thumbnails(), view.analysis, hide_special=False)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> ew.LanguageModel:
    path = tiny_models.save("bert", tmp_path_factory.mktemp("bert"), max_positions=256)
    return ew.load_model(str(path))


@pytest.mark.parametrize("words", [70, 150])
def test_long_inputs_are_block_averaged_to_64(tiny_bert, words):
    lm = tiny_bert
    sentence = " ".join(["the quick brown fox jumps over a lazy dog"] * (words // 9 + 1))
    view = ew.ExBertView(lm, sentence=sentence)
    thumbs = view.thumbnails()
    assert thumbs.shape == (lm.num_layers, lm.num_heads, 64, 64)
    assert_thumbnails(thumbs, view.analysis, hide_special=True)


def test_model_view_command_replies_with_one_uint8_buffer(minilm):
    view = ew.ExBertView(minilm)
    sent = []
    view._commands.send = lambda reply, buffers: sent.append((reply, buffers))
    view._commands.handle({"kind": "exbert-command", "id": "1", "name": "model_view", "args": {}})
    reply, buffers = sent[0]
    assert reply["ok"], reply
    result = reply["result"]
    assert result["sentence"] == view.sentence and result["size"] == 15
    assert result["thumbnails"]["dtype"] == "uint8"
    assert result["thumbnails"]["shape"] == [6, 12, 15, 15]
    assert reply["buffer_paths"] == [["result", "thumbnails", "view"]]
    (buffer,) = buffers
    np.testing.assert_array_equal(
        np.frombuffer(buffer, np.uint8).reshape(6, 12, 15, 15), view.thumbnails()
    )


def test_many_heads_get_smaller_thumbnails_in_one_bounded_buffer():
    assert thumbnail_size(512, 12 * 12) == 64
    assert thumbnail_size(512, 32 * 32) == 24  # 32 × 32 heads: 590 kB in all, as 12 × 12
    assert 32 * 32 * thumbnail_size(512, 32 * 32) ** 2 <= 12 * 12 * 64 * 64
    assert thumbnail_size(512, 100 * 100) == 8  # never below 8 cells a side
    assert thumbnail_size(5, 32 * 32) == 5  # no upsampling


def test_long_inputs_in_combined_mode_get_the_same_thumbnails(minilm):
    class Combined(ew.ExBertView):
        all_heads_max_tokens = 8

    view = Combined(minilm)
    assert view.attention_mode == "combined" and view.attention is None
    np.testing.assert_array_equal(view.thumbnails(), ew.ExBertView(minilm).thumbnails())
    assert_thumbnails(view.thumbnails(), view.analysis, hide_special=True)


@pytest.mark.parametrize("part", ["cross", "decoder"])
def test_an_encoder_decoder_models_thumbnails_follow_the_part(tmp_path_factory, part):
    path = tiny_models.save("bart", tmp_path_factory.mktemp("bart"))
    view = ew.ExBertView(
        ew.load_model(str(path)), sentence="The keeper slept.", target="Die Wärterin schlief."
    )
    view.part = part
    a = view.analysis
    ns = len(a.tokens)
    rows = slice(ns, None)
    columns = slice(0, ns) if part == "cross" else rows
    keep_rows = ~np.array(view.special[rows])
    keep_columns = ~np.array(view.special[columns])
    thumbs = view.thumbnails()
    assert thumbs.shape[:2] == (a.layer_count(part), view.num_heads)
    for layer in range(thumbs.shape[0]):
        for head in range(thumbs.shape[1]):
            att = a.attention(layer, part=part)[head].astype(np.float64)
            att = att[keep_rows][:, keep_columns]
            att = att / att.sum(1, keepdims=True)
            size = max(int(keep_rows.sum()), int(keep_columns.sum()))
            pooled = block_mean(att, size)
            expected = np.round(pooled / pooled.max() * 255)
            assert np.abs(thumbs[layer, head].astype(np.int64) - expected).max() <= 1
