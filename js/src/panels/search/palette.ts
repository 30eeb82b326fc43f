// A stable colour per label string: the same label gets the same colour in
// the strips, both histograms and across searches. Common spaCy labels get
// fixed, distinct colours; anything else is hashed into the palette.

const PALETTE = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
  "#1f77b4",
  "#aec7e8",
  "#ff7f0e",
  "#ffbb78",
  "#2ca02c",
  "#98df8a",
  "#d62728",
  "#ff9896",
  "#9467bd",
  "#c5b0d5",
  "#8c564b",
  "#c49c94",
  "#e377c2",
  "#17becf",
];

const FIXED: Record<string, number> = {};
// Universal POS tags first (the default field), in a fixed order.
[
  "NOUN",
  "VERB",
  "ADJ",
  "ADV",
  "PRON",
  "DET",
  "ADP",
  "AUX",
  "CCONJ",
  "SCONJ",
  "PART",
  "NUM",
  "PROPN",
  "PUNCT",
  "INTJ",
  "SYM",
  "X",
  "SPACE",
].forEach((l, i) => {
  FIXED[l] = i;
});

export const EMPTY_COLOR = "#d9d9d9";
export const NONE_LABEL = "(none)";

export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function colorFor(label: string | null | undefined): string {
  // "" (no entity) and the kernel's "(none)" summary label are the same thing.
  if (label === null || label === undefined || label === "" || label === NONE_LABEL) return EMPTY_COLOR;
  const fixed = FIXED[label];
  if (fixed !== undefined) return PALETTE[fixed % PALETTE.length];
  return PALETTE[hashString(label) % PALETTE.length];
}
