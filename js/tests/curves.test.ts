import { describe, expect, it } from "vitest";
import { type Edge, edgeList } from "../src/panels/attention/attention";
import { pickCurves } from "../src/panels/attention/curves";
import { makeLayout } from "../src/panels/attention/layout";

describe("pickCurves", () => {
  const layout = makeLayout(Array.from({ length: 100 }, () => true)); // rows of 18 px
  const objects: Edge[] = [];
  for (let i = 0; i < 10; i++) for (let j = 0; j < 10; j++) objects.push({ from: i, to: j, w: (i * 10 + j) / 100 });
  const edges = edgeList(objects);

  it("keeps the strongest buckets past the cap and counts what was in view", () => {
    const pick = pickCurves(edges, null, 0.99, layout, 0, 1000, 30);
    expect(pick.inView).toBe(100);
    expect(pick.drawn).toBe(30);
    const kept = pick.buckets.flat().map((id) => edges.w[id]);
    expect(Math.min(...kept)).toBeGreaterThanOrEqual(0.62); // the 30 strongest, to a bucket's width
  });

  it("leaves out curves with no end near the visible rows", () => {
    const far = edgeList([
      { from: 0, to: 1, w: 1 },
      { from: 90, to: 99, w: 1 },
      { from: 2, to: 95, w: 1 },
    ]);
    const pick = pickCurves(far, null, 1, layout, 0, 100);
    expect(pick.inView).toBe(2);
    expect(pick.buckets.flat().sort()).toEqual([0, 2]);
    expect(pickCurves(far, [1], 1, layout, 0, 100).drawn).toBe(0);
  });
});
