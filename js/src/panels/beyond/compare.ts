// The second panel: how attention changed when tokens were masked (Δ), how
// it differs in the compare model (Δ), or the compare model's own lines
// beside the first panel. The kernel computes and cuts the lines; this panel
// only draws them (an SVG: at most a few thousand lines) with a legend, and
// shows the probabilities of both sides in a tooltip.

import { h, percent, show } from "../../core/dom";
import type { Slice, ViewModel } from "../../core/model";
import type { Panel } from "../../core/panel";
import { Tooltip } from "../../core/tooltip";
import { visibleMask } from "../attention/attention";
import { countSigns, lineSignature, points, readLines, rowsOf, type SignedLine } from "./lines";

const KEYS = [
  "tokens",
  "special",
  "hide_special",
  "compare",
  "compare_lines",
  "compare_note",
  "compare_top_k",
  "compare_model_name",
  "model_name",
  "layer",
  "selected",
] as const;
type K = (typeof KEYS)[number];

const SVG = "http://www.w3.org/2000/svg";
const ROW = 18;
const TOKEN_W = 110;
const GAP = 150;
const WIDTH = 2 * TOKEN_W + GAP;

function titleOf(s: Slice<K>): string {
  const other = s.compare_model_name || "the compare model";
  if (s.compare === "unmasked") return `Δ attention, layer ${s.layer}: masked − unmasked`;
  if (s.compare === "model") return `Δ attention, layer ${s.layer}: ${s.model_name} − ${other}`;
  return `${other}, layer ${s.layer} (same heads)`;
}

function svg<K2 extends keyof SVGElementTagNameMap>(tag: K2, attrs: Record<string, string>): SVGElementTagNameMap[K2] {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  return el;
}

export class ComparePanel implements Panel<K> {
  readonly keys = KEYS;
  readonly el: HTMLDivElement;
  private title: HTMLDivElement;
  private note: HTMLDivElement;
  private legend: HTMLDivElement;
  private drawing: SVGSVGElement;
  private tooltip: Tooltip;
  private state: Slice<K> | null = null;

  constructor(_model: ViewModel, root: HTMLElement) {
    this.tooltip = new Tooltip(root, "compare-tooltip");
    this.title = h("div", { cls: "exbert-compare-title", testid: "compare-title" });
    this.note = h("div", { cls: "exbert-note", testid: "compare-note" });
    this.legend = h("div", { cls: "exbert-compare-legend", testid: "compare-legend" }, [
      h("span", { cls: "exbert-swatch exbert-more" }),
      h("span", { text: "more attention" }),
      h("span", { cls: "exbert-swatch exbert-less" }),
      h("span", { text: "less attention" }),
    ]);
    this.drawing = svg("svg", { class: "exbert-compare-svg", "data-testid": "compare-lines" });
    this.el = h("div", { cls: "exbert-compare", testid: "compare-panel" }, [this.title, this.legend, this.note]);
    this.el.appendChild(this.drawing);
    show(this.el, false);
  }

  update(s: Slice<K>): void {
    this.state = s;
    const on = s.compare !== "";
    show(this.el, on);
    if (!on) {
      this.tooltip.hide();
      return;
    }
    const delta = s.compare !== "side";
    this.title.textContent = titleOf(s);
    this.note.textContent = s.compare_note;
    show(this.note, s.compare_note !== "");
    show(this.legend, delta);
    const lines = readLines(s.compare_lines?.data ?? null, s.compare_lines?.shape ?? null);
    this.draw(s, lines, delta);
  }

  private draw(s: Slice<K>, lines: SignedLine[], delta: boolean): void {
    const n = s.tokens.length;
    const visible = visibleMask(n, s.special, s.hide_special);
    const rows = rowsOf(n, visible);
    const count = rows.reduce((m, r) => Math.max(m, r + 1), 0);
    const d = this.drawing;
    d.replaceChildren();
    d.setAttribute("width", String(WIDTH));
    d.setAttribute("height", String(Math.max(1, count) * ROW));
    d.setAttribute("viewBox", `0 0 ${WIDTH} ${Math.max(1, count) * ROW}`);
    let peak = 0;
    for (const l of lines) peak = Math.max(peak, Math.abs(l.value));
    const group = svg("g", { class: "exbert-compare-edges" });
    for (const l of lines) {
      const a = rows[l.from];
      const b = rows[l.to];
      if (a === undefined || b === undefined || a < 0 || b < 0) continue;
      const y1 = a * ROW + ROW / 2;
      const y2 = b * ROW + ROW / 2;
      const x1 = TOKEN_W + 4;
      const x2 = TOKEN_W + GAP - 4;
      const cls = !delta ? "exbert-same" : l.value > 0 ? "exbert-more" : "exbert-less";
      const path = svg("path", {
        d: `M${x1},${y1} C${x1 + GAP / 2},${y1} ${x2 - GAP / 2},${y2} ${x2},${y2}`,
        class: `exbert-compare-line ${cls}`,
        "data-from": String(l.from),
        "data-to": String(l.to),
        "stroke-opacity": (peak > 0 ? Math.max(0.08, Math.abs(l.value) / peak) : 0).toFixed(3),
      });
      group.appendChild(path);
    }
    d.appendChild(group);
    for (let i = 0; i < n; i++) {
      if (rows[i] < 0) continue;
      d.appendChild(this.token(s, i, rows[i], "left"));
      d.appendChild(this.token(s, i, rows[i], "right"));
    }
    const signs = countSigns(lines);
    d.setAttribute("data-count", String(lines.length));
    d.setAttribute("data-more-count", String(delta ? signs.more : 0));
    d.setAttribute("data-less-count", String(delta ? signs.less : 0));
    d.setAttribute("data-mode", s.compare);
    d.setAttribute("data-signature", lineSignature(lines));
  }

  private token(s: Slice<K>, i: number, row: number, side: "left" | "right"): SVGTextElement {
    const left = side === "left";
    const text = svg("text", {
      x: String(left ? TOKEN_W : TOKEN_W + GAP),
      y: String(row * ROW + ROW / 2),
      "text-anchor": left ? "end" : "start",
      "dominant-baseline": "middle",
      class: `exbert-compare-token${s.selected === i ? " selected" : ""}`,
      "data-testid": `compare-token-${side}-${i}`,
    });
    text.textContent = s.tokens[i];
    text.addEventListener("mouseenter", () => {
      this.focus(side, i);
      this.showProbabilities(i, text);
    });
    text.addEventListener("mouseleave", () => {
      this.focus(side, null);
      this.tooltip.hide();
    });
    return text;
  }

  /** While a token is hovered, only its lines (from it on the left, to it on the right) show. */
  private focus(side: "left" | "right", token: number | null): void {
    const attr = side === "left" ? "data-from" : "data-to";
    for (const path of Array.from(this.drawing.querySelectorAll("path"))) {
      path.classList.toggle("exbert-dim", token !== null && path.getAttribute(attr) !== String(token));
    }
    this.drawing.setAttribute("data-focus", token === null ? "" : `${side}-${token}`);
  }

  private showProbabilities(i: number, anchor: Element): void {
    const s = this.state;
    if (!s) return;
    const row = s.compare_top_k[i] ?? [];
    if (row.length === 0) {
      this.tooltip.show(anchor as HTMLElement, "no predictions to compare", []);
      return;
    }
    const shown = s.compare === "side" ? s.compare_model_name : s.compare === "unmasked" ? "masked" : s.model_name;
    const ref = s.compare === "side" ? s.model_name : s.compare === "unmasked" ? "unmasked" : s.compare_model_name;
    this.tooltip.show(
      anchor as HTMLElement,
      `${shown} (${ref}, Δ)`,
      row.map(([t, p, q]) => ({ label: t, value: `${percent(p)} (${percent(q)}, ${points(p - q)})` })),
    );
  }
}
