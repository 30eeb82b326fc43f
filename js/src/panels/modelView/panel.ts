// The model view: every layer x head at a glance, one thumbnail each, on one
// canvas. Shown on demand (the "Model view" toggle): only then does the kernel
// compute every layer's thumbnails (a `model_view` command), so the head view
// never pays for it. Clicking a thumbnail shows that layer and head in the head
// view; hovering one names it. Hit regions are transparent overlay cells (one
// per head, not per pixel) so tests and assistive tools can address them.

import { type CommandChannel, CommandError, Superseded } from "../../core/commands";
import { frameScheduler, h, onThemeChange, show } from "../../core/dom";
import type { Slice, ViewModel } from "../../core/model";
import type { Panel } from "../../core/panel";
import type { ModelViewResult } from "../../generated/contract";
import { cellAt, cellOrigin, type GridGeometry, gridGeometry, paintAtlas, parseRgb } from "./grid";

const KEYS = [
  "sentence",
  "masked",
  "hide_special",
  "tokens",
  "part",
  "layer",
  "heads",
  "head_weights",
  "num_layers",
  "num_heads",
] as const;
type K = (typeof KEYS)[number];

const DEFAULT_RGB: [number, number, number] = [47, 111, 191];
const WHITE: [number, number, number] = [255, 255, 255];

export class ModelViewPanel implements Panel<K> {
  readonly keys = KEYS;
  readonly el: HTMLElement;
  private toggle: HTMLButtonElement;
  private note: HTMLDivElement;
  private body: HTMLDivElement;
  private canvas: HTMLCanvasElement;
  private overlay: HTMLDivElement;
  private hoverLabel: HTMLDivElement;
  private open = false;
  private state: Slice<K> | null = null;
  private requested = ""; // what the last request was for
  private result: ModelViewResult | null = null;
  private geometry: GridGeometry | null = null;
  private base: HTMLCanvasElement | null = null; // the grid without marks, drawn once per reply
  private repaintOnTheme: () => void;

  constructor(
    private model: ViewModel,
    private commands: CommandChannel,
  ) {
    this.toggle = h("button", {
      cls: "exbert-btn",
      testid: "model-view-toggle",
      text: "Model view",
      attrs: { type: "button", "aria-pressed": "false" },
    });
    this.toggle.addEventListener("click", () => this.setOpen(!this.open));
    this.note = h("div", { cls: "exbert-model-note", testid: "model-view-note" });
    this.hoverLabel = h("div", { cls: "exbert-model-hover", testid: "model-view-hover" });
    this.canvas = h("canvas", { cls: "exbert-model-canvas", testid: "model-view-canvas" });
    this.overlay = h("div", { cls: "exbert-model-overlay" });
    this.overlay.addEventListener("mouseleave", () => this.setHover(null));
    const stage = h("div", { cls: "exbert-model-stage" }, [this.canvas, this.overlay]);
    this.body = h("div", { cls: "exbert-model-view", testid: "model-view" }, [this.hoverLabel, stage]);
    show(this.body, false);
    show(this.note, false);
    this.el = h("div", { cls: "exbert-model-panel" }, [this.toggle, this.note, this.body]);
    // The canvas holds the theme's colours: a new theme repaints it (next frame, once the
    // theme's style applies).
    const repaint = frameScheduler(() => this.repaint());
    this.repaintOnTheme = onThemeChange(repaint);
  }

  dispose(): void {
    this.repaintOnTheme();
  }

  private repaint(): void {
    if (!this.result || !this.geometry) return;
    this.paint(this.geometry, this.result.thumbnails.data);
    this.drawMarks();
  }

  update(state: Slice<K>): void {
    this.state = state;
    if (!this.open) return;
    if (this.key(state) !== this.requested) this.request();
    else this.drawMarks();
  }

  private key(s: Slice<K>): string {
    return JSON.stringify([s.sentence, s.masked, s.hide_special, s.tokens, s.part]);
  }

  private setOpen(open: boolean): void {
    this.open = open;
    this.toggle.setAttribute("aria-pressed", String(open));
    this.toggle.classList.toggle("on", open);
    show(this.body, open && this.result !== null);
    show(this.note, open);
    if (open && this.state) this.update(this.state);
  }

  private request(): void {
    const s = this.state;
    if (!s) return;
    this.requested = this.key(s);
    this.note.classList.remove("exbert-error");
    this.note.textContent = `Computing ${s.num_layers} layers × ${s.num_heads} heads…`;
    this.note.setAttribute("data-busy", "true");
    this.commands.invoke("model_view", {}).then(
      (result) => this.receive(result),
      (e: unknown) => {
        if (e instanceof Superseded) return;
        this.note.removeAttribute("data-busy");
        this.note.classList.add("exbert-error");
        this.note.textContent = e instanceof CommandError ? e.message : String(e);
        this.requested = ""; // try again on the next change
      },
    );
  }

  private receive(result: ModelViewResult): void {
    const s = this.state;
    // A reply for a sentence, mask or hidden-token setting no longer shown: a newer request follows.
    if (
      !s ||
      JSON.stringify([result.sentence, result.masked, result.hide_special]) !==
        JSON.stringify([s.sentence, s.masked, s.hide_special])
    )
      return;
    this.note.removeAttribute("data-busy");
    const [layers, heads, size] = result.thumbnails.shape;
    this.result = result;
    this.note.textContent =
      `${layers} layers × ${heads} heads, each head's attention averaged to ${size} × ${size} ` +
      "cells (darker: more attention, each thumbnail to its own strongest cell); click one to show it.";
    this.geometry = gridGeometry(layers, heads, size);
    this.buildOverlay(this.geometry);
    this.paint(this.geometry, result.thumbnails.data);
    show(this.body, this.open);
    this.drawMarks();
  }

  private paint(g: GridGeometry, levels: Float32Array): void {
    const t0 = typeof performance !== "undefined" ? performance.now() : 0;
    this.canvas.width = g.width;
    this.canvas.height = g.height;
    this.canvas.style.width = `${g.width}px`;
    this.canvas.style.height = `${g.height}px`;
    this.base = null;
    const style = getComputedStyle(this.el);
    const rgb = parseRgb(style.getPropertyValue("--exbert-head-rgb"), DEFAULT_RGB);
    const root = this.el.closest(".exbert-root") ?? this.el;
    const background = opaqueRgb(getComputedStyle(root).backgroundColor) ?? WHITE;
    const atlas = document.createElement("canvas");
    atlas.width = g.heads * g.size;
    atlas.height = g.layers * g.size;
    const base = document.createElement("canvas");
    base.width = g.width;
    base.height = g.height;
    const actx = context(atlas);
    const bctx = context(base);
    if (!actx || !bctx || typeof ImageData !== "function") return; // jsdom: no canvas
    actx.putImageData(new ImageData(paintAtlas(g, levels, rgb, background), atlas.width, atlas.height), 0, 0);
    bctx.imageSmoothingEnabled = false;
    for (let layer = 0; layer < g.layers; layer++) {
      for (let head = 0; head < g.heads; head++) {
        const { x, y } = cellOrigin(g, layer, head);
        bctx.drawImage(atlas, head * g.size, layer * g.size, g.size, g.size, x, y, g.cell, g.cell);
      }
    }
    this.base = base;
    if (t0) this.canvas.setAttribute("data-draw-ms", (performance.now() - t0).toFixed(1));
  }

  private buildOverlay(g: GridGeometry): void {
    const cells: HTMLElement[] = [];
    for (let layer = 0; layer < g.layers; layer++) {
      for (let head = 0; head < g.heads; head++) {
        const { x, y } = cellOrigin(g, layer, head);
        const cell = h("div", {
          cls: "exbert-model-cell",
          testid: `model-cell-${layer}-${head}`,
          attrs: { title: `layer ${layer}, head ${head}`, "aria-label": `layer ${layer}, head ${head}` },
        });
        cell.style.cssText = `left:${x}px;top:${y}px;width:${g.cell}px;height:${g.cell}px`;
        cells.push(cell);
      }
    }
    const step = g.heads > 16 ? 4 : 1; // a number on every head, or every 4th of many
    const labels: HTMLElement[] = [];
    for (let head = 0; head < g.heads; head += step) {
      const label = h("div", { cls: "exbert-model-label exbert-model-head-label", text: String(head) });
      label.style.cssText = `left:${cellOrigin(g, 0, head).x}px;width:${g.cell}px`;
      labels.push(label);
    }
    for (let layer = 0; layer < g.layers; layer += g.layers > 16 ? 4 : 1) {
      const label = h("div", { cls: "exbert-model-label exbert-model-layer-label", text: String(layer) });
      label.style.cssText = `top:${cellOrigin(g, layer, 0).y}px;height:${g.cell}px;line-height:${g.cell}px`;
      labels.push(label);
    }
    this.overlay.replaceChildren(...labels, ...cells);
    this.overlay.style.width = `${g.width}px`;
    this.overlay.style.height = `${g.height}px`;
    this.overlay.onmousemove = (ev) => this.setHover(this.pointCell(ev));
    this.overlay.onclick = (ev) => {
      const at = this.pointCell(ev);
      if (at) this.select(at.layer, at.head);
    };
  }

  private pointCell(ev: MouseEvent): { layer: number; head: number } | null {
    if (!this.geometry) return null;
    const box = this.overlay.getBoundingClientRect();
    return cellAt(this.geometry, ev.clientX - box.left, ev.clientY - box.top);
  }

  private setHover(at: { layer: number; head: number } | null): void {
    this.hoverLabel.textContent = at ? `layer ${at.layer}, head ${at.head}` : "";
    this.hoverLabel.setAttribute("data-layer", at ? String(at.layer) : "");
    this.hoverLabel.setAttribute("data-head", at ? String(at.head) : "");
    this.drawMarks(at);
  }

  private select(layer: number, head: number): void {
    this.model.commit({ layer, heads: [head], head_weights: null });
    this.drawMarks();
  }

  /** The thumbnails, the shown layer and heads outlined, and the hovered one. */
  private drawMarks(hover: { layer: number; head: number } | null = null): void {
    const g = this.geometry;
    const s = this.state;
    if (!g || !s || !this.base) return;
    const ctx = context(this.canvas);
    if (!ctx) return;
    ctx.clearRect(0, 0, g.width, g.height);
    ctx.drawImage(this.base, 0, 0);
    const accent = getComputedStyle(this.el).getPropertyValue("--exbert-accent").trim() || "#2f6fbf";
    const shown = s.head_weights ? [] : s.heads;
    ctx.lineWidth = 2;
    ctx.strokeStyle = accent;
    for (const head of shown) {
      const { x, y } = cellOrigin(g, s.layer, head);
      ctx.strokeRect(x + 1, y + 1, g.cell - 2, g.cell - 2);
    }
    if (hover) {
      const { x, y } = cellOrigin(g, hover.layer, hover.head);
      ctx.setLineDash([3, 2]);
      ctx.strokeStyle = "#000";
      ctx.strokeRect(x + 1, y + 1, g.cell - 2, g.cell - 2);
      ctx.setLineDash([]);
    }
    this.canvas.setAttribute("data-layer", String(s.layer));
    this.canvas.setAttribute("data-heads", shown.join(","));
  }
}

/** An opaque CSS colour as rgb numbers, or null (transparent, unreadable). */
function opaqueRgb(css: string | undefined): [number, number, number] | null {
  if (!css || css === "transparent" || /rgba\([^)]*,\s*0\)$/.test(css)) return null;
  const rgb = parseRgb(css, [-1, -1, -1]);
  return rgb[0] < 0 ? null : rgb;
}

function context(canvas: HTMLCanvasElement): CanvasRenderingContext2D | null {
  try {
    return canvas.getContext("2d");
  } catch {
    return null; // jsdom without canvas support
  }
}
