// The attention explorer: wires model state to the token columns, heads grids
// and the lines canvas. Work is staged and memoised so each kind of change
// recomputes only what depends on it:
//   tokens/special/hide_special/num_heads -> DOM rows
//   attention payload                     -> decode
//   + visibility                          -> heads-grid values (per head)
//   + heads/head_weights                  -> displayed matrix
//   + threshold                           -> kept edges + per-token edge lists
// Hover only picks a precomputed edge subset and redraws (one rAF per frame).

import { decodeFloat } from "./arrays";
import {
  Edge,
  EdgeIndex,
  combineHeads,
  headGridValues,
  indexEdges,
  removeHidden,
  thresholdEdges,
  visibleMask,
} from "./attention";
import { ClickSelection } from "./clicks";
import { Controls } from "./controls";
import { CurvePick, LinesCanvas } from "./curves";
import { frameScheduler, h, percent } from "./dom";
import { HeadsGrid } from "./headsGrid";
import { Layout, makeLayout } from "./layout";
import { AnyModel, commit } from "./model";
import { Side, TokenColumn } from "./tokens";
import { Tooltip } from "./tooltip";

type Hover = { kind: "token"; side: Side; token: number } | { kind: "head"; head: number } | null;

interface EdgeSet {
  edges: Edge[];
  index: EdgeIndex;
}

function sameJSON(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export class AttentionView {
  readonly el: HTMLDivElement;
  readonly controls: Controls;
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
  private tokens: string[] = [];
  private special: boolean[] = [];
  private hideSpecial = true;
  private numHeads = 0;
  private attPayload: unknown = undefined;
  private headsKey = "";
  private threshold = NaN;

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

  constructor(private model: AnyModel, root: HTMLElement) {
    this.tooltip = new Tooltip(root, "tooltip");
    this.controls = new Controls({
      apply: (sentence) => commit(model, { sentence }),
      layer: (layer) => commit(model, { layer }),
      allHeads: () => commit(model, { heads: range(this.headCount()), head_weights: null }),
      noHeads: () => commit(model, { heads: [], head_weights: null }),
      threshold: (threshold) => commit(model, { threshold }),
      hideSpecial: (on) => commit(model, { hide_special: on }),
    });

    this.selection = new ClickSelection({
      read: () => {
        const sel = model.get("selected");
        return typeof sel === "number" ? sel : null;
      },
      write: (selected) => commit(model, { selected }),
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
        title: "Too many lines in view to draw them all: the faintest are left out. " +
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
    return this.att ? this.attHeads : Number(this.model.get("num_heads")) || 0;
  }

  /** Pull the model state and recompute whatever changed. */
  update(): void {
    const m = this.model;
    const tokens: string[] = (m.get("tokens") as string[] | null) ?? [];
    const special: boolean[] = (m.get("special") as boolean[] | null) ?? [];
    const hideSpecial = !!m.get("hide_special");
    const payload = m.get("attention");
    this.layer = Number(m.get("layer")) || 0;

    // A click waiting to be sent points at the old tokens.
    if (tokens !== this.tokens) this.selection.cancel();

    // Decode attention; accept it only when it matches the tokens.
    let attChanged = false;
    if (payload !== this.attPayload || tokens !== this.tokens) {
      this.attPayload = payload;
      attChanged = true;
      this.att = null;
      this.attHeads = 0;
      try {
        const d = decodeFloat(payload);
        const n = tokens.length;
        if (d && d.shape.length === 3 && d.shape[1] === n && d.shape[2] === n && n > 0) {
          this.att = d.data;
          this.attHeads = d.shape[0];
        }
      } catch (e) {
        console.error("exbert-widget: cannot decode attention", e);
      }
    }
    const numHeads = this.headCount();

    // Rebuild rows when the token list, visibility or head count changes.
    let structChanged = false;
    if (tokens !== this.tokens || special !== this.special || hideSpecial !== this.hideSpecial || numHeads !== this.numHeads) {
      structChanged = true;
      this.tokens = tokens;
      this.special = special;
      this.hideSpecial = hideSpecial;
      this.numHeads = numHeads;
      this.n = tokens.length;
      this.visible = visibleMask(this.n, special, hideSpecial);
      this.layout = makeLayout(this.visible);
      // The lines column spans all rows so the sticky canvas follows the scroll.
      this.linesCol.style.height = `${this.layout.height}px`;
      this.left.render(tokens, this.layout);
      this.right.render(tokens, this.layout);
      this.leftGrid.render(numHeads, this.layout);
      this.rightGrid.render(numHeads, this.layout);
      this.hover = null;
      this.tooltip.hide();
    }

    if (attChanged || structChanged) {
      this.perHead.clear();
      if (this.att) {
        const g = headGridValues(this.att, this.attHeads, this.n, this.visible);
        this.leftGrid.setValues(g.left);
        this.rightGrid.setValues(g.right);
      } else {
        this.leftGrid.setValues(null);
        this.rightGrid.setValues(null);
      }
    }

    const heads: number[] = (m.get("heads") as number[] | null) ?? [];
    const weights = m.get("head_weights") as number[] | null;
    const headsKey = JSON.stringify([heads, weights ?? null]);
    let displayedChanged = false;
    if (attChanged || structChanged || headsKey !== this.headsKey) {
      this.headsKey = headsKey;
      displayedChanged = true;
      this.displayed = this.att
        ? removeHidden(combineHeads(this.att, this.attHeads, this.n, heads, weights ?? null), this.n, this.visible)
        : null;
      this.active = range(numHeads).map((hd) =>
        weights && weights.length ? Number(weights[hd] ?? 0) !== 0 : heads.includes(hd),
      );
    }

    const threshold = Number(m.get("threshold"));
    if (displayedChanged || threshold !== this.threshold) {
      this.threshold = threshold;
      this.perHead.clear();
      const edges = this.displayed ? thresholdEdges(this.displayed, this.n, threshold) : [];
      this.full = { edges, index: indexEdges(edges, this.n) };
    }

    this.leftGrid.setActive(this.active, this.hoveredHead());
    this.rightGrid.setActive(this.active, this.hoveredHead());
    this.markTokens();
    this.controls.update({
      sentence: String(m.get("sentence") ?? ""),
      modelName: String(m.get("model_name") ?? ""),
      numLayers: Number(m.get("num_layers")) || 0,
      layer: this.layer,
      threshold: Number.isFinite(threshold) ? threshold : 0.7,
      hideSpecial,
      truncated: !!m.get("truncated"),
      error: String(m.get("error") ?? ""),
    });
    this.scheduleDraw();
  }

  private markTokens(): void {
    const masked = new Set<number>((this.model.get("masked") as number[] | null) ?? []);
    const marks = {
      selected: this.selection.current(),
      masked,
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
    const topk = (m.get("top_k") as Array<Array<[string, number]>> | null) ?? [];
    const list = topk[token] ?? [];
    const phrase = m.get("kind") === "autoregressive" ? "would predict next" : "would predict here";
    if (!m.get("has_lm_head") || list.length === 0) {
      this.tooltip.show(el, "no LM head", []);
      return;
    }
    this.tooltip.show(
      el,
      phrase,
      list.map(([t, p]) => ({ label: String(t), value: percent(Number(p)) })),
    );
  }

  private toggleMask(token: number): void {
    const m = this.model;
    if (m.get("kind") === "autoregressive" || this.special[token]) return;
    const masked = new Set<number>((m.get("masked") as number[] | null) ?? []);
    if (masked.has(token)) masked.delete(token);
    else masked.add(token);
    commit(m, { masked: Array.from(masked).sort((a, b) => a - b) });
  }

  private toggleHead(head: number): void {
    // A click edits the head set; it also drops head_weights, otherwise the
    // weights would keep overriding the heads and the click would do nothing.
    // Read the model, not this.active: several clicks can land before the
    // coalesced update() runs.
    const weights = this.model.get("head_weights") as number[] | null;
    const current: number[] =
      weights && weights.length
        ? range(this.headCount()).filter((hd) => Number(weights[hd] ?? 0) !== 0)
        : ((this.model.get("heads") as number[] | null) ?? []);
    const heads = new Set<number>(current);
    if (heads.has(head)) heads.delete(head);
    else heads.add(head);
    commit(this.model, { heads: Array.from(heads).sort((a, b) => a - b), head_weights: null });
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

export function range(n: number): number[] {
  return Array.from({ length: Math.max(0, n) }, (_, i) => i);
}
