// Corpus-search panel (shown only when has_corpus): search buttons, k, busy
// and error lines, the hit list, the matched-token strips and the two
// histograms. The kernel does the search; this only sends requests and draws.

import { decodeFloat } from "../arrays";
import { h, show } from "../dom";
import { AnyModel, commit } from "../model";
import { Tooltip } from "../tooltip";
import { renderHistogram } from "./histograms";
import { HitList } from "./hits";
import { SummaryStrips } from "./strips";
import { FIELDS, Field, Hit, Summaries } from "./types";

export class SearchPanel {
  readonly el: HTMLElement;
  private byEmbedding: HTMLButtonElement;
  private byContext: HTMLButtonElement;
  private kInput: HTMLInputElement;
  private busy: HTMLSpanElement;
  private error: HTMLDivElement;
  private hitList: HitList;
  private strips: SummaryStrips;
  private fieldSelect: HTMLSelectElement;
  private histMatch: HTMLDivElement;
  private histMaxAtt: HTMLDivElement;
  private results: HTMLDivElement;
  private field: Field = "pos";

  private lastHits: unknown = undefined;
  private lastAtt: unknown = undefined;
  private lastSummaries: unknown = undefined;
  private lastHide: boolean | undefined = undefined;
  private hideSpecial = true;
  private hits: Hit[] = [];
  private hitsAtt: Float32Array | null = null;

  constructor(private model: AnyModel, root: HTMLElement) {
    const tooltip = new Tooltip(root, "hit-tooltip", "exbert-tooltip exbert-hit-tooltip");
    this.byEmbedding = h("button", { cls: "exbert-btn", testid: "search-embedding", text: "Search by embedding", attrs: { type: "button" } });
    this.byContext = h("button", { cls: "exbert-btn", testid: "search-context", text: "Search by context", attrs: { type: "button" } });
    this.byEmbedding.addEventListener("click", () => this.search("embedding"));
    this.byContext.addEventListener("click", () => this.search("context"));
    this.kInput = h("input", { cls: "exbert-k", testid: "search-k", attrs: { type: "number", min: "1", max: "1000", step: "1", "aria-label": "k" } });
    this.kInput.addEventListener("change", () => {
      const k = this.readK();
      if (k !== null) commit(model, { search_k: k });
    });
    this.kInput.addEventListener("keydown", (ev) => ev.stopPropagation());
    this.kInput.addEventListener("keyup", (ev) => ev.stopPropagation());
    this.busy = h("span", { cls: "exbert-busy", testid: "search-busy", text: "searching…" });
    this.error = h("div", { cls: "exbert-error", testid: "search-error", attrs: { role: "alert" } });

    this.hitList = new HitList(tooltip, (i) => model.send({ type: "load_hit", index: i }));
    this.strips = new SummaryStrips((i) => this.hitList.highlight(i));
    const minus = h("button", { cls: "exbert-btn exbert-btn-small", testid: "strip-offset-minus", text: "−", attrs: { type: "button", title: "fewer offsets" } });
    const plus = h("button", { cls: "exbert-btn exbert-btn-small", testid: "strip-offset-plus", text: "+", attrs: { type: "button", title: "more offsets" } });
    minus.addEventListener("click", () => this.strips.setRadius(this.strips.offsetRadius - 1) && this.renderStrips());
    plus.addEventListener("click", () => this.strips.setRadius(this.strips.offsetRadius + 1) && this.renderStrips());

    this.fieldSelect = h("select", { cls: "exbert-select", testid: "hist-field", attrs: { "aria-label": "summary field" } });
    for (const f of FIELDS) this.fieldSelect.appendChild(h("option", { text: f, attrs: { value: f } }));
    this.fieldSelect.value = this.field;
    this.fieldSelect.addEventListener("change", () => {
      this.field = this.fieldSelect.value as Field;
      this.renderStrips();
      this.renderHistograms();
    });
    this.histMatch = h("div", { cls: "exbert-hist", testid: "hist-match" });
    this.histMaxAtt = h("div", { cls: "exbert-hist", testid: "hist-max-att" });

    const summary = h("div", { cls: "exbert-summary" }, [
      h("div", { cls: "exbert-row" }, [
        h("span", { cls: "exbert-section-title", text: "Matched token" }),
        minus,
        plus,
      ]),
      this.strips.el,
    ]);
    const hists = h("div", { cls: "exbert-hists" }, [
      h("div", { cls: "exbert-row" }, [h("label", { cls: "exbert-field", text: "Summarise by " }, [this.fieldSelect])]),
      this.histMatch,
      this.histMaxAtt,
    ]);
    this.results = h("div", { cls: "exbert-search-results" }, [summary, this.hitList.el, hists]);
    this.el = h("section", { cls: "exbert-search", attrs: { "data-testid": "search-panel" } }, [
      h("div", { cls: "exbert-row" }, [
        h("span", { cls: "exbert-section-title", text: "Corpus search" }),
        this.byEmbedding,
        this.byContext,
        h("label", { cls: "exbert-field", text: "k " }, [this.kInput]),
        this.busy,
      ]),
      this.error,
      this.results,
    ]);
  }

  private readK(): number | null {
    const k = Math.round(Number(this.kInput.value));
    return Number.isFinite(k) && k >= 1 ? k : null;
  }

  private search(by: "embedding" | "context"): void {
    const k = this.readK() ?? (Number(this.model.get("search_k")) || 50);
    if (k !== Number(this.model.get("search_k"))) commit(this.model, { search_k: k });
    this.model.send({ type: "search", by, k });
  }

  update(): void {
    const m = this.model;
    show(this.el, !!m.get("has_corpus"));
    const busy = !!m.get("search_busy");
    const selected = m.get("selected");
    const heads = (m.get("heads") as number[] | null) ?? [];
    const weights = m.get("head_weights") as number[] | null;
    const hasToken = typeof selected === "number";
    this.byEmbedding.disabled = busy || !hasToken;
    this.byContext.disabled = busy || !hasToken || !(heads.length > 0 || (weights != null && weights.some((w) => Number(w) !== 0)));
    this.byContext.title = this.byContext.disabled && hasToken ? "select at least one head" : "";
    this.byEmbedding.title = hasToken ? "" : "click a token first";
    if (document.activeElement !== this.kInput) this.kInput.value = String(m.get("search_k") ?? 50);
    show(this.busy, busy);
    this.el.classList.toggle("busy", busy);
    const err = String(m.get("search_error") ?? "");
    this.error.textContent = err;
    show(this.error, !!err);

    // The trait is `hit_list` (Python's `view.hits` is a DataFrame); `hits` is
    // read as a fallback for the first draft of the contract.
    const listVal = m.get("hit_list");
    const hitsVal = Array.isArray(listVal) ? listVal : m.get("hits");
    const attVal = m.get("hits_attention");
    // hide_special (default true) hides the hit sentences' special tokens too.
    const hide = m.get("hide_special") !== false;
    if (hitsVal !== this.lastHits || attVal !== this.lastAtt || hide !== this.lastHide) {
      if (hitsVal !== this.lastHits || attVal !== this.lastAtt) {
        this.hits = Array.isArray(hitsVal) ? (hitsVal as Hit[]) : [];
        this.hitsAtt = null;
        try {
          this.hitsAtt = decodeFloat(attVal)?.data ?? null;
        } catch (e) {
          console.error("exbert-widget: cannot decode hits_attention", e);
        }
      }
      this.lastHits = hitsVal;
      this.lastAtt = attVal;
      this.lastHide = hide;
      this.hideSpecial = hide;
      this.hitList.render(this.hits, this.hitsAtt, hide);
      this.renderStrips();
    }
    const summaries = m.get("summaries");
    if (summaries !== this.lastSummaries) {
      this.lastSummaries = summaries;
      this.renderHistograms();
    }
  }

  private renderStrips(): void {
    this.strips.render(this.hits, this.field, this.hideSpecial);
  }

  private renderHistograms(): void {
    const s = (this.model.get("summaries") as Summaries | null) ?? {};
    renderHistogram(this.histMatch, "Matched token", "match", s.match?.[this.field]);
    renderHistogram(this.histMaxAtt, "Max attention", "max-att", s.max_att?.[this.field]);
  }
}
