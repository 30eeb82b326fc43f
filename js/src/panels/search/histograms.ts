// The two histograms ("matched word", "max attention"): bars sorted by count,
// coloured by label. Pure sorting is separate from drawing for testing.

import { colorFor } from "./palette";
import type { Counts } from "./types";

export interface Bar {
  label: string;
  count: number;
}

/** Bars by descending count; equal counts by label so the order is stable. */
export function sortBars(counts: Counts | null | undefined): Bar[] {
  if (!counts) return [];
  return Object.entries(counts)
    .map(([label, count]) => ({ label, count: Number(count) || 0 }))
    .filter((b) => b.count > 0)
    .sort((a, b) => b.count - a.count || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
}

/** Shown text for a label; an empty label (e.g. no entity) needs something visible. */
export function displayLabel(label: string): string {
  return label === "" ? "(none)" : label;
}

export function renderHistogram(
  el: HTMLElement,
  title: string,
  barPrefix: string, // "match" | "max-att"
  counts: Counts | null | undefined,
): void {
  el.replaceChildren();
  const head = document.createElement("div");
  head.className = "exbert-hist-title";
  head.textContent = title;
  el.appendChild(head);
  const bars = sortBars(counts);
  if (bars.length === 0) {
    const empty = document.createElement("div");
    empty.className = "exbert-hist-empty";
    empty.textContent = "no data";
    el.appendChild(empty);
    return;
  }
  const max = bars[0].count;
  for (const b of bars) {
    const row = document.createElement("div");
    row.className = "exbert-hist-bar";
    row.setAttribute("data-testid", `hist-bar-${barPrefix}-${b.label}`);
    row.setAttribute("data-label", b.label);
    row.setAttribute("data-count", String(b.count));
    const label = document.createElement("span");
    label.className = "exbert-hist-label";
    label.textContent = displayLabel(b.label);
    const track = document.createElement("span");
    track.className = "exbert-hist-track";
    const fill = document.createElement("span");
    fill.className = "exbert-hist-fill";
    fill.style.width = `${(100 * b.count) / max}%`;
    fill.style.backgroundColor = colorFor(b.label);
    track.appendChild(fill);
    const count = document.createElement("span");
    count.className = "exbert-hist-count";
    count.textContent = String(b.count);
    row.append(label, track, count);
    el.appendChild(row);
  }
}
