"""The model view against BertViz's model_view, at 12 layers × 12 heads and n = 512.

Model: a bert-base-shaped BERT with random weights, built from ``BertConfig()`` (12 layers,
12 heads, hidden 768) with all-MiniLM-L6-v2's tokenizer: the sizes are what matter here, not
the weights.

1. Payload: bytes of our model view (the ``model_view`` command's reply as it goes to the
   browser: JSON plus the one uint8 buffer ``[12, 12, 64, 64]``) against the HTML of BertViz
   ``model_view(..., html_action="return")`` for the same attentions, measured in this run.
   Aim: <= 1/500 of BertViz's bytes.
2. Kernel time of the model view (12 one-layer recomputations, pooling on the device) beside one
   ``lm.analyze`` of the same sentence (the anchor), interleaved.
3. Chromium: a plain page with the built bundle and a fake anywidget model that answers the
   ``model_view`` command with the real reply; time from the reply to the grid painted (work
   inside the view, then the next frame). At 12 × 12 heads and at 32 × 32 heads (the latter's
   thumbnails tiled from the 12 × 12 ones and pooled to the 24 × 24 cells the kernel sends at
   32 × 32 heads: the draw depends on the shape only). Aim: <= 300 ms.

Usage: python bench/bench_model_view.py [--skip-bertviz] [--no-browser]
(BertViz at n = 512 writes every layer's attention as JSON: about a minute and several GB.)
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from common import ROOT, interleaved, sentence_of_length

import exbert_widget as ew
from exbert_widget.widget.html_export import _bundle, load_bundle
from exbert_widget.widget.thumbnails import quantise, thumbnail_size
from tests import tiny_models
from tests.e2e.jupyter import CHROMIUM, CHROMIUM_ARGS

TOKENS = 512


def build_model() -> ew.LanguageModel:
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_models.MINILM)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(tokenizer), max_position_embeddings=512)
    model = transformers.BertForMaskedLM(config).eval()
    return ew.load_model(model=model, tokenizer=tokenizer)


def reply_of(view: ew.ExBertView) -> tuple[dict, bytes]:
    """The model_view command's reply and its binary buffer, as the kernel sends them."""
    sent: list = []
    view._commands.send = lambda reply, buffers: sent.append((reply, buffers))
    view._commands.handle({"kind": "exbert-command", "id": "b", "name": "model_view", "args": {}})
    reply, buffers = sent[0]
    assert reply["ok"], reply
    return reply, b"".join(bytes(b) for b in buffers)


def bertviz_bytes(view: ew.ExBertView) -> tuple[int, float]:
    from bertviz import model_view

    a = view.analysis
    attention = tuple(torch.tensor(a.attention(layer)[None]) for layer in range(a.num_layers))
    start = time.perf_counter()
    html = model_view(attention, a.tokens, html_action="return")
    seconds = time.perf_counter() - start
    size = len(html.data.encode())
    del html, attention
    gc.collect()
    return size, seconds


def fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><style>%s</style></head>
<body><div id="host"></div><script type="module">%s
window.__widget = __exbertWidget;</script></body></html>"""

HARNESS = """
async ({ state, reply, b64 }) => {
  const s = atob(b64);
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  const listeners = new Map();
  const emit = (ev, ...args) => { for (const cb of listeners.get(ev) ?? []) cb(...args); };
  let request = null;
  const model = {
    get: (k) => state[k], set: (k, v) => { state[k] = v; }, save_changes() {},
    on(ev, cb) { if (!listeners.has(ev)) listeners.set(ev, new Set()); listeners.get(ev).add(cb); },
    off(ev, cb) { if (ev && cb) listeners.get(ev)?.delete(cb); },
    send(msg) { if (msg.name === 'model_view') request = msg; },
    widget_manager: {},
  };
  const el = document.getElementById('host');
  window.__widget.render({ model, el });
  const frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  await frame();
  document.querySelector('[data-testid=model-view-toggle]').click();
  while (!request) await new Promise((r) => setTimeout(r, 5));
  // Let the head view settle (the toggle's note moves the layout) so only the grid is timed.
  for (let i = 0; i < 10; i++) await frame();
  await new Promise((r) => setTimeout(r, 300));
  const t0 = performance.now();
  emit('msg:custom', { ...reply, id: request.id }, [new DataView(bytes.buffer)]);
  await new Promise((r) => setTimeout(r, 0));
  const work = performance.now() - t0;
  await frame();
  const painted = performance.now() - t0;
  const cells = document.querySelectorAll('[data-testid^=model-cell-]').length;
  const canvas = document.querySelector('[data-testid=model-view-canvas]');
  return { work, painted, cells, paint: Number(canvas.getAttribute('data-draw-ms')) };
}
"""


def browser_draw(view: ew.ExBertView, reply: dict, buffer: bytes, heads: int) -> dict:
    from playwright.sync_api import sync_playwright

    js, css = load_bundle()
    state = {k: v for k, v in view.get_state().items() if not k.startswith("_")}
    state = json.loads(json.dumps(state, default=lambda _: None))  # array traits: none needed
    state.update(attention=None, num_layers=heads, num_heads=heads)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_content(PAGE % (css, _bundle(js)))
            page.wait_for_function("() => window.__widget !== undefined")
            b64 = base64.b64encode(buffer).decode()
            return page.evaluate(HARNESS, {"state": state, "reply": reply, "b64": b64})
        finally:
            browser.close()


def tiled(reply: dict, buffer: bytes, heads: int) -> tuple[dict, bytes]:
    """The reply for ``heads`` × ``heads`` thumbnails, tiled from the measured ones and pooled
    to the size the kernel sends for that many (``thumbnail_size``)."""
    shape = reply["result"]["thumbnails"]["shape"]
    thumbs = np.frombuffer(buffer, np.uint8).reshape(shape)
    reps = (-(-heads // shape[0]), -(-heads // shape[1]), 1, 1)
    tiles = torch.from_numpy(np.tile(thumbs, reps)[:heads, :heads].astype(np.float32))
    size = thumbnail_size(TOKENS, heads * heads)
    big = quantise(F.adaptive_avg_pool2d(tiles, size)).numpy()
    out = json.loads(json.dumps(reply))
    out["result"]["thumbnails"]["shape"] = list(big.shape)
    return out, big.tobytes()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-bertviz", action="store_true")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; shared, loaded machine")
    lm = build_model()
    view = ew.ExBertView(lm, sentence=sentence_of_length(lm, TOKENS))
    n = len(view.tokens)
    reply, buffer = reply_of(view)
    ours = len(json.dumps(reply).encode()) + len(buffer)
    print(f"\n== payload at {lm.num_layers} layers × {lm.num_heads} heads, n = {n} ==")
    print(f"model view reply: {fmt_bytes(ours)} (thumbnails {reply['result']['thumbnails']})")
    if not args.skip_bertviz:
        theirs, seconds = bertviz_bytes(view)
        ratio = ours / theirs
        verdict = "ok" if ratio <= 1 / 500 else "MISSED"
        print(
            f"BertViz model_view HTML: {fmt_bytes(theirs)} (built in {seconds:.1f} s); "
            f"ours / theirs = 1/{theirs / ours:,.0f}  (aim <= 1/500: {verdict})"
        )
    times = interleaved(
        {
            "analyze": lambda: lm.analyze(view.sentence, top_k=5),
            "model view": lambda: view.thumbnails(),
        },
        repeat=3,
    )
    print(
        f"\n== kernel (s, median of 3, interleaved) ==\nlm.analyze {times['analyze']:.2f}  "
        f"model view {times['model view']:.2f}  "
        f"ratio {times['model view'] / times['analyze']:.1f} × analyze"
    )
    if args.no_browser:
        return
    print("\n== Chromium: reply -> grid painted (ms; work = in the view, painted = + next frame)")
    for heads in (12, 32):
        r, b = (reply, buffer) if heads == 12 else tiled(reply, buffer, heads)
        res = browser_draw(view, r, b, heads)
        verdict = "ok" if res["painted"] <= 300 else "MISSED"
        print(
            f"{heads:>2} × {heads:<2} heads: work {res['work']:.0f}  painted {res['painted']:.0f}  "
            f"(pixels {res['paint']:.0f}; {res['cells']} hit cells; aim <= 300: {verdict})"
        )


if __name__ == "__main__":
    del ROOT  # imported for its side effect: the repository on sys.path
    main()
