// @vitest-environment jsdom
import { describe, expect, it } from "vitest";
import { CommandChannel } from "../src/core/commands";
import { ViewModel } from "../src/core/model";
import { sortBars } from "../src/panels/search/histograms";
import { hitAttentionRow, shades } from "../src/panels/search/hitAttention";
import { colorFor, EMPTY_COLOR } from "../src/panels/search/palette";
import { SearchPanel } from "../src/panels/search/panel";
import { offsetLabel, stripCell, stripIndex } from "../src/panels/search/strips";
import type { Hit } from "../src/panels/search/types";
import { FakeModel, f16Payload } from "./fakeModel";

function hit(over: Partial<Hit> = {}): Hit {
  return {
    sentence_id: 0,
    token_index: 1,
    score: 0.9,
    token: "girl",
    pos: "NOUN",
    dep: "nsubj",
    ent: "",
    sentence: "The girl ran",
    tokens: ["The", "girl", "ran"],
    token_pos: ["DET", "NOUN", "VERB"],
    token_dep: ["det", "nsubj", "ROOT"],
    token_ent: ["", "", ""],
    special: [false, false, false],
    max_att_index: 0,
    max_att_token: "The",
    max_att_pos: "DET",
    max_att_dep: "det",
    max_att_ent: "",
    max_att_offset: -1,
    describes_next: false,
    att_offset: 0,
    att_length: 3,
    whole_word: "girl",
    token_spans: [], // no characters (a format-2 corpus): tokens are drawn as they are
    word_spans: [],
    ...over,
  };
}

describe("sortBars", () => {
  it("sorts by count descending, ties by label, drops zero counts", () => {
    expect(sortBars({ VERB: 3, NOUN: 10, ADJ: 3, X: 0, DET: 5 })).toEqual([
      { label: "NOUN", count: 10 },
      { label: "DET", count: 5 },
      { label: "ADJ", count: 3 },
      { label: "VERB", count: 3 },
    ]);
    expect(sortBars(undefined)).toEqual([]);
    expect(sortBars({ "-1": 2, "+2": 4, "": 1 }).map((b) => b.label)).toEqual(["+2", "-1", ""]);
  });
});

describe("hitAttentionRow", () => {
  const data = Float32Array.from([0.1, 0.2, 0.7, 0.5, 0.25, 0.125, 0.125]);
  it("slices [att_offset, att_offset + att_length)", () => {
    expect(Array.from(hitAttentionRow(data, { att_offset: 0, att_length: 3 }))).toEqual(
      [0.1, 0.2, 0.7].map(Math.fround),
    );
    expect(Array.from(hitAttentionRow(data, { att_offset: 3, att_length: 4 }))).toEqual([0.5, 0.25, 0.125, 0.125]);
  });
  it("pads with zeros past the end and handles missing data", () => {
    expect(Array.from(hitAttentionRow(data, { att_offset: 6, att_length: 3 }))).toEqual([0.125, 0, 0]);
    expect(Array.from(hitAttentionRow(null, { att_offset: 0, att_length: 2 }))).toEqual([0, 0]);
  });
  it("shades relative to the row maximum", () => {
    expect(Array.from(shades(Float32Array.from([0.5, 0.25, 0])))).toEqual([1, 0.5, 0]);
    expect(Array.from(shades(Float32Array.from([0, 0])))).toEqual([0, 0]);
  });
  it("takes the maximum over shown tokens only", () => {
    const row = Float32Array.from([0.8, 0.1, 0.05, 0.05]);
    expect(Array.from(shades(row, (j) => j > 0))).toEqual([8, 1, 0.5, 0.5]);
  });
});

describe("strips and palette", () => {
  it("reads the label at an offset from the match, per field", () => {
    expect(stripCell(hit(), -1, "pos")).toEqual({ token: "The", label: "DET" });
    expect(stripCell(hit(), 0, "dep")).toEqual({ token: "girl", label: "nsubj" });
    expect(stripCell(hit(), 1, "ent")).toEqual({ token: "ran", label: "" });
    expect(stripCell(hit(), 1, "offset")).toEqual({ token: "ran", label: "VERB" });
    expect(stripCell(hit(), 2, "pos")).toBeNull();
    expect(stripCell(hit(), -2, "pos")).toBeNull();
    // a hit that describes the next token centres on token_index + 1
    expect(stripCell(hit({ token_index: 0, describes_next: true }), 0, "pos")).toEqual({
      token: "girl",
      label: "NOUN",
    });
    expect(stripCell(hit({ token_index: 0, describes_next: true }), -1, "pos")).toEqual({ token: "The", label: "DET" });
    expect(offsetLabel(-2)).toBe("-2");
    expect(offsetLabel(0)).toBe("0");
    expect(offsetLabel(3)).toBe("+3");
  });
  it("gives stable, distinct colours to common labels", () => {
    expect(colorFor("NOUN")).toBe(colorFor("NOUN"));
    expect(colorFor("NOUN")).not.toBe(colorFor("VERB"));
    expect(colorFor("nsubj")).toMatch(/^#[0-9a-f]{6}$/);
    expect(colorFor("")).toBe(EMPTY_COLOR);
    expect(colorFor("(none)")).toBe(EMPTY_COLOR);
  });
});

// A BERT-like hit: [CLS] The girl ran [SEP], matched on "The" (index 1).
function bertHit(over: Partial<Hit> = {}): Hit {
  return hit({
    token_index: 1,
    token: "The",
    pos: "DET",
    dep: "det",
    tokens: ["[CLS]", "The", "girl", "ran", "[SEP]"],
    special: [true, false, false, false, true],
    token_pos: ["", "DET", "NOUN", "VERB", ""],
    token_dep: ["", "det", "nsubj", "ROOT", ""],
    token_ent: ["", "", "", "", ""],
    att_offset: 0,
    att_length: 5,
    ...over,
  });
}

describe("strips skip special tokens while hide_special", () => {
  it("counts offsets over shown tokens only", () => {
    const h = bertHit();
    expect(stripIndex(h, -1, true)).toBeNull(); // not [CLS]
    expect(stripIndex(h, -1, false)).toBe(0);
    expect(stripIndex(h, 0, true)).toBe(1);
    expect(stripIndex(h, 2, true)).toBe(3);
    expect(stripIndex(h, 3, true)).toBeNull(); // not [SEP]
    expect(stripIndex(h, 3, false)).toBe(4);
    expect(stripCell(h, -1, "pos", true)).toBeNull();
    expect(stripCell(h, -1, "pos", false)).toEqual({ token: "[CLS]", label: "" });
    expect(stripCell(bertHit({ token_index: 3 }), 1, "pos", true)).toBeNull();
    expect(stripCell(bertHit({ token_index: 3 }), -2, "pos", true)).toEqual({ token: "The", label: "DET" });
  });
  it("steps over special tokens inside a sentence (pairs, added BOS)", () => {
    const h = bertHit({
      token_index: 2,
      tokens: ["<s>", "a", "b", "</s>", "</s>", "c", "</s>"],
      special: [true, false, false, true, true, false, true],
      token_pos: ["", "A", "B", "", "", "C", ""],
      att_length: 7,
    });
    expect(stripCell(h, 1, "pos", true)).toEqual({ token: "c", label: "C" });
    expect(stripCell(h, -2, "pos", true)).toBeNull();
    expect(stripCell(h, 1, "pos", false)).toEqual({ token: "</s>", label: "" });
    // describes_next: offsets from the next token (index 1 -> centre 2)
    const next = { ...h, token_index: 1, describes_next: true };
    expect(stripCell(next, 0, "pos", true)).toEqual({ token: "b", label: "B" });
    expect(stripCell(next, 1, "pos", true)).toEqual({ token: "c", label: "C" });
    expect(stripCell(next, -1, "pos", true)).toEqual({ token: "a", label: "A" });
    expect(stripCell(next, -2, "pos", true)).toBeNull();
  });
  it("without a special list behaves as before", () => {
    const h = hit();
    expect(stripCell(h, -1, "pos", true)).toEqual({ token: "The", label: "DET" });
    expect(stripCell(h, 2, "pos", true)).toBeNull();
  });
});

describe("hit list with hide_special", () => {
  const hits = [bertHit(), bertHit({ sentence_id: 1, token_index: 3, att_offset: 5 })];
  const attention = f16Payload([0.6, 0.2, 0.1, 0.05, 0.05, 0.3, 0.1, 0.1, 0.2, 0.3], [10]);

  function mount(over: Record<string, unknown> = {}) {
    const model = new FakeModel({
      has_corpus: true,
      selected: 1,
      heads: [0],
      head_weights: null,
      search_k: 50,
      search_busy: false,
      search_error: "",
      hide_special: true,
      hit_list: hits,
      hits_attention: attention,
      summaries: {},
      ...over,
    });
    const root = document.createElement("div");
    document.body.appendChild(root);
    const view = new ViewModel(model);
    const panel = new SearchPanel(view, new CommandChannel(model), root);
    root.appendChild(panel.el);
    const update = () => panel.update(view.slice(panel.keys));
    update();
    const q = (id: string) => root.querySelector(`[data-testid="${id}"]`) as HTMLElement | null;
    return { model, update, root, q };
  }

  it("does not draw special tokens, keeps full-list indices", () => {
    const { q } = mount();
    const row = q("hit-0")!;
    expect(Array.from(row.querySelectorAll(".exbert-hit-token")).map((t) => t.textContent)).toEqual([
      "The",
      "girl",
      "ran",
    ]);
    expect(row.textContent).not.toContain("[CLS]");
    expect(row.textContent).not.toContain("[SEP]");
    expect(q("hit-token-0-0")).toBeNull();
    expect(q("hit-token-0-4")).toBeNull();
    expect(q("hit-token-0-1")!.classList.contains("match")).toBe(true);
    expect(q("hit-token-1-3")!.classList.contains("match")).toBe(true);
    expect(q("hit-token-1-3")!.textContent).toBe("ran");
    // shading relative to the shown tokens' maximum: [CLS] (0.6) does not count
    expect(q("hit-token-0-2")!.style.getPropertyValue("--a")).toBe("0.500");
    expect(q("hit-token-0-1")!.style.getPropertyValue("--a")).toBe("1.000");
    // hover shows the raw value at the full-list index
    q("hit-token-0-2")!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(q("hit-tooltip")!.textContent).toContain("NOUN");
    expect(q("hit-tooltip")!.textContent).toContain("0.1000");
    // strips: offset -1 of the first word is empty, +1 of the last word too
    expect(q("strip-cell--1-0")!.classList.contains("empty")).toBe(true);
    expect(q("strip-cell-1-0")!.getAttribute("data-label")).toBe("NOUN");
    expect(q("strip-cell-1-1")!.classList.contains("empty")).toBe(true);
    expect(q("strip-cell--1-1")!.getAttribute("data-label")).toBe("NOUN");
  });

  it("draws special tokens when hide_special is false, and follows the trait", () => {
    const { model, update, q } = mount({ hide_special: false });
    expect(Array.from(q("hit-0")!.querySelectorAll(".exbert-hit-token")).map((t) => t.textContent)).toEqual([
      "[CLS]",
      "The",
      "girl",
      "ran",
      "[SEP]",
    ]);
    expect(q("hit-token-0-0")!.classList.contains("special")).toBe(true);
    expect(q("hit-token-0-0")!.style.getPropertyValue("--a")).toBe("1.000");
    expect(q("strip-cell--1-0")!.classList.contains("empty")).toBe(false);
    expect(q("strip-cell--1-0")!.title).toContain("[CLS]");
    expect(q("strip-cell-1-1")!.title).toContain("[SEP]");

    model.set("hide_special", true);
    update();
    expect(q("hit-token-0-0")).toBeNull();
    expect(q("hit-token-0-1")!.classList.contains("match")).toBe(true);
    expect(q("strip-cell--1-0")!.classList.contains("empty")).toBe(true);
    model.set("hide_special", false);
    update();
    expect(q("hit-token-0-0")!.textContent).toBe("[CLS]");
  });

  it("always draws the matched token, even a special one", () => {
    const { q } = mount({ hit_list: [bertHit({ token_index: 0 })] });
    expect(q("hit-token-0-0")!.classList.contains("match")).toBe(true);
    expect(q("hit-token-0-4")).toBeNull();
    expect(q("strip-cell-0-0")!.title).toContain("[CLS]");
    expect(q("strip-cell-1-0")!.title).toContain("The");
  });
});

describe("hits read as words", () => {
  // "From Alnwick it ran": al ##n ##wick are one word; the match is the piece "n".
  const sentence = "From Alnwick it ran.";
  const wordHit = hit({
    sentence,
    token_index: 3,
    token: "##n",
    tokens: ["[CLS]", "from", "al", "##n", "##wick", "it", "ran", ".", "[SEP]"],
    special: [true, false, false, false, false, false, false, false, true],
    token_pos: ["", "ADP", "PROPN", "PROPN", "PROPN", "PRON", "VERB", "PUNCT", ""],
    token_dep: ["", "prep", "pobj", "pobj", "pobj", "nsubj", "ROOT", "punct", ""],
    token_ent: ["", "", "GPE", "GPE", "GPE", "", "", "", ""],
    whole_word: "Alnwick",
    token_spans: [
      [-1, -1],
      [0, 4],
      [5, 7],
      [7, 8],
      [8, 12],
      [13, 15],
      [16, 19],
      [19, 20],
      [-1, -1],
    ],
    word_spans: [
      [-1, -1],
      [0, 4],
      [5, 12],
      [5, 12],
      [5, 12],
      [13, 15],
      [16, 19],
      [19, 20],
      [-1, -1],
    ],
    att_offset: 0,
    att_length: 9,
  });

  function mountHits(hideSpecial: boolean) {
    const model = new FakeModel({
      has_corpus: true,
      selected: 1,
      heads: [0],
      head_weights: null,
      search_k: 50,
      hide_special: hideSpecial,
      hit_list: [wordHit],
      hits_attention: f16Payload([0.5, 0.1, 0.05, 0.2, 0.05, 0.05, 0.025, 0.025, 0], [9]),
      summaries: {},
    });
    const root = document.createElement("div");
    document.body.appendChild(root);
    const view = new ViewModel(model);
    const panel = new SearchPanel(view, new CommandChannel(model), root);
    root.appendChild(panel.el);
    panel.update(view.slice(panel.keys));
    const q = (id: string) => root.querySelector(`[data-testid="${id}"]`) as HTMLElement | null;
    return { root, q, panel, view, model };
  }

  it("draws the sentence's own text, each piece a span inside its word", () => {
    const { root, q } = mountHits(true);
    const line = root.querySelector("[data-testid=hit-0] .exbert-hit-tokens")!;
    expect(line.textContent).toBe("From Alnwick it ran.");
    const match = q("hit-token-0-3")!;
    expect(match.textContent).toBe("n");
    expect(match.classList.contains("match")).toBe(true);
    const word = match.parentElement!;
    expect(word.classList.contains("exbert-hit-word")).toBe(true);
    expect(word.textContent).toBe("Alnwick");
    expect(Array.from(word.children).map((c) => c.getAttribute("data-testid"))).toEqual([
      "hit-token-0-2",
      "hit-token-0-3",
      "hit-token-0-4",
    ]);
    expect(q("hit-token-0-0")).toBeNull(); // [CLS] hidden
    match.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    const tip = q("hit-tooltip")!.textContent!;
    expect(tip).toContain("##n"); // the model's token
    expect(tip).toContain("Alnwick"); // and its word
    expect(tip).toContain("GPE");
  });

  it("shows special tokens apart from the words when they are drawn", () => {
    const { root } = mountHits(false);
    const line = root.querySelector("[data-testid=hit-0] .exbert-hit-tokens")!;
    expect(line.textContent).toBe("[CLS] From Alnwick it ran. [SEP]");
  });
});

describe("strip legend", () => {
  it("lists the labels the strips draw, with their colours, for the field shown", () => {
    const hits = [bertHit(), bertHit({ sentence_id: 1, token_index: 2, att_offset: 5 })];
    const model = new FakeModel({
      has_corpus: true,
      selected: 1,
      heads: [0],
      head_weights: null,
      search_k: 50,
      hide_special: true,
      hit_list: hits,
      hits_attention: f16Payload(new Array(10).fill(0.1), [10]),
      summaries: {},
    });
    const root = document.createElement("div");
    document.body.appendChild(root);
    const view = new ViewModel(model);
    const panel = new SearchPanel(view, new CommandChannel(model), root);
    root.appendChild(panel.el);
    panel.update(view.slice(panel.keys));
    const legend = root.querySelector("[data-testid=strip-legend]")!;
    const labels = () =>
      Array.from(legend.querySelectorAll("[data-testid^=legend-]")).map((e) => e.getAttribute("data-label"));
    const drawn = new Set(
      Array.from(root.querySelectorAll(".exbert-strip-cell")).map((c) => c.getAttribute("data-label")),
    );
    expect(new Set(labels())).toEqual(drawn);
    expect(labels()).toEqual(["DET", "NOUN", "VERB", ""]); // most cells first (ties by label), none last
    const swatch = legend.querySelector("[data-testid=legend-NOUN] .exbert-legend-swatch") as HTMLElement;
    const cell = root.querySelector(".exbert-strip-cell[data-label=NOUN]") as HTMLElement;
    expect(swatch.style.backgroundColor).toBe(cell.style.backgroundColor);
    expect(legend.textContent).toContain("(none)");
    const field = root.querySelector("[data-testid=hist-field]") as HTMLSelectElement;
    field.value = "dep";
    field.dispatchEvent(new Event("change"));
    expect(labels()).toContain("nsubj");
    expect(legend.querySelector(".exbert-legend-title")!.textContent).toBe("DEP");
    root.remove();
  });
});
