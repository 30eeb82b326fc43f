// Sentence pairs and encoder–decoder parts, the pure logic: the pair filter on
// drawn edges, and which tokens each column shows. No DOM.

import type { State } from "../../generated/contract";
import type { EdgeList } from "../attention/attention";

export type PairFilter = State["pair_filter"];

/** filter name -> [row segment, column segment]; null: every segment. */
const SEGMENTS: Record<PairFilter, [number, number] | null> = {
  all: null,
  "A->A": [0, 0],
  "A->B": [0, 1],
  "B->A": [1, 0],
  "B->B": [1, 1],
};

export const PAIR_FILTERS = Object.keys(SEGMENTS) as PairFilter[];

export const FILTER_LABELS: Record<PairFilter, string> = {
  all: "all",
  "A->A": "A → A",
  "A->B": "A → B",
  "B->A": "B → A",
  "B->B": "B → B",
};

/**
 * Why `filter` leaves no line to draw on these tokens, or null: a filter on
 * sentence B while there is no B (the pair was cleared, the filter kept).
 */
export function emptyPairFilter(
  segments: readonly number[] | undefined,
  filter: PairFilter | undefined,
): string | null {
  const want = (filter && SEGMENTS[filter]) ?? null;
  if (!want?.includes(1) || hasPair(segments ?? [])) return null;
  return `No second sentence: the line filter “${FILTER_LABELS[filter ?? "all"]}” draws nothing. Choose “all” or “A → A”.`;
}

/**
 * The edges whose row (from) and column (to) segments match `filter`, in
 * their order. The filter applies after the threshold cut, so a kept edge has
 * the same weight as under "all" (kernel: exbert_widget/widget/pairs.py).
 */
export function filterPairs(
  edges: EdgeList,
  segments: readonly number[] | undefined,
  filter: PairFilter | undefined,
): EdgeList {
  const want = (filter && SEGMENTS[filter]) ?? null;
  if (!want || !segments) return edges;
  const keep: number[] = [];
  for (let k = 0; k < edges.count; k++) {
    if ((segments[edges.from[k]] ?? 0) === want[0] && (segments[edges.to[k]] ?? 0) === want[1]) keep.push(k);
  }
  const count = keep.length;
  const from = new Int32Array(count);
  const to = new Int32Array(count);
  const w = new Float32Array(count);
  for (let c = 0; c < count; c++) {
    const k = keep[c];
    from[c] = edges.from[k];
    to[c] = edges.to[k];
    w[c] = edges.w[k];
  }
  return { count, from, to, w };
}

/** Whether a pair is shown: some token is in segment B. */
export function hasPair(segments: readonly number[]): boolean {
  return segments.some((g) => g === 1);
}

/**
 * visible[i] restricted to a column's span [start, stop) of the token list
 * (encoder–decoder parts); an empty span is every token.
 */
export function inSpan(visible: readonly boolean[], span: readonly number[] | undefined): boolean[] {
  const [start, stop] = span?.length === 2 ? span : [0, visible.length];
  return visible.map((v, i) => v && i >= start && i < stop);
}

/**
 * Marks sentence B's tokens in a column (`segment-b`) and the first of them
 * shown (`segment-start`, drawn as a rule between the two sentences).
 * `item(i)` is token i's element, undefined when the column does not show it.
 */
export function markSegments(
  item: (i: number) => HTMLElement | undefined,
  order: readonly number[],
  segments: readonly number[] | undefined,
): void {
  let first = true;
  for (const i of order) {
    const el = item(i);
    if (!el) continue;
    const inB = (segments?.[i] ?? 0) === 1;
    el.classList.toggle("segment-b", inB);
    el.classList.toggle("segment-start", inB && first);
    if (inB) first = false;
  }
}
