"""view.save: SVG and HTML from the kernel's state alone, PNG through a displayed view; the lines
and tokens against an independent computation from the analysis."""

from __future__ import annotations

import base64
import json
import re
import struct
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable

import numpy as np
import pytest

import exbert_widget as ew
from exbert_widget.errors import InputError

SVG = "{http://www.w3.org/2000/svg}"
TRICKY = 'She said "x < y & z" isn\'t <b>bold</b>.'


@pytest.fixture(scope="module")
def demo() -> ew.LanguageModel:
    return ew.load_model("demo")


def reference_lines(a, layer, heads, threshold, hide_special) -> set[tuple[int, int]]:
    """The lines the view draws, written out: mean of the heads, hidden tokens dropped and rows
    renormalised, per row the strongest lines until their sum reaches the threshold."""
    att = a.attention(layer)[heads].astype(np.float64).mean(0)
    keep = ~np.array(a.special) if hide_special else np.ones(len(a.tokens), bool)
    att = att * keep[None, :] * keep[:, None]
    out = set()
    for i in np.flatnonzero(keep):
        row = att[i] / att[i].sum()
        total = 0.0
        for j in sorted(np.flatnonzero(row > 0), key=lambda j: (-row[j], j)):
            out.add((int(i), int(j)))
            total += row[j]
            if total >= threshold * (1 - 1e-6):
                break
    return out


def parse_svg(path):
    root = ET.parse(path).getroot()
    texts = {
        side: [t.text or "" for t in root.iter(f"{SVG}text") if t.get("data-side") == side]
        for side in ("left", "right")
    }
    paths = list(root.iter(f"{SVG}path"))
    return root, texts, paths


def test_svg_has_each_token_as_escaped_text_and_the_views_lines(demo, tmp_path):
    view = ew.ExBertView(demo, sentence=TRICKY, layer=2, heads=[1, 4, 7], threshold=0.6)
    view.selected = 3
    path = view.save(tmp_path / "view.svg")
    root, texts, paths = parse_svg(path)
    a = view.analysis
    shown = [t for t, s in zip(a.tokens, a.special, strict=True) if not s]
    assert texts["left"] == shown and texts["right"] == shown
    assert any("<" in t for t in shown) and any("&" in t for t in shown)
    expected = reference_lines(a, 2, [1, 4, 7], 0.6, hide_special=True)
    drawn = {(int(p.get("data-from")), int(p.get("data-to"))) for p in paths}
    assert len(paths) == len(expected) and drawn == expected
    settings = next(t.text for t in root.iter(f"{SVG}text") if t.get("class") == "settings")
    assert "layer 2" in settings and "heads 1, 4, 7" in settings and "threshold 0.60" in settings
    assert len([r for r in root.iter(f"{SVG}rect") if r.get("class") == "selected"]) == 2
    numbers = [t for t in root.iter(f"{SVG}text") if t.get("class") == "head-number"]
    assert len(numbers) == 2 * demo.num_heads
    assert root.find(f"{SVG}title").text == "exBERT view: " + TRICKY


def test_svg_with_special_tokens_shown_and_a_mask(demo, tmp_path):
    view = ew.ExBertView(demo, sentence="The wizard lived in the Emerald City.", masked=[7])
    view.hide_special = False
    _, texts, paths = parse_svg(view.save(tmp_path / "v.svg"))
    assert texts["left"] == view.analysis.tokens
    expected = reference_lines(view.analysis, 0, list(range(12)), 0.7, hide_special=False)
    assert len(paths) == len(expected)


def test_long_inputs_export_the_kernels_lines(demo, tmp_path):
    class Combined(ew.ExBertView):
        all_heads_max_tokens = 8

    view = Combined(demo, sentence="The wizard lived in the Emerald City, far away.")
    assert view.attention_mode == "combined"
    _, texts, paths = parse_svg(view.save(tmp_path / "long.svg"))
    a = view.analysis
    assert texts["right"] == [t for t, s in zip(a.tokens, a.special, strict=True) if not s]
    expected = reference_lines(a, 0, list(range(12)), 0.7, hide_special=True)
    assert len(paths) == len(expected)
    page = (view.save(tmp_path / "long.html")).read_text()
    assert json.loads(_embedded(page))["layers"] == {}


def _embedded(page: str) -> str:
    match = re.search(r'<script type="application/json" id="exbert-state">(.*?)</script>', page)
    assert match
    return match.group(1)


def test_html_is_one_file_with_the_bundle_and_the_state(demo, tmp_path):
    view = ew.ExBertView(demo, sentence=TRICKY, layer=1)
    page = view.save(tmp_path / "view.html").read_text("utf-8")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert page.count("</script>") == 2  # the state and the module: nothing closes early
    data = json.loads(_embedded(page))
    assert data["state"]["tokens"] == view.tokens and data["state"]["sentence"] == TRICKY
    att = data["state"]["attention"]
    decoded = np.frombuffer(base64.b64decode(att["b64"]), att["dtype"]).reshape(att["shape"])
    np.testing.assert_array_equal(decoded, view.attention)
    assert sorted(map(int, data["layers"])) == list(range(demo.num_layers))
    layer3 = data["layers"]["3"]
    np.testing.assert_allclose(
        np.frombuffer(base64.b64decode(layer3["b64"]), "float16").reshape(layer3["shape"]),
        view.analysis.attention(3),
        atol=1e-3,
    )


def test_bad_paths_and_suffixes_write_nothing(demo, tmp_path):
    view = ew.ExBertView(demo)
    with pytest.raises(InputError, match="suffix must be one of"):
        view.save(tmp_path / "view.pdf")
    with pytest.raises(InputError, match="does not exist"):
        view.save(tmp_path / "missing" / "view.svg")
    with pytest.raises(InputError, match="display the view"):
        view.save(tmp_path / "view.png")
    assert list(tmp_path.iterdir()) == []


def test_a_failing_render_keeps_the_old_file(demo, tmp_path, monkeypatch):
    view = ew.ExBertView(demo)
    path = tmp_path / "view.svg"
    path.write_text("old")

    def broken(_shot):
        raise RuntimeError("boom")

    monkeypatch.setattr("exbert_widget.widget.svg_export.render_svg", broken)
    with pytest.raises(RuntimeError):
        view.save(path)
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["view.svg"]


def _png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\xff\xff\xff" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _wired(view) -> tuple[list, Callable[[str, dict], dict]]:
    """The messages ``view`` sends, kept in a list, and a function that runs a command as the
    browser would and returns its reply."""
    replies: list[dict] = []
    messages: list = []
    view._commands.send = lambda reply, buffers: replies.append(reply)

    def send(content: dict, buffers=None) -> None:
        if content.get("kind") != "exbert-working":  # heartbeats of a command running over 2 s
            messages.append(content)

    view.send = send

    def command(name: str, args: dict) -> dict:
        view._commands.handle({"kind": "exbert-command", "id": "1", "name": name, "args": args})
        return replies[-1]

    return messages, command


def test_png_is_asked_of_the_displayed_view_and_written_when_it_answers(demo, tmp_path):
    view = ew.ExBertView(demo)
    messages, command = _wired(view)

    view._on_message(view, {"kind": "exbert-attach", "attached": True}, [])
    path = tmp_path / "view.png"
    view.save(path)
    assert not path.exists()  # written when the view answers
    (request,) = messages
    assert request["kind"] == "exbert-png-request"
    ET.fromstring(request["svg"].split("\n", 1)[1])  # the SVG the view rasterises
    bad = command("png", {"request": request["request"], "data": "bm90IGEgcG5n"})
    assert not bad["ok"] and "not a PNG" in bad["error"]["message"] and not path.exists()
    view.save(path)
    data = _png(3, 2)
    ok = command(
        "png", {"request": messages[-1]["request"], "data": base64.b64encode(data).decode()}
    )
    assert ok["ok"] and path.read_bytes() == data
    again = command("png", {"request": messages[-1]["request"], "data": ""})
    assert not again["ok"]  # answered already
    view._on_message(view, {"kind": "exbert-attach", "attached": False}, [])
    with pytest.raises(InputError, match="display the view"):
        view.save(path)


def test_the_save_button_names_one_absolute_place_for_every_format(demo, tmp_path, monkeypatch):
    """The button's default path is relative to the kernel's working directory when it is
    pressed: SVG, HTML and PNG alike are written there and reported by their absolute path,
    also when the view's PNG answer arrives after the working directory changed."""
    view = ew.ExBertView(demo)
    messages, reply = _wired(view)

    def command(name, args):
        answer = reply(name, args)
        assert answer["ok"], answer
        return answer["result"]

    view._on_message(view, {"kind": "exbert-attach", "attached": True}, [])
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(here)
    for fmt in ("svg", "html"):
        assert command("export", {"format": fmt})["path"] == str(here / f"exbert-view.{fmt}")
    asked = command("export", {"format": "png"})
    assert asked["path"] == str(here / "exbert-view.png")
    monkeypatch.chdir(elsewhere)  # e.g. os.chdir in a cell before the browser answered
    data = _png(2, 2)
    request = messages[-1]["request"]
    done = command("png", {"request": request, "data": base64.b64encode(data).decode()})
    assert done["path"] == str(here / "exbert-view.png")
    assert (here / "exbert-view.png").read_bytes() == data
    assert list(elsewhere.iterdir()) == []
