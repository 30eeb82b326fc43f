// @vitest-environment jsdom
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { NO_REPLY_MS } from "../src/core/commands";
import { DEBOUNCE_MS } from "../src/core/model";
import widget from "../src/index";
import { SELECT_DELAY_MS } from "../src/panels/attention/clicks";
import { MAX_DRAWN } from "../src/panels/attention/curves";
import { FakeModel, f16Payload, f32Payload, makeAttention } from "./fakeModel";

const XSS = "<img src=x onerror=alert(1)>";
const TOKENS = ["[CLS]", "The", XSS, "ran", "[SEP]"];
const n = TOKENS.length;
const H = 3;

function initial(over: Record<string, unknown> = {}) {
  return {
    sentence: `The ${XSS} ran`,
    layer: 0,
    heads: [0, 1, 2],
    head_weights: null,
    masked: [],
    hide_special: true,
    threshold: 0.7,
    selected: null,
    tokens: TOKENS,
    special: [true, false, false, false, true],
    kind: "bidirectional",
    num_layers: 2,
    num_heads: H,
    model_name: "tiny-bert",
    has_lm_head: true,
    truncated: false,
    error: "",
    top_k: TOKENS.map(() => [
      ["dog", 0.125],
      ["cat", 0.05],
    ]),
    attention: f16Payload(makeAttention(H, n), [H, n, n]),
    has_corpus: false,
    search_k: 50,
    search_busy: false,
    search_error: "",
    hit_list: [],
    hits_attention: null,
    summaries: {},
    report: {}, // no head report (the kernel's default)
    ...over,
  };
}

// Chained timeouts: each link starts after the callbacks due before it ran, so a change's frame
// and the draw it schedules have both run, however slow the machine (no single long sleep).
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tick = async () => {
  for (let i = 0; i < 4; i++) await wait(20);
};
const settle = async () => {
  await wait(SELECT_DELAY_MS + 50); // a click's selection is sent
  await tick();
};
let el: HTMLElement;
let cleanup: (() => void) | undefined;
const q = (id: string) => el.querySelector(`[data-testid="${id.replace(/["\\]/g, "\\$&")}"]`) as HTMLElement | null;

/** A real click: `detail` counts the clicks of a double-click (1, then 2). */
function click(id: string, detail: number) {
  q(id)!.dispatchEvent(new MouseEvent("click", { bubbles: true, detail }));
}

async function mount(over: Record<string, unknown> = {}) {
  const model = new FakeModel(initial(over));
  cleanup = widget.render({ model, el });
  await tick();
  return model;
}

beforeEach(() => {
  // jsdom has no canvas; the view must cope with a null context (and stay quiet).
  HTMLCanvasElement.prototype.getContext = (() => null) as typeof HTMLCanvasElement.prototype.getContext;
  el = document.createElement("div");
  document.body.appendChild(el);
});
afterEach(() => {
  cleanup?.();
  el.remove();
});

describe("attention view", () => {
  it("renders tokens as text, never as HTML", async () => {
    await mount();
    expect(q("exbert-root")).not.toBeNull();
    expect(q("token-left-2")!.textContent).toBe(XSS);
    expect(q("token-right-2")!.textContent).toBe(XSS);
    expect(el.querySelector("img")).toBeNull();
    expect((q("sentence-input") as HTMLInputElement).value).toBe(`The ${XSS} ran`);
  });

  it("hides special tokens and shows them when hide_special is off", async () => {
    const model = await mount();
    expect(q("token-left-0")).toBeNull();
    expect(q("token-right-4")).toBeNull();
    expect(q("head-cell-left-1-2")).not.toBeNull();
    (q("hide-special") as HTMLInputElement).click();
    expect(model.get("hide_special")).toBe(false);
    await tick();
    expect(q("token-left-0")!.textContent).toBe("[CLS]");
    expect(q("token-left-0")!.classList.contains("special")).toBe(true);
  });

  it("exposes the drawn edge set on the lines element", async () => {
    const model = await mount();
    const lines = q("attention-lines")!;
    expect(lines.getAttribute("data-layer")).toBe("0");
    // 3 visible tokens; per row, the mean of 3 heads puts ~1/3 + 0.4/15 on 3 distinct
    // targets; renormalised over the visible columns, 0.7 needs 3 edges in most rows.
    const count0 = Number(lines.getAttribute("data-edge-count"));
    expect(count0).toBeGreaterThan(0);
    const sig0 = lines.getAttribute("data-signature");
    model.update({ heads: [0], threshold: 0.5 });
    await tick();
    expect(Number(lines.getAttribute("data-edge-count"))).toBe(3); // one dominant edge per visible row
    expect(lines.getAttribute("data-signature")).not.toBe(sig0);
    model.update({ threshold: 1 });
    await tick();
    expect(Number(lines.getAttribute("data-edge-count"))).toBe(9); // all visible pairs
    model.update({ layer: 1, attention: f16Payload(makeAttention(H, n), [H, n, n]) });
    await tick();
    expect(lines.getAttribute("data-layer")).toBe("1");
  });

  it("says when the lines in view are too many to draw them all", async () => {
    const m = 80; // 6,400 pairs at threshold 1: more than MAX_DRAWN
    const toks = Array.from({ length: m }, (_, i) => `w${i}`);
    const model = await mount({
      tokens: toks,
      special: toks.map(() => false),
      top_k: [],
      threshold: 1,
      attention: f16Payload(makeAttention(H, m), [H, m, m]),
    });
    const note = q("lines-capped-note")!;
    const lines = q("attention-lines")!;
    expect(MAX_DRAWN).toBe(6000);
    expect(lines.getAttribute("data-drawn-count")).toBe("6000");
    expect(note.style.visibility).not.toBe("hidden");
    expect(note.textContent).toBe("showing the 6,000 strongest of 6,400 lines");
    expect(note.title).toContain("faintest are left out");
    model.update({ threshold: 0.5 });
    await tick();
    expect(note.style.visibility).toBe("hidden");
    expect(note.textContent).toBe("");
  });

  it("hover shows a token's lines only and the top-k tooltip", async () => {
    const model = await mount({ threshold: 1 });
    const lines = q("attention-lines")!;
    q("token-left-1")!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    await tick();
    expect(lines.getAttribute("data-edge-count")).toBe("3");
    expect(lines.getAttribute("data-mode")).toBe("token-left-1");
    const tip = q("tooltip")!;
    expect(tip.style.display).not.toBe("none");
    expect(tip.textContent).toContain("would predict here");
    expect(tip.textContent).toContain("dog");
    expect(tip.textContent).toContain("12.5%");
    q("token-left-1")!.parentElement!.dispatchEvent(new MouseEvent("mouseleave"));
    await tick();
    expect(tip.style.display).toBe("none");
    expect(lines.getAttribute("data-edge-count")).toBe("9");
    model.update({ has_lm_head: false });
    await tick();
    q("token-right-2")!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(tip.textContent).toContain("no LM head");
  });

  it("hovering a head cell shows that head's lines alone", async () => {
    await mount({ heads: [0, 1, 2], threshold: 0.5 });
    const lines = q("attention-lines")!;
    q("head-cell-left-1-0")!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    await tick();
    expect(lines.getAttribute("data-mode")).toBe("head-0");
    expect(lines.getAttribute("data-edge-count")).toBe("3"); // i -> i dominates every row
    expect(q("head-toggle-0")!.classList.contains("hovered")).toBe(true);
    // head 2 sends tokens 2 and 3 to hidden specials: their rows become uniform over
    // the 3 visible tokens, so 0.5 needs 2 tied edges each; token 1 keeps 1 -> 5
    q("head-cell-right-3-2")!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    await tick();
    expect(lines.getAttribute("data-mode")).toBe("head-2");
    expect(lines.getAttribute("data-edge-count")).toBe("5");
    q("head-cell-right-3-2")!.parentElement!.parentElement!.dispatchEvent(new MouseEvent("mouseleave"));
    await tick();
    expect(lines.getAttribute("data-mode")).toBe("all");
  });

  it("click selects / unselects: shown at once, sent after the double-click time", async () => {
    const model = await mount({ hide_special: false });
    click("token-left-2", 1);
    expect(q("token-left-2")!.classList.contains("selected")).toBe(true);
    expect(model.get("selected")).toBe(null); // not yet: this may be half a double-click
    await settle();
    expect(model.get("selected")).toBe(2);
    expect(model.saves).toBe(1);
    click("token-right-2", 1);
    click("token-left-3", 0); // keyboard / synthetic clicks (detail 0) are single clicks
    await settle();
    expect(model.get("selected")).toBe(3); // the first click was sent when the second came
    expect(q("token-right-3")!.classList.contains("selected")).toBe(true);
    expect(q("token-right-2")!.classList.contains("selected")).toBe(false);
  });

  it("double-click masks (not specials) and leaves the selection as it was", async () => {
    const model = await mount({ hide_special: false, selected: 1 });
    const doubleClick = (id: string) => {
      click(id, 1);
      click(id, 2);
      q(id)!.dispatchEvent(new MouseEvent("dblclick", { bubbles: true, detail: 2 }));
    };
    doubleClick("token-left-3");
    expect(model.get("masked")).toEqual([3]);
    await settle();
    expect(model.get("selected")).toBe(1);
    expect(model.saves).toBe(1); // the mask only: no selection messages
    expect(q("token-left-3")!.classList.contains("masked")).toBe(true);
    expect(q("token-left-1")!.classList.contains("selected")).toBe(true);
    expect(q("token-left-3")!.classList.contains("selected")).toBe(false);
    doubleClick("token-left-0"); // special: never masked
    expect(model.get("masked")).toEqual([3]);
    // A slow double-click: the first click's selection was already sent; the second sends it back.
    click("token-right-3", 1);
    await settle();
    expect(model.get("selected")).toBe(3);
    click("token-right-3", 2);
    q("token-right-3")!.dispatchEvent(new MouseEvent("dblclick", { bubbles: true, detail: 2 }));
    expect(model.get("selected")).toBe(1);
    expect(model.get("masked")).toEqual([]);
    await settle();
    expect(model.get("selected")).toBe(1);
  });

  it("autoregressive: no masking; greyed after the selection, next marked", async () => {
    const model = await mount({ kind: "autoregressive", selected: 1, hide_special: false });
    expect(q("token-left-2")!.classList.contains("next")).toBe(true);
    expect(q("token-left-3")!.classList.contains("greyed")).toBe(true);
    expect(q("token-left-1")!.classList.contains("greyed")).toBe(false);
    expect(q("token-left-0")!.classList.contains("greyed")).toBe(false);
    q("token-left-3")!.dispatchEvent(new MouseEvent("dblclick", { bubbles: true }));
    expect(model.get("masked")).toEqual([]);
    q("token-left-3")!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(q("tooltip")!.textContent).toContain("would predict next");
  });

  it("head toggles, all / none, layer, threshold and apply write traits", async () => {
    const model = await mount({ head_weights: [1, 0, 0], heads: [0, 1, 2] });
    expect(q("head-toggle-0")!.classList.contains("on")).toBe(true);
    expect(q("head-toggle-1")!.classList.contains("on")).toBe(false);
    q("head-cell-right-2-1")!.click();
    expect(model.get("heads")).toEqual([0, 1]);
    expect(model.get("head_weights")).toBe(null);
    q("head-toggle-0")!.click();
    expect(model.get("heads")).toEqual([1]);
    q("heads-none")!.click();
    expect(model.get("heads")).toEqual([]);
    q("heads-all")!.click();
    expect(model.get("heads")).toEqual([0, 1, 2]);
    const sel = q("layer-select") as HTMLSelectElement;
    expect(Array.from(sel.options).map((o) => o.value)).toEqual(["0", "1"]);
    sel.value = "1";
    sel.dispatchEvent(new Event("change"));
    expect(model.get("layer")).toBe(1);
    const slider = q("threshold-slider") as HTMLInputElement;
    slider.value = "0.4";
    slider.dispatchEvent(new Event("input"));
    expect(model.get("threshold")).toBe(0.4);
    const input = q("sentence-input") as HTMLInputElement;
    input.value = "Hello there";
    input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter" }));
    expect(model.get("sentence")).toBe("Hello there");
    input.value = "Again";
    q("sentence-apply")!.click();
    expect(model.get("sentence")).toBe("Again");
  });

  it("shows head weights set from Python on the head toggles, and drops them with the weights", async () => {
    const model = await mount({ head_weights: [0.5, 0, -2], heads: [0, 1, 2] });
    const toggle = (h: number) => q(`head-toggle-${h}`)!;
    const fill = (h: number) => toggle(h).style.getPropertyValue("--w");
    expect([0, 1, 2].map((h) => toggle(h).getAttribute("data-weight"))).toEqual(["0.5", "0", "-2"]);
    expect([fill(0), fill(1), fill(2)]).toEqual(["0.250", "0.000", "1.000"]); // |w| / max |w|
    expect([0, 1, 2].map((h) => toggle(h).classList.contains("weighted"))).toEqual([true, false, true]);
    expect(toggle(2).classList.contains("negative")).toBe(true);
    expect(toggle(0).title).toContain("weight 0.5");
    expect(toggle(2).title).toContain("weight -2");
    model.update({ head_weights: [1 / 3, 1, 0] });
    await tick();
    expect(toggle(0).title).toContain("weight 0.3333"); // no float noise
    expect(toggle(2).classList.contains("negative")).toBe(false);
    model.update({ head_weights: null });
    await tick();
    expect(toggle(0).hasAttribute("data-weight")).toBe(false);
    expect(toggle(0).classList.contains("weighted")).toBe(false);
    expect(toggle(0).title).toBe("head 0: click to toggle");
  });

  it("shows the truncation note and errors", async () => {
    const model = await mount();
    expect(q("truncated-note")!.style.display).toBe("none");
    expect(q("error")!.style.display).toBe("none");
    model.update({ truncated: true, error: "boom <b>x</b>" });
    await tick();
    expect(q("truncated-note")!.style.display).toBe("");
    expect(q("truncated-note")!.textContent).toBe("Input was truncated to the model's maximum length");
    expect(q("error")!.textContent).toBe("boom <b>x</b>");
    expect(el.querySelector("b")).toBeNull();
  });

  it("keeps keys pressed in its controls away from the page's shortcuts", async () => {
    await mount();
    const seen: string[] = [];
    const onKey = (ev: Event) => seen.push((ev.target as HTMLElement).getAttribute("data-testid") ?? "?");
    document.addEventListener("keydown", onKey);
    try {
      for (const id of ["threshold-slider", "layer-select", "heads-all", "sentence-input"]) {
        q(id)!.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowLeft", bubbles: true }));
      }
      q("token-left-1")!.dispatchEvent(new KeyboardEvent("keydown", { key: "a", bubbles: true }));
    } finally {
      document.removeEventListener("keydown", onKey);
    }
    expect(seen).toEqual(["token-left-1"]); // keys outside controls still reach the notebook
  });

  it("survives an empty state and mismatched attention", async () => {
    const model = await mount({ tokens: [], special: [], attention: null, top_k: [] });
    expect(q("attention-lines")!.getAttribute("data-edge-count")).toBe("0");
    model.update({ tokens: ["a", "b"], special: [false, false] }); // attention still for 0 tokens
    await tick();
    expect(q("token-left-1")!.textContent).toBe("b");
    expect(q("attention-lines")!.getAttribute("data-edge-count")).toBe("0");
  });
  it("reports an attention payload the contract refuses, and draws no lines from it", async () => {
    const model = await mount({ attention: f32Payload(makeAttention(H, n), [H, n, n]) });
    expect(q("error")!.style.display).toBe("");
    expect(q("error")!.textContent).toBe("the view cannot draw attention: dtype float32 is not float16");
    expect(q("attention-lines")!.getAttribute("data-edge-count")).toBe("0");
    model.update({ attention: f16Payload(makeAttention(H, n), [H, n, n]) });
    await tick();
    expect(q("error")!.style.display).toBe("none");
    expect(Number(q("attention-lines")!.getAttribute("data-edge-count"))).toBeGreaterThan(0);
  });

  it("sends a dragged slider to the kernel once it rests, drawing every step", async () => {
    const model = await mount({ threshold: 0.7 });
    const slider = q("threshold-slider") as HTMLInputElement;
    const lines = q("attention-lines")!;
    const counts = new Set<string | null>();
    vi.useFakeTimers(); // frames and the debounce both run on timers here: step them exactly
    try {
      for (const v of ["0.6", "0.5", "0.4", "0.3", "1"]) {
        slider.value = v;
        slider.dispatchEvent(new Event("input"));
        vi.advanceTimersByTime(DEBOUNCE_MS / 3); // a few frames: the lines follow the slider
        counts.add(lines.getAttribute("data-edge-count"));
      }
      expect(counts.size).toBeGreaterThan(1);
      expect(model.saved).toEqual([]); // nothing sent while the slider moves
      vi.advanceTimersByTime(DEBOUNCE_MS);
      expect(model.saved).toEqual([{ threshold: 1 }]);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe("search panel", () => {
  const hits = [
    {
      sentence_id: 4,
      token_index: 1,
      score: 0.91,
      token: "girl",
      pos: "NOUN",
      dep: "nsubj",
      ent: "",
      sentence: "The girl <i>ran</i>",
      tokens: ["The", "girl", "<i>ran</i>"],
      token_pos: ["DET", "NOUN", "VERB"],
      token_dep: ["det", "nsubj", "ROOT"],
      token_ent: ["", "", ""],
      max_att_index: 0,
      max_att_token: "The",
      max_att_pos: "DET",
      max_att_dep: "det",
      max_att_ent: "",
      max_att_offset: -1,
      att_offset: 0,
      att_length: 3,
      describes_next: false,
    },
    {
      sentence_id: 9,
      token_index: 0,
      score: 0.5,
      token: "Dorothy",
      pos: "PROPN",
      dep: "nsubj",
      ent: "PERSON",
      sentence: "Dorothy smiled",
      tokens: ["Dorothy", "smiled"],
      token_pos: ["PROPN", "VERB"],
      token_dep: ["nsubj", "ROOT"],
      token_ent: ["PERSON", ""],
      max_att_index: 1,
      max_att_token: "smiled",
      max_att_pos: "VERB",
      max_att_dep: "ROOT",
      max_att_ent: "",
      max_att_offset: 1,
      att_offset: 3,
      att_length: 2,
      describes_next: true,
    },
  ];
  const summaries = {
    match: { pos: { NOUN: 1, PROPN: 1, VERB: 0 }, dep: { nsubj: 2 }, ent: { PERSON: 1, "": 1 }, offset: { "0": 2 } },
    max_att: { pos: { DET: 1, VERB: 3 }, dep: { det: 1, ROOT: 1 }, ent: { "": 2 }, offset: { "-1": 1, "1": 1 } },
  };

  it("is hidden without a corpus", async () => {
    await mount();
    expect(q("search-panel")!.style.display).toBe("none");
  });

  it("enables buttons from the selection and heads, sends search", async () => {
    const model = await mount({ has_corpus: true, heads: [] });
    const emb = q("search-embedding") as HTMLButtonElement;
    const ctx = q("search-context") as HTMLButtonElement;
    expect(q("search-panel")!.style.display).toBe("");
    expect(emb.disabled).toBe(true);
    model.update({ selected: 2 });
    await tick();
    expect(emb.disabled).toBe(false);
    expect(ctx.disabled).toBe(true);
    model.update({ heads: [1] });
    await tick();
    expect(ctx.disabled).toBe(false);
    const k = q("search-k") as HTMLInputElement;
    expect(k.value).toBe("50");
    k.value = "7";
    k.dispatchEvent(new Event("change"));
    expect(model.get("search_k")).toBe(7);
    ctx.click();
    // the defaults of view.search: a varied first list
    expect(model.commands()).toEqual([
      { name: "search", args: { by: "context", k: 7, skip_own_sentence: true, max_per_sentence: 2 } },
    ]);
    expect(emb.disabled).toBe(true); // busy until the reply
    expect(q("search-busy")!.style.display).toBe("");
    model.reply(0, { error: { type: "InputError", message: "index <missing>" } });
    await tick();
    expect(emb.disabled).toBe(false);
    expect(q("search-busy")!.style.display).toBe("none");
    expect(q("search-error")!.textContent).toBe("index <missing>");
    expect(el.querySelector("missing")).toBeNull();
    (q("search-skip-own") as HTMLInputElement).click();
    const perSentence = q("search-per-sentence") as HTMLSelectElement;
    perSentence.value = "";
    emb.click();
    expect(model.commands()[1]).toEqual({
      name: "search",
      args: { by: "embedding", k: 7, skip_own_sentence: false, max_per_sentence: null },
    });
  });

  /** A view with a corpus, token 2 selected and the two hits shown. */
  const mountWithHits = () =>
    mount({
      has_corpus: true,
      selected: 2,
      hit_list: hits,
      summaries,
      hits_attention: f16Payload([0.25, 0.5, 0.25, 0.2, 0.8], [5]),
    });

  it("renders hits, shading, strips and histograms", async () => {
    const model = await mountWithHits();
    expect(q("hits")!.textContent).toContain("describes the next token");
    expect(q("hit-token-0-2")!.textContent).toBe("<i>ran</i>");
    expect(el.querySelector("i")).toBeNull();
    expect(q("hit-token-0-1")!.classList.contains("match")).toBe(true);
    expect(q("hit-token-0-0")!.classList.contains("match")).toBe(false);
    expect(q("hit-token-0-1")!.style.getPropertyValue("--a")).toBe("1.000");
    expect(q("hit-token-0-0")!.style.getPropertyValue("--a")).toBe("0.500");
    expect(q("hit-token-1-0")!.style.getPropertyValue("--a")).toBe("0.250");
    q("hit-token-1-0")!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    const tip = q("hit-tooltip")!;
    expect(tip.textContent).toContain("PROPN");
    expect(tip.textContent).toContain("PERSON");
    expect(tip.textContent).toContain("0.2000");
    q("hit-1")!.click();
    expect(model.commands()).toEqual([{ name: "load_hit", args: { index: 1 } }]);

    // strips: offsets -1..+1 by default, widen / shrink within 0..5
    const strips = q("summary-strips")!;
    expect(strips.querySelectorAll(".exbert-strip").length).toBe(3);
    expect(q("strip-cell--1-0")!.getAttribute("data-label")).toBe("DET");
    // hit 1 describes the next token: its strips centre on token 1 ("smiled")
    expect(q("strip-cell-0-1")!.getAttribute("data-label")).toBe("VERB");
    expect(q("strip-cell--1-1")!.getAttribute("data-label")).toBe("PROPN");
    expect(q("strip-cell-1-1")!.classList.contains("empty")).toBe(true);
    q("strip-offset-plus")!.click();
    expect(strips.querySelectorAll(".exbert-strip").length).toBe(5);
    for (let i = 0; i < 6; i++) q("strip-offset-plus")!.click();
    expect(strips.querySelectorAll(".exbert-strip").length).toBe(11);
    for (let i = 0; i < 5; i++) q("strip-offset-minus")!.click();
    expect(strips.querySelectorAll(".exbert-strip").length).toBe(1);
    q("strip-cell-0-1")!.dispatchEvent(new MouseEvent("mouseover", { bubbles: true }));
    expect(q("hit-1")!.classList.contains("highlight")).toBe(true);

    // histograms sorted by count with text counts; field select switches both
    const bars = Array.from(q("hist-max-att")!.querySelectorAll("[data-testid^='hist-bar-']"));
    expect(bars.map((b) => b.getAttribute("data-testid"))).toEqual(["hist-bar-max-att-VERB", "hist-bar-max-att-DET"]);
    expect(q("hist-bar-max-att-VERB")!.textContent).toContain("3");
    expect(q("hist-bar-match-VERB")).toBeNull(); // zero counts are not drawn
    const field = q("hist-field") as HTMLSelectElement;
    field.value = "offset";
    field.dispatchEvent(new Event("change"));
    expect(q("hist-bar-match-0")!.textContent).toContain("2");
    expect(q("hist-bar-max-att--1")).not.toBeNull();
    field.value = "ent";
    field.dispatchEvent(new Event("change"));
    expect(q("hist-bar-match-PERSON")).not.toBeNull();
    q("strip-offset-plus")!.click(); // radius 0 -> 1
    expect(q("strip-cell--1-1")!.getAttribute("data-label")).toBe("PERSON");
    expect(q("strip-cell-0-1")!.getAttribute("data-label")).toBe("");
  });
  it("a search the kernel never answers ends with what to do, the last hits kept", async () => {
    const model = await mountWithHits();
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
    try {
      q("search-embedding")!.click();
      expect(q("search-busy")!.style.display).toBe("");
      vi.advanceTimersByTime(NO_REPLY_MS);
    } finally {
      vi.useRealTimers();
    }
    await tick();
    expect(q("search-busy")!.style.display).toBe("none");
    expect(q("search-error")!.textContent).toContain("no reply from the kernel after");
    expect(q("search-error")!.textContent).toContain("run the cell again");
    expect(q("hit-1")).not.toBeNull(); // the previous result stays
    model.reply(0, { result: { count: 2 } }); // late: dropped, the message stays
    await tick();
    expect(q("search-error")!.textContent).toContain("no reply from the kernel after");
    // the kernel, busy with another cell, ran the search after all: its hits end the message
    model.update({ hit_list: hits.slice(0, 1) });
    await tick();
    expect(q("search-error")!.style.display).toBe("none");
    expect(q("hit-1")).toBeNull();
  });

  it("a failed command shows its error and keeps the last hits; superseded clicks never reach the kernel", async () => {
    const model = await mountWithHits();
    q("search-embedding")!.click();
    model.reply(0, { error: { type: "CorpusError", message: "the corpus is gone" } });
    await tick();
    expect(q("search-error")!.textContent).toBe("the corpus is gone");
    expect(q("hit-1")).not.toBeNull(); // the previous result stays
    q("hit-0")!.click();
    q("hit-1")!.click(); // supersedes the first while it is in flight
    q("hit-0")!.click(); // and this one the second, which was waiting
    expect(model.commands().slice(1)).toEqual([{ name: "load_hit", args: { index: 0 } }]);
    expect(q("search-busy")!.style.display).toBe("");
    model.reply(1, { result: { sentence: "The girl <i>ran</i>", selected: 1 } });
    expect(model.commands().slice(2)).toEqual([{ name: "load_hit", args: { index: 0 } }]);
    model.reply(2, { result: { sentence: "The girl <i>ran</i>", selected: 1 } });
    await tick();
    expect(q("search-busy")!.style.display).toBe("none");
    expect(q("search-error")!.style.display).toBe("none"); // a success clears the last error
  });
});
