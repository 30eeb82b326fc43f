// The hit list: each hit sentence as its tokens, the matched token marked,
// every token shaded by the matched token's attention row. Hover a token for
// its POS / DEP / entity / attention; click a row to load that sentence.
// While hide_special, the hit sentences' special tokens are not drawn (the
// matched token always is); `hit-token-{i}-{j}` keeps j as the index into the
// hit's full token list.

import type { Tooltip } from "../../core/tooltip";
import { hitAttentionRow, shades } from "./hitAttention";
import { hitTokenShown } from "./strips";
import type { Hit } from "./types";

export class HitList {
  readonly el: HTMLDivElement; // data-testid hits
  private rows: HTMLDivElement[] = [];
  private hits: readonly Hit[] = [];
  private rowsAtt: Float32Array[] = [];
  private highlighted: number | null = null;

  constructor(
    private tooltip: Tooltip,
    onLoad: (i: number) => void,
  ) {
    this.el = document.createElement("div");
    this.el.className = "exbert-hits";
    this.el.setAttribute("data-testid", "hits");
    this.el.addEventListener("click", (ev) => {
      const row = (ev.target as HTMLElement | null)?.closest?.("[data-hit-row]") as HTMLElement | null;
      if (row) onLoad(Number(row.getAttribute("data-hit-row")));
    });
    this.el.addEventListener("mouseover", (ev) => {
      const t = (ev.target as HTMLElement | null)?.closest?.("[data-j]") as HTMLElement | null;
      if (!t) return;
      const row = t.closest("[data-hit-row]") as HTMLElement | null;
      if (!row) return;
      this.showToken(Number(row.getAttribute("data-hit-row")), Number(t.getAttribute("data-j")), t);
    });
    this.el.addEventListener("mouseout", (ev) => {
      const to = (ev as MouseEvent).relatedTarget as HTMLElement | null;
      if (!to?.closest?.("[data-j]")) this.tooltip.hide();
    });
  }

  render(hits: readonly Hit[], att: Float32Array | null, hideSpecial = false): void {
    this.hits = hits;
    this.rows = [];
    this.rowsAtt = [];
    this.highlighted = null;
    this.tooltip.hide();
    this.el.replaceChildren();
    const head = document.createElement("div");
    head.className = "exbert-hits-header";
    const nextNote = hits.some((x) => x.describes_next) ? " (the match describes the next token)" : "";
    head.textContent = hits.length ? `${hits.length} hits${nextNote}` : "no hits";
    if (hits.length === 0) head.classList.add("exbert-muted");
    this.el.appendChild(head);
    const frag = document.createDocumentFragment();
    hits.forEach((hit, i) => {
      const row = document.createElement("div");
      row.className = "exbert-hit";
      row.setAttribute("data-testid", `hit-${i}`);
      row.setAttribute("data-hit-row", String(i));
      row.title = "click to load this sentence";
      const meta = document.createElement("span");
      meta.className = "exbert-hit-meta";
      meta.textContent = `${i + 1}. ${Number(hit.score).toFixed(3)}`;
      row.appendChild(meta);
      const attRow = hitAttentionRow(att, hit);
      this.rowsAtt.push(attRow);
      const shown = (j: number) => j === hit.token_index || hitTokenShown(hit, j, hideSpecial);
      const sh = shades(attRow, shown);
      const toks = hit.tokens ?? [];
      const line = document.createElement("span");
      line.className = "exbert-hit-tokens";
      toks.forEach((tok, j) => {
        if (!shown(j)) return;
        const s = document.createElement("span");
        s.className = `exbert-hit-token${j === hit.token_index ? " match" : ""}${hit.special?.[j] ? " special" : ""}`;
        s.setAttribute("data-testid", `hit-token-${i}-${j}`);
        s.setAttribute("data-j", String(j));
        s.style.setProperty("--a", (sh[j] ?? 0).toFixed(3));
        s.textContent = tok;
        line.appendChild(s);
        line.appendChild(document.createTextNode(" "));
      });
      row.appendChild(line);
      this.rows.push(row);
      frag.appendChild(row);
    });
    this.el.appendChild(frag);
  }

  highlight(i: number | null): void {
    if (this.highlighted !== null) this.rows[this.highlighted]?.classList.remove("highlight");
    this.highlighted = i;
    if (i !== null) {
      const r = this.rows[i];
      if (r) {
        r.classList.add("highlight");
        r.scrollIntoView?.({ block: "nearest" });
      }
    }
  }

  private showToken(i: number, j: number, el: HTMLElement): void {
    const hit = this.hits[i];
    if (!hit) return;
    const att = this.rowsAtt[i]?.[j];
    this.tooltip.show(el, hit.tokens?.[j] ?? "", [
      { label: "POS", value: hit.token_pos?.[j] || "–" },
      { label: "DEP", value: hit.token_dep?.[j] || "–" },
      { label: "entity", value: hit.token_ent?.[j] || "–" },
      { label: "attention", value: att === undefined ? "–" : att.toFixed(4) },
    ]);
  }
}
