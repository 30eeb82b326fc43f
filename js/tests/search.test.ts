import { describe, expect, it } from "vitest";
import { hitAttentionRow, shades } from "../src/search/hitAttention";
import { sortBars } from "../src/search/histograms";
import { EMPTY_COLOR, colorFor } from "../src/search/palette";
import { offsetLabel, stripCell } from "../src/search/strips";
import { Hit } from "../src/search/types";

function hit(over: Partial<Hit> = {}): Hit {
  return {
    sentence_id: 0, token_index: 1, score: 0.9, token: "girl", pos: "NOUN", dep: "nsubj", ent: "", sentence: "The girl ran",
    tokens: ["The", "girl", "ran"], token_pos: ["DET", "NOUN", "VERB"], token_dep: ["det", "nsubj", "ROOT"], token_ent: ["", "", ""],
    att_offset: 0, att_length: 3, ...over,
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
    expect(Array.from(hitAttentionRow(data, { att_offset: 0, att_length: 3 }))).toEqual([0.1, 0.2, 0.7].map(Math.fround));
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
    expect(stripCell(hit({ token_index: 0, describes_next: true }), 0, "pos")).toEqual({ token: "girl", label: "NOUN" });
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
