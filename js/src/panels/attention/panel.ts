// The attention panel: token columns, heads grids and the lines canvas. Work
// is staged and memoised so each kind of change recomputes only what depends
// on it:
//   tokens/special/hide_special/num_heads -> DOM rows
//   attention (decoded at the boundary)   -> heads-grid values (per head)
//   + heads/head_weights                  -> displayed matrix
//   + threshold                           -> kept edges + per-token edge lists
// Hover only picks a precomputed edge subset and redraws (one rAF per frame).

import { frameScheduler, h, percent } from "../../core/dom";
import type { Slice, ViewModel } from "../../core/model";
import { type Panel, range } from "../../core/panel";
import { Tooltip } from "../../core/tooltip";
import {
  combineHeads,
  type Edge,
  type EdgeIndex,
  headGridValues,
  indexEdges,
  removeHidden,
  thresholdEdges,
  visibleMask,
} from "./attention";
import { ClickSelection } from "./clicks";
import { type CurvePick, LinesCanvas } from "./curves";
import { HeadsGrid } from "./headsGrid";
import { type Layout, makeLayout } from "./layout";
import { type Side, TokenColumn } from "./tokens";

const KEYS = [
  "tokens",
  "special",
  "hide_special",
  "attention",
  "layer",
  "heads",
  "head_weights",
  "threshold",
  "masked",
  "selected",
  "kind",
  "top_k",
  "has_lm_head",
  "num_heads",
] as const;
type K = (typeof KEYS)[number];

type Hover = { kind: "token"; side: Side; token: number } | { kind: "head"; head: number } | null;

interface EdgeSet {
  edges: Edge[];
  index: EdgeIndex;
}

function sameJSON(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export class AttentionPanel implements Panel<K> {
  readonly keys = KEYS;
  readonly el: HTMLDivElement;
  private tooltip: Tooltip;
  private left: TokenColumn;
  private right: TokenColumn;
  private leftGrid: HeadsGrid;
  private rightGrid: HeadsGrid;
  private lines: LinesCanvas;
  private cappedNote: HTMLDivElement;
  private selection: ClickSelection;
  private scroll: HTMLDivElement;
  private linesCol: HTMLDivElement;
  private resize: ResizeObserver | null = null;
  private scheduleDraw: () => void;

  // Inputs as last seen (for memoisation).
  private state: Slice<K> | null = null;
  private tokens: string[] = [];
  private special: boolean[] = [];
  private hideSpecial = true;
  private numHeads = 0;
  private attPayload: unknown = undefined;
  private headsKey = "";
  private threshold = Number.NaN;

  // Derived state.
  private n = 0;
  private att: Float32Array | null = null; // [H, n, n]
  private attHeads = 0;
  private visible: boolean[] = [];
  private layout: Layout = makeLayout([]);
  private displayed: Float32Array | null = null;
  private full: EdgeSet = { edges: [], index: indexEdges([], 0) };
  private perHead = new Map<number, EdgeSet>();
  private active: boolean[] = [];
  private hover: Hover = null;
  private layer = 0;

  constructor(
    private model: ViewModel,
    root: HTMLElement,
  ) {
    this.tooltip = new Tooltip(root, "tooltip");
    this.selection = new ClickSelection({
      read: () => model.get("selected"),
      write: (selected) => model.commit({ selected }),
      changed: () => this.markTokens(),
    });
    const tokenHandlers = {
      hover: (side: Side, token: number | null, el: HTMLElement | null) => this.onTokenHover(side, token, el),
      click: (_side: Side, token: number, detail: number) => this.selection.click(token, detail),
      dblclick: (_side: Side, token: number) => this.toggleMask(token),
    };
    const headHandlers = {
      hoverHead: (head: number | null) => this.setHover(head === null ? null : { kind: "head", head }),
      toggleHead: (head: number) => this.toggleHead(head),
    };
    this.left = new TokenColumn("left", tokenHandlers);
    this.right = new TokenColumn("right", tokenHandlers);
    this.leftGrid = new HeadsGrid("left", headHandlers, true);
    this.rightGrid = new HeadsGrid("right", headHandlers, false);
    this.lines = new LinesCanvas();
    this.cappedNote = h("div", {
      cls: "exbert-col-label exbert-col-label-mid exbert-lines-note",
      testid: "lines-capped-note",
      attrs: {
        title:
          "Too many lines in view to draw them all: the faintest are left out. " +
          "Hover a token to see all of its lines, or lower the threshold.",
      },
    });
    this.cappedNote.style.visibility = "hidden"; // hidden, not removed: it holds a grid column

    this.linesCol = h("div", { cls: "exbert-lines-col" }, [this.lines.canvas]);
    const linesCol = this.linesCol;
    const header = h("div", { cls: "exbert-attn-grid exbert-attn-header" }, [
      this.leftGrid.header,
      h("div", { cls: "exbert-col-label", text: "attending from" }),
      this.cappedNote,
      h("div", { cls: "exbert-col-label", text: "attended to" }),
      this.rightGrid.header,
    ]);
    const body = h("div", { cls: "exbert-attn-grid exbert-attn-body" }, [
      this.leftGrid.el,
      this.left.el,
      linesCol,
      this.right.el,
      this.rightGrid.el,
    ]);
    this.scroll = h("div", { cls: "exbert-scroll" }, [body]);
    this.scroll.addEventListener("scroll", () => this.scheduleDraw(), { passive: true });
    this.el = h("div", { cls: "exbert-attn" }, [header, this.scroll]);
    this.scheduleDraw = frameScheduler(() => this.draw());
    if (typeof ResizeObserver === "function") {
      this.resize = new ResizeObserver(() => this.scheduleDraw());
      this.resize.observe(this.scroll);
    }
  }

  dispose(): void {
    this.selection.flush(); // a click the user made still reaches the kernel
    this.resize?.disconnect();
  }

  private headCount(): number {
    return this.att ? this.attHeads : (this.state?.num_heads ?? 0);
  }

  /** Recompute, stage by stage, only what depends on what changed. */
  update(s: Slice<K>): void {
    this.state = s;
    this.layer = s.layer;
    // A click waiting to be sent points at the old tokens.
    if (s.tokens !== this.tokens) this.selection.cancel();
    const attChanged = this.syncAttention(s);
    const structChanged = this.syncRows(s);
    if (attChanged || structChanged) this.syncGrids();
    const displayedChanged = this.syncHeads(s, attChanged || structChanged);
    this.syncEdges(s.threshold, displayedChanged);
    this.leftGrid.setActive(this.active, this.hoveredHead());
    this.rightGrid.setActive(this.active, this.hoveredHead());
    this.markTokens();
    this.scheduleDraw();
  }

  /** The attention, accepted only when its shape matches the tokens. */
  private syncAttention(s: Slice<K>): boolean {
    if (s.attention === this.attPayload && s.tokens === this.tokens) return false;
    this.attPayload = s.attention;
    const d = s.attention;
    const n = s.tokens.length;
    const fits = d !== null && d.shape.length === 3 && d.shape[1] === n && d.shape[2] === n && n > 0;
    this.att = fits ? d.data : null;
    this.attHeads = fits ? d.shape[0] : 0;
    return true;
  }

  /** Rows, when the token list, visibility or head count change. */
  private syncRows(s: Slice<K>): boolean {
    const numHeads = this.headCount();
    if (
      s.tokens === this.tokens &&
      s.special === this.special &&
      s.hide_special === this.hideSpecial &&
      numHeads === this.numHeads
    ) {
      return false;
    }
    this.tokens = s.tokens;
    this.special = s.special;
    this.hideSpecial = s.hide_special;
    this.numHeads = numHeads;
    this.n = s.tokens.length;
    this.visible = visibleMask(this.n, s.special, s.hide_special);
    this.layout = makeLayout(this.visible);
    // The lines column spans all rows so the sticky canvas follows the scroll.
    this.linesCol.style.height = `${this.layout.height}px`;
    this.left.render(s.tokens, this.layout);
    this.right.render(s.tokens, this.layout);
    this.leftGrid.render(numHeads, this.layout);
    this.rightGrid.render(numHeads, this.layout);
    this.hover = null;
    this.tooltip.hide();
    return true;
  }

  private syncGrids(): void {
    this.perHead.clear();
    const g = this.att ? headGridValues(this.att, this.attHeads, this.n, this.visible) : null;
    this.leftGrid.setValues(g ? g.left : null);
    this.rightGrid.setValues(g ? g.right : null);
  }

  /** The combined matrix, when heads, weights or anything before them change. */
  private syncHeads(s: Slice<K>, before: boolean): boolean {
    const headsKey = JSON.stringify([s.heads, s.head_weights]);
    if (!before && headsKey === this.headsKey) return false;
    this.headsKey = headsKey;
    const weights = s.head_weights;
    this.displayed = this.att
      ? removeHidden(combineHeads(this.att, this.attHeads, this.n, s.heads, weights), this.n, this.visible)
      : null;
    this.active = range(this.numHeads).map((hd) => (weights?.length ? (weights[hd] ?? 0) !== 0 : s.heads.includes(hd)));
    return true;
  }

  private syncEdges(threshold: number, before: boolean): void {
    if (!before && threshold === this.threshold) return;
    this.threshold = threshold;
    this.perHead.clear();
    const edges = this.displayed ? thresholdEdges(this.displayed, this.n, threshold) : [];
    this.full = { edges, index: indexEdges(edges, this.n) };
  }

  private markTokens(): void {
    const marks = {
      selected: this.selection.current(),
      masked: new Set<number>(this.model.get("masked")),
      special: this.special,
      autoregressive: this.model.get("kind") === "autoregressive",
      hovered: this.hover && this.hover.kind === "token" ? this.hover.token : null,
    };
    this.left.mark(marks);
    this.right.mark(marks);
  }

  private hoveredHead(): number | null {
    return this.hover && this.hover.kind === "head" ? this.hover.head : null;
  }

  private headEdges(head: number): EdgeSet {
    let s = this.perHead.get(head);
    if (!s) {
      let edges: Edge[] = [];
      if (this.att && head >= 0 && head < this.attHeads) {
        const m = removeHidden(combineHeads(this.att, this.attHeads, this.n, [head], null), this.n, this.visible);
        edges = thresholdEdges(m, this.n, this.threshold);
      }
      s = { edges, index: indexEdges(edges, this.n) };
      this.perHead.set(head, s);
    }
    return s;
  }

  private setHover(hv: Hover): void {
    if (sameJSON(hv, this.hover)) return;
    const before = this.hoveredHead();
    this.hover = hv;
    if (this.hoveredHead() !== before) {
      this.leftGrid.setActive(this.active, this.hoveredHead());
      this.rightGrid.setActive(this.active, this.hoveredHead());
    }
    this.markTokens();
    this.scheduleDraw();
  }

  private onTokenHover(side: Side, token: number | null, el: HTMLElement | null): void {
    if (token === null || !el) {
      this.tooltip.hide();
      this.setHover(null);
      return;
    }
    this.setHover({ kind: "token", side, token });
    this.showTopK(token, el);
  }

  private showTopK(token: number, el: HTMLElement): void {
    const m = this.model;
    const list = m.get("top_k")[token] ?? [];
    const phrase = m.get("kind") === "autoregressive" ? "would predict next" : "would predict here";
    if (!m.get("has_lm_head") || list.length === 0) {
      this.tooltip.show(el, "no LM head", []);
      return;
    }
    this.tooltip.show(
      el,
      phrase,
      list.map(([t, p]) => ({ label: t, value: percent(p) })),
    );
  }

  private toggleMask(token: number): void {
    const m = this.model;
    if (m.get("kind") === "autoregressive" || this.special[token]) return;
    const masked = new Set<number>(m.get("masked"));
    if (masked.has(token)) masked.delete(token);
    else masked.add(token);
    m.commit({ masked: Array.from(masked).sort((a, b) => a - b) });
  }

  private toggleHead(head: number): void {
    // A click edits the head set; it also drops head_weights, otherwise the
    // weights would keep overriding the heads and the click would do nothing.
    // Read the model, not this.active: several clicks can land before the
    // coalesced update() runs.
    const weights = this.model.get("head_weights");
    const current = weights?.length
      ? range(this.headCount()).filter((hd) => (weights[hd] ?? 0) !== 0)
      : this.model.get("heads");
    const heads = new Set<number>(current);
    if (heads.has(head)) heads.delete(head);
    else heads.add(head);
    this.model.commit({ heads: Array.from(heads).sort((a, b) => a - b), head_weights: null });
  }

  private draw(): void {
    let set: EdgeSet = this.full;
    let ids: number[] | null = null;
    let mode = "all";
    const hv = this.hover;
    if (hv && hv.kind === "head") {
      set = this.headEdges(hv.head);
      mode = `head-${hv.head}`;
    } else if (hv && hv.kind === "token" && hv.token < this.n) {
      ids = hv.side === "left" ? this.full.index.outgoing[hv.token] : this.full.index.incoming[hv.token];
      mode = `token-${hv.side}-${hv.token}`;
    }
    const pick = this.lines.draw({
      edges: set.edges,
      ids,
      maxWeight: set.index.maxWeight,
      layout: this.layout,
      layer: this.layer,
      scrollTop: this.scroll.scrollTop,
      viewportHeight: this.scroll.clientHeight,
      mode,
    });
    this.showCapped(pick);
  }

  /** Say so when the curves in view were too many to draw them all. */
  private showCapped(pick: CurvePick): void {
    const capped = pick.drawn < pick.inView;
    const text = capped ? `showing the ${count(pick.drawn)} strongest of ${count(pick.inView)} lines` : "";
    if (this.cappedNote.textContent !== text) this.cappedNote.textContent = text;
    this.cappedNote.style.visibility = capped ? "" : "hidden";
  }
}

function count(n: number): string {
  return n.toLocaleString("en-US");
}
