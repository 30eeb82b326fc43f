// exBERT's matched-token summary: one column per offset around the match
// (-r..+r), one small cell per hit, coloured by the label (POS / DEP / entity)
// of the token at that offset, with a legend of the labels drawn. Hovering a
// cell highlights its hit row.

import { colorFor, EMPTY_COLOR } from "./palette";
import type { Field, Hit } from "./types";

export const MAX_OFFSET = 5;

export interface StripCell {
  token: string;
  label: string;
}

/**
 * The position offsets count from: the matched token, or for hits that
 * describe the next token (autoregressive models) the token after it, so the
 * "0" strip agrees with the "matched token" histogram.
 */
export function stripCenter(hit: Hit): number {
  return hit.token_index + (hit.describes_next ? 1 : 0);
}

/** Whether hit token `j` is drawn: special tokens are skipped while `hideSpecial`. */
export function hitTokenShown(hit: Pick<Hit, "special">, j: number, hideSpecial: boolean): boolean {
  return !(hideSpecial && hit.special?.[j]);
}

/**
 * Index of the token at `offset` from stripCenter, or null outside the
 * sentence. While `hideSpecial`, offsets count shown tokens only (offset -1 of
 * the first word is then outside the sentence, not [CLS]); offset 0 is always
 * the centre.
 */
export function stripIndex(hit: Hit, offset: number, hideSpecial = false): number | null {
  const n = (hit.tokens ?? []).length;
  let j = stripCenter(hit);
  if (!hideSpecial || !hit.special || offset === 0) j += offset;
  else {
    const step = offset > 0 ? 1 : -1;
    for (let left = Math.abs(offset); left > 0 && j >= 0 && j < n; ) {
      j += step;
      if (j >= 0 && j < n && hitTokenShown(hit, j, true)) left--;
    }
  }
  return j >= 0 && j < n ? j : null;
}

/** Token and label at stripCenter + offset (see stripIndex), or null outside the sentence. */
export function stripCell(hit: Hit, offset: number, field: Field, hideSpecial = false): StripCell | null {
  const j = stripIndex(hit, offset, hideSpecial);
  if (j === null) return null;
  const toks = hit.tokens ?? [];
  const col = field === "dep" ? hit.token_dep : field === "ent" ? hit.token_ent : hit.token_pos;
  return { token: toks[j], label: col?.[j] ?? "" };
}

export function offsetLabel(o: number): string {
  return o > 0 ? `+${o}` : String(o);
}

export interface LegendEntry {
  label: string; // "" = no label (or outside the sentence)
  count: number;
}

/** The labels the strips draw, most cells first (ties by label); "" last. */
export function legendEntries(labels: readonly string[]): LegendEntry[] {
  const counts = new Map<string, number>();
  for (const l of labels) counts.set(l, (counts.get(l) ?? 0) + 1);
  return Array.from(counts, ([label, count]) => ({ label, count })).sort(
    (a, b) =>
      Number(a.label === "") - Number(b.label === "") ||
      b.count - a.count ||
      (a.label < b.label ? -1 : a.label > b.label ? 1 : 0),
  );
}

export class SummaryStrips {
  readonly el: HTMLDivElement; // data-testid summary-strips
  readonly legend: HTMLDivElement; // data-testid strip-legend
  private radius = 1;

  constructor(private onHover: (hit: number | null) => void) {
    this.el = document.createElement("div");
    this.el.className = "exbert-strips";
    this.el.setAttribute("data-testid", "summary-strips");
    this.el.addEventListener("mouseover", (ev) => {
      const t = (ev.target as HTMLElement | null)?.closest?.("[data-hit]") as HTMLElement | null;
      if (t) this.onHover(Number(t.getAttribute("data-hit")));
    });
    this.el.addEventListener("mouseleave", () => this.onHover(null));
    this.legend = document.createElement("div");
    this.legend.className = "exbert-legend";
    this.legend.setAttribute("data-testid", "strip-legend");
  }

  get offsetRadius(): number {
    return this.radius;
  }

  /** Returns true when the radius changed. */
  setRadius(r: number): boolean {
    const nr = Math.max(0, Math.min(MAX_OFFSET, r));
    const changed = nr !== this.radius;
    this.radius = nr;
    return changed;
  }

  render(hits: readonly Hit[], field: Field, hideSpecial = false): void {
    this.el.replaceChildren();
    this.el.setAttribute("data-radius", String(this.radius));
    this.el.setAttribute("data-hide-special", String(hideSpecial));
    // Strips colour by token labels; "offset" is not one, so it falls back to POS.
    const f: Field = field === "offset" ? "pos" : field;
    const drawn: string[] = [];
    for (let o = -this.radius; o <= this.radius; o++) {
      const col = document.createElement("div");
      col.className = `exbert-strip${o === 0 ? " exbert-strip-match" : ""}`;
      col.setAttribute("data-offset", String(o));
      col.setAttribute("data-testid", `strip-${offsetLabel(o)}`);
      const head = document.createElement("div");
      head.className = "exbert-strip-head";
      head.textContent = offsetLabel(o);
      col.appendChild(head);
      hits.forEach((hit, i) => {
        const c = stripCell(hit, o, f, hideSpecial);
        const cell = document.createElement("div");
        cell.className = "exbert-strip-cell";
        cell.setAttribute("data-hit", String(i));
        cell.setAttribute("data-testid", `strip-cell-${o}-${i}`);
        cell.setAttribute("data-label", c ? c.label : "");
        cell.style.backgroundColor = c ? colorFor(c.label) : EMPTY_COLOR;
        if (!c) cell.classList.add("empty");
        cell.title = c ? `${c.token}: ${c.label || "(none)"}` : "(outside the sentence)";
        col.appendChild(cell);
        drawn.push(c ? c.label : "");
      });
      this.el.appendChild(col);
    }
    this.renderLegend(legendEntries(drawn), f);
  }

  private renderLegend(entries: readonly LegendEntry[], field: Field): void {
    this.legend.replaceChildren();
    if (entries.length === 0) return;
    const title = document.createElement("div");
    title.className = "exbert-legend-title";
    title.textContent = field === "ent" ? "entity" : field.toUpperCase();
    this.legend.appendChild(title);
    for (const { label, count } of entries) {
      const item = document.createElement("div");
      item.className = "exbert-legend-item";
      item.setAttribute("data-testid", `legend-${label || "none"}`);
      item.setAttribute("data-label", label);
      const swatch = document.createElement("span");
      swatch.className = "exbert-legend-swatch";
      swatch.style.backgroundColor = colorFor(label);
      const text = document.createElement("span");
      text.textContent = label || "(none)";
      item.title = `${count} cell${count === 1 ? "" : "s"}`;
      item.append(swatch, text);
      this.legend.appendChild(item);
    }
  }
}
