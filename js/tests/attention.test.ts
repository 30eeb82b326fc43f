import { describe, expect, it } from "vitest";
import {
  combineHeads,
  EdgeBuilder,
  type EdgeList,
  edgeObjects,
  edgeSignature,
  edgesOf,
  headGridValues,
  indexEdges,
  linesToEdges,
  removeHidden,
  thresholdEdges,
  visibleMask,
} from "../src/panels/attention/attention";

const f32 = (xs: number[]) => Float32Array.from(xs);
const close = (a: ArrayLike<number>, b: number[]) => {
  expect(a.length).toBe(b.length);
  b.forEach((v, i) => {
    expect(a[i]).toBeCloseTo(v, 6);
  });
};
const pairs = (edges: EdgeList) => edgeObjects(edges).map((e) => [e.from, e.to]);

// Two heads, n = 2.
const A0 = [1, 0, 0.5, 0.5];
const A1 = [0, 1, 0.25, 0.75];
const ATT = f32([...A0, ...A1]);

describe("combineHeads", () => {
  it("takes the mean of the selected heads", () => {
    close(combineHeads(ATT, 2, 2, [0, 1], null), [0.5, 0.5, 0.375, 0.625]);
    close(combineHeads(ATT, 2, 2, [1], null), A1);
    close(combineHeads(ATT, 2, 2, [1, 1, 7], null), A1); // duplicates and out-of-range ignored
  });
  it("returns zeros when no head is selected", () => {
    close(combineHeads(ATT, 2, 2, [], null), [0, 0, 0, 0]);
  });
  it("uses head_weights as a linear combination, overriding heads", () => {
    close(combineHeads(ATT, 2, 2, [0], [0.25, 0.75]), [0.25, 0.75, 0.3125, 0.6875]);
    // 2*A0 - A1 = [[2, -1], [0.75, 0.25]] -> negatives clamped to 0
    close(combineHeads(ATT, 2, 2, [], [2, -1]), [2, 0, 0.75, 0.25]);
  });
  it("falls back to heads when head_weights is empty", () => {
    close(combineHeads(ATT, 2, 2, [0], []), A0);
  });
});

describe("removeHidden", () => {
  it("zeros special rows/columns and renormalises the remaining rows", () => {
    const m = f32([0.5, 0.25, 0.25, 0.2, 0.4, 0.4, 0.6, 0.3, 0.1]);
    const vis = visibleMask(3, [true, false, false], true);
    expect(vis).toEqual([false, true, true]);
    close(removeHidden(m, 3, vis), [0, 0, 0, 0, 0.5, 0.5, 0, 0.75, 0.25]);
  });
  it("keeps everything (already normalised) when nothing is hidden", () => {
    const m = f32([0.5, 0.25, 0.25, 0.2, 0.4, 0.4, 0.6, 0.3, 0.1]);
    close(removeHidden(m, 3, visibleMask(3, [true, false, true], false)), Array.from(m));
  });
  it("leaves a row that only attended to hidden tokens at zero", () => {
    const m = f32([1, 0, 0, 1]);
    close(removeHidden(m, 2, [true, false]), [1, 0, 0, 0]);
    close(removeHidden(f32([0, 1, 0, 1]), 2, [true, false]), [0, 0, 0, 0]);
  });
});

describe("thresholdEdges", () => {
  it("keeps edges by descending weight until the cumulative sum reaches threshold * row sum", () => {
    const m = f32([0.5, 0.3, 0.2, 0.1, 0.1, 0.8, 0.2, 0.7, 0.1]);
    expect(pairs(thresholdEdges(m, 3, 0.7))).toEqual([
      [0, 0],
      [0, 1],
      [1, 2],
      [2, 1],
    ]);
    // exactly reaching the target stops there (0.5 of row 0 is its first edge)
    expect(pairs(thresholdEdges(m, 3, 0.5))).toEqual([
      [0, 0],
      [1, 2],
      [2, 1],
    ]);
    expect(pairs(thresholdEdges(m, 3, 0.81))).toEqual([
      [0, 0],
      [0, 1],
      [0, 2],
      [1, 2],
      [1, 0],
      [2, 1],
      [2, 0],
    ]);
  });
  it("uses the row sum, not 1 (rows need not be normalised)", () => {
    // row sums to 2: 0.5 * 2 = 1 -> keep 1.0 only; 0.6 * 2 = 1.2 -> keep 1.0, 0.6
    const m = f32([1.0, 0.6, 0.4, 0, 0, 0, 0, 0, 0]);
    expect(pairs(thresholdEdges(m, 3, 0.5))).toEqual([[0, 0]]);
    expect(pairs(thresholdEdges(m, 3, 0.6))).toEqual([
      [0, 0],
      [0, 1],
    ]);
  });
  it("breaks ties by lower column index", () => {
    const m = f32([0.25, 0.25, 0.25, 0.25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(pairs(thresholdEdges(m, 4, 0.5))).toEqual([
      [0, 0],
      [0, 1],
    ]);
    expect(pairs(thresholdEdges(m, 4, 0.6))).toEqual([
      [0, 0],
      [0, 1],
      [0, 2],
    ]);
    const m2 = f32([0.1, 0.45, 0.45, 0, 0, 0, 0, 0, 0]);
    expect(pairs(thresholdEdges(m2, 3, 0.4))).toEqual([[0, 1]]);
  });
  it("keeps every nonzero edge at threshold 1.0 and none at 0", () => {
    const m = f32([0, 0.6, 0, 0.4, 0.1, 0.1, 0.1, 0.7, 0, 0, 0, 0, 1e-7, 0, 0, 1 - 1e-7]);
    expect(pairs(thresholdEdges(m, 4, 1.0))).toEqual([
      [0, 1],
      [0, 3],
      [1, 3],
      [1, 0],
      [1, 1],
      [1, 2],
      [3, 3],
      [3, 0],
    ]);
    expect(edgeObjects(thresholdEdges(m, 4, 0))).toEqual([]);
  });
  it("carries the weights and skips all-zero rows", () => {
    const e = thresholdEdges(f32([0, 0, 0.25, 0.75]), 2, 0.7);
    expect(edgeObjects(e)).toEqual([{ from: 1, to: 1, w: 0.75 }]);
  });
  it("composes with hide-special: cut applies to the renormalised row", () => {
    // token 0 special; row 2 after removal = [0, 0.75, 0.25]
    const m = f32([0.5, 0.25, 0.25, 0.2, 0.4, 0.4, 0.6, 0.3, 0.1]);
    const shown = removeHidden(m, 3, [false, true, true]);
    expect(pairs(thresholdEdges(shown, 3, 0.7))).toEqual([
      [1, 1],
      [1, 2],
      [2, 1],
    ]);
  });
});

describe("edge index, grid values, signature", () => {
  it("indexes outgoing and incoming edges per token", () => {
    const edges = thresholdEdges(f32([0.5, 0.5, 0, 1]), 2, 1);
    const idx = indexEdges(edges, 2);
    const ids = (side: "left" | "right", i: number) => Array.from(edgesOf(idx, side, i));
    expect([ids("left", 0), ids("left", 1)]).toEqual([[0, 1], [2]]);
    expect([ids("right", 0), ids("right", 1)]).toEqual([[0], [1, 2]]);
    expect(ids("left", 2)).toEqual([]); // no such token
    expect(idx.maxWeight).toBe(1);
  });
  it("computes row max (left) and column mean (right) per head over displayed tokens", () => {
    const att = f32([0.5, 0.3, 0.2, 0.1, 0.1, 0.8, 0.2, 0.7, 0.1, /* head 1 */ 1, 0, 0, 0, 1, 0, 0, 0, 1]);
    const g = headGridValues(att, 2, 3, [true, true, true]);
    close(g.left, [0.5, 1, 0.8, 1, 0.7, 1]);
    close(g.right, [0.8 / 3, 1 / 3, 1.1 / 3, 1 / 3, 1.1 / 3, 1 / 3]);
    // hiding token 0 renormalises rows 1 and 2 of head 0 over columns 1, 2
    const h = headGridValues(att, 2, 3, [false, true, true]);
    close(h.left, [0, 0, 0.8 / 0.9, 1, 0.875, 1]);
    close(h.right, [0, 0, (0.1 / 0.9 + 0.875) / 2, 0.5, (0.8 / 0.9 + 0.125) / 2, 0.5]);
  });
  it("changes the signature when the edge set or the layer changes", () => {
    const a = thresholdEdges(f32([0.5, 0.5, 0, 1]), 2, 1);
    const b = thresholdEdges(f32([0.5, 0.5, 0, 1]), 2, 0.5);
    expect(edgeSignature(a, null, "L0")).toBe(edgeSignature(a, null, "L0"));
    expect(edgeSignature(a, null, "L0")).not.toBe(edgeSignature(b, null, "L0"));
    expect(edgeSignature(a, null, "L0")).not.toBe(edgeSignature(a, null, "L1"));
    expect(edgeSignature(a, [0], "L0")).not.toBe(edgeSignature(a, null, "L0"));
    expect(edgeSignature(a, null)).toMatch(/^[0-9a-f]{8}$/);
  });
});

describe("the kernel's lines", () => {
  it("become edges row by row, weights scaled back from 16-bit levels", () => {
    const rows = [0, 2, 2, 3];
    const lines = [2, 65535, 0, 32768, 1, 6554];
    const e = linesToEdges(rows, lines, 0.5, 3);
    expect(edgeObjects(e).map((x) => [x.from, x.to])).toEqual([
      [0, 2],
      [0, 0],
      [2, 1],
    ]);
    close(e.w, [0.5, (0.5 * 32768) / 65535, (0.5 * 6554) / 65535]);
    expect(linesToEdges([0, 5], lines, 1, 1).count).toBe(0); // rows and lines disagree
  });
  it("grow as needed", () => {
    const b = new EdgeBuilder(1);
    for (let k = 0; k < 100; k++) b.push(k, k + 1, k / 100);
    const e = b.done();
    expect(e.count).toBe(100);
    expect([e.from[99], e.to[99], e.w[99]]).toEqual([99, 100, Math.fround(0.99)]);
  });
});
