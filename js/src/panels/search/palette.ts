// A stable colour per label string: the same label gets the same colour in
// the strips, their legend, both histograms and across searches.
//
// The 18 colours come from colour-blind-safe sets (Okabe & Ito; Paul Tol's
// bright, muted and light; IBM's), picked greedily so that each new colour is
// as far as possible (CIEDE2000) from those before it, under normal vision and
// simulated protanopia, deuteranopia and tritanopia (Machado et al. 2009) at
// once: any two differ by at least 7.5, the first nine by at least 11.8
// (js/tests/palette.test.ts checks it). The most frequent universal POS tags
// get the first colours, so the tags that fill most cells are the easiest to
// tell apart; every POS tag has its own. spaCy's 18 entity types take the 18
// colours too; dependency labels beyond the common ones, and any other label,
// are hashed into the palette.

export const PALETTE = [
  "#117733", // green
  "#f0e442", // yellow
  "#99ddff", // light cyan
  "#aa4499", // purple
  "#ee6677", // rose
  "#1a85ff", // blue
  "#aaaa00", // olive
  "#332288", // indigo
  "#44bb99", // teal
  "#882255", // wine
  "#cc79a7", // pink
  "#006cd1", // deep blue
  "#e1be6a", // sand
  "#009e73", // bluish green
  "#d41159", // crimson
  "#994f00", // brown
  "#5d3a9b", // violet
  "#997700", // ochre
];

/** Universal POS tags, most frequent in English text first (they get the most distinct colours). */
export const POS_TAGS = [
  "NOUN",
  "VERB",
  "PUNCT",
  "ADP",
  "DET",
  "PRON",
  "ADJ",
  "PROPN",
  "AUX",
  "ADV",
  "CCONJ",
  "PART",
  "SCONJ",
  "NUM",
  "INTJ",
  "SYM",
  "X",
  "SPACE",
];

/** spaCy's English entity types. */
export const ENTITY_TYPES = [
  "PERSON",
  "GPE",
  "DATE",
  "ORG",
  "CARDINAL",
  "NORP",
  "LOC",
  "TIME",
  "ORDINAL",
  "FAC",
  "MONEY",
  "QUANTITY",
  "PERCENT",
  "WORK_OF_ART",
  "EVENT",
  "PRODUCT",
  "LAW",
  "LANGUAGE",
];

/** spaCy's most frequent dependency labels in English text. */
export const DEP_LABELS = [
  "prep",
  "pobj",
  "det",
  "nsubj",
  "punct",
  "ROOT",
  "amod",
  "dobj",
  "advmod",
  "aux",
  "cc",
  "conj",
  "compound",
  "poss",
  "mark",
  "ccomp",
  "advcl",
  "xcomp",
];

const FIXED: Record<string, number> = {};
for (const list of [DEP_LABELS, ENTITY_TYPES, POS_TAGS]) {
  list.forEach((label, i) => {
    FIXED[label] = i; // POS last: a label in two lists (none today) takes its POS colour
  });
}

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
