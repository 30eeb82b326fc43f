"""``view.save("x.html")``: one self-contained page that opens offline, from disk.

The page holds the view's own bundle and stylesheet (``exbert_widget/static/``) inlined, and the
kernel's state embedded as JSON (arrays base64). A small stand-in for the widget model feeds the
bundle that state, so the page draws exactly what the view draws: tokens as text, the heads
grids, the lines; hovering, head toggles, the threshold, hidden tokens and the selection work
(and the layer menu, when every layer's attention is embedded). What needs the kernel (a new
sentence, masking, search, the model view, the logit lens, export) is refused with a note. A
Content-Security-Policy forbids every request: the page never reaches the network.
"""

from __future__ import annotations

import json
import pathlib
import re
from typing import Any

from ..errors import ExbertError
from .snapshot import Snapshot
from .state import user_traits
from .svg_export import xml_text

# esbuild's ESM bundle ends by exporting the widget object; the page binds it to a name instead.
_EXPORT = re.compile(r"export\s*\{\s*([\w$]+)\s+as\s+default\s*\}\s*;?\s*$")
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:"
)
NOTE = (
    "Exported from exbert-widget: hover tokens and heads, toggle heads, move the threshold. A "
    "new sentence, masking, corpus search, the model view, the logit lens and export need the "
    "running kernel."
)
# Traits the page can change by itself (the view re-slices what is embedded).
OFFLINE_TRAITS = ["heads", "head_weights", "threshold", "hide_special", "selected", "layer"]

_OFFLINE_MODEL = r"""
const data = JSON.parse(document.getElementById("exbert-state").textContent);
const decode = (p) => {
  if (!p || typeof p !== "object" || p.b64 === undefined) return p;
  const bin = atob(p.b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return { view: new DataView(bytes.buffer), dtype: p.dtype, shape: p.shape };
};
const state = {};
for (const [k, v] of Object.entries(data.state)) state[k] = decode(v);
const layers = {};
for (const [k, v] of Object.entries(data.layers)) layers[k] = decode(v);
const local = new Set(data.offline);
// Long inputs: the kernel sent only the lines drawn; only the selection changes here.
const combined = state.attention_mode === "combined";
const listeners = new Map();
const emit = (ev, ...args) => { for (const cb of listeners.get(ev) ?? []) cb(...args); };
const change = (k) => emit(`change:${k}`);
const refuse = (k, old, why) => setTimeout(() => {
  state[k] = old;
  change(k);
  state.error = why;
  change("error");
}, 0);
const model = {
  get: (k) => state[k],
  set(k, v) {
    const old = state[k];
    state[k] = v;
    change(k);
    if (k === "layer" && layers[v] !== undefined) {
      state.attention = layers[v];
      change("attention");
    } else if (k === "layer" || !local.has(k) || (combined && k !== "selected")) {
      refuse(k, old, `This exported page has no kernel: "${k}" cannot change here.`);
    }
  },
  save_changes() {},
  on(ev, cb) { if (!listeners.has(ev)) listeners.set(ev, new Set()); listeners.get(ev).add(cb); },
  off(ev, cb) { if (ev && cb) listeners.get(ev)?.delete(cb); },
  send(msg) {
    if (!msg || msg.kind !== "exbert-command") return;
    setTimeout(() => emit("msg:custom", {
      kind: "exbert-reply", id: msg.id, ok: false,
      error: { type: "Offline", message: `${msg.name} needs the running kernel (exported page).` },
    }, []), 0);
  },
  widget_manager: { get_model: () => Promise.reject(new Error("no kernel")) },
};
__exbertWidget.render({ model, el: document.getElementById("exbert-view") });
document.documentElement.setAttribute("data-exbert-ready", "true");
"""


def _script_json(value: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>``, no ``<!--``)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _bundle(js: str) -> str:
    match = _EXPORT.search(js)
    if match is None:
        raise ExbertError(
            "The view bundle does not end with its default export; rebuild it (npm run build)."
        )
    return js[: match.start()] + f"const __exbertWidget = {match.group(1)};"


STATIC = pathlib.Path(__file__).resolve().parents[1] / "static"


def load_bundle() -> tuple[str, str]:
    """The view's built bundle and stylesheet.

    Raises:
        ExbertError: the bundle is not built (``npm run build`` in ``js/``).
    """
    try:
        return (STATIC / "widget.js").read_text("utf-8"), (STATIC / "widget.css").read_text("utf-8")
    except FileNotFoundError:
        raise ExbertError(
            "The view bundle is not built, so there is nothing to put in the page: run "
            "`npm ci && npm run build` in js/, or install the package from a wheel."
        ) from None


def render_html(shot: Snapshot, js: str, css: str) -> str:
    """The page for ``shot``, with the bundle ``js`` and stylesheet ``css`` inlined.

    Raises:
        ExbertError: the bundle is not the view's ESM bundle.
    """
    payload = {
        "state": shot.state,
        "layers": {str(k): v for k, v in shot.layers.items()},
        "offline": [t for t in OFFLINE_TRAITS if t in user_traits()],
    }
    script = (_bundle(js) + "\n" + _OFFLINE_MODEL).replace("</script", "<\\/script")
    style = css.replace("</style", "<\\/style")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
            f"<title>{xml_text('exBERT view: ' + shot.sentence)}</title>",
            f"<style>{style}\n"
            "body{margin:16px;font-family:system-ui,sans-serif}"
            ".exbert-export-note{font-size:12px;color:#6e7781;margin-bottom:8px}"
            # the kernel's panels: nothing to show without it (the note says so)
            ".exbert-root .exbert-export,.exbert-root .exbert-model-panel,"
            ".exbert-root .exbert-lens{display:none}</style>",
            "</head><body>",
            '<div class="exbert-export-note" data-testid="export-page-note">'
            f"{xml_text(NOTE)}</div>",
            '<div id="exbert-view"></div>',
            f'<script type="application/json" id="exbert-state">{_script_json(payload)}</script>',
            f'<script type="module">{script}</script>',
            "</body></html>",
        ]
    )
