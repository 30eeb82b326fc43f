// Heads grid beside a token column: one row per visible token, one cell per
// head, shaded by that head's attention from (left) or to (right) the token.
// Clicking a cell or a header toggles the head; hovering a cell shows that
// head's lines alone. Events are delegated (n * H cells, few listeners).
//
// Two ways to draw the cells: DOM cells (short inputs: each cell has its test
// id, class and data-value), or one canvas as tall as the rows in view, redrawn
// on scroll (long inputs: 2,048 tokens x 32 heads would be 131,072 DOM cells a
// side). The header's head numbers are buttons either way.

import type { Layout } from "./layout";
import type { Side } from "./tokens";

export interface HeadHandlers {
  hoverHead(h: number | null): void;
  toggleHead(h: number): void;
}

/** Cells are wider while the numbers fit on one line; past this many heads they alternate rows. */
export const WIDE_CELLS_MAX_HEADS = 16;
const WIDE = 16;
const NARROW = 12;

export function cellWidth(numHeads: number): number {
  return numHeads > WIDE_CELLS_MAX_HEADS ? NARROW : WIDE;
}

export class HeadsGrid {
  readonly el: HTMLDivElement; // body, inside the scrolling area
  readonly header: HTMLDivElement; // head toggles, above the scrolling area
  private cells: HTMLDivElement[] = [];
  private toggles: HTMLButtonElement[] = [];
  private numHeads = 0;
  private n = 0;
  private canvas: HTMLCanvasElement | null = null;
  private layout: Layout | null = null;
  private values: Float32Array | null = null;
  private max = 0;
  private active: readonly boolean[] = [];
  private hovered: number | null = null;
  private view = { top: 0, height: 0 };

  constructor(
    readonly side: Side,
    handlers: HeadHandlers,
    private withTestIds: boolean,
  ) {
    this.el = document.createElement("div");
    this.el.className = `exbert-heads exbert-heads-${side}`;
    this.header = document.createElement("div");
    this.header.className = `exbert-heads-header exbert-heads-header-${side}`;

    const headOf = (ev: Event): number | null => {
      const t = (ev.target as HTMLElement | null)?.closest?.("[data-head]") as HTMLElement | null;
      if (t) return Number(t.getAttribute("data-head"));
      return ev.target === this.canvas ? this.headAt(ev as MouseEvent) : null;
    };
    this.el.addEventListener("mouseover", (ev) => {
      const h = headOf(ev);
      if (h !== null) handlers.hoverHead(h);
    });
    this.el.addEventListener("mousemove", (ev) => {
      if (ev.target !== this.canvas) return;
      const h = headOf(ev);
      if (h !== null) handlers.hoverHead(h);
    });
    this.el.addEventListener("mouseleave", () => handlers.hoverHead(null));
    this.el.addEventListener("click", (ev) => {
      const h = headOf(ev);
      if (h !== null) handlers.toggleHead(h);
    });
    this.header.addEventListener("click", (ev) => {
      const h = headOf(ev);
      if (h !== null) handlers.toggleHead(h);
    });
    this.header.addEventListener("mouseover", (ev) => {
      const h = headOf(ev);
      if (h !== null) handlers.hoverHead(h);
    });
    this.header.addEventListener("mouseleave", () => handlers.hoverHead(null));
  }

  /** Build the header and the body; `onCanvas` draws the cells on a canvas instead of DOM. */
  render(numHeads: number, layout: Layout, onCanvas = false): void {
    this.numHeads = numHeads;
    this.n = layout.n;
    this.layout = layout;
    const width = `${cellWidth(numHeads)}px`;
    for (const part of [this.el, this.header]) {
      part.style.setProperty("--exbert-heads", String(numHeads));
      part.style.setProperty("--exbert-cell-w", width);
    }
    this.header.classList.toggle("exbert-heads-many", numHeads > WIDE_CELLS_MAX_HEADS);
    this.renderHeader(numHeads);

    this.el.replaceChildren();
    this.el.style.height = `${layout.height}px`;
    this.cells = [];
    this.canvas = null;
    if (onCanvas) {
      const c = document.createElement("canvas");
      c.className = "exbert-heads-canvas";
      c.setAttribute("data-testid", `heads-canvas-${this.side}`);
      this.canvas = c;
      this.el.appendChild(c);
      return;
    }
    this.cells = new Array(layout.n * numHeads);
    const frag = document.createDocumentFragment();
    for (const i of layout.order) {
      const row = document.createElement("div");
      row.className = "exbert-heads-row";
      for (let h = 0; h < numHeads; h++) {
        const c = document.createElement("div");
        c.className = "exbert-head-cell";
        c.setAttribute("data-head", String(h));
        c.setAttribute("data-testid", `head-cell-${this.side}-${i}-${h}`);
        this.cells[i * numHeads + h] = c;
        row.appendChild(c);
      }
      frag.appendChild(row);
    }
    this.el.appendChild(frag);
  }

  private renderHeader(numHeads: number): void {
    this.header.replaceChildren();
    this.toggles = [];
    for (let h = 0; h < numHeads; h++) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = `exbert-head-toggle ${h % 2 ? "odd" : "even"}`;
      b.setAttribute("data-head", String(h));
      if (this.withTestIds) b.setAttribute("data-testid", `head-toggle-${h}`);
      b.title = `head ${h}: click to toggle`;
      const label = document.createElement("span");
      label.className = "exbert-head-number";
      label.textContent = String(h); // 0-based, as in the `heads` trait
      const fill = document.createElement("span");
      fill.className = "exbert-head-weight";
      b.append(fill, label);
      this.toggles.push(b);
      this.header.appendChild(b);
    }
  }

  /** values[i*H + h]; shading is relative to the grid's maximum so small means still show. */
  setValues(values: Float32Array | null): void {
    const H = this.numHeads;
    let max = 0;
    if (values) for (let k = 0; k < values.length; k++) if (values[k] > max) max = values[k];
    this.values = values;
    this.max = max;
    if (this.canvas) {
      this.paint();
      return;
    }
    const inv = max > 0 ? 1 / max : 0;
    for (let k = 0; k < this.n * H; k++) {
      const c = this.cells[k];
      if (!c) continue;
      const v = values && k < values.length ? values[k] : 0;
      c.style.setProperty("--a", (v * inv).toFixed(3));
      c.setAttribute("data-value", v.toFixed(4));
    }
  }

  /** weight[h] > 0 means the head contributes to the drawn lines. */
  setActive(active: readonly boolean[], hoveredHead: number | null): void {
    const H = this.numHeads;
    this.active = active;
    this.hovered = hoveredHead;
    this.toggles.forEach((b, h) => {
      b.classList.toggle("on", !!active[h]);
      b.classList.toggle("hovered", hoveredHead === h);
      b.setAttribute("aria-pressed", active[h] ? "true" : "false");
    });
    if (this.canvas) {
      this.paint();
      return;
    }
    for (let k = 0; k < this.cells.length; k++) {
      const c = this.cells[k];
      if (!c) continue;
      const h = k % H;
      c.classList.toggle("off", !active[h]);
      c.classList.toggle("hovered", hoveredHead === h);
    }
  }

  /**
   * Head weights set from Python (`head_weights`, any linear combination): each
   * toggle is filled from the bottom by |weight| / the largest |weight|, in the
   * head colour (negative weights in vermilion, striped so not by colour alone),
   * and says its weight in its tooltip and `data-weight`. null: the plain mean.
   */
  setWeights(weights: readonly number[] | null): void {
    let max = 0;
    for (const w of weights ?? []) if (Math.abs(w) > max) max = Math.abs(w);
    this.toggles.forEach((b, h) => {
      const w = weights ? (weights[h] ?? 0) : null;
      b.classList.toggle("weighted", w !== null && w !== 0);
      b.classList.toggle("negative", w !== null && w < 0);
      if (w === null) {
        b.removeAttribute("data-weight");
        b.style.removeProperty("--w");
        b.title = `head ${h}: click to toggle`;
        return;
      }
      b.setAttribute("data-weight", String(w));
      b.style.setProperty("--w", (max > 0 ? Math.abs(w) / max : 0).toFixed(3));
      b.title = `head ${h}: weight ${formatWeight(w)} (head_weights); click to toggle (back to the mean of heads)`;
    });
  }

  /** The canvas follows the scroll: it draws the rows between `top` and `top + height`. */
  scrolled(top: number, height: number): void {
    this.view = { top, height };
    if (this.canvas) this.paint();
  }

  private headAt(ev: MouseEvent): number | null {
    const box = this.el.getBoundingClientRect();
    const h = Math.floor((ev.clientX - box.left) / cellWidth(this.numHeads));
    return h >= 0 && h < this.numHeads ? h : null;
  }

  private paint(): void {
    const c = this.canvas;
    const layout = this.layout;
    if (!c || !layout) return;
    const H = this.numHeads;
    const cw = cellWidth(H);
    const rh = layout.rowHeight;
    const cssW = H * cw;
    const cssH = Math.max(0, Math.min(this.view.height || layout.height, layout.height));
    const dpr = (typeof window !== "undefined" && window.devicePixelRatio) || 1;
    c.style.width = `${cssW}px`;
    c.style.height = `${cssH}px`;
    const pw = Math.max(1, Math.round(cssW * dpr));
    const ph = Math.max(1, Math.round(cssH * dpr));
    if (c.width !== pw) c.width = pw;
    if (c.height !== ph) c.height = ph;
    const first = Math.max(0, Math.floor(this.view.top / rh));
    const last = Math.min(layout.order.length, Math.ceil((this.view.top + cssH) / rh));
    c.setAttribute("data-rows", `${first}-${last}`);
    let ctx: CanvasRenderingContext2D | null = null;
    try {
      ctx = c.getContext("2d");
    } catch {
      ctx = null; // jsdom
    }
    if (!ctx) return;
    const style = getComputedStyle(this.el);
    const rgb = style.getPropertyValue("--exbert-head-rgb").trim() || "47, 111, 191";
    const accent = style.getPropertyValue("--exbert-accent").trim() || "#2f6fbf";
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const values = this.values;
    const inv = this.max > 0 ? 1 / this.max : 0;
    for (let r = first; r < last; r++) {
      const i = layout.order[r];
      const y = r * rh - this.view.top;
      for (let h = 0; h < H; h++) {
        const a = values ? values[i * H + h] * inv : 0;
        if (!(a > 0)) continue;
        // The DOM cells' look: the head colour when on, faint grey when off; 1 px gaps.
        ctx.fillStyle = this.active[h]
          ? `rgba(${rgb}, ${a.toFixed(3)})`
          : `rgba(128, 128, 128, ${(a * 0.35).toFixed(3)})`;
        ctx.fillRect(h * cw, y, cw - 1, rh - 1);
      }
    }
    if (this.hovered !== null && this.hovered < H) {
      ctx.strokeStyle = accent;
      ctx.lineWidth = 1;
      ctx.strokeRect(this.hovered * cw + 0.5, 0.5, cw - 1, cssH - 1);
    }
  }
}

/** A weight as the tooltip says it: up to 4 significant digits, no float noise. */
export function formatWeight(w: number): string {
  return String(Number(w.toPrecision(4)));
}
