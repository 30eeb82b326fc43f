// @vitest-environment jsdom
// Sentence pairs and encoder–decoder parts in the view: the pair filter keeps
// exactly the lines whose row and column segments match (both modes), and an
// encoder–decoder part shows its rows on the left and its columns on the right.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import widget from "../src/index";
import {
  combineHeads,
  type EdgeList,
  edgeList,
  edgeObjects,
  edgeSignature,
  linesToEdges,
  removeHidden,
  thresholdEdges,
  visibleMask,
} from "../src/panels/attention/attention";
import { emptyPairFilter, filterPairs, inSpan } from "../src/panels/pairs/filter";
import { FakeModel, f16Payload, i32Payload, u16Payload } from "./fakeModel";

// [CLS] a b [SEP] c d e [SEP]: segment A up to the first [SEP], B after it.
const TOKENS = ["[CLS]", "a", "b", "[SEP]", "c", "d", "e", "[SEP]"];
const SPECIAL = [true, false, false, true, false, false, false, true];
const SEGMENTS = [0, 0, 0, 0, 1, 1, 1, 1];
const n = TOKENS.length;
const H = 2;

/** Attention [H, n, n] with uneven rows (multiples of 1/1024: exact in float16). */
function attention(): number[] {
  const out: number[] = [];
  for (let h = 0; h < H; h++)
    for (let i = 0; i < n; i++) {
      const row = Array.from({ length: n }, (_, j) => 1 + ((i * 7 + j * 3 + h * 5) % 11));
      const sum = row.reduce((a, b) => a + b, 0);
      let used = 0;
      row.forEach((v, j) => {
        const q = j === n - 1 ? 1024 - used : Math.floor((v / sum) * 1024);
        used += q;
        out.push(q / 1024);
      });
    }
  return out;
}

/** The reference: the lines under "all", then a plain segment test per edge. */
function expected(filter: [number, number] | null, threshold: number) {
  const att = new Float32Array(attention());
  const visible = visibleMask(n, SPECIAL, true);
  const all = thresholdEdges(removeHidden(combineHeads(att, H, n, [0, 1], null), n, visible), n, threshold);
  const kept = edgeObjects(all).filter(
    (e) => !filter || (SEGMENTS[e.from] === filter[0] && SEGMENTS[e.to] === filter[1]),
  );
  return edgeList(kept);
}

function pairState(over: Record<string, unknown> = {}) {
  return {
    sentence: "a b",
    sentence_b: "c d e",
    takes_pair: true,
    pair_filter: "all",
    segments: SEGMENTS,
    layer: 0,
    heads: [0, 1],
    head_weights: null,
    masked: [],
    hide_special: true,
    threshold: 0.7,
    selected: null,
    tokens: TOKENS,
    special: SPECIAL,
    generated: TOKENS.map(() => false),
    kind: "bidirectional",
    num_layers: 1,
    num_heads: H,
    model_name: "tiny-bert",
    model_description: "",
    has_lm_head: true,
    truncated: false,
    error: "",
    top_k: TOKENS.map(() => [["x", 0.5]]),
    attention_mode: "all_heads",
    attention: f16Payload(attention(), [H, n, n]),
    lines: null,
    lines_rows: null,
    lines_scale: 0,
    head_summary: null,
    has_corpus: false,
    search_k: 50,
    hit_list: [],
    hits_attention: null,
    summaries: {},
    report: {}, // no head report (the kernel's default)
    target: "",
    target_text: "",
    target_generated: false,
    part: "encoder",
    parts: [],
    row_span: [],
    column_span: [],
    ...over,
  };
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tick = async () => {
  for (let i = 0; i < 4; i++) await wait(20);
};
let el: HTMLElement;
let cleanup: (() => void) | undefined;
const q = (id: string) => el.querySelector(`[data-testid="${id}"]`) as HTMLElement | null;

async function mount(state: Record<string, unknown>) {
  const model = new FakeModel(state);
  cleanup = widget.render({ model, el });
  await tick();
  return model;
}

beforeEach(() => {
  HTMLCanvasElement.prototype.getContext = (() => null) as typeof HTMLCanvasElement.prototype.getContext;
  el = document.createElement("div");
  document.body.appendChild(el);
});
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
  el.remove();
});

const FILTERS: Array<[string, [number, number] | null]> = [
  ["all", null],
  ["A->A", [0, 0]],
  ["A->B", [0, 1]],
  ["B->A", [1, 0]],
  ["B->B", [1, 1]],
];

describe("filterPairs", () => {
  it("keeps the edges whose row and column segments match, in order", () => {
    const edges: EdgeList = edgeList([
      { from: 1, to: 2, w: 0.5 },
      { from: 1, to: 5, w: 0.25 },
      { from: 5, to: 1, w: 0.125 },
      { from: 6, to: 4, w: 0.75 },
    ]);
    expect(edgeObjects(filterPairs(edges, SEGMENTS, "A->B"))).toEqual([{ from: 1, to: 5, w: 0.25 }]);
    expect(edgeObjects(filterPairs(edges, SEGMENTS, "B->A"))).toEqual([{ from: 5, to: 1, w: 0.125 }]);
    expect(edgeObjects(filterPairs(edges, SEGMENTS, "B->B"))).toEqual([{ from: 6, to: 4, w: 0.75 }]);
    expect(filterPairs(edges, SEGMENTS, "all")).toBe(edges);
  });

  it("says why a filter on sentence B draws nothing when there is no B", () => {
    const single = [0, 0, 0, 0];
    for (const f of ["A->B", "B->A", "B->B"] as const) {
      expect(filterPairs(edgeList([{ from: 1, to: 2, w: 1 }]), single, f).count).toBe(0);
      expect(emptyPairFilter(single, f)).toContain(f.replace("->", " → "));
      expect(emptyPairFilter(SEGMENTS, f)).toBeNull();
    }
    expect(emptyPairFilter(single, "A->A")).toBeNull();
    expect(emptyPairFilter(single, "all")).toBeNull();
  });

  it("restricts a column to its span", () => {
    expect(inSpan([true, false, true, true], [1, 3])).toEqual([false, false, true, false]);
    expect(inSpan([true, false], [])).toEqual([true, false]);
  });
});

describe("sentence pairs in the view", () => {
  it("draws under each filter the lines of 'all' whose segments match", async () => {
    const model = await mount(pairState());
    const lines = q("attention-lines")!;
    const counts: number[] = [];
    for (const [name, seg] of FILTERS) {
      model.update({ pair_filter: name });
      await tick();
      const want = expected(seg, 0.7);
      expect(lines.getAttribute("data-edge-count")).toBe(String(want.count));
      expect(lines.getAttribute("data-signature")).toBe(edgeSignature(want, null, "L0"));
      counts.push(want.count);
    }
    // the four filters split "all" (each line is in one of them), and none is empty here
    expect(counts.slice(1).reduce((a, b) => a + b, 0)).toBe(counts[0]);
    expect(counts.slice(1).every((c) => c > 0)).toBe(true);
  });

  it("separates the sentences by a rule above B's first shown token, in both columns", async () => {
    await mount(pairState());
    for (const side of ["left", "right"]) {
      expect(q(`token-${side}-4`)!.className).toContain("segment-start"); // [SEP] 3 is hidden
      expect(q(`token-${side}-5`)!.className).toContain("segment-b");
      expect(q(`token-${side}-5`)!.className).not.toContain("segment-start");
      expect(q(`token-${side}-2`)!.className).not.toContain("segment-b");
    }
  });

  it("the filter control is shown with a pair and sends pair_filter", async () => {
    const model = await mount(pairState());
    const select = q("pair-filter") as HTMLSelectElement;
    expect(select.closest("label")!.style.display).toBe("");
    select.value = "B->A";
    select.dispatchEvent(new Event("change"));
    expect(model.saved[model.saved.length - 1]).toEqual({ pair_filter: "B->A" });
    model.update({ segments: SEGMENTS.map(() => 0), sentence_b: "", pair_filter: "all" });
    await tick();
    expect(select.closest("label")!.style.display).toBe("none"); // no pair: no filter
  });

  it("shows no second-sentence row for a model without a pair convention", async () => {
    const model = await mount(pairState({ kind: "autoregressive", takes_pair: false, sentence_b: "" }));
    expect(q("pair-controls")!.style.display).toBe("none");
    model.update({ takes_pair: true }); // the same row for a model that takes pairs
    await tick();
    expect(q("pair-controls")!.style.display).toBe("");
  });

  it("filters the kernel's lines of a long input the same way", async () => {
    // rows: 1 -> 2, 5; 2 -> 1; 5 -> 1, 6; 6 -> 4
    const rows = [0, 0, 2, 3, 3, 3, 5, 6, 6];
    const flat = [2, 65535, 5, 30000, 1, 20000, 1, 40000, 6, 10000, 4, 50000];
    const model = await mount(
      pairState({
        attention_mode: "combined",
        attention: null,
        lines: u16Payload(flat, [flat.length / 2, 2]),
        lines_rows: i32Payload(rows, [n + 1]),
        lines_scale: 0.5,
        head_summary: f16Payload(new Array(2 * n * H).fill(0.25), [2, n, H]),
        pair_filter: "A->B",
      }),
    );
    const all = linesToEdges(new Int32Array(rows), new Uint16Array(flat), 0.5, n);
    const want = edgeList(edgeObjects(all).filter((e) => SEGMENTS[e.from] === 0 && SEGMENTS[e.to] === 1));
    const lines = q("attention-lines")!;
    expect(want.count).toBe(1);
    expect(lines.getAttribute("data-signature")).toBe(edgeSignature(want, null, "L0"));
    model.update({ pair_filter: "B->A" });
    await tick();
    expect(lines.getAttribute("data-edge-count")).toBe("1"); // 5 -> 1
  });
});

describe("encoder–decoder parts in the view", () => {
  // source: ▁a ▁b </s> (0..2); target: <pad> ▁x ▁y (3..5)
  const S2S = ["▁a", "▁b", "</s>", "<pad>", "▁x", "▁y"];
  const SPEC = [false, false, true, true, false, false];
  const m = S2S.length;
  function cross(): number[] {
    // [H, m, m], the cross block at rows 3..5, columns 0..2, zeros elsewhere
    const out = new Array(H * m * m).fill(0);
    for (let h = 0; h < H; h++)
      for (let i = 3; i < m; i++) {
        out[h * m * m + i * m + 0] = 0.75;
        out[h * m * m + i * m + 1] = 0.125;
        out[h * m * m + i * m + 2] = 0.125;
      }
    return out;
  }
  const state = (over: Record<string, unknown> = {}) =>
    pairState({
      kind: "seq2seq",
      takes_pair: false, // as the kernel says for every encoder–decoder model
      tokens: S2S,
      special: SPEC,
      segments: S2S.map(() => 0),
      sentence_b: "",
      generated: S2S.map(() => false),
      top_k: [[], [], [], [["▁x", 0.5]], [["▁y", 0.25]], [["</s>", 0.5]]],
      attention: f16Payload(cross(), [H, m, m]),
      part: "cross",
      parts: ["encoder", "decoder", "cross"],
      row_span: [3, 6],
      column_span: [0, 3],
      target_text: "x y",
      target_generated: true,
      ...over,
    });

  it("cross: target tokens on the left, source tokens on the right, lines between them", async () => {
    await mount(state());
    const left = Array.from(el.querySelectorAll(".exbert-tokens-left .exbert-token")).map((d) => d.textContent);
    const right = Array.from(el.querySelectorAll(".exbert-tokens-right .exbert-token")).map((d) => d.textContent);
    expect(left).toEqual(["▁x", "▁y"]); // <pad> is special, hidden
    expect(right).toEqual(["▁a", "▁b"]); // </s> hidden
    const lines = q("attention-lines")!;
    // each visible target row: ▁a (0.75 of 0.875) reaches 0.7 alone
    expect(lines.getAttribute("data-edge-count")).toBe("2");
    expect(q("token-left-0")).toBeNull();
    expect(q("token-right-4")).toBeNull();
    expect((q("part-select") as HTMLSelectElement).value).toBe("cross");
    expect((q("target-input") as HTMLInputElement).value).toBe("x y");
    expect(q("target-generated-note")!.style.display).toBe("");
    expect(q("search-unavailable")!.style.display).toBe("");
    expect(q("pair-controls")!.style.display).toBe("none");
    // heads grids: a row's strongest share (left), a column's mean over the part's rows (right):
    // rows 4 and 5 give ▁a 0.75 / 0.875 once </s> is hidden; the source rows do not count
    expect(Number(q("head-cell-left-4-0")!.getAttribute("data-value"))).toBeCloseTo(0.75 / 0.875, 3);
    expect(Number(q("head-cell-right-0-1")!.getAttribute("data-value"))).toBeCloseTo(0.75 / 0.875, 3);
    expect(Number(q("head-cell-right-1-0")!.getAttribute("data-value"))).toBeCloseTo(0.125 / 0.875, 3);
  });

  it("the part selector sends part; an unedited generated target stays generated", async () => {
    const model = await mount(state());
    const select = q("part-select") as HTMLSelectElement;
    select.value = "decoder";
    select.dispatchEvent(new Event("change"));
    expect(model.saved[model.saved.length - 1]).toEqual({ part: "decoder" });
    q("target-apply")!.click();
    expect(model.saved[model.saved.length - 1]).toEqual({ target: "" });
    (q("target-input") as HTMLInputElement).value = "x z";
    q("target-apply")!.click();
    expect(model.saved[model.saved.length - 1]).toEqual({ target: "x z" });
  });

  it("tooltips: the decoder's predictions at target tokens, a note at source tokens", async () => {
    await mount(state());
    q("token-left-4")!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    await tick();
    expect(q("tooltip")!.textContent).toContain("the decoder would predict next");
    q("token-right-1")!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    await tick();
    expect(q("tooltip")!.textContent).toContain("source token");
  });
});
