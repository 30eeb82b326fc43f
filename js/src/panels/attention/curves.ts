// Attention lines on one <canvas>. The canvas is only as tall as the visible
// part of the scrolling columns (it is CSS-sticky), so its size stays bounded
// at n = 512; edges are drawn with the current scroll offset. Edges are batched
// into a few opacity buckets, one stroke per bucket, so a full 512x512 edge set
// is a handful of canvas calls rather than 250k.

import { type EdgeList, edgeSignature } from "./attention";
import { type Layout, rowCenter } from "./layout";

const BUCKETS = 16;
const CHUNK = 256;
const MARGIN = 40; // px beyond the viewport still counted as visible
const DENSE = 2000; // above this many drawn curves, thinner lines
export const MAX_DRAWN = 6000; // curves per frame, past which the faintest are left out

export interface DrawRequest {
  edges: EdgeList;
  ids: ArrayLike<number> | null; // subset of edges to draw (hover), null = all
  maxWeight: number;
  layout: Layout;
  toLayout?: Layout; // the right column's rows, where they differ (encoder–decoder parts)
  layer: number;
  scrollTop: number;
  viewportHeight: number;
  mode: string; // "all" | "token-left-3" | "head-2" ...: for tests and debugging
}

/** The curves one frame draws, by opacity bucket, and how many were left out. */
export interface CurvePick {
  buckets: number[][]; // edge ids per bucket, faintest bucket first
  drawn: number;
  inView: number; // curves with an end in (or near) the visible rows
}

/**
 * Which curves to draw for the rows between `top` and `bottom`. Only edges with
 * an end in (or near) the visible rows count: curves that merely pass through
 * the view from far above to far below are noise at n = 512 and would multiply
 * the raster work. Raster cost, not JS, dominates (about 50 us per long AA
 * curve in software canvas): past `cap` curves, the faintest buckets are
 * dropped (so "strongest" holds to a bucket's width, 1/16 of the top weight).
 */
export function pickCurves(
  edges: EdgeList,
  ids: ArrayLike<number> | null,
  maxWeight: number,
  layout: Layout,
  top: number,
  bottom: number,
  cap = MAX_DRAWN,
  toLayout: Layout = layout,
): CurvePick {
  const count = ids ? ids.length : edges.count;
  const maxW = maxWeight > 0 ? maxWeight : 1;
  const buckets: number[][] = Array.from({ length: BUCKETS }, () => []);
  // Rows in (or near) view, by row index: a row test is then two comparisons.
  const h = layout.rowHeight;
  const first = Math.ceil((top - MARGIN) / h - 0.5);
  const last = Math.floor((bottom + MARGIN) / h - 0.5);
  const rowOf = layout.rowOf;
  const toRowOf = toLayout.rowOf;
  const { from, to, w } = edges;
  let inView = 0;
  for (let k = 0; k < count; k++) {
    const id = ids ? ids[k] : k;
    const ra = rowOf[from[id]];
    const rb = toRowOf[to[id]];
    if (ra < 0 || rb < 0) continue;
    if ((ra < first || ra > last) && (rb < first || rb > last)) continue;
    buckets[Math.min(BUCKETS - 1, Math.floor((w[id] / maxW) * BUCKETS))].push(id);
    inView++;
  }
  let drawn = 0;
  for (let b = BUCKETS - 1; b >= 0; b--) {
    if (drawn >= cap) buckets[b] = [];
    else if (drawn + buckets[b].length > cap) buckets[b] = buckets[b].slice(0, cap - drawn);
    drawn += buckets[b].length;
  }
  return { buckets, drawn, inView };
}

export class LinesCanvas {
  readonly canvas: HTMLCanvasElement;
  private lastSignature = "";

  constructor() {
    this.canvas = document.createElement("canvas");
    this.canvas.className = "exbert-lines";
    this.canvas.setAttribute("data-testid", "attention-lines");
    this.canvas.setAttribute("data-edge-count", "0");
    this.canvas.setAttribute("data-signature", "");
  }

  /** Draw one frame; returns what was drawn so the view can say when curves were left out. */
  draw(req: DrawRequest): CurvePick {
    const t0 = typeof performance !== "undefined" ? performance.now() : 0;
    const pick = this.paint(req);
    // Drawing cost (ms, CPU side) for benchmarks and debugging.
    if (t0) this.canvas.setAttribute("data-draw-ms", (performance.now() - t0).toFixed(1));
    return pick;
  }

  private paint(req: DrawRequest): CurvePick {
    const { edges, ids, layout } = req;
    const toLayout = req.toLayout ?? layout;
    const fullHeight = Math.max(layout.height, toLayout.height);
    const count = ids ? ids.length : edges.count;
    const sig = edgeSignature(edges, ids, `L${req.layer}`);
    this.canvas.setAttribute("data-layer", String(req.layer));
    this.canvas.setAttribute("data-edge-count", String(count));
    this.canvas.setAttribute("data-signature", sig);
    this.canvas.setAttribute("data-mode", req.mode);
    this.lastSignature = sig;

    const cssWidth = this.canvas.clientWidth || parseFloat(getComputedStyle(this.canvas).width) || 200;
    const cssHeight = Math.max(0, Math.min(req.viewportHeight || fullHeight, fullHeight));
    this.canvas.style.height = `${cssHeight}px`;
    const top = req.scrollTop;
    // Picked before the context is known, so the count (and the view's note) does not
    // depend on canvas support.
    const pick = pickCurves(edges, ids, req.maxWeight, layout, top, top + cssHeight, MAX_DRAWN, toLayout);
    this.canvas.setAttribute("data-drawn-count", String(pick.drawn));

    const dpr = (typeof window !== "undefined" && window.devicePixelRatio) || 1;
    const pw = Math.max(1, Math.round(cssWidth * dpr));
    const ph = Math.max(1, Math.round(cssHeight * dpr));
    if (this.canvas.width !== pw) this.canvas.width = pw;
    if (this.canvas.height !== ph) this.canvas.height = ph;

    let ctx: CanvasRenderingContext2D | null = null;
    try {
      ctx = this.canvas.getContext("2d");
    } catch {
      ctx = null; // e.g. jsdom without canvas support
    }
    if (!ctx) return pick;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssWidth, cssHeight);
    if (pick.drawn === 0) return pick;

    const color = getComputedStyle(this.canvas).getPropertyValue("--exbert-line-color").trim() || "#2f6fbf";
    const x0 = 1;
    const x1 = cssWidth - 1;
    const xm = (x0 + x1) / 2;
    const dense = pick.drawn > DENSE;
    ctx.strokeStyle = color;
    ctx.lineCap = "round";
    for (let b = 0; b < BUCKETS; b++) {
      const list = pick.buckets[b];
      if (list.length === 0) continue;
      const level = (b + 1) / BUCKETS; // opacity and width linear in weight
      ctx.globalAlpha = Math.max(0.06, level);
      ctx.lineWidth = dense ? 0.5 + level : 0.75 + 2.25 * level;
      // Stroke in chunks: one huge self-overlapping path makes Skia's stroker
      // superlinear (seconds at 100k curves); chunks keep it linear.
      for (let start = 0; start < list.length; start += CHUNK) {
        ctx.beginPath();
        const end = Math.min(list.length, start + CHUNK);
        for (let k = start; k < end; k++) {
          const id = list[k];
          const ya = rowCenter(layout, edges.from[id]) - top;
          const yb = rowCenter(toLayout, edges.to[id]) - top;
          ctx.moveTo(x0, ya);
          ctx.bezierCurveTo(xm, ya, xm, yb, x1, yb);
        }
        ctx.stroke();
      }
    }
    ctx.globalAlpha = 1;
    return pick;
  }

  get signature(): string {
    return this.lastSignature;
  }
}
