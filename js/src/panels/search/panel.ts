// Corpus-search panel (shown only when has_corpus): search buttons, k, busy
// and error lines, the hit list, the matched-token strips and the two
// histograms. The kernel does the search (a command with a reply); this panel
// sends requests and draws. A failed command shows its error and leaves the
// last hits in place.

import { type CommandChannel, failureText, NoReply, Superseded } from "../../core/commands";
import { h, show } from "../../core/dom";
import type { Slice, ViewModel } from "../../core/model";
import type { Panel } from "../../core/panel";
import { Tooltip } from "../../core/tooltip";
import { DEFAULTS } from "../../generated/contract";
import { renderHistogram } from "./histograms";
import { HitList } from "./hits";
import { SummaryStrips } from "./strips";
import { FIELDS, type Field, type Hit, type Summaries } from "./types";

const KEYS = [
  "has_corpus",
  "selected",
  "heads",
  "head_weights",
  "search_k",
  "hide_special",
  "hit_list",
  "hits_attention",
  "summaries",
] as const;
type K = (typeof KEYS)[number];

export class SearchPanel implements Panel<K> {
  readonly keys = KEYS;
  readonly el: HTMLElement;
  private byEmbedding: HTMLButtonElement;
  private byContext: HTMLButtonElement;
  private kInput: HTMLInputElement;
  private skipOwn: HTMLInputElement;
  private perSentence: HTMLSelectElement;
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
  private summaries: Summaries = {};
  private state: Slice<K> | null = null;
  private pending = 0; // commands sent, no reply yet
  private gaveUp = false; // the last command was given up on for want of a reply

  constructor(
    private model: ViewModel,
    private commands: CommandChannel,
    root: HTMLElement,
  ) {
    const tooltip = new Tooltip(root, "hit-tooltip", "exbert-tooltip exbert-hit-tooltip");
    this.byEmbedding = h("button", {
      cls: "exbert-btn",
      testid: "search-embedding",
      text: "Search by embedding",
      attrs: { type: "button" },
    });
    this.byContext = h("button", {
      cls: "exbert-btn",
      testid: "search-context",
      text: "Search by context",
      attrs: { type: "button" },
    });
    this.byEmbedding.addEventListener("click", () => this.search("embedding"));
    this.byContext.addEventListener("click", () => this.search("context"));
    this.kInput = h("input", {
      cls: "exbert-k",
      testid: "search-k",
      attrs: { type: "number", min: "1", max: "1000", step: "1", "aria-label": "k" },
    });
    // Typed digits reach the kernel once typing pauses; leaving the box sends at once.
    this.kInput.addEventListener("input", () => {
      const k = this.readK();
      if (k !== null) model.commitLater({ search_k: k });
    });
    this.kInput.addEventListener("change", () => {
      const k = this.readK();
      if (k !== null) model.commit({ search_k: k });
    });
    this.kInput.addEventListener("keydown", (ev) => ev.stopPropagation());
    this.kInput.addEventListener("keyup", (ev) => ev.stopPropagation());
    // A varied first list (the defaults of view.search): the view's own sentence left out,
    // at most a few hits from one sentence.
    this.skipOwn = h("input", { testid: "search-skip-own", attrs: { type: "checkbox" } });
    this.skipOwn.checked = DEFAULTS.skip_own_sentence;
    this.perSentence = h("select", {
      cls: "exbert-select",
      testid: "search-per-sentence",
      attrs: { "aria-label": "hits per sentence" },
    });
    for (const v of ["1", "2", "3", "5", ""]) {
      this.perSentence.appendChild(h("option", { text: v || "any", attrs: { value: v } }));
    }
    this.perSentence.value = String(DEFAULTS.max_per_sentence ?? "");
    this.busy = h("span", { cls: "exbert-busy", testid: "search-busy", text: "searching…" });
    this.error = h("div", { cls: "exbert-error", testid: "search-error", attrs: { role: "alert" } });

    this.hitList = new HitList(tooltip, (index) => this.run(this.commands.invoke("load_hit", { index })));
    this.strips = new SummaryStrips((i) => this.hitList.highlight(i));
    const minus = h("button", {
      cls: "exbert-btn exbert-btn-small",
      testid: "strip-offset-minus",
      text: "−",
      attrs: { type: "button", title: "fewer offsets" },
    });
    const plus = h("button", {
      cls: "exbert-btn exbert-btn-small",
      testid: "strip-offset-plus",
      text: "+",
      attrs: { type: "button", title: "more offsets" },
    });
    minus.addEventListener("click", () => this.strips.setRadius(this.strips.offsetRadius - 1) && this.renderStrips());
    plus.addEventListener("click", () => this.strips.setRadius(this.strips.offsetRadius + 1) && this.renderStrips());

    this.fieldSelect = h("select", {
      cls: "exbert-select",
      testid: "hist-field",
      attrs: { "aria-label": "summary field" },
    });
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
      h("div", { cls: "exbert-row" }, [h("span", { cls: "exbert-section-title", text: "Matched token" }), minus, plus]),
      this.strips.el,
      this.strips.legend,
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
        h("label", { cls: "exbert-field", text: "per sentence " }, [this.perSentence]),
        h("label", { cls: "exbert-field", attrs: { title: "leave out corpus sentences equal to this one" } }, [
          this.skipOwn,
          document.createTextNode(" skip this sentence"),
        ]),
        this.busy,
      ]),
      this.error,
      this.results,
    ]);
    this.showStatus("");
  }

  private readK(): number | null {
    const k = Math.round(Number(this.kInput.value));
    return Number.isFinite(k) && k >= 1 && k <= 1000 ? k : null;
  }

  private search(by: "embedding" | "context"): void {
    const k = this.readK();
    if (k === null) {
      // Not the last k in silence while the box shows another number.
      this.showStatus("k: give a whole number from 1 to 1000.");
      return;
    }
    if (k !== this.model.get("search_k")) this.model.commit({ search_k: k });
    const most = this.perSentence.value;
    this.run(
      this.commands.invoke("search", {
        by,
        k,
        skip_own_sentence: this.skipOwn.checked,
        max_per_sentence: most ? Number(most) : null,
      }),
    );
  }

  /** Show a command as busy until it replies; show its error, or clear the last one. */
  private run(reply: Promise<unknown>): void {
    this.pending++;
    this.gaveUp = false;
    this.showStatus(null);
    reply
      .then(() => this.showStatus(""))
      .catch((e: unknown) => {
        if (e instanceof Superseded) return; // a newer request shows its own outcome
        this.gaveUp = e instanceof NoReply;
        this.showStatus(failureText(e));
      })
      .finally(() => {
        this.pending--;
        this.showStatus(null);
      });
  }

  /** `error`: text to show, "" to clear, null to keep. */
  private showStatus(error: string | null): void {
    if (error !== null) {
      this.error.textContent = error;
      show(this.error, !!error);
    }
    const busy = this.pending > 0;
    show(this.busy, busy);
    this.el.classList.toggle("busy", busy);
    if (this.state) this.syncButtons(this.state);
  }

  update(s: Slice<K>): void {
    this.state = s;
    show(this.el, s.has_corpus);
    this.syncButtons(s);
    if (document.activeElement !== this.kInput) this.kInput.value = String(s.search_k);
    if (s.hit_list !== this.lastHits || s.hits_attention !== this.lastAtt || s.hide_special !== this.lastHide) {
      this.lastHits = s.hit_list;
      this.lastAtt = s.hits_attention;
      this.lastHide = s.hide_special;
      // A search given up on (kernel busy with another cell) that the kernel ran after all: its
      // hits are here, so the no-reply message no longer holds.
      if (this.gaveUp && s.hit_list !== this.hits) {
        this.gaveUp = false;
        this.showStatus("");
      }
      this.hits = s.hit_list;
      this.hitsAtt = s.hits_attention?.data ?? null;
      this.hideSpecial = s.hide_special;
      this.hitList.render(this.hits, this.hitsAtt, s.hide_special);
      this.renderStrips();
    }
    if (s.summaries !== this.lastSummaries) {
      this.lastSummaries = s.summaries;
      this.summaries = s.summaries;
      this.renderHistograms();
    }
  }

  private syncButtons(s: Slice<K>): void {
    const busy = this.pending > 0;
    const hasToken = s.selected !== null;
    const anyHead = s.heads.length > 0 || (s.head_weights?.some((w) => w !== 0) ?? false);
    this.byEmbedding.disabled = busy || !hasToken;
    this.byContext.disabled = busy || !hasToken || !anyHead;
    this.byContext.title = this.byContext.disabled && hasToken ? "select at least one head" : "";
    this.byEmbedding.title = hasToken ? "" : "click a token first";
  }

  private renderStrips(): void {
    this.strips.render(this.hits, this.field, this.hideSpecial);
  }

  private renderHistograms(): void {
    const s = this.summaries;
    renderHistogram(this.histMatch, "Matched token", "match", s.match?.[this.field]);
    renderHistogram(this.histMaxAtt, "Max attention", "max-att", s.max_att?.[this.field]);
  }
}
