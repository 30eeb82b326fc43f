// The head report heatmap: for a relation and direction, layers × heads
// shaded by how often the head's most-attended word is the syntactic
// head/dependent (Clark et al. 2019), with the best fixed-offset baseline.
// Clicking a cell shows that layer and head in the attention panel.

import { type CommandChannel, failureText, NoReply, Superseded } from "../../core/commands";
import { h, percent, show } from "../../core/dom";
import type { Slice, ViewModel } from "../../core/model";
import type { Panel } from "../../core/panel";
import { shade } from "./lines";

const KEYS = ["report", "has_corpus", "layer", "heads", "head_weights"] as const;
type K = (typeof KEYS)[number];

export class HeadReportPanel implements Panel<K> {
  readonly keys = KEYS;
  readonly el: HTMLDivElement;
  readonly button: HTMLButtonElement;
  readonly status: HTMLSpanElement;
  private relation: HTMLSelectElement;
  private direction: HTMLSelectElement;
  private baseline: HTMLSpanElement;
  private grid: HTMLDivElement;
  private reportKey: unknown = null;
  private gaveUp = false; // the last computation was given up on for want of a reply
  private cells: HTMLDivElement[] = [];
  private state: Slice<K> | null = null;

  constructor(
    private model: ViewModel,
    private commands: CommandChannel | null = null,
  ) {
    this.button = h("button", {
      cls: "exbert-btn",
      testid: "head-report-button",
      text: "Head report",
      attrs: { type: "button", title: "Which heads track which dependency relations over the corpus" },
    });
    this.button.addEventListener("click", () => this.compute());
    this.status = h("span", { cls: "exbert-busy", testid: "head-report-status", attrs: { role: "status" } });
    show(this.status, false);
    this.relation = h("select", {
      cls: "exbert-select",
      testid: "report-relation",
      attrs: { "aria-label": "relation" },
    });
    this.direction = h("select", {
      cls: "exbert-select",
      testid: "report-direction",
      attrs: { "aria-label": "direction" },
    });
    this.relation.addEventListener("change", () => this.paint());
    this.direction.addEventListener("change", () => this.paint());
    this.baseline = h("span", { cls: "exbert-note", testid: "report-baseline" });
    this.grid = h("div", { cls: "exbert-report-grid", testid: "report-grid" });
    this.el = h("div", { cls: "exbert-report", testid: "head-report" }, [
      h("div", { cls: "exbert-row" }, [
        h("span", { cls: "exbert-compare-title", text: "Head report" }),
        this.relation,
        this.direction,
        this.baseline,
      ]),
      this.grid,
    ]);
    show(this.el, false);
  }

  update(s: Slice<K>): void {
    this.state = s;
    show(this.button, s.has_corpus);
    const r = s.report;
    const has = !!r.relations && r.relations.length > 0;
    show(this.el, has);
    if (!has) return;
    if (r !== this.reportKey) {
      this.reportKey = r;
      if (this.gaveUp) {
        // the kernel, busy with another cell, computed it after all: the no-reply message is over
        this.gaveUp = false;
        show(this.status, false);
      }
      this.fillSelects();
      this.build();
    }
    this.paint();
  }

  private compute(): void {
    if (!this.commands) return;
    this.button.disabled = true;
    this.gaveUp = false;
    this.status.className = "exbert-busy";
    this.status.textContent = "computing the head report over the corpus (cached after the first time)…";
    show(this.status, true);
    this.commands
      .invoke("head_report", { refresh: false })
      .then(() => show(this.status, false))
      .catch((e: unknown) => {
        if (e instanceof Superseded) return;
        this.gaveUp = e instanceof NoReply;
        this.status.className = "exbert-error";
        this.status.textContent = failureText(e);
      })
      .finally(() => {
        this.button.disabled = false;
      });
  }

  private fillSelects(): void {
    const r = this.state?.report;
    if (!r?.relations) return;
    const keep = this.relation.value;
    this.relation.replaceChildren();
    for (const rel of r.relations) {
      const label = `${rel.relation} (${rel.count}${rel.few ? ", few" : ""})`;
      this.relation.appendChild(h("option", { text: label, attrs: { value: rel.relation } }));
    }
    if (r.relations.some((x) => x.relation === keep)) this.relation.value = keep;
    const dir = this.direction.value;
    this.direction.replaceChildren();
    for (const d of r.directions ?? []) this.direction.appendChild(h("option", { text: d, attrs: { value: d } }));
    if ((r.directions ?? []).includes(dir)) this.direction.value = dir;
  }

  private build(): void {
    const r = this.state?.report;
    const layers = r?.num_layers ?? 0;
    const heads = r?.num_heads ?? 0;
    this.grid.replaceChildren();
    this.grid.style.gridTemplateColumns = `auto repeat(${heads}, 16px)`;
    this.cells = [];
    this.grid.appendChild(h("div", { cls: "exbert-report-label", text: "layer\\head" }));
    for (let hd = 0; hd < heads; hd++)
      this.grid.appendChild(h("div", { cls: "exbert-report-label", text: String(hd) }));
    for (let l = 0; l < layers; l++) {
      this.grid.appendChild(h("div", { cls: "exbert-report-label", text: String(l) }));
      for (let hd = 0; hd < heads; hd++) {
        const cell = h("div", { cls: "exbert-report-cell", testid: `report-cell-${l}-${hd}` });
        cell.addEventListener("click", () => this.model.commit({ layer: l, heads: [hd], head_weights: null }));
        this.cells.push(cell);
        this.grid.appendChild(cell);
      }
    }
  }

  private paint(): void {
    const s = this.state;
    const r = s?.report;
    if (!s || !r?.accuracy) return;
    const values = r.accuracy[this.relation.value]?.[this.direction.value] ?? [];
    const heads = r.num_heads ?? 0;
    const best = values.reduce((m, v) => Math.max(m, v), 0);
    const base = r.baseline?.[this.relation.value]?.[this.direction.value];
    this.baseline.textContent = base
      ? `baseline: offset ${base[0] > 0 ? "+" : ""}${base[0]}, ${percent(base[1])}; best head ${percent(best)}`
      : "";
    const chosen = !s.head_weights?.length && s.heads.length === 1 ? s.heads[0] : -1;
    this.cells.forEach((cell, k) => {
      const v = values[k] ?? 0;
      const l = Math.floor(k / heads);
      const hd = k % heads;
      cell.style.backgroundColor = `rgba(var(--exbert-head-rgb), ${shade(v, best).toFixed(3)})`;
      cell.setAttribute("data-value", v.toFixed(4));
      cell.title = `layer ${l}, head ${hd}: ${percent(v)}`;
      cell.classList.toggle("selected", l === s.layer && hd === chosen);
      cell.classList.toggle("above-baseline", !!base && v > base[1]);
    });
  }
}
