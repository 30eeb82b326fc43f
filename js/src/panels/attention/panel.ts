// The attention panel: token columns, heads grids and the lines canvas. Work
// is staged and memoised so each kind of change recomputes only what depends
// on it:
//   tokens/special/hide_special/num_heads -> DOM rows
//   attention (decoded at the boundary)   -> heads-grid values (per head)
//   + heads/head_weights                  -> displayed matrix
//   + threshold                           -> kept edges + per-token edge lists
// Hover only picks a precomputed edge subset and redraws (one rAF per frame).
//
// Long inputs (attention_mode "combined") skip the first three stages: the
// kernel sends the kept lines and the heads grids' values, and a head's own
// lines (hovering a head) come from the kernel on demand, by a command.

import { type CommandChannel, Superseded } from "../../core/commands";
import { frameScheduler, h, percent, show } from "../../core/dom";
import type { Slice, ViewModel } from "../../core/model";
import { type Panel, range } from "../../core/panel";
import { Tooltip } from "../../core/tooltip";
import { emptyPairFilter, filterPairs, inSpan, markSegments } from "../pairs/filter";
import {
  combineHeads,
  type EdgeIndex,
  type EdgeList,
  edgesOf,
  headGridValues,
  indexEdges,
  linesToEdges,
  NO_EDGES,
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
  "generated",
  "attention_mode",
  "lines",
  "lines_rows",
  "lines_scale",
  "head_summary",
  "model_description",
  "segments",
  "pair_filter",
  "row_span",
  "column_span",
] as const;
type K = (typeof KEYS)[number];

type Hover = { kind: "token"; side: Side; token: number } | { kind: "head"; head: number } | null;

interface EdgeSet {
  edges: EdgeList;
  index: EdgeIndex;
}

const emptySet = (n: number): EdgeSet => ({ edges: NO_EDGES, index: indexEdges(NO_EDGES, n) });

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
  private noHeadsNote: HTMLDivElement;
  private pairFilterNote: HTMLDivElement;
  private selection: ClickSelection;
  private scroll: HTMLDivElement;
  private headerWrap: HTMLDivElement;
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
  private summaryPayload: unknown = undefined;
  private linesKey: unknown[] = [];
  private headsKey = "";
  private threshold = Number.NaN;
  private combined = false;
  private pairKey: unknown[] = [];
  private spans: unknown[] = [];

  // Derived state.
  private n = 0;
  private att: Float32Array | null = null; // [H, n, n]
  private attHeads = 0;
  private summary: Float32Array | null = null; // combined mode: [2, n, H]
  private visible: boolean[] = [];
  private layout: Layout = makeLayout([]); // the left column's rows (attending from)
  private rightLayout: Layout = makeLayout([]); // the right column's (differs in a seq2seq part)
  private rowsShown: boolean[] = [];
  private displayed: Float32Array | null = null;
  private full: EdgeSet = emptySet(0);
  private perHead = new Map<number, EdgeSet>();
  private headRequests = new Set<number>(); // combined mode: heads asked of the kernel
  private active: boolean[] = [];
  private hover: Hover = null;
  private layer = 0;
  private leftGridOnCanvas = false;

  constructor(
    private model: ViewModel,
    root: HTMLElement,
    private commands: CommandChannel | null = null,
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
    this.noHeadsNote = h("div", {
      cls: "exbert-no-heads",
      testid: "no-heads-note",
      text: "No heads selected: click a head number, or “all heads”, to draw attention.",
    });
    show(this.noHeadsNote, false);
    this.pairFilterNote = h("div", { cls: "exbert-no-heads", testid: "pair-filter-note" });
    show(this.pairFilterNote, false);

    this.linesCol = h("div", { cls: "exbert-lines-col" }, [this.lines.canvas]);
    const linesCol = this.linesCol;
    const header = h("div", { cls: "exbert-attn-grid exbert-attn-header" }, [
      this.leftGrid.header,
      h("div", { cls: "exbert-col-label", text: "attending from" }),
      h("div", { cls: "exbert-mid-notes" }, [this.cappedNote, this.noHeadsNote, this.pairFilterNote]),
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
    this.scroll = h("div", { cls: "exbert-scroll", testid: "attention-scroll" }, [body]);
    // The header stays above the scrolling rows; it follows their horizontal scroll so the
    // head numbers stay over their columns.
    this.headerWrap = h("div", { cls: "exbert-attn-header-wrap" }, [header]);
    this.scroll.addEventListener(
      "scroll",
      () => {
        this.headerWrap.scrollLeft = this.scroll.scrollLeft;
        this.scheduleDraw();
      },
      { passive: true },
    );
    this.el = h("div", { cls: "exbert-attn" }, [this.headerWrap, this.scroll]);
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
    return this.att || this.summary ? this.attHeads : (this.state?.num_heads ?? 0);
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
    const pairKey = [s.segments, s.pair_filter];
    const pairChanged = pairKey.some((v, i) => v !== this.pairKey[i]);
    this.pairKey = pairKey;
    if (pairChanged) this.perHead.clear();
    if (pairChanged || structChanged) {
      markSegments((i) => this.left.item(i), this.layout.order, s.segments);
      markSegments((i) => this.right.item(i), this.rightLayout.order, s.segments);
    }
    this.active = range(this.numHeads).map((hd) =>
      s.head_weights?.length ? (s.head_weights[hd] ?? 0) !== 0 : s.heads.includes(hd),
    );
    if (this.combined) this.syncLines(s, attChanged || structChanged || pairChanged);
    else {
      const displayedChanged = this.syncHeads(s, attChanged || structChanged);
      this.syncEdges(s.threshold, displayedChanged || pairChanged);
    }
    const weights = s.head_weights?.length ? s.head_weights : null;
    this.leftGrid.setWeights(weights);
    this.rightGrid.setWeights(weights);
    this.leftGrid.setActive(this.active, this.hoveredHead());
    this.rightGrid.setActive(this.active, this.hoveredHead());
    const anyHead = this.active.some(Boolean);
    show(this.noHeadsNote, this.n > 0 && !anyHead);
    const emptyFilter = emptyPairFilter(s.segments, s.pair_filter);
    this.pairFilterNote.textContent = emptyFilter ?? "";
    show(this.pairFilterNote, this.n > 0 && anyHead && emptyFilter !== null);
    this.markTokens();
    this.scheduleDraw();
  }

  /**
   * The attention (every head), or in combined mode the heads grids' summary,
   * accepted only when its shape matches the tokens.
   */
  private syncAttention(s: Slice<K>): boolean {
    const combined = s.attention_mode === "combined";
    if (
      s.attention === this.attPayload &&
      s.head_summary === this.summaryPayload &&
      s.tokens === this.tokens &&
      combined === this.combined
    ) {
      return false;
    }
    this.attPayload = s.attention;
    this.summaryPayload = s.head_summary;
    this.combined = combined;
    const n = s.tokens.length;
    const d = combined ? null : s.attention;
    const fits = d !== null && d.shape.length === 3 && d.shape[1] === n && d.shape[2] === n && n > 0;
    const g = combined ? s.head_summary : null;
    const summaryFits = g !== null && g.shape.length === 3 && g.shape[0] === 2 && g.shape[1] === n && n > 0;
    this.att = fits ? d.data : null;
    this.summary = summaryFits ? g.data : null;
    this.attHeads = fits ? d.shape[0] : summaryFits ? g.shape[2] : 0;
    this.perHead.clear();
    return true;
  }

  /** Rows, when the token list, visibility or head count change. */
  private syncRows(s: Slice<K>): boolean {
    const numHeads = this.headCount();
    const onCanvas = this.combined;
    if (
      s.tokens === this.tokens &&
      s.special === this.special &&
      s.hide_special === this.hideSpecial &&
      numHeads === this.numHeads &&
      onCanvas === this.leftGridOnCanvas &&
      s.row_span === this.spans[0] &&
      s.column_span === this.spans[1]
    ) {
      return false;
    }
    this.spans = [s.row_span, s.column_span];
    this.leftGridOnCanvas = onCanvas;
    this.tokens = s.tokens;
    this.special = s.special;
    this.hideSpecial = s.hide_special;
    this.numHeads = numHeads;
    this.n = s.tokens.length;
    this.visible = visibleMask(this.n, s.special, s.hide_special);
    // Each column shows its span of the tokens (an encoder–decoder part's rows and columns).
    this.rowsShown = inSpan(this.visible, s.row_span);
    this.layout = makeLayout(this.rowsShown);
    this.rightLayout = makeLayout(inSpan(this.visible, s.column_span));
    // The lines column spans all rows so the sticky canvas follows the scroll.
    this.linesCol.style.height = `${Math.max(this.layout.height, this.rightLayout.height)}px`;
    this.left.render(s.tokens, this.layout);
    this.right.render(s.tokens, this.rightLayout);
    this.leftGrid.render(numHeads, this.layout, onCanvas);
    this.rightGrid.render(numHeads, this.rightLayout, onCanvas);
    this.hover = null;
    this.tooltip.hide();
    return true;
  }

  private syncGrids(): void {
    this.perHead.clear();
    if (this.combined) {
      const half = this.n * this.attHeads;
      this.leftGrid.setValues(this.summary ? this.summary.subarray(0, half) : null);
      this.rightGrid.setValues(this.summary ? this.summary.subarray(half, 2 * half) : null);
      return;
    }
    const g = this.att ? headGridValues(this.att, this.attHeads, this.n, this.visible, this.rowsShown) : null;
    this.leftGrid.setValues(g ? g.left : null);
    this.rightGrid.setValues(g ? g.right : null);
  }

  /** Combined mode: the lines as the kernel cut them. */
  private syncLines(s: Slice<K>, before: boolean): void {
    const key = [s.lines, s.lines_rows, s.lines_scale, s.layer, s.threshold, s.hide_special];
    if (!before && key.every((v, i) => v === this.linesKey[i])) return;
    const kernelChanged = key.slice(0, 3).some((v, i) => v !== this.linesKey[i]);
    const cutChanged = key.slice(3).some((v, i) => v !== this.linesKey[i + 3]);
    this.linesKey = key;
    if (before || cutChanged) this.perHead.clear(); // a head's lines were for another cut
    if (!before && !kernelChanged) return;
    this.displayed = null;
    this.headsKey = "";
    this.threshold = Number.NaN;
    const rows = s.lines_rows;
    const lines = s.lines;
    const fits = rows !== null && lines !== null && rows.data.length === this.n + 1 && lines.shape[1] === 2;
    const edges = fits ? this.pairs(linesToEdges(rows.data, lines.data, s.lines_scale, this.n)) : NO_EDGES;
    this.full = { edges, index: indexEdges(edges, this.n) };
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
    return true;
  }

  private syncEdges(threshold: number, before: boolean): void {
    if (!before && threshold === this.threshold) return;
    this.threshold = threshold;
    this.perHead.clear();
    const edges = this.displayed ? this.pairs(thresholdEdges(this.displayed, this.n, threshold)) : NO_EDGES;
    this.full = { edges, index: indexEdges(edges, this.n) };
  }

  /** The edges the pair filter keeps (all of them without a pair or with "all"). */
  private pairs(edges: EdgeList): EdgeList {
    const s = this.state;
    return s ? filterPairs(edges, s.segments, s.pair_filter) : edges;
  }

  private markTokens(): void {
    const marks = {
      selected: this.selection.current(),
      masked: new Set<number>(this.model.get("masked")),
      special: this.special,
      autoregressive: this.model.get("kind") === "autoregressive",
      hovered: this.hover && this.hover.kind === "token" ? this.hover.token : null,
      generated: this.state?.generated ?? [],
    };
    this.left.mark(marks);
    this.right.mark(marks);
  }

  private hoveredHead(): number | null {
    return this.hover && this.hover.kind === "head" ? this.hover.head : null;
  }

  /** One head's lines alone, or null while the kernel is asked for them (combined mode). */
  private headEdges(head: number): EdgeSet | null {
    let s = this.perHead.get(head);
    if (s) return s;
    if (this.combined) {
      this.requestHead(head);
      return null;
    }
    let edges = NO_EDGES;
    if (this.att && head >= 0 && head < this.attHeads) {
      const m = removeHidden(combineHeads(this.att, this.attHeads, this.n, [head], null), this.n, this.visible);
      edges = this.pairs(thresholdEdges(m, this.n, this.threshold));
    }
    s = { edges, index: indexEdges(edges, this.n) };
    this.perHead.set(head, s);
    return s;
  }

  /** Ask the kernel for a head's lines; kept if they answer for the cut still in effect. */
  private requestHead(head: number): void {
    const s = this.state;
    if (!this.commands || !s || this.headRequests.has(head) || head < 0 || head >= this.numHeads) return;
    this.headRequests.add(head);
    const n = this.n;
    this.commands
      .invoke("head_lines", { head })
      .then((r) => {
        const now = this.state;
        const current =
          now !== null &&
          this.n === n &&
          r.layer === now.layer &&
          r.threshold === now.threshold &&
          r.hide_special === now.hide_special;
        if (!current) return;
        const edges = r.lines && r.rows ? this.pairs(linesToEdges(r.rows.data, r.lines.data, r.scale, n)) : NO_EDGES;
        this.perHead.set(head, { edges, index: indexEdges(edges, n) });
        if (this.hoveredHead() === head) this.scheduleDraw();
      })
      .catch((e: unknown) => {
        if (!(e instanceof Superseded)) console.warn("exbert-widget: head lines", e);
      })
      .finally(() => this.headRequests.delete(head));
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
    const kind = m.get("kind");
    const phrase =
      kind === "seq2seq"
        ? "the decoder would predict next"
        : kind === "autoregressive"
          ? "would predict next"
          : "would predict here";
    const generated = this.state?.generated?.[token] ? "written by the model; " : "";
    if (kind === "seq2seq" && list.length === 0 && m.get("has_lm_head")) {
      this.tooltip.show(el, "source token: the decoder predicts at target tokens", []);
      return;
    }
    if (!m.get("has_lm_head") || list.length === 0) {
      this.tooltip.show(el, `${generated}no LM head`, []);
      return;
    }
    // The demo head says what it is (and how weak) beside its predictions.
    const note = m.get("model_description") || undefined;
    this.tooltip.show(
      el,
      `${generated}${phrase}`,
      list.map(([t, p]) => ({ label: t, value: percent(p) })),
      note,
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
    // Long inputs: each change is kernel work, so quick clicks go as one update.
    const commit = this.combined
      ? (v: { heads: number[]; head_weights: null }) => this.model.commitLater(v)
      : (v: { heads: number[]; head_weights: null }) => this.model.commit(v);
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
    commit({ heads: Array.from(heads).sort((a, b) => a - b), head_weights: null });
  }

  private draw(): void {
    let set: EdgeSet = this.full;
    let ids: Int32Array | null = null;
    let mode = "all";
    const hv = this.hover;
    if (hv && hv.kind === "head") {
      const own = this.headEdges(hv.head);
      set = own ?? emptySet(this.n);
      mode = own ? `head-${hv.head}` : `loading-head-${hv.head}`;
    } else if (hv && hv.kind === "token" && hv.token < this.n) {
      ids = edgesOf(this.full.index, hv.side, hv.token);
      mode = `token-${hv.side}-${hv.token}`;
    }
    const top = this.scroll.scrollTop;
    const height = this.scroll.clientHeight;
    this.leftGrid.scrolled(top, height);
    this.rightGrid.scrolled(top, height);
    const pick = this.lines.draw({
      edges: set.edges,
      ids,
      maxWeight: set.index.maxWeight,
      layout: this.layout,
      toLayout: this.rightLayout,
      layer: this.layer,
      scrollTop: top,
      viewportHeight: height,
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
